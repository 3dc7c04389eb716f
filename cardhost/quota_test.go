package cardhost_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
)

// TestCardQuota: cards per user and per partner and pending card jobs per
// user are limited, also against parallel requests (exactly the limit
// passes), with ErrCardLimit and ErrCardJobLimit; a pending job admitted
// within the limits still makes its card when it runs.
func TestCardQuota(t *testing.T) {
	ctx := context.Background()
	pool := ledgertest.Pool(t)
	keys, err := keysOnce()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	h := cardhost.NewHost(pool, ledger.New(pool, ledger.Config{Logger: log}), keys, cardhost.Config{Logger: log,
		CardsPerUserPerDay: 3, CardsPerPartnerPerHour: 5, JobsPerUser: 2, JobsPerPartner: 10})
	defer h.Close()
	e := &env{host: h, keys: keys}
	e.partner, _ = ledger.New(pool, ledger.Config{Logger: log}).CreatePartner(ctx, "Quota partner", "ops@partner.example")
	if e.prog, err = h.CreateProgram(ctx, cardhost.ProgramSpec{PartnerID: e.partner.ID, Name: "Quota", BINLow: "539999", BINHigh: "539999",
		Currency: "EUR", Funding: cardhost.FundingPartnerCredit, CardTypes: []cardhost.CardType{cardhost.Virtual, cardhost.Physical}}); err != nil {
		t.Fatal(err)
	}
	admin := cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "quota"}

	// Eight at once for one user: three cards, five refusals.
	a, accA := e.verifiedBalance(t, "quota-a")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { _, _, err := h.CreateVirtualCard(ctx, a.ID, accA.ID, admin); errs <- err })
	}
	wg.Wait()
	close(errs)
	ok, limited := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, cardhost.ErrCardLimit):
			limited++
		default:
			t.Fatalf("parallel card: %v", err)
		}
	}
	if ok != 3 || limited != 5 {
		t.Fatalf("8 parallel cards for one user (limit 3 a day): %d made, %d refused; want 3 and 5", ok, limited)
	}
	if _, err := h.OrderPhysicalCard(ctx, a.ID, accA.ID, admin); !errors.Is(err, cardhost.ErrCardLimit) {
		t.Fatalf("physical card past the user's limit: %v, want ErrCardLimit", err)
	}

	// Another user of the same partner: the partner's 5 an hour.
	b, accB := e.verifiedBalance(t, "quota-b")
	for i := range 3 {
		_, _, err := h.CreateVirtualCard(ctx, b.ID, accB.ID, admin)
		if want := i < 2; (err == nil) != want || (!want && !errors.Is(err, cardhost.ErrCardLimit)) {
			t.Fatalf("user b card %d (partner at %d of 5): %v", i+1, 3+i, err)
		}
	}

	// Jobs: a user with two pending jobs gets no third.
	c, accC := e.verifiedBalance(t, "quota-c")
	// The partner's hour has passed for the cards above.
	if _, err := pool.Exec(ctx, `UPDATE cards SET created_at = created_at - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	j1, j2 := pendingJob(t, pool, accC.ID, "0 s"), pendingJob(t, pool, accC.ID, "0 s")
	if _, err := h.CreateVirtualCardAsync(ctx, c.ID, accC.ID, admin); !errors.Is(err, cardhost.ErrCardJobLimit) {
		t.Fatalf("third pending job: %v, want ErrCardJobLimit", err)
	}
	h.RunCardJob(ctx, j1, c.ID, accC.ID, admin)
	job, err := h.CardJob(ctx, c.ID, j1)
	if err != nil || job.Status != "done" {
		t.Fatalf("pending job admitted within the limits: %+v %v, want done", job, err)
	}
	if _, err := h.CreateVirtualCardAsync(ctx, c.ID, accC.ID, admin); err != nil {
		t.Fatalf("a job after one finished: %v", err)
	}
	var pending int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM card_jobs WHERE id = $1 AND status = 'pending'`, j2).Scan(&pending); err != nil || pending != 1 {
		t.Fatalf("the other pending job: %d %v", pending, err)
	}
}
