package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
)

// withParam adds a query parameter to a connection URL.
func withParam(url, kv string) string {
	if strings.Contains(url, "?") {
		return url + "&" + kv
	}
	return url + "?" + kv
}

// TestWarmStartBeforeISOPort: `antaca switch` with its defaults has opened
// every connection of its pool (here pool_max_conns=10) by the time its
// ISO 8583 port accepts, so the first messages find them open.
func TestWarmStartBeforeISOPort(t *testing.T) {
	t.Setenv("ANTACA_DB_WARM", "")
	url := ledgertest.URL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"switch", "-database-url", withParam(url, "pool_max_conns=10"), "-data", dir, "-keys", filepath.Join(dir, "keys.json"),
			"-iso2003", addr, "-iso87", "", "-switch-metrics", "", "-log-level", "error"}, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("switch: %v", err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("switch ended before its port accepted: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("ISO port never accepted")
		}
		time.Sleep(2 * time.Millisecond)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("when the ISO port accepted the switch had %d connections to the database, want its pool's 10", n)
	}
}

// warmTestPool is a pool configured as serve configures it with w, and
// the set of its readied connections.
func warmTestPool(t *testing.T, url string, w warmFlags) (*pgxpool.Pool, *ledger.Warmer) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var c common
	warmed := w.apply(&c, log)
	pool, err := newPool(t.Context(), url, c.poolOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, warmed
}

// checkPrepared fails t unless n connections of pool (open ones first:
// all when it holds more) each hold every statement of ledger.HotStatements prepared under
// pgx's name for a text prepared by its text (where pgx looks first, so a
// batch sends no Parse: its own cache's statements are "stmtcache_…"),
// each with a generic plan.
func checkPrepared(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	total := max(int(pool.Stat().TotalConns()), n)
	var held []*pgxpool.Conn
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	want := ledger.HotStatements()[1:] // [0] sets the transaction's planner settings
	for i := range total {
		c, err := pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		for _, sql := range want {
			var plans int64
			// A simple query: it leaves the connection's statements as they are.
			err := c.QueryRow(t.Context(), `SELECT coalesce(sum(generic_plans), -1) FROM pg_prepared_statements WHERE statement = $1 AND name LIKE 'stmt\_%'`,
				pgx.QueryExecModeSimpleProtocol, sql).Scan(&plans)
			if err != nil {
				t.Fatal(err)
			}
			if plans < 1 {
				t.Errorf("connection %d: statement %.50q: got %d generic plans (-1: not prepared under its text), want 1", i, sql, plans)
			}
		}
		checkProgramWarm(t, c, i)
	}
}

// checkProgramWarm fails t unless the card host's program look-up and its
// spend rules (a program cache miss in an authorisation batch) run on c
// from statements the warm start prepared: no Parse, no new statement in
// pgx's own cache.
func checkProgramWarm(t *testing.T, c *pgxpool.Conn, i int) {
	t.Helper()
	count := func(q string) (n int) {
		t.Helper()
		if err := c.QueryRow(t.Context(), q, pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const cached = `SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'stmtcache\_%'`
	before := count(cached)
	if _, err := ledger.ProgramOn(t.Context(), c, -1); err == nil {
		t.Fatal("program -1 found")
	}
	if _, err := ledger.ProgramSpendRules(t.Context(), c, -1); err != nil {
		t.Fatal(err)
	}
	if after := count(cached); after != before {
		t.Errorf("connection %d: the program look-up prepared %d statements of its own, want none (warmed)", i, after-before)
	}
	for _, like := range []string{`%FROM programs p JOIN currencies c%`, `%FROM spend_rules WHERE program_id = $1 AND active%`} {
		if n := count(`SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'stmt\_%' AND generic_plans > 0 AND statement LIKE '` + like + `'`); n != 1 {
			t.Errorf("connection %d: %d warmed statements like %s with a generic plan, want 1", i, n, like)
		}
	}
}

// TestWarmPoolPrepares: the warm start opens the configured number of
// connections and readies each; a connection opened later (after a
// failover: the pool reset) is readied before its first use.
func TestWarmPoolPrepares(t *testing.T) {
	url := ledgertest.URL(t)
	w := warmFlags{conns: 4, timeout: 20 * time.Second}
	pool, warmed := warmTestPool(t, withParam(url, "pool_max_conns=6"), w)
	if got := warmed.Run(t.Context(), pool); got != 4 {
		t.Fatalf("warm start readied %d connections, want 4", got)
	}
	if got := pool.Stat().TotalConns(); got < 4 {
		t.Fatalf("after the warm start the pool holds %d connections, want 4", got)
	}
	checkPrepared(t, pool, 4)
	pool.Reset() // a failover: every connection closed, new ones opened on demand
	checkPrepared(t, pool, 4)
}

// TestWarmStartDeadline: while the hot tables cannot be read (an exclusive
// lock held elsewhere), the warm start gives up at its deadline and says
// so, and the pool works once they can.
func TestWarmStartDeadline(t *testing.T) {
	url := ledgertest.URL(t)
	blocker, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close(context.Background())
	tx, err := blocker.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	w := warmFlags{conns: 2, timeout: 500 * time.Millisecond}
	pool, warmed := warmTestPool(t, url, w)
	start := time.Now()
	if got := warmed.Run(t.Context(), pool); got != 0 {
		t.Errorf("warm start readied %d connections behind the lock, want 0", got)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("warm start took %v with a deadline of %v", took, w.timeout)
	}
	tx.Rollback(t.Context())
	var one int
	if err := pool.QueryRow(t.Context(), `SELECT 1`).Scan(&one); err != nil {
		t.Fatalf("pool after the warm start's deadline: %v", err)
	}
}
