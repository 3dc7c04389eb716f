package loadtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/pgcluster"
	authswitch "github.com/antaca/antaca/switch"
)

// BenchConfig configures the end-to-end benchmark of `make bench`. Zero
// fields get the defaults documented on each.
type BenchConfig struct {
	// Cards is the number of cards created (default 100,000); PoorCards
	// and LockedCards of them (default 1% each) are unfunded or locked,
	// ExpiredCards (default 1%, negative: none) past their expiry, the
	// rest funded and active.
	Cards, PoorCards, LockedCards, ExpiredCards int
	// Load is the load test run against the in-process switch; Addr and
	// Cards are filled in. Default: iso2003, 8 connections, closed-loop
	// with 16 in flight each, approvals only, 20 s.
	Load Config
	// MixedDuration is how long the realistic mix (Realistic) runs after
	// the approvals, against the same switch and cluster; 0: as long as
	// the approvals (Load.Duration or Load.Count); negative, or a profile
	// other than iso2003, skips it.
	MixedDuration time.Duration
	// PoolSize is the switch's database pool size (default 32).
	PoolSize int
	// PgbenchScale, PgbenchClients, PgbenchJobs and PgbenchTime are the
	// reference run: pgbench -i -s 10, then pgbench -N -c 8 -j 2 -T 10.
	// PgbenchTime < 0 skips it.
	PgbenchScale, PgbenchClients, PgbenchJobs int
	PgbenchTime                               time.Duration
	// CPUProfile, when set, receives a CPU profile of this process during
	// the load (switch, card host and load generator together).
	CPUProfile string
	// CardsOut, when set, receives the card set as JSON (test cards).
	CardsOut string
	// Settings are extra server settings of the throwaway cluster (name
	// to value), after the bench's own; durability cannot be turned off
	// through them.
	Settings map[string]string
	// Dir holds the throwaway cluster (default a new temporary directory,
	// removed afterwards).
	Dir string
	// Logger receives the steps; default slog.Default().
	Logger *slog.Logger
	// Webhook registers, for every partner, an HTTPS receiver (a process
	// of its own at nice 19, ReceiverCommand: it stands in for the
	// partners' machines) of every authorisation event and runs the webhook worker
	// during the load: the bench then measures authorisations while their
	// events are made and delivered (issue 19).
	Webhook bool
	// ReceiverCommand starts the webhook receiver (argv), e.g. this
	// program with the argument webhook-receiver (WebhookReceiver).
	ReceiverCommand []string
	// NoPrewarm skips loading the card look-up's tables and indexes into
	// shared_buffers before the load (pg_prewarm, prewarm).
	NoPrewarm bool
	// Warmup runs the approvals' load this long before the measured one,
	// unmeasured, after the bench's checkpoint, so that the measure sees
	// the steady state between two checkpoints rather than the burst of
	// full-page images right after one (docs/operations.md, "The card
	// base's size"); default 30 s per million cards, negative: none.
	Warmup time.Duration
	// DBWarm is the switch's warm start (ledger.Warmer): the connections
	// opened and readied before it listens; 0: all of PoolSize, as
	// antaca's default; negative: none, a cold start. The switch's pool
	// is emptied first either way, as a newly started process finds it.
	DBWarm int
	// Waits samples Postgres' wait events during the approvals' load
	// (BenchResult.Waits).
	Waits bool
	// Explain, after the approvals, shows the plan of the batch's lock
	// statement with its buffer counts (BenchResult.Explain).
	Explain bool
}

func (c *BenchConfig) setDefaults() {
	if c.Cards <= 0 {
		c.Cards = 100_000
	}
	if c.PoorCards <= 0 && c.LockedCards <= 0 {
		c.PoorCards, c.LockedCards = c.Cards/100, c.Cards/100
	}
	if c.ExpiredCards == 0 {
		c.ExpiredCards = c.Cards / 100
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 32
	}
	if c.PgbenchScale <= 0 {
		c.PgbenchScale = 10
	}
	if c.PgbenchClients <= 0 {
		c.PgbenchClients = 8
	}
	if c.PgbenchJobs <= 0 {
		c.PgbenchJobs = 2
	}
	if c.PgbenchTime == 0 {
		c.PgbenchTime = 10 * time.Second
	}
	if c.Load.Duration <= 0 && c.Load.Count <= 0 {
		c.Load.Duration = 20 * time.Second
	}
	if c.Load.Profile == "" {
		c.Load.Profile = ProfileISO2003
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Warmup == 0 {
		c.Warmup = time.Duration(c.Cards) * 30 * time.Microsecond
	}
}

// BenchResult is what the benchmark measured.
type BenchResult struct {
	Report *Report
	// Mixed is the realistic mix's run after the approvals (nil when
	// skipped), with the CPU seconds and the statements of its phase.
	Mixed                             *Report
	MixedProcessCPU, MixedPostgresCPU float64
	MixedStatements                   []Statement
	MixedJournalGrowth                map[string]int64
	PgbenchTPS                        float64 // 0 when skipped
	Violations                        []ledger.Violation
	LoadSeconds                       float64
	// CPU seconds used during the load by this process (switch, card
	// host, load generator) and by the PostgreSQL cluster.
	ProcessCPU, PostgresCPU float64
	HoldsPlaced             int64
	// Writes is what the load wrote to Postgres (WAL, checkpoints, HOT
	// updates of accounts), measured around the load.
	Writes WriteStats
	// Batches are the card host's write batches during the load.
	Batches BatchStats
	// JournalGrowth is what the journal tables (auth_journal, holds,
	// postings, entries) grew by during the load, in bytes.
	JournalGrowth map[string]int64
	// Webhooks and MixedWebhooks are, with -webhook, how many events the
	// receiver had when the approvals' (the mix's) load ended and how long
	// the rest took to arrive; ReceiverCPU is the receiver process's CPU
	// seconds over the whole bench (not counted in ProcessCPU).
	Webhooks, MixedWebhooks *WebhookLag
	ReceiverCPU             float64
	// Mallocs and AllocBytes are this process's heap allocations during
	// the approvals' load (runtime.MemStats), and GCs its collections.
	Mallocs, AllocBytes uint64
	GCs                 uint32
	// Server are the cluster's settings that decide what a large card
	// base costs (shared_buffers, checkpoints, WAL compression).
	Server string
	// Explain is the lock statement's plan after the load (-explain).
	Explain string
	// Waits are the wait events of Postgres' backends sampled during the
	// approvals' load (-waits).
	Waits []WaitEvent
	// Statements are the statements that took most of Postgres' time
	// during the load (pg_stat_statements, nested statements included);
	// empty when the extension is not installed.
	Statements []Statement
}

// Line is the one-line summary: approved_per_s, p99_ms, pgbench_tps and
// their ratio, then the realistic mix's answered money messages per
// second, their p99 and their ratio to pgbench (0 when the mix was
// skipped).
func (b *BenchResult) Line() string {
	ratio := func(v float64) float64 {
		if b.PgbenchTPS > 0 {
			return v / b.PgbenchTPS
		}
		return 0
	}
	var mixed Report
	if b.Mixed != nil {
		mixed = *b.Mixed
	}
	return fmt.Sprintf("bench: approved_per_s=%.0f p99_ms=%.2f pgbench_tps=%.0f ratio=%.2f mixed_per_s=%.0f mixed_p99_ms=%.2f mixed_ratio=%.2f",
		b.Report.ApprovedPerSec, b.Report.Latency.P99, b.PgbenchTPS, ratio(b.Report.ApprovedPerSec),
		mixed.MoneyPerSec, mixed.MoneyLatency.P99, ratio(mixed.MoneyPerSec))
}

// Bench starts a durable throwaway PostgreSQL cluster, migrates it,
// creates a partner, a program and cfg.Cards funded users with a card
// each, runs pgbench on the same cluster as the reference, starts the
// switch in this process on 127.0.0.1 and runs the load against it, then
// verifies the ledger. An error means the benchmark could not run; ledger
// violations are returned in the result.
func Bench(ctx context.Context, cfg BenchConfig) (*BenchResult, error) {
	cfg.setDefaults()
	log := cfg.Logger
	dir := cfg.Dir
	if dir == "" {
		d, err := pgcluster.TempDir()
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	log.Info("starting durable postgres", "dir", dir)
	settings := map[string]string{}
	if hasStatStatements() {
		settings["shared_preload_libraries"] = "pg_stat_statements"
		settings["pg_stat_statements.track"] = "all"
		settings["pg_stat_statements.track_planning"] = "on"
	}
	// Sized as a processor sizes its primary (docs/operations.md, "The
	// card base's size"): shared_buffers holding the card look-up's tables
	// and indexes (about 500 MB a million cards) twice over, never below
	// the default 128 MB; checkpoints by time every 15 minutes, not by WAL
	// volume every minute or so at these rates.
	settings["shared_buffers"] = fmt.Sprintf("%dMB", max(128, cfg.Cards/1000))
	settings["checkpoint_timeout"] = "15min"
	settings["max_wal_size"] = "8GB"
	for k, v := range cfg.Settings {
		// Postgres reads names without regard to case, "-" as "_".
		switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "-", "_") {
		case "fsync", "synchronous_commit", "full_page_writes":
			return nil, fmt.Errorf("bench: %s cannot be set: the bench is durable", k)
		}
		settings[k] = v
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Config{Dir: dir, Durable: true, Settings: settings})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer cluster.Stop()

	admin, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	// Whatever the settings said, the cluster must be durable.
	var fsync, syncCommit, fullPages string
	if err := admin.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')`).
		Scan(&fsync, &syncCommit, &fullPages); err != nil {
		admin.Close(ctx)
		return nil, fmt.Errorf("bench: %w", err)
	}
	if fsync != "on" || syncCommit != "on" || fullPages != "on" {
		admin.Close(ctx)
		return nil, fmt.Errorf("bench: the cluster is not durable (fsync %s, synchronous_commit %s, full_page_writes %s)", fsync, syncCommit, fullPages)
	}
	if _, set := cfg.Settings["wal_compression"]; !set {
		if err := compressFullPages(ctx, admin); err != nil {
			admin.Close(ctx)
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	res := &BenchResult{}
	const server = `SELECT 'shared_buffers=' || current_setting('shared_buffers') || ' checkpoint_timeout=' || current_setting('checkpoint_timeout')
		|| ' max_wal_size=' || current_setting('max_wal_size') || ' wal_compression=' || current_setting('wal_compression')`
	if err := admin.QueryRow(ctx, server).Scan(&res.Server); err != nil {
		admin.Close(ctx)
		return nil, fmt.Errorf("bench: %w", err)
	}
	for _, q := range []string{`CREATE DATABASE antaca`, `CREATE DATABASE pgbench`} {
		if _, err := admin.Exec(ctx, q); err != nil {
			admin.Close(ctx)
			return nil, fmt.Errorf("bench: %s: %w", q, err)
		}
	}
	admin.Close(ctx)

	pcfg, err := pgxpool.ParseConfig(cluster.URL("antaca"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	pcfg.MaxConns = int32(cfg.PoolSize)
	var warmer *ledger.Warmer
	if cfg.DBWarm >= 0 {
		warmer = &ledger.Warmer{Conns: cfg.DBWarm, Timeout: 10 * time.Second, Logger: log}
		if cfg.DBWarm == 0 {
			warmer.Conns = -1
		}
		warmer.Configure(pcfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer pool.Close()
	if _, err := ledger.Migrate(ctx, pool); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	keys, err := hsm.GenerateKeys()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	led := ledger.New(pool, ledger.Config{Logger: quiet})
	reg := prometheus.NewRegistry()
	host := cardhost.NewHost(pool, led, keys, cardhost.Config{Logger: quiet, Registerer: reg})
	defer host.Close()

	t0 := time.Now()
	cards, err := createCards(ctx, pool, host, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: create cards: %w", err)
	}
	log.Info("cards created", "cards", len(cards), "took", time.Since(t0).Round(time.Millisecond))
	if cfg.CardsOut != "" {
		if err := WriteCards(cfg.CardsOut, cards); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}

	// The card set's WAL (about 1 GB at a million cards) would otherwise
	// be checkpointed during pgbench and lower the reference.
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		return nil, fmt.Errorf("bench: checkpoint: %w", err)
	}
	if cfg.PgbenchTime > 0 {
		if res.PgbenchTPS, err = runPgbench(ctx, cluster, dir, cfg); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		log.Info("pgbench", "tps", res.PgbenchTPS)
	}
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		return nil, fmt.Errorf("bench: checkpoint: %w", err)
	}

	if !cfg.NoPrewarm {
		t0 := time.Now()
		mb, err := prewarm(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		log.Info("prewarmed", "mb", mb, "took", time.Since(t0).Round(time.Millisecond))
	}

	// The switch starts as a new process would: no connection open,
	// then its warm start (antaca serve's, cmd/antaca).
	pool.Reset()
	if warmer != nil {
		warmer.Run(ctx, pool)
	}
	srv, err := authswitch.New(authswitch.Config{Profile: cfg.Load.Profile, Addr: "127.0.0.1:0", ZoneKey: cfg.Load.Profile, Logger: quiet}, host)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()

	load := cfg.Load
	load.Addr, load.Cards = ln.Addr().String(), cards
	// Before the webhook endpoints exist: the warm-up makes no events.
	if cfg.Warmup > 0 {
		warm := load
		warm.Duration, warm.Count, warm.Progress, warm.ReportEvery = cfg.Warmup, 0, nil, 0
		log.Info("warm-up, not measured", "duration", cfg.Warmup)
		if _, err := Run(ctx, warm); err != nil {
			return nil, fmt.Errorf("bench: warm-up: %w", err)
		}
	}

	var hooks *benchWebhooks
	if cfg.Webhook {
		if hooks, err = startWebhooks(ctx, pool, led, cfg.ReceiverCommand); err != nil {
			return nil, fmt.Errorf("bench: webhooks: %w", err)
		}
		defer func() { res.ReceiverCPU = hooks.stop() }()
	}
	// drain waits for the webhook receiver to have every event so far.
	drain := func() (*WebhookLag, error) {
		if hooks == nil {
			return nil, nil
		}
		lag, err := hooks.drain(ctx)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		return &lag, nil
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	statements := false
	if len(settings) > 0 {
		_, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)
		if err == nil {
			_, err = pool.Exec(ctx, `SELECT pg_stat_statements_reset()`)
		}
		statements = err == nil
	}
	pgPID := postmasterPID(cluster.DataDir())
	writes0, err := writeStats(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("bench: write counters: %w", err)
	}
	batches0, err := batchStats(reg)
	if err != nil {
		return nil, fmt.Errorf("bench: batch metrics: %w", err)
	}
	sizes0, err := tableSizes(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cpu0, pg0 := processCPU(), postgresCPU(pgPID)
	var mem0, mem1 runtime.MemStats
	runtime.ReadMemStats(&mem0)
	log.Info("load", "profile", load.Profile, "addr", load.Addr)
	stopSampling := sampling(ctx, pool, load.ReportEvery, log)
	stopWaits := func() {}
	if cfg.Waits {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			res.Waits = sampleWaits(wctx, pool)
		}()
		stopWaits = func() { cancel(); <-done }
	}
	res.Report, err = Run(ctx, load)
	stopWaits()
	stopSampling()
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	runtime.ReadMemStats(&mem1)
	res.Mallocs, res.AllocBytes, res.GCs = mem1.Mallocs-mem0.Mallocs, mem1.TotalAlloc-mem0.TotalAlloc, mem1.NumGC-mem0.NumGC
	res.ProcessCPU, res.PostgresCPU = processCPU()-cpu0, postgresCPU(pgPID)-pg0
	batches1, err := batchStats(reg)
	if err != nil {
		return nil, fmt.Errorf("bench: batch metrics: %w", err)
	}
	res.Batches = batches1.sub(batches0)
	res.LoadSeconds = res.Report.Seconds
	// The table counters reach the statistics a moment after the
	// transactions that made them.
	if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	writes1, err := writeStats(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("bench: write counters: %w", err)
	}
	res.Writes = writes1.sub(writes0)
	sizes1, err := tableSizes(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	res.JournalGrowth = sizes1.Growth(sizes0)

	if statements {
		res.Statements, err = topStatements(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if res.Webhooks, err = drain(); err != nil {
		return nil, err
	}
	if cfg.Explain {
		if res.Explain, err = explainLock(ctx, pool, 32); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM holds`).Scan(&res.HoldsPlaced); err != nil {
		return nil, fmt.Errorf("bench: count holds: %w", err)
	}
	if cfg.MixedDuration >= 0 && load.Profile == ProfileISO2003 {
		mixed := load
		mixed.Mix, mixed.Seed = Realistic, 0
		if cfg.MixedDuration > 0 {
			mixed.Duration, mixed.Count = cfg.MixedDuration, 0
		}
		log.Info("load, realistic mix", "mix", mixed.Mix.String())
		if statements {
			if _, err := pool.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
				return nil, fmt.Errorf("bench: %w", err)
			}
		}
		sizes0, err := tableSizes(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		cpu0, pg0 := processCPU(), postgresCPU(pgPID)
		stopSampling := sampling(ctx, pool, mixed.ReportEvery, log)
		res.Mixed, err = Run(ctx, mixed)
		stopSampling()
		if err != nil {
			return nil, fmt.Errorf("bench: realistic mix: %w", err)
		}
		sizes1, err := tableSizes(ctx, pool)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		res.MixedJournalGrowth = sizes1.Growth(sizes0)
		res.MixedProcessCPU, res.MixedPostgresCPU = processCPU()-cpu0, postgresCPU(pgPID)-pg0
		if res.MixedWebhooks, err = drain(); err != nil {
			return nil, err
		}
		if statements {
			if res.MixedStatements, err = topStatements(ctx, pool); err != nil {
				return nil, fmt.Errorf("bench: %w", err)
			}
		}
	}
	if res.Violations, err = led.Verify(ctx); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return res, nil
}

// prewarm loads into shared_buffers what the batch's lock statement reads
// for every card: the balances with their primary key, the cards with
// their pan_lookup key, in that order (the last ones stay if they do not
// all fit). It returns the megabytes read. Production does the same with
// pg_prewarm's autoprewarm worker, which reloads the buffers a restart
// emptied (docs/operations.md, "The card base's size").
func prewarm(ctx context.Context, pool *pgxpool.Pool) (float64, error) {
	if _, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_prewarm`); err != nil {
		return 0, fmt.Errorf("prewarm: %w", err)
	}
	var blocks int64
	const q = `SELECT sum(pg_prewarm(r))::bigint FROM unnest(ARRAY['accounts', 'accounts_pkey', 'cards', 'cards_pan_lookup_key']::regclass[]) WITH ORDINALITY AS x(r, i)`
	if err := pool.QueryRow(ctx, q).Scan(&blocks); err != nil {
		return 0, fmt.Errorf("prewarm: %w", err)
	}
	return float64(blocks) * 8192 / 1e6, nil
}

// sampling starts sampleWrites every interval (none when 0) and returns
// what stops it.
func sampling(ctx context.Context, pool *pgxpool.Pool, every time.Duration, log *slog.Logger) (stop func()) {
	if every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sampleWrites(ctx, pool, every, log)
	}()
	return func() { cancel(); <-done }
}

// Bench data: one BIN, PANs numbered in it, so 100,000 cards need no
// random draws and never collide.
const (
	benchBIN      = "53999912"
	benchFunded   = 1_000_000 // minor units on each funded user balance
	benchCurrency = "EUR"
)

// compressFullPages turns on wal_compression, lz4 where the server was
// built with it, pglz otherwise. After a checkpoint the first change to
// each page writes the whole page to the WAL, and a large card base has
// many pages: at a million cards, lz4 took the WAL per approval from
// 4,417 to 1,923 bytes (docs/operations.md, "The card base's size").
// -pg wal_compression=off measures without.
func compressFullPages(ctx context.Context, admin *pgx.Conn) error {
	if _, err := admin.Exec(ctx, `ALTER SYSTEM SET wal_compression = 'lz4'`); err != nil {
		if _, err := admin.Exec(ctx, `ALTER SYSTEM SET wal_compression = 'pglz'`); err != nil {
			return fmt.Errorf("wal_compression: %w", err)
		}
	}
	if _, err := admin.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		return fmt.Errorf("wal_compression: %w", err)
	}
	return nil
}
