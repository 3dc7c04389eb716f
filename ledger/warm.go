package ledger

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// HotStatements are the texts of the statements a batch of card
// transactions sends (see the card host's batch): the locks, the journal
// and money probes, the hold and journal inserts, the account updates,
// the captures and releases. Warm prepares them on a new connection.
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
