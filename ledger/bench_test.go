package ledger_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/antaca/antaca/ledger"
)

// benchAccounts opens one partner credit account shared by users user
// accounts, all with funds that never run out.
func benchAccounts(b *testing.B, e *env, users int) (ledger.Account, []ledger.Account) {
	p := e.partner("")
	// Within the balance bounds (program defaults: 1,000,000,000.00 for a
	// partner balance, 1,000,000.00 for a user's), far above what a run
	// holds.
	credit := e.credit(p, "EUR", 1e10, nil)
	us := make([]ledger.Account, users)
	for i := range us {
		us[i] = e.user(p, "EUR", 1e7)
	}
	return credit, us
}

// BenchmarkPlaceHold is one authorisation per transaction: the baseline
// the batch is measured against.
func BenchmarkPlaceHold(b *testing.B) {
	e := newEnv(b, 0)
	credit, users := benchAccounts(b, e, 64)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := users[i%len(users)]
		i++
		if _, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID,
			Currency: "EUR", Amount: 100, Ref: fmt.Sprintf("s%d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "holds/s")
}

// BenchmarkPlaceHoldParallel is one authorisation per transaction from 8
// clients at once, all on one partner credit balance: the hot row that
// serialises them.
func BenchmarkPlaceHoldParallel(b *testing.B) {
	e := newEnv(b, 8)
	credit, users := benchAccounts(b, e, 64)
	var n atomic.Int64
	b.SetParallelism(4) // 4 x GOMAXPROCS(2) = 8 clients
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			u := users[i%int64(len(users))]
			if _, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{UserAccountID: u.ID, PartnerAccountID: credit.ID,
				Currency: "EUR", Amount: 100, Ref: fmt.Sprintf("p%d", i)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "holds/s")
}

// BenchmarkPlaceHolds is the batched authorisation statement: one
// transaction and one round trip per batch of size holds on distinct user
// balances and one shared partner credit balance.
func BenchmarkPlaceHolds(b *testing.B) {
	for _, size := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			e := newEnv(b, 0)
			credit, users := benchAccounts(b, e, 64)
			specs := make([]ledger.HoldSpec, size)
			b.ReportAllocs()
			batch := 0
			for b.Loop() {
				batch++
				for i := range specs {
					specs[i] = ledger.HoldSpec{UserAccountID: users[i%len(users)].ID, PartnerAccountID: credit.ID,
						Currency: "EUR", Amount: 100, Ref: fmt.Sprintf("b%d-%d", batch, i)}
				}
				res, err := e.l.PlaceHolds(e.ctx, specs)
				if err != nil {
					b.Fatal(err)
				}
				if res[size-1].Err != nil {
					b.Fatal(res[size-1].Err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "holds/s")
		})
	}
}
