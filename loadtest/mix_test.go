package loadtest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
	"github.com/antaca/antaca/specs"
)

// TestRealisticMixAgainstCardHost runs the realistic preset through the
// real switch and card host on PostgreSQL: every kind is sent, declines
// come for the reasons the cards call for, completions capture (above the
// hold at a restaurant, within its tolerance), reversals release, refunds
// naming their purchase are credited, and the ledger verifies clean.
func TestRealisticMixAgainstCardHost(t *testing.T) {
	// A pool as the bench's (its default is 4 connections on 2 cores).
	pcfg, err := pgxpool.ParseConfig(ledgertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	pcfg.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(t.Context(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	keys, err := hsm.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	led := ledger.New(pool, ledger.Config{Logger: quiet})
	host := cardhost.NewHost(pool, led, keys, cardhost.Config{Logger: quiet, Registerer: prometheus.NewRegistry()})
	cfg := BenchConfig{Cards: 300, PoorCards: 10, LockedCards: 10, ExpiredCards: 10}
	cfg.setDefaults()
	cards, err := createCards(t.Context(), pool, host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mix, err := ParseMix("realistic")
	if err != nil || mix != Realistic {
		t.Fatalf("ParseMix(realistic) = %v, %v", mix, err)
	}
	addr := startSwitch(t, ProfileISO2003, host)
	rep, err := Run(t.Context(), Config{Addr: addr, Conns: 2, InFlight: 4, Count: 2000, Cards: cards,
		Currency: "978", Mix: mix, Seed: 18})
	if err != nil {
		t.Fatal(err)
	}
	rep.WriteText(t.Output())
	if rep.Answered != 2000 || rep.Timeouts != 0 || rep.Errors != 0 || rep.Unmatched != 0 {
		t.Fatalf("answered %d timeouts %d errors %d unmatched %d, want 2000 0 0 0", rep.Answered, rep.Timeouts, rep.Errors, rep.Unmatched)
	}
	sent := rep.SentByKind
	for o := range numOps {
		k := opNames[o]
		if *mix.weight(o) > 0 && sent[k] == 0 {
			t.Errorf("kind %s never sent", k)
		}
		if rep.AnsweredByKind[k] != sent[k] {
			t.Errorf("kind %s: answered %d of %d", k, rep.AnsweredByKind[k], sent[k])
		}
	}
	for _, k := range []string{"approve", "advice", "balance", "complete", "complete_partial", "complete_over",
		"reversal", "reversal_partial", "refund"} {
		if rep.ApprovedByKind[k] != sent[k] {
			t.Errorf("kind %s: approved %d of %d", k, rep.ApprovedByKind[k], sent[k])
		}
	}
	code := func(r cardhost.Reason) string {
		c, _ := specs.ActionCode(ProfileISO2003, string(r))
		return c
	}
	for k, r := range map[string]cardhost.Reason{"funds": cardhost.InsufficientFunds, "locked": cardhost.SuspectedFraud,
		"cvc2": cardhost.CVC2Failed, "expired": cardhost.ExpiredCard} {
		if rep.ApprovedByKind[k] != 0 || rep.Codes[code(r)] != sent[k] {
			t.Errorf("kind %s: %d approved, %d answered %s, want 0 and %d", k, rep.ApprovedByKind[k], rep.Codes[code(r)], r, sent[k])
		}
	}
	money := rep.Answered - sent["balance"] - sent["echo"]
	if rep.MoneyAnswered != money || rep.MoneyPerSec <= 0 || rep.MoneyLatency.P99 <= 0 {
		t.Errorf("money answered %d (%.0f/s, p99 %.3f ms), want %d", rep.MoneyAnswered, rep.MoneyPerSec, rep.MoneyLatency.P99, money)
	}

	// What the journal says each kind did.
	count := func(where string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM auth_journal WHERE `+where, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	completions := sent["complete"] + sent["complete_partial"] + sent["complete_over"]
	if n := count(`mti = '2220' AND detail ~ '^captured [0-9]+$'`); n != completions {
		t.Errorf("completions that captured within the rules: %d, want %d", n, completions)
	}
	// Above the hold: the capture exceeds the approval's amount.
	const over = `mti = '2220' AND EXISTS (SELECT 1 FROM holds h WHERE h.id = auth_journal.hold_id AND substr(detail, 10)::bigint > h.amount)`
	if n := count(over); n != sent["complete_over"] {
		t.Errorf("completions above the hold: %d, want %d", n, sent["complete_over"])
	}
	if n := count(`mti = '2400' AND detail ~ '^released'`); n != sent["reversal"]+sent["reversal_partial"] {
		t.Errorf("reversals that released: %d, want %d", n, sent["reversal"]+sent["reversal_partial"])
	}
	if n := count(`mti = '2200' AND detail ~ '^refund credited [1-9][0-9]*$'`); n != sent["refund"] {
		t.Errorf("refunds credited: %d, want %d", n, sent["refund"])
	}
	if n := count(`mti = '2120' AND reason = 'approved'`); n != sent["advice"] {
		t.Errorf("advices journaled approved: %d, want %d", n, sent["advice"])
	}
	if vs, err := led.Verify(t.Context()); err != nil || len(vs) > 0 {
		t.Fatalf("verify after the realistic mix: %v %v", vs, err)
	}
}

// TestRealisticNeedsISO2003: the new kinds are refused in iso87 before
// any connection, and an unknown kind names the known ones.
func TestRealisticNeedsISO2003(t *testing.T) {
	_, err := Run(t.Context(), Config{Addr: "127.0.0.1:1", Profile: ProfileISO87, Count: 1, Cards: testCards, Mix: Realistic})
	if err == nil || !strings.Contains(err.Error(), "iso2003 only") {
		t.Errorf("realistic in iso87: %v, want a refusal", err)
	}
	if _, err := ParseMix("approve=1,tip=2"); err == nil || !strings.Contains(err.Error(), "complete_over") {
		t.Errorf("unknown kind: %v", err)
	}
}

// TestRing: a full ring drops its oldest; pop is first in, first out.
func TestRing(t *testing.T) {
	q := newRing(3)
	for i := range 5 {
		q.push(&original{amount: int64(i)})
	}
	for _, want := range []int64{2, 3, 4} {
		if o := q.pop(); o == nil || o.amount != want {
			t.Fatalf("pop %v, want %d", o, want)
		}
	}
	if q.pop() != nil {
		t.Fatal("pop of an empty ring")
	}
}

// TestBenchLine: the bench line carries the realistic mix's fields, zero
// when it was skipped.
func TestBenchLine(t *testing.T) {
	b := &BenchResult{Report: &Report{ApprovedPerSec: 9000, Latency: Latency{P99: 12.5}}, PgbenchTPS: 3000,
		Mixed: &Report{MoneyPerSec: 6000, MoneyLatency: Latency{P99: 20.25}}}
	const want = "bench: approved_per_s=9000 p99_ms=12.50 pgbench_tps=3000 ratio=3.00 mixed_per_s=6000 mixed_p99_ms=20.25 mixed_ratio=2.00"
	if got := b.Line(); got != want {
		t.Errorf("line\n%s\nwant\n%s", got, want)
	}
	b.Mixed = nil
	if got := b.Line(); !strings.HasSuffix(got, " mixed_per_s=0 mixed_p99_ms=0.00 mixed_ratio=0.00") {
		t.Errorf("line without the mix: %s", got)
	}
}

// unavailable answers every request as the issuer being unreachable.
type unavailable struct{}

func (unavailable) Authorize(context.Context, *cardhost.AuthRequest) (cardhost.Decision, error) {
	return cardhost.Decision{}, errors.New("ledger unreachable")
}

// TestMoneyRateCountsDecisionsOnly: answers of issuer unavailable are
// answered but decide nothing: they stay out of the money rate (a switch
// failing fast must not look fast) and in its latency.
func TestMoneyRateCountsDecisionsOnly(t *testing.T) {
	addr := startSwitch(t, ProfileISO2003, unavailable{})
	rep, err := Run(t.Context(), Config{Addr: addr, Conns: 1, InFlight: 2, Count: 20, Cards: testCards})
	if err != nil {
		t.Fatal(err)
	}
	unavail, _ := specs.ActionCode(ProfileISO2003, string(cardhost.IssuerUnavailable))
	if rep.Answered != 20 || rep.Codes[unavail] != 20 {
		t.Fatalf("answered %d, codes %v: want 20 answers of %s", rep.Answered, rep.Codes, unavail)
	}
	if rep.MoneyAnswered != 0 || rep.MoneyPerSec != 0 || rep.MoneyLatency.P99 <= 0 {
		t.Errorf("money decided %d (%.0f/s), p99 %.3f ms: want none decided, a latency", rep.MoneyAnswered, rep.MoneyPerSec, rep.MoneyLatency.P99)
	}
}

// TestBenchRunsRealisticMix: the bench sends the realistic mix after the
// approvals on the same cluster, its line carries the mix's fields, and
// the ledger verifies clean after both.
func TestBenchRunsRealisticMix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	res, err := Bench(t.Context(), BenchConfig{Cards: 400, PgbenchTime: -1, PoolSize: 16,
		Load:   Config{Conns: 2, InFlight: 4, Count: 400},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mixed == nil {
		t.Fatal("no realistic mix in the bench")
	}
	res.Mixed.WriteText(t.Output())
	m := res.Mixed
	if m.Mix != Realistic.String() || m.Answered != 400 || m.Timeouts != 0 || m.Errors != 0 {
		t.Errorf("mix %s, answered %d, timeouts %d, errors %d: want the realistic mix, 400 answered", m.Mix, m.Answered, m.Timeouts, m.Errors)
	}
	if m.SentByKind["complete"] == 0 || m.SentByKind["expired"]+m.SentByKind["funds"] == 0 {
		t.Errorf("sent %v: want completions and declines", m.SentByKind)
	}
	if m.MoneyAnswered == 0 || res.Report.Approved != 400 {
		t.Errorf("money decided %d in the mix, %d approved before: want some, 400", m.MoneyAnswered, res.Report.Approved)
	}
	if line := res.Line(); !strings.Contains(line, " mixed_per_s=") || strings.Contains(line, " mixed_per_s=0 ") {
		t.Errorf("line %q: want the mix's rate", line)
	}
	if len(res.Violations) > 0 {
		t.Errorf("ledger verify after the bench: %v", res.Violations)
	}
}

// TestBenchMeasuresSteadyState: the bench's cluster checkpoints by time
// and holds the card base in shared_buffers, the approvals run a warm-up
// before the measure (its holds are in the table, not in the report),
// and the bench reports what it counted: buffers and WAL per statement,
// Go allocations, the lock statement's plan, wait events, and the report
// intervals with Postgres' counters beside them.
func TestBenchMeasuresSteadyState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	res, err := Bench(t.Context(), BenchConfig{Cards: 300, PgbenchTime: -1, PoolSize: 8, MixedDuration: -1,
		Warmup: 700 * time.Millisecond, Explain: true, Waits: true,
		Load:   Config{Conns: 2, InFlight: 4, Duration: 1200 * time.Millisecond, ReportEvery: 400 * time.Millisecond},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shared_buffers=128MB", "checkpoint_timeout=15min", "max_wal_size=8GB"} {
		if !strings.Contains(res.Server, want) {
			t.Errorf("server settings %q: want %s", res.Server, want)
		}
	}
	if res.HoldsPlaced <= res.Report.Approved {
		t.Errorf("%d holds for %d approvals measured: the warm-up placed none", res.HoldsPlaced, res.Report.Approved)
	}
	if len(res.Report.Intervals) != 3 {
		t.Errorf("%d report intervals, want 3", len(res.Report.Intervals))
	}
	var lock *Statement
	for i, st := range res.Statements {
		if strings.HasPrefix(st.Query, "WITH found AS MATERIALIZED") {
			lock = &res.Statements[i]
		}
	}
	if lock == nil || lock.Hit == 0 || lock.WALBytes == 0 {
		t.Errorf("lock statement counters %+v: want its pages hit and its WAL", lock)
	}
	if res.Mallocs == 0 || res.AllocBytes == 0 {
		t.Errorf("allocations %d (%d bytes): want the load's", res.Mallocs, res.AllocBytes)
	}
	for _, want := range []string{"LockRows", "cards_pan_lookup_key", "Buffers: shared hit=", "sizes: ", "shared_buffers 128MB", "pan_lookup = ANY (…))"} {
		if !strings.Contains(res.Explain, want) {
			t.Errorf("explain lacks %q:\n%s", want, res.Explain)
		}
	}
	if len(res.Waits) == 0 {
		t.Error("no wait event sampled during the load")
	}
	if len(res.Violations) > 0 {
		t.Errorf("ledger verify after the bench: %v", res.Violations)
	}
}

// TestPrewarmLoadsTheLookUp: pg_prewarm reads the balances, the cards and
// their look-up indexes, every block of them.
func TestPrewarmLoadsTheLookUp(t *testing.T) {
	pool := ledgertest.Pool(t)
	mb, err := prewarm(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	var want float64
	const q = `SELECT sum(pg_relation_size(r))::float8 / 1e6 FROM unnest(ARRAY['accounts', 'accounts_pkey', 'cards', 'cards_pan_lookup_key']::regclass[]) r`
	if err := pool.QueryRow(t.Context(), q).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if mb != want || mb == 0 {
		t.Errorf("prewarmed %.3f MB, the tables and indexes are %.3f MB", mb, want)
	}
}
