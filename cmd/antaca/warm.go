package main

import (
	"flag"
	"log/slog"
	"time"

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

// apply configures the pool c opens with the warm start and returns its
// warmer, nil when the warm start is off.
func (w *warmFlags) apply(c *common, log *slog.Logger) *ledger.Warmer {
	if w.conns == 0 {
		return nil
	}
	wr := &ledger.Warmer{Conns: w.conns, Timeout: w.timeout, Logger: log}
	c.poolOpts = append(c.poolOpts, func(cfg *pgxpool.Config) { wr.Configure(cfg) })
	return wr
}
