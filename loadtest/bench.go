package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/cardhost"
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
	// Webhook registers, for every partner, an HTTPS receiver (in this
	// process) of every authorisation event and runs the webhook worker
	// during the load: the bench then measures authorisations while their
	// events are made and delivered (issue 19).
	Webhook bool
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
}

// BenchResult is what the benchmark measured.
type BenchResult struct {
	Report *Report
	// Mixed is the realistic mix's run after the approvals (nil when
	// skipped), with the CPU seconds and the statements of its phase.
	Mixed                             *Report
	MixedProcessCPU, MixedPostgresCPU float64
	MixedStatements                   []Statement
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
	// Statements are the statements that took most of Postgres' time
	// during the load (pg_stat_statements, nested statements included);
	// empty when the extension is not installed.
	Statements []Statement
}

// BatchStats count the card host's write batches (one transaction each):
// how many, the requests they carried and their time, commit included.
type BatchStats struct {
	Batches  uint64
	Requests float64
	Seconds  float64
}

func (s BatchStats) sub(o BatchStats) BatchStats {
	return BatchStats{Batches: s.Batches - o.Batches, Requests: s.Requests - o.Requests, Seconds: s.Seconds - o.Seconds}
}

// batchStats reads the batch histograms from the card host's registry.
func batchStats(reg prometheus.Gatherer) (BatchStats, error) {
	families, err := reg.Gather()
	if err != nil {
		return BatchStats{}, err
	}
	var s BatchStats
	for _, f := range families {
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			switch f.GetName() {
			case "antaca_auth_batch_size":
				s.Batches += h.GetSampleCount()
				s.Requests += h.GetSampleSum()
			case "antaca_auth_batch_seconds":
				s.Seconds += h.GetSampleSum()
			}
		}
	}
	return s, nil
}

// WriteStats are Postgres' write counters over the load.
type WriteStats struct {
	WALBytes, WALRecords, WALFullPages int64
	Checkpoints                        int64
	AccountUpdates, AccountHOTUpdates  int64
}

func writeStats(ctx context.Context, pool *pgxpool.Pool) (WriteStats, error) {
	const q = `SELECT w.wal_bytes::bigint, w.wal_records, w.wal_fpi, b.checkpoints_timed + b.checkpoints_req,
		t.n_tup_upd, t.n_tup_hot_upd
		FROM pg_stat_wal w, pg_stat_bgwriter b, pg_stat_user_tables t WHERE t.relname = 'accounts'`
	var s WriteStats
	err := pool.QueryRow(ctx, q).Scan(&s.WALBytes, &s.WALRecords, &s.WALFullPages, &s.Checkpoints, &s.AccountUpdates, &s.AccountHOTUpdates)
	return s, err
}

func (s WriteStats) sub(o WriteStats) WriteStats {
	return WriteStats{s.WALBytes - o.WALBytes, s.WALRecords - o.WALRecords, s.WALFullPages - o.WALFullPages,
		s.Checkpoints - o.Checkpoints, s.AccountUpdates - o.AccountUpdates, s.AccountHOTUpdates - o.AccountHOTUpdates}
}

// Statement is one pg_stat_statements row.
type Statement struct {
	Calls   int64
	TotalMS float64 // executing
	MeanMS  float64
	Plans   int64   // times planned (a cached plan is not)
	PlanMS  float64 // planning
	Query   string  // first 120 characters, whitespace folded
}

func hasStatStatements() bool {
	bin, err := pgcluster.BinDir()
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(filepath.Join(bin, "initdb")); err == nil {
		bin = filepath.Dir(real)
	}
	_, err = os.Stat(filepath.Join(filepath.Dir(bin), "lib", "pg_stat_statements.so"))
	return err == nil
}

func topStatements(ctx context.Context, pool *pgxpool.Pool) ([]Statement, error) {
	const q = `SELECT calls, total_exec_time, mean_exec_time, plans, total_plan_time, query FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time + total_plan_time DESC LIMIT 12`
	rows, err := pool.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	var out []Statement
	var st Statement
	_, err = pgx.ForEachRow(rows, []any{&st.Calls, &st.TotalMS, &st.MeanMS, &st.Plans, &st.PlanMS, &st.Query}, func() error {
		q := strings.Join(strings.Fields(st.Query), " ")
		if len(q) > 120 {
			q = q[:120]
		}
		st.Query = q
		out = append(out, st)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	return out, nil
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
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer pool.Close()
	if _, err := ledger.Migrate(ctx, pool); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	keys, err := cardhost.GenerateKeys()
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

	res := &BenchResult{}
	if cfg.PgbenchTime > 0 {
		if res.PgbenchTPS, err = runPgbench(ctx, cluster, dir, cfg); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		log.Info("pgbench", "tps", res.PgbenchTPS)
	}
	if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
		return nil, fmt.Errorf("bench: checkpoint: %w", err)
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

	if cfg.Webhook {
		stop, err := startWebhooks(ctx, pool, led)
		if err != nil {
			return nil, fmt.Errorf("bench: webhooks: %w", err)
		}
		defer stop()
	}
	load := cfg.Load
	load.Addr, load.Cards = ln.Addr().String(), cards
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
	cpu0, pg0 := processCPU(), postgresCPU(pgPID)
	log.Info("load", "profile", load.Profile, "addr", load.Addr)
	res.Report, err = Run(ctx, load)
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
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

	if statements {
		res.Statements, err = topStatements(ctx, pool)
		if err != nil {
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
		cpu0, pg0 := processCPU(), postgresCPU(pgPID)
		if res.Mixed, err = Run(ctx, mixed); err != nil {
			return nil, fmt.Errorf("bench: realistic mix: %w", err)
		}
		res.MixedProcessCPU, res.MixedPostgresCPU = processCPU()-cpu0, postgresCPU(pgPID)-pg0
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

// Bench data: one BIN, PANs numbered in it, so 100,000 cards need no
// random draws and never collide.
const (
	benchBIN      = "53999912"
	benchFunded   = 1_000_000 // minor units on each funded user balance
	benchCurrency = "EUR"
)

// createCards makes the partner, the program (funded partner credit) and
// one verified user, user balance and active virtual card per card, in a
// few statements: users and accounts by INSERT … SELECT, one reload
// posting per funded balance written by one statement, the cards by COPY.
func createCards(ctx context.Context, pool *pgxpool.Pool, host *cardhost.Host, cfg BenchConfig) ([]Card, error) {
	l := host.Ledger()
	partner, err := l.CreatePartner(ctx, "Bench Partner", "")
	if err != nil {
		return nil, err
	}
	prog, err := host.CreateProgram(ctx, cardhost.ProgramSpec{PartnerID: partner.ID, Name: "Bench Program",
		BINLow: benchBIN, BINHigh: benchBIN, Currency: benchCurrency, CardTypes: []cardhost.CardType{cardhost.Virtual},
		Funding: cardhost.FundingPartnerCredit})
	if err != nil {
		return nil, err
	}
	// The bench's partner credit carries every card's spending: its
	// program takes the system-wide bounds instead of the defaults. Its
	// cvc2 cards get wrong CVC2 on purpose, again and again: the
	// brute-force lock (DESIGN section 5) is set to its highest count
	// (100 in a row), so that they stay cvc2 cards rather than turning into
	// locked ones part-way through a run.
	const bounds = `UPDATE programs SET max_partner_reload = $2, max_partner_balance = $3, verify_max_tries = 100 WHERE id = $1`
	if _, err := pool.Exec(ctx, bounds, prog.ID, ledger.MaxAmount, ledger.MaxBalance); err != nil {
		return nil, fmt.Errorf("program bounds: %w", err)
	}
	if _, err := l.Reload(ctx, prog.PartnerAccountID, ledger.MaxAmount, "bench-partner-credit"); err != nil {
		return nil, err
	}
	n := cfg.Cards
	var accIDs, userIDs []int64
	var fundingID int64
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT id FROM accounts WHERE kind = 'funding' AND currency = $1`, benchCurrency).Scan(&fundingID); err != nil {
			return fmt.Errorf("funding account: %w", err)
		}
		const users = `INSERT INTO users (partner_id, program_id, external_ref, name, kyc_status, kyc_by)
			SELECT $1, $2, 'bench-' || g, 'Bench User ' || g, 'verified', 'antaca' FROM generate_series(1, $3) g`
		if _, err := tx.Exec(ctx, users, partner.ID, prog.ID, n); err != nil {
			return fmt.Errorf("users: %w", err)
		}
		const accounts = `INSERT INTO accounts (kind, currency, partner_id, program_id, user_id)
			SELECT 'user', $2, partner_id, program_id, id FROM users WHERE program_id = $1 ORDER BY id
			RETURNING id, user_id`
		rows, err := tx.Query(ctx, accounts, prog.ID, benchCurrency)
		if err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		var a, u int64
		if _, err := pgx.ForEachRow(rows, []any{&a, &u}, func() error {
			accIDs, userIDs = append(accIDs, a), append(userIDs, u)
			return nil
		}); err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Sort by account id so card i owns account i whatever RETURNING's order.
	sortPairs(accIDs, userIDs)

	// Kinds: the first are poor, the next locked, then expired, the rest ok.
	kind := func(i int) string {
		switch {
		case i < cfg.PoorCards:
			return KindPoor
		case i < cfg.PoorCards+cfg.LockedCards:
			return KindLocked
		case i < cfg.PoorCards+cfg.LockedCards+max(cfg.ExpiredCards, 0):
			return KindExpired
		}
		return KindOK
	}
	keys := host.Keys()
	valid, expired := cardhost.ExpiryFrom(time.Now(), 4), cardhost.ExpiryFrom(time.Now(), -1)
	cards := make([]Card, n)
	rows := make([][]any, n)
	var funded []int64
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("%s%07d", benchBIN, i)
		pan := body + string('0'+cardhost.LuhnCheckDigit(body))
		enc, err := keys.EncryptPAN(pan)
		if err != nil {
			return nil, err
		}
		k := kind(i)
		expiry := valid
		if k == KindExpired {
			expiry = expired
		}
		lock := int16(0)
		if k == KindLocked {
			lock = int16(cardhost.LockCode(7)) // suspected fraud: reversible
		}
		if k != KindPoor {
			funded = append(funded, accIDs[i])
		}
		cards[i] = Card{PAN: pan, Expiry: expiry, CVC2: keys.CVC2(pan, expiry, 0), Kind: k}
		rows[i] = []any{prog.ID, userIDs[i], accIDs[i], string(cardhost.Virtual), string(cardhost.StateActive), lock, expiry,
			enc, keys.PANLookup(pan), pan[:6], pan[len(pan)-4:]}
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		cols := []string{"program_id", "user_id", "account_id", "type", "state", "lock_code", "expiry", "pan_enc", "pan_lookup", "pan_first6", "pan_last4"}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cards"}, cols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy cards: %w", err)
		}
		const events = `INSERT INTO card_events (card_id, actor_kind, actor_id, action)
			SELECT id, 'system', 'bench', 'issue_virtual' FROM cards WHERE program_id = $1`
		if _, err := tx.Exec(ctx, events, prog.ID); err != nil {
			return fmt.Errorf("card events: %w", err)
		}
		const reloads = `WITH p AS (
				INSERT INTO postings (kind, ref, source, actor, source_ref)
				SELECT 'reload', 'bench-' || a, 'bootstrap', 'loadtest', 'bench-' || a FROM unnest($1::bigint[]) a RETURNING id, ref)
			INSERT INTO entries (posting_id, account_id, currency, amount)
			SELECT id, substr(ref, 7)::bigint, $2, $3::bigint FROM p
			UNION ALL SELECT id, $4::bigint, $2, -$3::bigint FROM p`
		if _, err := tx.Exec(ctx, reloads, funded, benchCurrency, int64(benchFunded), fundingID); err != nil {
			return fmt.Errorf("reloads: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + $2 WHERE id = ANY ($1)`, funded, int64(benchFunded)); err != nil {
			return fmt.Errorf("reload balances: %w", err)
		}
		_, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance - $2 WHERE id = $1`, fundingID, int64(benchFunded)*int64(len(funded)))
		return err
	})
	if err != nil {
		return nil, err
	}
	// Vacuum now rather than let autovacuum do it during the load.
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return nil, fmt.Errorf("vacuum: %w", err)
	}
	return cards, nil
}

func sortPairs(a, b []int64) {
	// Insertion into order by a; RETURNING comes back nearly sorted.
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
}

var tpsRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// runPgbench initialises pgbench's tables in database pgbench and runs the
// simple-update transaction (-N), returning its tps.
func runPgbench(ctx context.Context, cluster *pgcluster.Cluster, dir string, cfg BenchConfig) (float64, error) {
	pgbench, err := findPgbench(cluster)
	if err != nil {
		return 0, err
	}
	base := []string{"-h", dir, "-U", "postgres"}
	init := append(append([]string{"-i", "-q", "-s", strconv.Itoa(cfg.PgbenchScale)}, base...), "pgbench")
	if out, err := exec.CommandContext(ctx, pgbench, init...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("pgbench -i: %w: %s", err, lastLines(out))
	}
	secs := int(cfg.PgbenchTime.Round(time.Second) / time.Second)
	run := append(append([]string{"-N", "-c", strconv.Itoa(cfg.PgbenchClients), "-j", strconv.Itoa(cfg.PgbenchJobs),
		"-T", strconv.Itoa(max(secs, 1))}, base...), "pgbench")
	out, err := exec.CommandContext(ctx, pgbench, run...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w: %s", err, lastLines(out))
	}
	// Vacuum pgbench's tables now rather than let autovacuum do it
	// during the load.
	vac := append(append([]string{"-c", "VACUUM ANALYZE"}, base...), "pgbench")
	if out, err := exec.CommandContext(ctx, filepath.Join(filepath.Dir(pgbench), "psql"), vac...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("vacuum pgbench: %w: %s", err, lastLines(out))
	}
	m := tpsRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in its output: %s", lastLines(out))
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// findPgbench looks for pgbench beside the cluster's binaries, beside the
// real initdb when that is a symbolic link, on PATH, then under
// /usr/lib/postgresql/*/bin.
func findPgbench(cluster *pgcluster.Cluster) (string, error) {
	cands := []string{cluster.Bin("pgbench")}
	if real, err := filepath.EvalSymlinks(cluster.Bin("initdb")); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(real), "pgbench"))
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		cands = append(cands, p)
	}
	globbed, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	for _, c := range append(cands, globbed...) {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", errors.New("pgbench not found (install postgresql-contrib or the postgresql client)")
}

func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// processCPU is the user+system CPU time of this process, in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// postgresCPU sums the user+system CPU seconds of the postmaster and its
// children as /proc shows them (clock ticks of 1/100 s). Backends that
// exited in between are missed; the pool keeps its connections.
func postgresCPU(postmaster int) float64 {
	if postmaster <= 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != postmaster && ppid != postmaster {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return float64(ticks) / 100
}

// ErrLedgerNotClean is returned by callers when Verify finds violations.
var ErrLedgerNotClean = errors.New("ledger verify found violations")
