package ledger_test

import (
	"testing"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
)

// TestGenericPlansProbe checks the generic plans (ledger.GenericPlans) of a
// hold batch's statements made on a fresh database whose tables were
// analysed empty: planned by cost there, a plan that reads a whole index
// and filters it by a join is as cheap as a probe, and it stays cached
// for the connection however large the tables grow (an update of one
// batch's accounts then read every account: 267 ms after 200,000
// accounts were added, in a review). Every statement
// must reach its rows by key.
func TestGenericPlansProbe(t *testing.T) {
	tx := ledgertest.PlanTx(t)
	for _, c := range []struct {
		name, sql, types string
		want             []string
	}{
		{"lock", ledger.AccountsLock, "bigint[]", []string{"LockRows", "Index Cond: (id = ANY ($"}},
		{"update_held", ledger.UpdateHeld, "bigint[], bigint[], boolean[], bigint[]", []string{"accounts_pkey"}},
		{"update_held_if_allowed", ledger.UpdateHeldIfAllowed, "bigint[], bigint[], bigint[], text[], bigint[]", []string{"accounts_pkey"}},
		{"insert_holds", ledger.InsertHolds, "bigint[], bigint[], bigint[], text[], bigint[], text[], timestamptz[], timestamptz", nil},
		{"capture_holds", ledger.CaptureHolds, "bigint[], text[], bigint[], bigint[], bigint[], bigint[], text[]", []string{"holds_pkey"}},
		{"release_holds", ledger.ReleaseHolds, "bigint[], bigint[]", []string{"holds_pkey"}},
	} {
		plan := ledgertest.GenericPlan(t, tx, c.name, c.sql, c.types)
		ledgertest.CheckProbes(t, c.name, plan, c.want...)
	}
}

// TestStoreReadsProbe checks that the card store's reads by key reach
// their rows by index probes in their generic plans, as the hot path's do.
func TestStoreReadsProbe(t *testing.T) {
	tx := ledgertest.PlanTx(t)
	for _, r := range ledger.StoreReads {
		plan := ledgertest.GenericPlan(t, tx, r[0], r[1], r[2])
		ledgertest.CheckProbes(t, r[0], plan)
	}
}

// TestHotPathPlansProbe checks the card host's batch statements the same
// way (ledger.GenericPlans on tables analysed empty): planned by cost
// alone there, the journal probe read the whole journal index for every
// batch after, 20 ms a batch once the journal had grown, and the account
// look-ups read every account. Each must find its rows by key, whatever
// the tables hold when a connection first plans it.
func TestHotPathPlansProbe(t *testing.T) {
	tx := ledgertest.PlanTx(t)
	for _, c := range []struct {
		name, sql, types string
		want             []string
	}{
		{"journal_probe", ledger.JournalProbe, "text[], text[], text[], text[], text[]",
			[]string{"Index Scan using auth_journal_dedup", "mti = (x.mti)::bpchar"}},
		{"cards_and_accounts", ledger.CardsLock, "bigint[], bytea[]",
			[]string{"Index Cond: (pan_lookup = ANY ($2))", "LockRows", "Index Cond: (id = ANY ($", "programs_pkey"}},
		{"pending_probe", ledger.PendingProbe, "text[]", []string{"pending_reversals_key"}},
		// The originals of completions and reversals: each key form an
		// index probe of auth_journal_dedup, the holds by primary key.
		{"money_probe", ledger.MoneyProbe, "text[], text[], text[], text[], text[], text[]",
			[]string{"Index Scan using auth_journal_dedup", "holds_pkey"}},
	} {
		plan := ledgertest.GenericPlan(t, tx, c.name, c.sql, c.types)
		ledgertest.CheckProbes(t, c.name, plan, c.want...)
	}
}
