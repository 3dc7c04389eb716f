package authswitch

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	connection "github.com/moov-io/iso8583-connection"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/internal/faulttest"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/pgcluster"
)

// shot is one request of a load: when it was sent, how long its answer
// took, its DE39 or the client's error.
type shot struct {
	at   time.Time
	took time.Duration
	code string
	err  error
}

// loadOn sends authorisations of 1.00 EUR for card on c, one after the
// other, until stop is closed, and returns what each got.
func (e *e2e) loadOn(c *connection.Connection, card testCard, stop <-chan struct{}) []shot {
	var out []shot
	for {
		select {
		case <-stop:
			return out
		default:
		}
		m := e.msg("100", card, 100, nil)
		start := time.Now()
		resp, err := c.Send(m)
		s := shot{at: start, took: time.Since(start), err: err}
		if err == nil {
			s.code, _ = resp.GetString(39)
		}
		out = append(out, s)
	}
}

// percentile of durations (q in 0..1).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

// ownCluster starts a PostgreSQL cluster of the test's own (so stopping it
// touches no other test), migrates it and returns it with a pool. The
// cluster is stopped and removed when the test ends; restart replaces it.
func ownCluster(t *testing.T) (cl **pgcluster.Cluster, pool *pgxpool.Pool) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster; skipped with -short")
	}
	dir, err := pgcluster.TempDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Config{Dir: dir})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	cl = &c
	t.Cleanup(func() {
		(*cl).Stop()
		os.RemoveAll(dir)
	})
	pool, err = pgxpool.New(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := ledger.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return cl, pool
}

// holdsWithoutJournal counts holds that no journal row names: money held
// without the answer that says so.
const holdsWithoutJournal = `SELECT count(*) FROM holds h LEFT JOIN auth_journal j ON j.hold_id = h.id WHERE j.id IS NULL`

// TestFaultPostgresStopped stops the switch's PostgreSQL under load: every
// request is still answered, within 1 s, issuer unavailable (or approved
// when its batch committed before the stop); nothing hangs. When the
// cluster is back the switch approves again by itself, and the ledger
// verifies clean with every hold journaled.
// faultEnv is a switch over a host, ledger and program on a cluster of the
// test's own, which the test may stop, kill or freeze.
func faultEnv(t *testing.T, profile string) (*e2e, **pgcluster.Cluster) {
	cl, pool := ownCluster(t)
	log := slog.New(slog.DiscardHandler)
	e := &e2e{t: t, ctx: t.Context(), profile: profile, keys: testKeys(t), pool: pool}
	e.led = ledger.New(pool, ledger.Config{Logger: log})
	e.host = cardhost.NewHost(pool, e.led, e.keys, cardhost.Config{Logger: log})
	t.Cleanup(e.host.Close)
	var err error
	if e.partner, err = e.led.CreatePartner(e.ctx, "Partner fault", "ops@example.com"); err != nil {
		t.Fatal(err)
	}
	e.prog = e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerCredit}, 100_000_000)
	e.addr = e.serve(e.host, nil) // default DecideTimeout (5 s): the 1 s bound is the host's, not the switch's budget
	return e, cl
}

func TestFaultPostgresStopped(t *testing.T) {
	e, cl := faultEnv(t, ProfileISO2003)

	const clients = 4
	cards := make([]testCard, clients)
	conns := make([]*connection.Connection, clients)
	for i := range cards {
		cards[i] = e.virtualCard(e.prog, 10_000_000)
		conns[i] = e.dial()
	}
	approved := actionCode(t, e.profile, cardhost.Approved)
	unavailable := actionCode(t, e.profile, cardhost.IssuerUnavailable)

	phase := func(d time.Duration, during func()) []shot {
		stop := make(chan struct{})
		var mu sync.Mutex
		var all []shot
		var wg sync.WaitGroup
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := e.loadOn(conns[i], cards[i], stop)
				mu.Lock()
				all = append(all, got...)
				mu.Unlock()
			}()
		}
		if during != nil {
			during()
		}
		time.Sleep(d)
		close(stop)
		wg.Wait()
		return all
	}

	before := phase(500*time.Millisecond, nil)
	for _, s := range before {
		if s.err != nil || s.code != approved {
			t.Fatalf("before the fault: got %q, %v; want %s", s.code, s.err, approved)
		}
	}

	stopped := time.Now()
	during := phase(2*time.Second, func() {
		time.Sleep(100 * time.Millisecond)
		if err := (*cl).Stop(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	var worst time.Duration
	var lats []time.Duration
	counts := map[string]int{}
	for _, s := range during {
		if s.err != nil {
			t.Fatalf("while postgres is down: a request got no answer: %v", s.err)
		}
		counts[s.code]++
		lats = append(lats, s.took)
		worst = max(worst, s.took)
		if s.took > time.Second {
			t.Errorf("while postgres is down: an answer took %v, want ≤ 1s", s.took)
		}
		if s.code != approved && s.code != unavailable {
			t.Errorf("while postgres is down: DE39 %s, want %s or %s", s.code, unavailable, approved)
		}
	}
	if counts[unavailable] == 0 {
		t.Fatalf("no request saw the outage: %v", counts)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	restarted, err := (*cl).Restart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	*cl = restarted
	down := time.Since(stopped)

	// Recovery: no restart of the switch or the host, the pool reconnects.
	var recovered time.Duration
	back := time.Now()
	for {
		resp, err := conns[0].Send(e.msg("100", cards[0], 100, nil))
		if err == nil {
			if code, _ := resp.GetString(39); code == approved {
				recovered = time.Since(back)
				break
			}
		}
		if time.Since(back) > 15*time.Second {
			t.Fatalf("the switch did not recover within 15s of the restart (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := phase(300*time.Millisecond, nil)
	for _, s := range after {
		if s.err != nil || s.code != approved {
			t.Fatalf("after recovery: got %q, %v; want %s", s.code, s.err, approved)
		}
	}

	vctx, vcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer vcancel()
	vs, err := e.led.Verify(vctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("ledger verify: %s", v)
	}
	if n := e.count(holdsWithoutJournal); n != 0 {
		t.Errorf("holds without a journal row: %d", n)
	}
	faulttest.Record(t, faulttest.Row{Area: "ledger", Fault: "PostgreSQL stopped (fast shutdown) under load, 4 connections, then restarted",
		Behaviour: fmt.Sprintf("%d requests while down: %d answered %s, %d approved (committed before the stop), none unanswered; slowest %v, p99 %v; first approval %v after the restart (down %v), no restart of the switch",
			len(during), counts[unavailable], unavailable, counts[approved], worst.Round(time.Millisecond), percentile(lats, 0.99).Round(time.Millisecond),
			recovered.Round(time.Millisecond), down.Round(100*time.Millisecond)),
		Verify: "clean; every hold journaled"})
}

// TestFaultPartnerRemote makes a partner's remote decision URL slow, down
// (connection refused) or failing (HTTP 500): the switch answers within the
// program's timeout, the program's stand-in decision (approve, or issuer
// unavailable) when slow or down, a decline (do not honour) on the 500
// (DESIGN section 5: a non-2xx answer is never a stand-in approval), and
// only an approving stand-in holds money.
func TestFaultPartnerRemote(t *testing.T) {
	e := newE2E(t, ProfileISO2003, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "https://" + ln.Addr().String() + "/decide"
	ln.Close() // nothing listens there any more
	failing := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "partner broke", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)

	const timeout = 300 * time.Millisecond
	var lines []string
	for _, tc := range []struct {
		name    string
		url     string
		standIn bool
		want    cardhost.Reason
	}{
		{"slow (5 s), stand-in approve", partnerRemote(t, true, 5*time.Second), true, cardhost.Approved},
		{"slow (5 s), no stand-in", partnerRemote(t, true, 5*time.Second), false, cardhost.IssuerUnavailable},
		{"down (connection refused), stand-in approve", downURL, true, cardhost.Approved},
		{"down (connection refused), no stand-in", downURL, false, cardhost.IssuerUnavailable},
		{"HTTP 500, stand-in approve", failing.URL, true, cardhost.DoNotHonour},
		{"HTTP 500, no stand-in", failing.URL, false, cardhost.DoNotHonour},
	} {
		prog := e.program(cardhost.ProgramSpec{Funding: cardhost.FundingPartnerDeposit, RemoteURL: tc.url, RemoteTimeout: timeout, StandInApprove: tc.standIn}, 100_000)
		card := e.virtualCard(prog, 0)
		start := time.Now()
		_, resp := e.auth(card, 1_000, nil)
		took := time.Since(start)
		e.expect(resp, tc.want)
		if took > timeout+time.Second {
			t.Errorf("%s: answered in %v, want within the program's timeout %v (+1 s)", tc.name, took, timeout)
		}
		held := int64(0)
		if tc.want == cardhost.Approved {
			held = 1_000
		}
		e.expectBalance(prog.PartnerAccountID, 100_000, held)
		lines = append(lines, fmt.Sprintf("%s → %s in %v", tc.name, get(t, resp, 39), took.Round(time.Millisecond)))
	}
	faulttest.Record(t, faulttest.Row{Area: "partner", Fault: "partner remote decision URL slow (5 s), down (refused) or failing (HTTP 500); program timeout 300 ms",
		Behaviour: strings.Join(lines, "; ") + "; a hold only for the approving stand-ins", Verify: "clean"})
}
