package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/ledger"
)

// verify runs `antaca ledger verify`: it checks every ledger invariant,
// prints each violation on its own line and fails when there is any, so the
// process exits 1.
func verify(ctx context.Context, args []string, stdout io.Writer) error {
	return withPool(ctx, "ledger verify", args, func(pool *pgxpool.Pool, log *slog.Logger) error {
		vs, err := ledger.New(pool, ledger.Config{Logger: log}).Verify(ctx)
		if err != nil {
			return fmt.Errorf("ledger verify: %w", err)
		}
		for _, v := range vs {
			fmt.Fprintln(stdout, v)
		}
		if len(vs) > 0 {
			return fmt.Errorf("ledger verify: %d violations", len(vs))
		}
		fmt.Fprintln(stdout, "ledger verify: ok, no violations")
		return nil
	})
}
