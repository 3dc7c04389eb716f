package authswitch

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// windowed serves a second switch over a Host of the test's database whose
// batches wait window for more requests (one writer per shard): requests
// sent within the window are decided and committed in one batch. batches
// reports how many write batches its Host ran and the requests they held.
func (e *e2e) windowed(window time.Duration) (addr string, batches func() (n uint64, requests float64)) {
	e.t.Helper()
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	h := cardhost.NewHost(e.pool, e.led, e.keys, cardhost.Config{Logger: log, Remote: testDecider(e.t),
		BatchWindow: window, BatchWriters: 1, Registerer: reg})
	e.t.Cleanup(h.Close)
	return e.serve(h, nil), func() (uint64, float64) {
		mfs, err := reg.Gather()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "antaca_auth_batch_size" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetValue() == "write" {
						return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
					}
				}
			}
		}
		return 0, 0
	}
}

// sendTogether sends ms on their own connections, each started gap after
// the one before, and returns the answers in order.
func sendTogether(t *testing.T, conns []*connection.Connection, gap time.Duration, ms ...*iso8583.Message) []*iso8583.Message {
	t.Helper()
	out := make([]*iso8583.Message, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := conns[i%len(conns)].Send(m)
			if err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
			out[i] = resp
		}()
		time.Sleep(gap)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// TestGroupCommitAuthAndFollowUpInOneBatch: an authorisation and its
// reversal or completion arriving within one batch are written by that
// batch, in arrival order, and committed once: the reversal after its
// authorisation releases the hold just placed, one before it is applied
// as a pending reversal would be, a completion after it captures it.
func TestGroupCommitAuthAndFollowUpInOneBatch(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		addr, batches := e.windowed(time.Second)
		conns := []*connection.Connection{dial(t, addr, e.profile), dial(t, addr, e.profile)}
		for _, tc := range []struct {
			name          string
			orig, follow  string
			amount        int64
			first         bool // the follow-up is sent before its original
			balance, held int64
			reason        cardhost.Reason // the follow-up's answer
		}{
			{"reversal after its authorisation", "100", "400", 1_000, false, 10_000, 0, cardhost.Approved},
			{"reversal before its authorisation", "100", "400", 1_000, true, 10_000, 0, cardhost.Approved},
			{"completion after its authorisation", "100", "220", 800, false, 9_200, 0, cardhost.Approved},
			{"reversal before its financial request", "200", "400", 1_000, true, 10_000, 0, cardhost.Approved},
			{"reversal after its financial request", "200", "400", 1_000, false, 10_000, 0, cardhost.Approved},
			{"completion before its authorisation", "100", "220", 1_000, true, 10_000, 1_000, cardhost.InvalidCard},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e.t = t
				card := e.virtualCard(e.prog, 10_000)
				orig := e.msg(tc.orig, card, 1_000, nil)
				fu := e.follow(tc.follow, orig, card, tc.amount, nil)
				ms := []*iso8583.Message{orig, fu}
				if tc.first {
					ms = []*iso8583.Message{fu, orig}
				}
				n0, r0 := batches()
				resps := sendTogether(t, conns, 20*time.Millisecond, ms...)
				for i, resp := range resps {
					if ms[i] == fu {
						e.expect(resp, tc.reason)
					} else {
						e.expect(resp, cardhost.Approved)
					}
				}
				e.expectBalance(card.AccountID, tc.balance, tc.held)
				if n, r := batches(); n-n0 != 1 || r-r0 != 2 {
					t.Errorf("the authorisation and its %s took %d batches of %v requests, want 1 batch (one transaction) of both", tc.follow, n-n0, r-r0)
				}
				// Repeats answer the same and move nothing.
				for i, m := range ms {
					if got, want := get(t, sendOn(t, conns[0], m), 39), get(t, resps[i], 39); got != want {
						t.Errorf("repeat %d: DE39 %s, first %s", i, got, want)
					}
				}
				e.expectBalance(card.AccountID, tc.balance, tc.held)
			})
		}
		e.verify()
	})
}

// TestGroupCommitCompletionsOneCommit: N completions of open holds that
// arrive together are written by one batch: one transaction, one commit,
// every hold captured once, balances and partner account as N separate
// captures would leave them.
func TestGroupCommitCompletionsOneCommit(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		const n = 12
		addr, batches := e.windowed(time.Second)
		conns := []*connection.Connection{dial(t, addr, e.profile), dial(t, addr, e.profile), dial(t, addr, e.profile)}
		cards := make([]testCard, n)
		var ms []*iso8583.Message
		for i := range cards {
			cards[i] = e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(cards[i], 1_000, nil)
			e.expect(resp, cardhost.Approved)
			amount := int64(1_000)
			if i%3 == 1 {
				amount = 700 // partial
			}
			fn := "220"
			if i%4 == 3 {
				fn = "400" // a release in the same batch
			}
			ms = append(ms, e.follow(fn, orig, cards[i], amount, nil))
		}
		partner := e.account(e.prog.PartnerAccountID)
		n0, r0 := batches()
		for _, resp := range sendTogether(t, conns, time.Millisecond, ms...) {
			e.expect(resp, cardhost.Approved)
		}
		var charged int64
		for i, c := range cards {
			switch {
			case i%4 == 3:
				e.expectBalance(c.AccountID, 10_000, 0)
			case i%3 == 1:
				e.expectBalance(c.AccountID, 9_300, 0)
				charged += 700
			default:
				e.expectBalance(c.AccountID, 9_000, 0)
				charged += 1_000
			}
		}
		e.expectBalance(e.prog.PartnerAccountID, partner.Balance-charged, 0)
		if got, reqs := batches(); got-n0 != 1 || reqs-r0 != n {
			t.Errorf("%d completions and releases took %d batches of %v requests, want 1 batch (one transaction, one commit)", n, got-n0, reqs-r0)
		}
		if got := e.count(`SELECT count(*) FROM postings WHERE kind = 'capture' AND source = 'capture' AND actor = 'switch' AND source_ref = ref`); got != n-n/4 {
			t.Errorf("%d capture postings with their provenance, want %d", got, n-n/4)
		}
		e.verify()
	})
}

// TestGroupCommitCompletionRacesReversal: a completion and a reversal of
// the same hold sent at once on two connections: exactly one of them
// takes the hold (captured or released, never both, never neither), both
// are acknowledged, and the ledger verifies.
func TestGroupCommitCompletionRacesReversal(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		const n = 16
		other := e.dial()
		conns := []*connection.Connection{e.c, other}
		for i := range n {
			card := e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(card, 1_000, nil)
			e.expect(resp, cardhost.Approved)
			comp, rev := e.follow("220", orig, card, 1_000, nil), e.follow("400", orig, card, 1_000, nil)
			ms := []*iso8583.Message{comp, rev}
			if i%2 == 1 {
				ms = []*iso8583.Message{rev, comp}
			}
			for _, resp := range sendTogether(t, conns, 0, ms...) {
				e.expect(resp, cardhost.Approved)
			}
			a := e.account(card.AccountID)
			captured := e.count(`SELECT count(*) FROM holds WHERE user_account_id = $1 AND status = 'captured'`, card.AccountID)
			released := e.count(`SELECT count(*) FROM holds WHERE user_account_id = $1 AND status = 'released'`, card.AccountID)
			switch {
			case captured+released != 1:
				t.Errorf("pair %d: %d captured and %d released holds, want exactly one of them", i, captured, released)
			case a.Held != 0 || captured == 1 && a.Balance != 9_000 || released == 1 && a.Balance != 10_000:
				t.Errorf("pair %d: balance %d held %d with %d captured", i, a.Balance, a.Held, captured)
			}
		}
		e.expectBalance(e.prog.PartnerAccountID, e.account(e.prog.PartnerAccountID).Balance, 0)
		e.verify()
	})
}

// TestGroupCommitTwoSwitches: two switches, each with its own Host and
// pool, on one database, take mixed traffic for the same cards at once
// (approvals, completions full and partial, reversals full and partial,
// repeats): no request is answered issuer unavailable (no deadlock, no
// batch timing out behind another), every card ends as its messages say,
// and the ledger verifies.
func TestGroupCommitTwoSwitches(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		cfg := e.pool.Config().Copy()
		pool2, err := pgxpool.NewWithConfig(e.ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool2.Close)
		log := slog.New(slog.DiscardHandler)
		led2 := ledger.New(pool2, ledger.Config{Logger: log})
		h2 := cardhost.NewHost(pool2, led2, e.keys, cardhost.Config{Logger: log, Remote: testDecider(t)})
		t.Cleanup(h2.Close)
		addr2 := e.serve(h2, nil)
		conns := []*connection.Connection{e.c, e.dial(), dial(t, addr2, e.profile), dial(t, addr2, e.profile)}

		const cards, rounds = 12, 6
		cs := make([]testCard, cards)
		for i := range cs {
			cs[i] = e.virtualCard(e.prog, 100_000)
		}
		want := make([]int64, cards) // what each card is charged
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					k := i + r
					j := 0
					send := func(m *iso8583.Message) *iso8583.Message {
						j++
						resp, err := conns[(k+j)%len(conns)].Send(m)
						if err != nil {
							t.Errorf("card %d round %d: %v", i, r, err)
							return nil
						}
						if got, ok := get(t, resp, 39), actionCode(t, e.profile, cardhost.Approved); got != ok {
							t.Errorf("card %d round %d: DE39 %s, want %s", i, r, got, ok)
						}
						return resp
					}
					mu.Lock()
					orig := e.msg("100", c, 1_000, nil)
					var fu *iso8583.Message
					var charge int64
					switch k % 4 {
					case 0:
						fu, charge = e.follow("220", orig, c, 1_000, nil), 1_000
					case 1:
						fu, charge = e.follow("220", orig, c, 600, nil), 600
					case 2:
						fu = e.follow("400", orig, c, 1_000, nil)
					case 3:
						fu = e.follow("400", orig, c, 1_000, map[int]string{95: replacement(300)})
						charge = 0 // 300 stays held
					}
					mu.Unlock()
					if send(orig) == nil || send(fu) == nil || send(fu) == nil { // the follow-up twice: a repeat
						return
					}
					mu.Lock()
					want[i] += charge
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for i, c := range cs {
			held := int64(0)
			for r := range rounds {
				if (i+r)%4 == 3 {
					held += 300
				}
			}
			e.expectBalance(c.AccountID, 100_000-want[i], held)
		}
		e.verify()
	})
}

// TestGroupCommitFastAndSlowInOneBatch: completions the batch writes
// set-based (within the hold, above it within a restaurant's 20 %
// tolerance) and ones it writes per message after its final update (above
// the tolerance: the excess to exceptions receivable) in one batch: each
// charged as alone, the exceptions opened, one batch, verify clean.
func TestGroupCommitFastAndSlowInOneBatch(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		addr, batches := e.windowed(time.Second)
		conns := []*connection.Connection{dial(t, addr, e.profile), dial(t, addr, e.profile)}
		restaurant := map[int]string{18: "5812"}
		if e.profile == ProfileISO2003 {
			restaurant = map[int]string{18: "5812", 26: "5812"}
		}
		cases := []struct {
			mcc        map[int]string
			final      int64
			balance    int64
			exceptions int64 // over_capture receivable
		}{
			{nil, 1_000, 9_000, 0},
			{restaurant, 1_150, 8_850, 0}, // within 20 %
			{restaurant, 1_250, 8_800, 50},
			{nil, 1_500, 9_000, 500}, // 0 % at 5411
			{nil, 600, 9_400, 0},
		}
		cards := make([]testCard, len(cases))
		var ms []*iso8583.Message
		for i, c := range cases {
			cards[i] = e.virtualCard(e.prog, 10_000)
			orig, resp := e.auth(cards[i], 1_000, c.mcc)
			e.expect(resp, cardhost.Approved)
			ms = append(ms, e.follow("220", orig, cards[i], c.final, c.mcc))
		}
		n0, r0 := batches()
		for _, resp := range sendTogether(t, conns, time.Millisecond, ms...) {
			e.expect(resp, cardhost.Approved)
		}
		if n, r := batches(); n-n0 != 1 || r-r0 != float64(len(ms)) {
			t.Errorf("%d completions took %d batches of %v requests, want 1", len(ms), n-n0, r-r0)
		}
		for i, c := range cases {
			e.expectBalance(cards[i].AccountID, c.balance, 0)
			var got int64
			for _, x := range e.exceptions(cards[i].ID) {
				if x.Kind == ledger.ExceptionOverCapture {
					got += x.Receivable
				}
			}
			if got != c.exceptions {
				t.Errorf("completion %d of %d: over_capture receivable %d, want %d", i, c.final, got, c.exceptions)
			}
		}
		e.verify()
	})
}
