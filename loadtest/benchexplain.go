package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/ledger"
)

// errRollback ends explainLock's transaction: EXPLAIN ANALYZE runs the
// statement, and the locks it takes must not stay.
var errRollback = errors.New("rollback")

// explainLock returns the plan, with buffer counts, of the batch's lock
// statement (ledger.CardsLockSQL) for n random funded cards, then the
// sizes of the tables and indexes it reads against shared_buffers. It
// runs after the load, in a transaction rolled back.
func explainLock(ctx context.Context, pool *pgxpool.Pool, n int) (string, error) {
	var b strings.Builder
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var lookups [][]byte
		rows, err := tx.Query(ctx, `SELECT pan_lookup FROM cards ORDER BY random() LIMIT $1`, n)
		if err != nil {
			return err
		}
		if lookups, err = pgx.CollectRows(rows, pgx.RowTo[[]byte]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+ledger.CardsLockSQL(), []int64{}, lookups)
		if err != nil {
			return err
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		for i, l := range plan {
			// The 32 look-up hashes of the conditions: long, and no
			// business of a report.
			if j := strings.Index(l, "= ANY ('{"); j >= 0 {
				plan[i] = l[:j] + "= ANY (…))"
			}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "lock statement for %d cards (EXPLAIN ANALYZE, BUFFERS):\n  %s\n", len(lookups), strings.Join(plan, "\n  "))
		const sizes = `SELECT c.relname, pg_relation_size(c.oid), current_setting('shared_buffers') FROM pg_class c
			WHERE c.relname IN ('cards', 'accounts') OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ('cards'::regclass, 'accounts'::regclass))
			ORDER BY 2 DESC`
		rows, err = tx.Query(ctx, sizes)
		if err != nil {
			return err
		}
		var name, sb string
		var size, total int64
		fmt.Fprint(&b, "sizes:")
		if _, err := pgx.ForEachRow(rows, []any{&name, &size, &sb}, func() error {
			fmt.Fprintf(&b, " %s %.1f MB,", name, float64(size)/1e6)
			total += size
			return nil
		}); err != nil {
			return err
		}
		fmt.Fprintf(&b, " total %.1f MB (shared_buffers %s)\n", float64(total)/1e6, sb)
		return errRollback
	})
	if err != nil && !errors.Is(err, errRollback) {
		return "", fmt.Errorf("explain: %w", err)
	}
	return b.String(), nil
}
