package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/ledger"
)

// warmFlags configure the warm start of `antaca all|switch|api`: the
// pool's connections opened and readied (ledger.Warm) before the
// listeners open, and every connection opened later readied as it opens.
type warmFlags struct {
	conns   int           // connections opened at start; negative: all of MaxConns; 0: no warm start
	timeout time.Duration // the start waits no longer than this for them
}

func (w *warmFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&w.conns, "db-warm", envInt("ANTACA_DB_WARM", -1),
		"database connections opened and readied (hot statements prepared and planned) before the listeners open, and kept open (env ANTACA_DB_WARM); negative: the pool's maximum; 0: no warm start")
	fs.DurationVar(&w.timeout, "db-warm-timeout", envDuration("ANTACA_DB_WARM_TIMEOUT", 10*time.Second),
		"longest wait for the warm start; the listeners open after it whatever it reached (env ANTACA_DB_WARM_TIMEOUT)")
}

// warmConns are the connections ledger.Warm readied, so that the start's
// warm-up does not ready a connection twice. Safe for concurrent use.
type warmConns struct{ m sync.Map }

// apply makes the pool c opens ready each new connection (a failover's, a
// pool's growth) before its first use, and keep the start's connections
// open (MinConns, unless pool_min_conns is in the URL). It returns nil
// when the warm start is off.
func (w *warmFlags) apply(c *common, log *slog.Logger) *warmConns {
	if w.conns == 0 {
		return nil
	}
	warmed := &warmConns{}
	c.poolOpts = append(c.poolOpts, func(cfg *pgxpool.Config) {
		n := w.target(cfg.MaxConns)
		if cfg.MinConns < n {
			cfg.MinConns = n
		}
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			ctx, cancel := context.WithTimeout(ctx, w.timeout)
			defer cancel()
			// A connection Warm could not ready (tables not migrated yet,
			// a slow server) is still a connection: pgx prepares lazily.
			if err := ledger.Warm(ctx, conn); err != nil {
				log.Debug("connection not warmed", "err", err)
				return nil
			}
			warmed.m.Store(conn, true)
			return nil
		}
		before := cfg.BeforeClose
		cfg.BeforeClose = func(conn *pgx.Conn) {
			warmed.m.Delete(conn)
			if before != nil {
				before(conn)
			}
		}
	})
	return warmed
}

// target is the number of connections the warm start opens in a pool of
// max.
func (w *warmFlags) target(max int32) int32 {
	if w.conns < 0 || int32(w.conns) > max {
		return max
	}
	return int32(w.conns)
}

// run opens the warm start's connections of pool at once, readies those
// that opened unready (before the migrations, say), and returns when all
// are, or when the timeout passed: then the process starts anyway, with a
// warning. It returns the number of connections readied.
func (w *warmFlags) run(ctx context.Context, pool *pgxpool.Pool, warmed *warmConns, log *slog.Logger) int {
	if warmed == nil {
		return 0
	}
	start := time.Now()
	n := int(w.target(pool.Config().MaxConns))
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
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
				if _, ok := warmed.m.Load(c.Conn()); !ok {
					if err = ledger.Warm(ctx, c.Conn()); err == nil {
						warmed.m.Store(c.Conn(), true)
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
		log.Info("database connections warmed", "conns", ready, "took", took)
	case errors.Is(first, context.DeadlineExceeded):
		log.Warn("database warm-up timed out; starting anyway", "conns", ready, "want", n, "timeout", w.timeout.String())
	default:
		log.Warn("database warm-up incomplete; starting anyway", "conns", ready, "want", n, "took", took, "err", first)
	}
	return ready
}
