package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/antaca/antaca/internal/gctune"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/antaca/antaca/api"
	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/partner"
	"github.com/antaca/antaca/sandbox"
	authswitch "github.com/antaca/antaca/switch"
)

// serveFlags are the flags of `antaca all|switch|api`.
type serveFlags struct {
	common
	keys           string
	iso2003        string
	iso87          string
	links          string
	isoShorthand   bool // -iso2003 or -iso87 given: links from them, no file
	switchMetrics  string
	apiAddr        string
	plainHTTP      string
	apiMetrics     string
	apiHosts       string
	tlsCert        string
	tlsKey         string
	smtp           string
	smtpFrom       string
	webhookMinRate float64
	webhookKeep    time.Duration
	holdTTL        time.Duration
	sessionTTL     time.Duration
	demo           bool
	partnerDevHTTP bool
	simulateSwitch string
	limits         limitFlags
	warm           warmFlags
}

func (f *serveFlags) register(fs *flag.FlagSet, cmd string) {
	f.common.register(fs)
	fs.StringVar(&f.keys, "keys", os.Getenv("ANTACA_KEYS"), "key file (env ANTACA_KEYS); empty: <data>/keys.json, created when missing")
	fs.StringVar(&f.iso2003, "iso2003", envOr("ANTACA_ISO2003_ADDR", ":8583"), "iso2003 listener (env ANTACA_ISO2003_ADDR); empty disables")
	fs.StringVar(&f.iso87, "iso87", envOr("ANTACA_ISO87_ADDR", ":8587"), "iso87 listener (env ANTACA_ISO87_ADDR); empty disables")
	fs.StringVar(&f.links, "links", os.Getenv("ANTACA_LINKS"),
		"links file (env ANTACA_LINKS, docs/iso8583.md); empty: <data>/links.json, written from -iso2003 and -iso87 when missing; given -iso2003 or -iso87, links from those two alone")
	fs.StringVar(&f.switchMetrics, "switch-metrics", envOr("ANTACA_SWITCH_METRICS_ADDR", "127.0.0.1:9102"), "switch Prometheus metrics listener (env ANTACA_SWITCH_METRICS_ADDR; unauthenticated: loopback by default, e.g. :9102 for every interface); empty disables")
	fs.StringVar(&f.apiAddr, "api", envOr("ANTACA_API_ADDR", ":8443"), "REST API TLS listener (env ANTACA_API_ADDR)")
	fs.StringVar(&f.plainHTTP, "plain-http", os.Getenv("ANTACA_PLAIN_HTTP"), "plain HTTP listener for local tools, e.g. :8080 (no /secure channel) (env ANTACA_PLAIN_HTTP)")
	fs.StringVar(&f.apiMetrics, "api-metrics", envOr("ANTACA_API_METRICS_ADDR", "127.0.0.1:9103"), "API Prometheus metrics listener (env ANTACA_API_METRICS_ADDR; unauthenticated: loopback by default); empty disables")
	fs.StringVar(&f.apiHosts, "api-hosts", envOr("ANTACA_API_HOSTS", "localhost,127.0.0.1,::1"),
		"names and addresses the API's certificate from the internal CA covers, comma-separated (env ANTACA_API_HOSTS)")
	fs.StringVar(&f.tlsCert, "tls-cert", os.Getenv("ANTACA_TLS_CERT"), "PEM certificate chain of the API (env ANTACA_TLS_CERT); empty: one from the internal CA for -api-hosts")
	fs.StringVar(&f.tlsKey, "tls-key", os.Getenv("ANTACA_TLS_KEY"), "PEM private key of -tls-cert (env ANTACA_TLS_KEY)")
	fs.StringVar(&f.smtp, "smtp", os.Getenv("ANTACA_SMTP"), "SMTP server host:port for low-balance notifications (env ANTACA_SMTP); empty: they wait in the outbox")
	fs.BoolVar(&f.partnerDevHTTP, "partner-dev-http", os.Getenv("ANTACA_PARTNER_DEV_HTTP") == "1",
		"development only (env ANTACA_PARTNER_DEV_HTTP=1): partner URLs may be http://127.0.0.1 (remote decision, webhooks)")
	fs.StringVar(&f.simulateSwitch, "simulate-switch", os.Getenv("ANTACA_SIMULATE_SWITCH"),
		"iso2003 listener the simulation endpoints send to (env ANTACA_SIMULATE_SWITCH); empty: this process's -iso2003 on 127.0.0.1")
	fs.Float64Var(&f.webhookMinRate, "webhook-min-rate", envFloat("ANTACA_WEBHOOK_MIN_RATE", 200),
		"webhook sends per second kept while this machine's CPUs are busy (env ANTACA_WEBHOOK_MIN_RATE; docs/operations.md); negative: never paced")
	fs.DurationVar(&f.webhookKeep, "webhook-retention", envDuration("ANTACA_WEBHOOK_RETENTION", partner.DefaultRetention),
		"records of delivered webhook events (batch sends, succeeded deliveries and their attempts) older than this are pruned (env ANTACA_WEBHOOK_RETENTION)")
	fs.StringVar(&f.smtpFrom, "smtp-from", envOr("ANTACA_SMTP_FROM", "antaca@localhost"), "sender of notifications (env ANTACA_SMTP_FROM)")
	fs.DurationVar(&f.holdTTL, "hold-ttl", envDuration("ANTACA_HOLD_TTL", 7*24*time.Hour), "authorisation holds not cleared within this time expire (env ANTACA_HOLD_TTL)")
	fs.DurationVar(&f.sessionTTL, "session-ttl", envDuration("ANTACA_SESSION_TTL", 10*time.Minute), "API session lifetime (env ANTACA_SESSION_TTL)")
	fs.BoolVar(&f.demo, "demo", envOr("ANTACA_DEMO", fmt.Sprint(cmd == "all")) == "true", "create the demo data on first start and write <data>/demo.json (env ANTACA_DEMO=true|false)")
	f.limits.register(fs)
	f.warm.register(fs)
}

// logConfig logs the effective configuration with secrets masked.
func (f *serveFlags) logConfig(log *slog.Logger, cmd string) {
	db := "local cluster in " + filepath.Join(f.dataDir, "pg")
	if f.databaseURL != "" {
		db = maskURL(f.databaseURL)
	}
	keys := f.keys
	if keys == "" {
		keys = filepath.Join(f.dataDir, "keys.json")
	}
	log.Info("configuration", "command", cmd, "database", db, "keys", keys, "iso2003", f.iso2003, "iso87", f.iso87, "links", f.links,
		"switch_metrics", f.switchMetrics, "api", f.apiAddr, "plain_http", f.plainHTTP, "api_metrics", f.apiMetrics,
		"api_hosts", f.apiHosts, "tls_cert", f.tlsCert, "tls_key", f.tlsKey != "",
		"smtp", f.smtp, "hold_ttl", f.holdTTL.String(), "session_ttl", f.sessionTTL.String(), "demo", f.demo)
}

// apiCertificate is the API's TLS certificate: -tls-cert and -tls-key when
// given, else one the internal CA issues for -api-hosts (a year; anew at
// each start).
func (f *serveFlags) apiCertificate(keys *hsm.Keys, now time.Time) (tls.Certificate, error) {
	if f.tlsCert != "" || f.tlsKey != "" {
		c, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("api certificate: %w", err)
		}
		return c, nil
	}
	var hosts []string
	for _, h := range strings.Split(f.apiHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("api certificate: -api-hosts names no host")
	}
	return api.IssueServerCertificate(keys.CACert, keys.CAKey, hosts, now, 365*24*time.Hour)
}

func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return "(set)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// serve runs the servers of cmd ("all", "switch" or "api") until ctx ends,
// then shuts them down: stop accepting, answer what is in flight, close the
// pool.
func serve(ctx context.Context, cmd string, args []string) error {
	var f serveFlags
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	f.register(fs, cmd)
	if err := fs.Parse(args); err != nil {
		return err
	}
	fs.Visit(func(fl *flag.Flag) { f.isoShorthand = f.isoShorthand || fl.Name == "iso2003" || fl.Name == "iso87" })
	gctune.Apply()
	log := f.logger()
	f.logConfig(log, cmd)
	warmed := f.warm.apply(&f.common, log)
	pool, closeFn, err := f.open(ctx, log)
	if err != nil {
		return err
	}
	defer closeFn()
	applied, err := ledger.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	log.Info("migrated", "applied", applied)
	// Before any listener opens (the ISO ports, and the API whose /healthz
	// answers only then): connections opened and readied now, not under
	// the first seconds of traffic.
	if warmed != nil {
		warmed.Run(ctx, pool)
	}
	keys, err := loadKeys(f.keys, f.dataDir)
	if err != nil {
		return err
	}
	switchReg := newRegistry()
	led := ledger.New(pool, ledger.Config{HoldTTL: f.holdTTL, Logger: log, Registerer: switchReg})
	out := partner.NewClient(partner.Config{DevHTTPLoopback: f.partnerDevHTTP})
	host := cardhost.NewHost(pool, led, keys, f.limits.host(cardhost.Config{Logger: log, Registerer: switchReg, Remote: partner.NewDecider(out)}))

	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, authswitch.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	var shutdowns []func(context.Context) error
	inUse := &addresses{path: filepath.Join(f.dataDir, "addresses.json")}
	defer inUse.remove()

	if cmd == "all" || cmd == "switch" {
		reg := switchReg
		cfgs, err := f.switchLinks(log)
		if err != nil {
			return err
		}
		for _, cfg := range cfgs {
			if _, ok := keys.ZonePINKeys[cfg.ZoneKey]; !ok {
				return fmt.Errorf("link %s: zone PIN key %q not in the keys file", cfg.Link, cfg.ZoneKey)
			}
			cfg.Logger, cfg.Registerer, cfg.SignOff = log, reg, true
			srv, err := authswitch.New(cfg, host)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("switch %s: %w", cfg.Link, err)
			}
			log.Info("switch listening", "link", cfg.Link, "profile", cfg.Profile, "variant", cfg.Variant, "addr", ln.Addr().String())
			inUse.set(cfg.Profile, ln.Addr().String())
			run("switch "+cfg.Link, func() error { return srv.Serve(ln) })
			shutdowns = append(shutdowns, srv.Shutdown)
		}
		shutdowns = append(shutdowns, serveMetrics(run, f.switchMetrics, reg, log))
		go led.RunExpiry(ctx, time.Minute)
		go host.RunSpendRuleListener(ctx) // spend rules set by other processes: their programs leave the cache at once
		go watchReplication(ctx, led, reg, 5*time.Second, log)
	}
	if cmd == "all" || cmd == "api" {
		reg := newRegistry()
		tlsCert, err := f.apiCertificate(keys, time.Now())
		if err != nil {
			return err
		}
		simAddr := f.simulateSwitch
		if simAddr == "" && f.iso2003 != "" {
			_, port, _ := net.SplitHostPort(f.iso2003)
			simAddr = net.JoinHostPort("127.0.0.1", port)
		}
		sim, err := sandbox.New(host, sandbox.Config{Addr: simAddr})
		if err != nil {
			return err
		}
		srv, err := api.New(f.limits.api(api.Config{Simulator: sim, Addr: f.apiAddr, PlainAddr: f.plainHTTP, TLSCert: tlsCert, CA: keys.CACert, CAKey: keys.CAKey,
			JWEKey: keys.JWEKey, SessionTTL: f.sessionTTL, Logger: log, Registerer: reg, Partner: out}), pool, host)
		if err != nil {
			return err
		}
		log.Info("api listening", "addr", f.apiAddr, "plain_http", f.plainHTTP)
		inUse.set("api", "https://"+hostPort(f.apiAddr))
		run("api", srv.ListenAndServeTLS)
		go srv.RunPrune(ctx, time.Minute)
		go host.RunCardJobs(ctx, 10*time.Second)
		shutdowns = append(shutdowns, srv.Shutdown)
		shutdowns = append(shutdowns, serveMetrics(run, f.apiMetrics, reg, log))
		// Partner events: made from the journal after its commits and
		// delivered to the partners' endpoints, off the authorisation path.
		go partner.NewWebhooks(led, out, partner.WebhookConfig{Logger: log, MinRate: f.webhookMinRate, Retention: f.webhookKeep}).Run(ctx)
		if f.smtp != "" {
			go led.RunOutbox(ctx, partner.Mailer{Addr: f.smtp, From: f.smtpFrom}, ledger.OutboxRetry{}, 10*time.Second)
		}
		if f.demo {
			if err := writeDemo(ctx, host, srv, &f, keys); err != nil {
				return err
			}
		}
	}

	if err := inUse.write(); err != nil {
		log.Warn("addresses in use not written", "err", err)
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("server stopped", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	for _, sd := range shutdowns {
		if err := sd(sctx); err != nil {
			log.Warn("shutdown", "err", err)
		}
	}
	wg.Wait()
	host.Close()
	return runErr
}

// switchLinks is the switch's links: -iso2003/-iso87 alone when given
// (a shorthand), else the links file, <data>/links.json by default,
// written with today's two listeners when missing.
func (f *serveFlags) switchLinks(log *slog.Logger) ([]authswitch.Config, error) {
	fromFlags := func() []authswitch.Link {
		var links []authswitch.Link
		for _, l := range authswitch.DefaultLinks() {
			addr := map[string]string{authswitch.ProfileISO2003: f.iso2003, authswitch.ProfileISO87: f.iso87}[l.Profile]
			if addr != "" {
				l.Listen = addr
				links = append(links, l)
			}
		}
		return links
	}
	if f.isoShorthand && f.links == "" {
		return authswitch.Configs(fromFlags())
	}
	path := f.links
	if path == "" {
		path = filepath.Join(f.dataDir, "links.json")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(f.dataDir, 0o755); err != nil {
				return nil, err
			}
			if err := authswitch.WriteLinks(path, fromFlags()); err != nil {
				return nil, fmt.Errorf("write links file: %w", err)
			}
			log.Info("links file written", "file", path)
		}
	}
	links, err := authswitch.ReadLinks(path)
	if err != nil {
		return nil, err
	}
	log.Info("links", "file", path, "count", len(links))
	return authswitch.Configs(links)
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveMetrics serves /metrics of reg on addr (nothing when addr is empty)
// and returns its shutdown.
func serveMetrics(run func(string, func() error), addr string, reg *prometheus.Registry, log *slog.Logger) func(context.Context) error {
	if addr == "" {
		return func(context.Context) error { return nil }
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	hs := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("metrics listening", "addr", addr)
	run("metrics "+addr, hs.ListenAndServe)
	return hs.Shutdown
}

// writeDemo creates the demo data when missing and writes <data>/demo.json
// (card data, certificates, admin login) on first start.
func writeDemo(ctx context.Context, host *cardhost.Host, srv *api.Server, f *serveFlags, keys *hsm.Keys) error {
	path := filepath.Join(f.dataDir, "demo.json")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	d, err := ensureFullDemo(ctx, host, srv, f, keys)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(d, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return err
	}
	f.logger().Info("demo data written", "file", path)
	return nil
}
