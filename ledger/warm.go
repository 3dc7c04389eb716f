package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// HotStatements are the texts of the statements a batch of card
// transactions sends (see the card host's batch): the locks, the journal
// and money probes, the hold and journal inserts, the account updates,
// the captures and releases; the program look-up and its spend rules (a
// program cache miss, in the batch's transaction), the velocity counters
// (a program with velocity rules), the hot journal's look-ups of the
// originals its tail's money messages name. Warm prepares them on a new
// connection.
func HotStatements() []string {
	return []string{
		GenericPlans,
		CardsLockSQL(),
		accountsLock.Statement(),
		reserveHoldIDs,
		journalProbe,
		insertJournals,
		moneyProbe,
		pendingProbe,
		insertHolds,
		updateHeld,
		updateHeldIfAllowed,
		refsFree,
		captureHolds,
		releaseHolds,
		selectProgram,
		selectProgramSpendRules,
		insertSpendCounters,
		lockSpendCounters,
		foldSpendReleases,
		chargeSpendCounters,
		insertSpendCounterHolds,
		originalQuery(journalTables[0], "L"),
		originalQuery(journalTables[0], "T"),
		originalQuery(journalTables[0], "R"),
	}
}

// Warm readies conn for the authorisation batch before it carries one: it
// prepares each of HotStatements named by its own text (pgx looks a
// statement's text up among the connection's prepared statements before
// its own cache, so a batch finds them and sends no Parse), then runs each
// once with NULL arguments under GenericPlans in a transaction it rolls
// back, so that the backend has loaded the catalog entries of the tables,
// indexes and functions they touch and holds their generic plans. NULL
// arguments name no row: nothing is locked, written or reserved, and a
// statement that fails on them (a check of its arguments) has been
// planned already. Warm is idempotent; it is not safe for concurrent use
// on one connection (no pgx.Conn is).
func Warm(ctx context.Context, conn *pgx.Conn) error {
	stmts := HotStatements()
	for _, sql := range stmts {
		if _, err := conn.Prepare(ctx, sql, sql); err != nil {
			return fmt.Errorf("warm: prepare %.40q: %w", firstLine(sql), err)
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, GenericPlans); err != nil {
		return fmt.Errorf("warm: %w", err)
	}
	for _, sql := range stmts[1:] {
		sd, err := conn.Prepare(ctx, sql, sql)
		if err != nil {
			return fmt.Errorf("warm: prepare %.40q: %w", firstLine(sql), err)
		}
		if _, err := tx.Exec(ctx, "SAVEPOINT ledger_warm"); err != nil {
			return fmt.Errorf("warm: %w", err)
		}
		rows, err := tx.Query(ctx, sql, make([]any, len(sd.ParamOIDs))...)
		if err == nil {
			rows.Close()
			err = rows.Err()
		}
		if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT ledger_warm"); rerr != nil {
			return fmt.Errorf("warm: %w (after %v)", rerr, err)
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// Warmer readies a pool's connections with Warm: each one as it opens
// (Configure: a failover's, a pool's growth), and Conns of them at once
// before a process takes traffic (Run). Safe for concurrent use once
// configured.
type Warmer struct {
	// Conns is the number of connections Run opens and the pool keeps
	// open (MinConns); negative or above the pool's maximum: the maximum.
	Conns int
	// Timeout bounds Run, and Warm on a connection as it opens.
	Timeout time.Duration
	// Logger receives Run's outcome; default slog.Default().
	Logger *slog.Logger

	warmed sync.Map // *pgx.Conn readied
}

// target is the number of connections w opens in a pool of max.
func (w *Warmer) target(max int32) int32 {
	if w.Conns < 0 || int32(w.Conns) > max {
		return max
	}
	return int32(w.Conns)
}

func (w *Warmer) log() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}

// Configure makes a pool of cfg ready each connection as it opens, before
// its first use, and keep Run's connections open (MinConns, unless it is
// higher already). A connection Warm cannot ready (the tables not
// migrated yet, a slow server) is still handed out: pgx then prepares
// lazily.
func (w *Warmer) Configure(cfg *pgxpool.Config) {
	if n := w.target(cfg.MaxConns); cfg.MinConns < n {
		cfg.MinConns = n
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		ctx, cancel := context.WithTimeout(ctx, w.Timeout)
		defer cancel()
		if err := Warm(ctx, conn); err != nil {
			w.log().Debug("connection not warmed", "err", err)
			return nil
		}
		w.warmed.Store(conn, true)
		return nil
	}
	before := cfg.BeforeClose
	cfg.BeforeClose = func(conn *pgx.Conn) {
		w.warmed.Delete(conn)
		if before != nil {
			before(conn)
		}
	}
}

// Run opens w.Conns connections of pool (configured by Configure) at
// once, readies those that opened unready (before the migrations, say),
// and returns when all are ready or Timeout passed: the caller starts
// then whatever it reached (logged). It returns the number readied.
func (w *Warmer) Run(ctx context.Context, pool *pgxpool.Pool) int {
	start := time.Now()
	n := int(w.target(pool.Config().MaxConns))
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		held  []*pgxpool.Conn
		ready int
		first error
	)
	// Each connection is held until all are acquired, so that n distinct
	// connections open.
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pool.Acquire(ctx)
			if err == nil {
				if _, ok := w.warmed.Load(c.Conn()); !ok {
					if err = Warm(ctx, c.Conn()); err == nil {
						w.warmed.Store(c.Conn(), true)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				held = append(held, c)
			}
			if err == nil {
				ready++
			} else if first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	for _, c := range held {
		c.Release()
	}
	took := time.Since(start).Round(time.Millisecond).String()
	switch {
	case ready == n:
		w.log().Info("database connections warmed", "conns", ready, "took", took)
	case errors.Is(first, context.DeadlineExceeded):
		w.log().Warn("database warm-up timed out; starting anyway", "conns", ready, "want", n, "timeout", w.Timeout.String())
	default:
		w.log().Warn("database warm-up incomplete; starting anyway", "conns", ready, "want", n, "took", took, "err", first)
	}
	return ready
}
