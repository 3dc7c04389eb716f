package ledger_test

import (
	"context"
	"errors"
	"testing"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
)

// TestCardStoreErrors checks the store's translation at the package
// boundary, which the card host turns into its own sentinels: an unknown
// row is ErrNotFound, a taken unique key ErrDuplicateRef, and a refusal
// by a foreign key or check a ConstraintError naming the constraint (no
// pgx type leaves the package).
func TestCardStoreErrors(t *testing.T) {
	ctx := context.Background()
	pool := ledgertest.Pool(t)
	s := ledger.NewCardStore(pool)
	p, err := ledger.New(pool, ledger.Config{}).CreatePartner(ctx, "store errors", "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	prog := ledger.ProgramRow{PartnerID: p.ID, Name: "p", BINLow: "400000", BINHigh: "400099", Currency: "EUR",
		CardTypes: []string{"virtual"}, Funding: "partner_credit", RemoteTimeoutMS: 1500}
	progID, err := s.InsertProgram(ctx, prog)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := s.Card(ctx, 1<<40); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("unknown card: got %v, want ErrNotFound", err)
	}
	if _, err := s.InsertUser(ctx, 1<<40, "u1", "n", "e@example.com"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("user of an unknown program: got %v, want ErrNotFound", err)
	}
	if _, err := s.InsertUser(ctx, progID, "u1", "n", "e@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertUser(ctx, progID, "u1", "n", "e@example.com"); !errors.Is(err, ledger.ErrDuplicateRef) {
		t.Errorf("second user with one external ref: got %v, want ErrDuplicateRef", err)
	}
	bad := prog
	bad.PartnerID = 1 << 40
	_, err = s.InsertProgram(ctx, bad)
	var ce *ledger.ConstraintError
	if !errors.As(err, &ce) || !errors.Is(err, ledger.ErrInvalid) || ce.Constraint == "" {
		t.Errorf("program of an unknown partner: got %v, want a ConstraintError naming the constraint", err)
	}
	if found, err := s.SetUserKYC(ctx, 1<<40, "verified", "admin"); found || err != nil {
		t.Errorf("kyc of an unknown user: got %v, %v; want false, nil", found, err)
	}
	if found, err := s.SetRemoteSecret(ctx, progID, "rdsec_x"); !found || err != nil {
		t.Errorf("rotate secret: got %v, %v; want true, nil", found, err)
	}
	if got, err := s.RemoteSecret(ctx, progID); got != "rdsec_x" || err != nil {
		t.Errorf("remote secret: got %q, %v", got, err)
	}
}
