// Command antaca runs the issuer processor: the ISO 8583 switch, the REST
// API, migrations, demo data and ledger checks. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/pgcluster"
)

const usage = `usage: antaca <command> [flags]

commands:
  all            run the switch and the API in one process (development)
  switch         run the ISO 8583 switch
  api            run the REST API
  migrate        apply database migrations
  demo           create demo data once and print how to use it
  call           call any API route (client certificate, session, JWE as required)
  ledger verify  check every ledger invariant; exits 1 on a violation
  journal-archive  move journal rows past their retention to the archive (docs/operations.md)

Run "antaca <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "antaca:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "all", "switch", "api":
		return serve(ctx, cmd, args)
	case "migrate":
		return migrate(ctx, args, stdout)
	case "ledger":
		if len(args) == 0 || args[0] != "verify" {
			return fmt.Errorf("ledger: unknown subcommand (want: ledger verify)")
		}
		return verify(ctx, args[1:], stdout)
	case "journal-archive":
		return journalArchive(ctx, args, stdout)
	case "demo":
		return demo(ctx, args, stdout)
	case "call":
		return call(ctx, args, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// common holds the flags every command shares: where the database is.
type common struct {
	databaseURL string
	dataDir     string
	pgPort      int
	logLevel    string
	// poolOpts change the pool's configuration before it connects (the
	// warm start of serve).
	poolOpts []func(*pgxpool.Config)
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string (env DATABASE_URL); empty: start a local cluster under -data")
	fs.StringVar(&c.dataDir, "data", envOr("ANTACA_DATA", ".data"), "directory of the local cluster, development keys and demo output (env ANTACA_DATA)")
	fs.IntVar(&c.pgPort, "pg-port", envInt("ANTACA_PG_PORT", 15432),
		"TCP port of the local cluster on 127.0.0.1 when DATABASE_URL is empty (env ANTACA_PG_PORT; below 32768, outside the ephemeral range); a command started while the cluster runs in -data uses the port it runs on (its postmaster.pid)")
	fs.StringVar(&c.logLevel, "log-level", envOr("ANTACA_LOG_LEVEL", "info"), "debug, info, warn or error (env ANTACA_LOG_LEVEL)")
}

// runningPort is the port of the cluster running in dir (line 4 of the
// postmaster.pid in its data directory), or 15432 when none runs there.
func runningPort(dir string) int {
	for _, p := range []string{filepath.Join(dir, "data", "postmaster.pid"), filepath.Join(dir, "postmaster.pid")} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if lines := strings.Split(string(b), "\n"); len(lines) > 3 {
			if n, err := strconv.Atoi(strings.TrimSpace(lines[3])); err == nil && n > 0 {
				return n
			}
		}
	}
	return 15432
}

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

func envFloat(key string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(key), 64); err == nil {
		return v
	}
	return def
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (c *common) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// open connects to DATABASE_URL, or starts the local development cluster
// under -data and connects to it. The returned func closes the pool and
// stops a cluster it started.
func (c *common) open(ctx context.Context, log *slog.Logger) (*pgxpool.Pool, func(), error) {
	url := c.databaseURL
	var cluster *pgcluster.Cluster
	if url == "" {
		abs, err := filepath.Abs(filepath.Join(c.dataDir, "pg"))
		if err != nil {
			return nil, nil, err
		}
		if c.pgPort == 0 {
			c.pgPort = runningPort(abs)
		}
		log.Info("starting local postgres", "dir", abs, "port", c.pgPort)
		cluster, err = pgcluster.Start(ctx, pgcluster.Config{Dir: abs, Port: c.pgPort, Durable: true})
		if err != nil {
			return nil, nil, fmt.Errorf("local postgres: %w", err)
		}
		url = cluster.URL("postgres")
	}
	pool, err := newPool(ctx, url, c.poolOpts...)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if cluster != nil {
			cluster.Stop()
		}
		return nil, nil, fmt.Errorf("connect to postgres: %w", err)
	}
	closeFn := func() {
		pool.Close()
		if cluster != nil {
			cluster.Stop()
		}
	}
	return pool, closeFn, nil
}

// newPool connects with room for the card host's batch workers, the API
// and the background workers: pgx's default (the number of CPUs, at least
// 4) would make them queue for connections. pool_max_conns in the URL wins.
// opts change the configuration last.
func newPool(ctx context.Context, url string, opts ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 32
	}
	for _, o := range opts {
		o(cfg)
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// withPool parses the common flags of a command, connects (starting the
// local cluster when needed) and runs fn with the pool.
func withPool(ctx context.Context, name string, args []string, fn func(*pgxpool.Pool, *slog.Logger) error) error {
	var c common
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := c.logger()
	pool, closeFn, err := c.open(ctx, log)
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(pool, log)
}

func migrate(ctx context.Context, args []string, stdout io.Writer) error {
	return withPool(ctx, "migrate", args, func(pool *pgxpool.Pool, _ *slog.Logger) error {
		applied, err := ledger.Migrate(ctx, pool)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "migrations applied: %v\n", applied)
		return nil
	})
}
