package cardhost

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/ledger/ledgertest"
)

// TestBatchPlansUseIndexes checks the generic plans a batch's reads run on
// (batchPlans) on a fresh database whose tables were analysed empty (as
// autovacuum does): planned by cost alone there, the journal probe read
// the whole journal index for every batch after, 20 ms a batch once the
// journal had grown. Each must find its rows through an index, whatever
// the tables hold when a connection first plans it.
func TestBatchPlansUseIndexes(t *testing.T) {
	pool := ledgertest.Pool(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `ANALYZE auth_journal, cards, accounts, programs`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, batchPlans); err != nil {
		t.Fatal(err)
	}
	lock := lockRows(map[string]*Card{})
	for _, c := range []struct {
		name, sql, types, nulls string
		want                    []string // in the plan
	}{
		{"journal probe", journalProbe, "text[], text[], text[], text[], text[]", "NULL, NULL, NULL, NULL, NULL",
			[]string{"Index Scan using auth_journal_dedup", "mti = (x.mti)::bpchar"}},
		{"cards and accounts", lock.Statement(), "bigint[], bytea[]", "NULL, NULL",
			[]string{"cards_pan_lookup_key", "Index Cond: (pan_lookup = ANY ($2))", "LockRows", "accounts_pkey"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := strings.ReplaceAll(c.name, " ", "_")
			if _, err := tx.Exec(ctx, "PREPARE "+name+" ("+c.types+") AS "+c.sql); err != nil {
				t.Fatal(err)
			}
			rows, err := tx.Query(ctx, "EXPLAIN EXECUTE "+name+"("+c.nulls+")", pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			for _, bad := range []string{"Seq Scan", "Materialize", "Hash Join", "Merge Join"} {
				if strings.Contains(plan, bad) {
					t.Errorf("plan has %q:\n%s", bad, plan)
				}
			}
			for _, want := range c.want {
				if !strings.Contains(plan, want) {
					t.Errorf("plan lacks %q:\n%s", want, plan)
				}
			}
		})
	}
}
