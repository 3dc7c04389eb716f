package cardhost

import (
	"testing"

	"github.com/antaca/antaca/ledger/ledgertest"
)

// TestBatchPlansUseIndexes checks the generic plans a batch's reads run on
// (ledger.GenericPlans) on a fresh database whose tables were analysed
// empty (as autovacuum does): planned by cost alone there, the journal
// probe read the whole journal index for every batch after, 20 ms a batch
// once the journal had grown, and the account look-ups read every
// account. Each must find its rows by key, whatever the tables hold when
// a connection first plans it.
func TestBatchPlansUseIndexes(t *testing.T) {
	tx := ledgertest.PlanTx(t)
	plan := ledgertest.GenericPlan(t, tx, "pending_probe", pendingProbe, "text[]")
	ledgertest.CheckProbes(t, "pending reversals probe", plan, "pending_reversals_key")
}
