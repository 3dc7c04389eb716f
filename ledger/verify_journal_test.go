package ledger_test

import (
	"testing"

	"github.com/antaca/antaca/ledger"
)

// The journal has no foreign keys; Verify stands in for them.
func TestVerifyJournalChecks(t *testing.T) {
	e := newEnv(t, 4)
	p := e.partner("")
	credit := e.credit(p, "EUR", 100_00, nil)
	if _, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{PartnerAccountID: credit.ID, Currency: "EUR", Amount: 10_00, Ref: "123456/000001/1124120000/000000000001/2100"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, `INSERT INTO auth_journal (profile, mti, class, reason, hold_id) VALUES ('iso2003', '2100', 1, 'approved', 999999)`); err != nil {
		t.Fatal(err)
	}
	got, _ := e.violations()
	if got["journal_hold_missing"] != 1 || got["hold_without_journal"] != 1 || len(got) != 2 {
		t.Fatalf("violations %v, want one journal_hold_missing and one hold_without_journal", got)
	}
}
