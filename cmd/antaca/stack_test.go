package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/api"
	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/specs"
	authswitch "github.com/antaca/antaca/switch"
)

// stack is one instance of what `antaca all` runs, in process: a card host
// with its own pool, an iso2003 switch and the API over TLS, each on a
// port of its own, against a shared database.
type stack struct {
	pool   *pgxpool.Pool
	host   *cardhost.Host
	led    *ledger.Ledger
	api    *api.Server
	iso    string // switch address
	apiURL string
	reg    *prometheus.Registry
}

// newStack starts a stack on dbURL; tweak may change the API's config.
func newStack(t *testing.T, dbURL string, keys *hsm.Keys, tweak func(*api.Config)) *stack {
	t.Helper()
	ctx := t.Context()
	pool, err := newPool(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	st := &stack{pool: pool, reg: prometheus.NewRegistry()}
	st.led = ledger.New(pool, ledger.Config{Logger: log})
	st.host = cardhost.NewHost(pool, st.led, keys, cardhost.Config{Logger: log})
	t.Cleanup(st.host.Close)

	sw, err := authswitch.New(authswitch.Config{Profile: authswitch.ProfileISO2003, ZoneKey: authswitch.ProfileISO2003, Logger: log, Registerer: prometheus.NewRegistry()}, st.host)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.iso = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- sw.Serve(ln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sw.Shutdown(sctx)
		if err := <-served; !errors.Is(err, authswitch.ErrServerClosed) {
			t.Errorf("switch serve: %v", err)
		}
	})

	cert, err := api.IssueServerCertificate(keys.CACert, keys.CAKey, []string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{TLSCert: cert, CA: keys.CACert, CAKey: keys.CAKey, JWEKey: keys.JWEKey, Logger: log, Registerer: st.reg}
	if tweak != nil {
		tweak(&cfg)
	}
	if st.api, err = api.New(cfg, pool, st.host); err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.apiURL = "https://" + aln.Addr().String()
	apiDone := make(chan error, 1)
	go func() { apiDone <- st.api.Serve(aln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.api.Shutdown(sctx)
		<-apiDone
	})
	return st
}

// httpClient trusts the keys' CA; its connections come from the loopback
// address src (a source address of its own).
func httpClient(keys *hsm.Keys, src string, cert *tls.Certificate) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(keys.CACert)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: cfg, MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
}

// isoClient connects to a switch.
func isoClient(t *testing.T, addr string) *connection.Connection {
	t.Helper()
	spec, err := specs.ISOSpec("iso2003")
	if err != nil {
		t.Fatal(err)
	}
	c, err := connection.New(addr, spec, authswitch.ReadLengthHeader, authswitch.WriteLengthHeader, connection.SendTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// isoLoad sends authorisations of 1.00 for each card, one after the other
// per card, until stop closes; it returns every answer's latency and the
// codes counted. next numbers the STANs.
type isoLoad struct {
	mu    sync.Mutex
	lat   []time.Duration
	codes map[string]int
	errs  int
	stan  int
}

func (l *isoLoad) run(t *testing.T, c *connection.Connection, spec *iso8583.MessageSpec, pan, expiry string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		l.mu.Lock()
		l.stan++
		stan := l.stan
		l.mu.Unlock()
		start := time.Now()
		resp, err := c.Send(authRequest(t, spec, stan, pan, expiry))
		took := time.Since(start)
		l.mu.Lock()
		if err != nil {
			l.errs++
		} else {
			code, _ := resp.GetString(39)
			if l.codes == nil {
				l.codes = map[string]int{}
			}
			l.codes[code]++
			l.lat = append(l.lat, took)
		}
		l.mu.Unlock()
	}
}

// p returns the q-quantile of the latencies.
func (l *isoLoad) p(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lat) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
