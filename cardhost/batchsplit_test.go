package cardhost_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/antaca/antaca/cardhost"
)

// TestBatchSplitIsolatesUnstorable: a request the database cannot store
// (a NUL in the merchant name, which only a caller that skips the
// switch's checks can send) among a burst of valid ones fails alone with
// ErrUnstorable; every valid one is approved and held once.
func TestBatchSplitIsolatesUnstorable(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cardhost.ProgramSpec{})
	u, acc := e.verifiedBalance(t, "u1")
	if _, err := e.host.Ledger().Reload(ctx, e.prog.PartnerAccountID, 1000_00, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.host.Ledger().Reload(ctx, acc.ID, 1000_00, "r2"); err != nil {
		t.Fatal(err)
	}
	actor := cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "1"}
	_, data, err := e.host.CreateVirtualCard(ctx, u.ID, acc.ID, actor)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		const n = 40
		bad := 17
		var wg sync.WaitGroup
		reasons := make([]cardhost.Reason, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			r := &cardhost.AuthRequest{Class: cardhost.ClassAuthorization, Profile: "iso87", MTI: "0100", PAN: data.PAN, Expiry: data.Expiry,
				ProcessingCode: cardhost.ProcPurchase, Amount: 100, Currency: "978", STAN: fmt.Sprintf("%03d%03d", round, i),
				TransmissionTime: "1206120000", RRN: fmt.Sprintf("RRN%03d%06d", round, i), AcquirerID: "123456", MerchantName: "SHOP"}
			if i == bad {
				r.MerchantName = "BAD\x00SHOP"
			}
			wg.Go(func() {
				<-start
				d, err := e.host.Authorize(ctx, r)
				reasons[i], errs[i] = d.Reason, err
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if i == bad {
				if !errors.Is(errs[i], cardhost.ErrUnstorable) {
					t.Errorf("round %d: bad request: got %v, %v; want ErrUnstorable", round, reasons[i], errs[i])
				}
				continue
			}
			if errs[i] != nil || reasons[i] != cardhost.Approved {
				t.Errorf("round %d: request %d: got %s, %v; want approved", round, i, reasons[i], errs[i])
			}
		}
	}
	if !strings.Contains(e.logs.String(), "answered alone") {
		t.Error("the database was not asked to store the bad request")
	}
	var held int64
	a, err := e.host.Ledger().Account(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	held = a.Held
	if held != 3*39*100 {
		t.Errorf("held %d, want %d (each valid request once)", held, 3*39*100)
	}
}
