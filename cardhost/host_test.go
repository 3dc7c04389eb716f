package cardhost_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
	"github.com/antaca/antaca/partner"
)

func TestMain(m *testing.M) { ledgertest.Main(m) }

// lockedBuffer collects log output from concurrent goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	host    *cardhost.Host
	keys    *hsm.Keys
	logs    *lockedBuffer
	partner ledger.Partner
	prog    cardhost.Program
}

var keysOnce = sync.OnceValues(hsm.GenerateKeys)

func newEnv(t *testing.T, spec cardhost.ProgramSpec) *env {
	t.Helper()
	pool := ledgertest.Pool(t)
	keys, err := keysOnce()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := ledger.New(pool, ledger.Config{Logger: log})
	h := cardhost.NewHost(pool, l, keys, cardhost.Config{Logger: log, Remote: testDecider()})
	ctx := context.Background()
	p, err := l.CreatePartner(ctx, "Partner "+t.Name(), "ops@partner.example")
	if err != nil {
		t.Fatal(err)
	}
	spec.PartnerID = p.ID
	if spec.Name == "" {
		spec.Name = "Program"
	}
	if spec.BINLow == "" {
		spec.BINLow, spec.BINHigh = "539999", "539999"
	}
	if spec.Currency == "" {
		spec.Currency = "EUR"
	}
	if spec.Funding == "" {
		spec.Funding = cardhost.FundingPartnerCredit
	}
	prog, err := h.CreateProgram(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	return &env{host: h, keys: keys, logs: logs, partner: p, prog: prog}
}

func (e *env) verifiedBalance(t *testing.T, ref string) (cardhost.User, ledger.Account) {
	t.Helper()
	ctx := context.Background()
	u, err := e.host.RegisterUser(ctx, e.prog.ID, ref, "Ann Example", "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.host.SetKYC(ctx, u.ID, cardhost.KYCVerified, "partner"); err != nil {
		t.Fatal(err)
	}
	acc, err := e.host.CreateBalance(ctx, u.ID, e.prog.Currency)
	if err != nil {
		t.Fatal(err)
	}
	return u, acc
}

// TestCardLifecycle walks a user and their cards through every operation
// and checks, at the end, that no PAN, CVC2 or PIN reached a log line or an
// error message.
func TestCardLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cardhost.ProgramSpec{
		CardTypes:    []cardhost.CardType{cardhost.Virtual, cardhost.Physical, cardhost.DigitalFirst},
		DigitalFirst: true,
	})
	h := e.host
	var secrets []string
	var errs []string
	note := func(err error) error {
		if err != nil {
			errs = append(errs, err.Error())
		}
		return err
	}
	user := cardhost.Actor{Kind: cardhost.ActorUser, ID: "u1"}

	u, err := h.RegisterUser(ctx, e.prog.ID, "ext-1", "Ann Example", "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.KYC != cardhost.KYCPending {
		t.Fatalf("new user KYC %s, want pending", u.KYC)
	}
	if _, err := h.CreateBalance(ctx, u.ID, "EUR"); !errors.Is(note(err), cardhost.ErrKYCNotVerified) {
		t.Fatalf("balance before KYC: got %v, want ErrKYCNotVerified", err)
	}
	if _, err := h.RegisterUser(ctx, e.prog.ID, "ext-1", "Twin", ""); !errors.Is(note(err), cardhost.ErrConflict) {
		t.Fatalf("same external ref twice: got %v, want ErrConflict", err)
	}
	if _, err := h.SetKYC(ctx, u.ID, cardhost.KYCVerified, "antaca"); err != nil {
		t.Fatal(err)
	}
	acc, err := h.CreateBalance(ctx, u.ID, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Ledger().Reload(ctx, acc.ID, 50_00, "reload-1"); err != nil {
		t.Fatal(err)
	}

	// Virtual card: active at once; its data is consistent and decryptable.
	vc, data, err := h.CreateVirtualCard(ctx, u.ID, acc.ID, user)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, data.PAN, data.CVC2)
	if vc.State != cardhost.StateActive || vc.Type != cardhost.Virtual {
		t.Fatalf("virtual card %s/%s, want virtual/active", vc.Type, vc.State)
	}
	if !cardhost.LuhnValid(data.PAN) || !strings.HasPrefix(data.PAN, "539999") || len(data.PAN) != 16 {
		t.Fatalf("PAN %s is not a 16-digit Luhn-valid PAN in the BIN range", cardhost.MaskPAN(data.PAN))
	}
	if got := e.keys.CVC2(data.PAN, data.Expiry, 0); got != data.CVC2 {
		t.Fatal("CVC2 given at creation is not the computed one")
	}
	_, full, err := h.FullData(ctx, vc.ID)
	if err != nil || full != data {
		t.Fatalf("full data differs from creation data (err %v)", err)
	}
	if got, err := h.CardByPAN(ctx, data.PAN); err != nil || got.ID != vc.ID {
		t.Fatalf("card by PAN: got %d, %v; want %d", got.ID, err, vc.ID)
	}
	var stored []byte
	if err := h.Pool().QueryRow(ctx, `SELECT pan_enc FROM cards WHERE id = $1`, vc.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(data.PAN)) {
		t.Fatal("PAN stored in clear")
	}

	// Reset CVV gives a new CVC2; print virtual makes it digital-first.
	_, data2, err := h.ResetCVV(ctx, vc.ID, user)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, data2.CVC2)
	if data2.PAN != data.PAN || data2.CVC2 != e.keys.CVC2(data.PAN, data.Expiry, 1) {
		t.Fatal("reset CVV: want same PAN and the generation-1 CVC2")
	}
	if c, err := h.PrintVirtual(ctx, vc.ID, user); err != nil || c.Type != cardhost.DigitalFirst {
		t.Fatalf("print virtual: got %s, %v", c.Type, err)
	}
	if _, err := h.SetPIN(ctx, vc.ID, "4821", user); err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, "4821")
	if _, err := h.SetPIN(ctx, vc.ID, "12a4", user); !errors.Is(note(err), cardhost.ErrInvalidInput) {
		t.Fatalf("set PIN 12a4: got %v, want ErrInvalidInput", err)
	}
	c, _ := h.Card(ctx, vc.ID)
	if c.PVV == "" {
		t.Fatal("set PIN stored no PVV")
	}
	pv, _ := e.keys.PVV(data.PAN, "4821")
	if c.PVV != pv {
		t.Fatal("stored PVV is not the PIN's")
	}

	// Locks: 3 is reversible, 2 is not.
	if _, err := h.Lock(ctx, vc.ID, cardhost.LockPendingQuery, user, "checking"); err != nil {
		t.Fatal(err)
	}
	if c, err := h.Unlock(ctx, vc.ID, user); err != nil || c.LockCode != 0 {
		t.Fatalf("unlock code 3: %d, %v", c.LockCode, err)
	}
	if _, err := h.Lock(ctx, vc.ID, cardhost.LockStolen, user, "stolen"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Unlock(ctx, vc.ID, user); !errors.Is(note(err), cardhost.ErrIrreversibleLock) {
		t.Fatalf("unlock code 2: got %v, want ErrIrreversibleLock", err)
	}
	scheme := cardhost.Actor{Kind: cardhost.ActorScheme, ID: "mastercard"}
	if _, err := h.LockOutside(ctx, data.PAN, cardhost.LockSuspectedFraud, scheme, "fraud"); !errors.Is(note(err), cardhost.ErrIrreversibleLock) {
		t.Fatalf("lock outside over code 2: got %v, want ErrIrreversibleLock", err)
	}

	// Physical card: ordered, linked, activated.
	pc, err := h.OrderPhysicalCard(ctx, u.ID, acc.ID, user)
	if err != nil || pc.State != cardhost.StateOrdered {
		t.Fatalf("order physical: %s, %v", pc.State, err)
	}
	_, pdata, _ := h.FullData(ctx, pc.ID)
	secrets = append(secrets, pdata.PAN, pdata.CVC2)
	if _, err := h.Activate(ctx, pc.ID, user); !errors.Is(note(err), cardhost.ErrCardState) {
		t.Fatalf("activate before link: got %v, want ErrCardState", err)
	}
	admin := cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "7"}
	if c, err := h.LinkCard(ctx, pc.ID, admin); err != nil || c.State != cardhost.StateInactive {
		t.Fatalf("link: %s, %v", c.State, err)
	}
	if c, err := h.Activate(ctx, pc.ID, user); err != nil || c.State != cardhost.StateActive {
		t.Fatalf("activate: %s, %v", c.State, err)
	}
	if _, err := h.LockOutside(ctx, pdata.PAN, cardhost.LockPINTriesExceeded, scheme, "3 wrong PINs"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Remove(ctx, pc.ID, user); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.FullData(ctx, pc.ID); !errors.Is(note(err), cardhost.ErrCardRemoved) {
		t.Fatalf("full data of removed card: got %v", err)
	}
	if _, err := h.Unlock(ctx, pc.ID, user); !errors.Is(note(err), cardhost.ErrCardRemoved) {
		t.Fatalf("unlock removed card: got %v", err)
	}

	// History: who, what, why.
	hist, err := h.History(ctx, pc.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range hist {
		got = append(got, fmt.Sprintf("%s:%s:%s:%d", ev.Action, ev.Actor.Kind, ev.Actor.ID, ev.LockCode))
	}
	want := []string{"issue_physical:user:u1:0", "link:admin:7:0", "activate:user:u1:0", "lock_outside:scheme:mastercard:6", "remove:user:u1:0"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("history\n got %v\nwant %v", got, want)
	}
	if hist[3].Detail != "3 wrong PINs" {
		t.Errorf("lock outside reason %q, want %q", hist[3].Detail, "3 wrong PINs")
	}

	bals, err := h.Balances(ctx, u.ID)
	if err != nil || len(bals) != 1 || len(bals[0].Cards) != 1 || bals[0].Account.Balance != 50_00 {
		t.Fatalf("balances: %+v, %v; want one balance of 5000 with one card (the removed one hidden)", bals, err)
	}

	logs := e.logs.String()
	if !strings.Contains(logs, "card issued") {
		t.Fatal("captured no logs: the check below would prove nothing")
	}
	for _, s := range secrets {
		if s == "" {
			t.Fatal("empty secret")
		}
		// A secret counts as leaked when it stands as a number of its own:
		// a 3-digit CVC2 may occur by chance inside a timestamp.
		re := regexp.MustCompile(`(^|[^0-9])` + s + `([^0-9]|$)`)
		for _, text := range append([]string{logs}, errs...) {
			if re.MatchString(text) {
				t.Errorf("a secret (%d characters) appears in logs or errors", len(s))
			}
		}
	}
}

func TestCardRulesOnCreation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cardhost.ProgramSpec{CardTypes: []cardhost.CardType{cardhost.Virtual}})
	u, acc := e.verifiedBalance(t, "u1")
	other, otherAcc := e.verifiedBalance(t, "u2")
	actor := cardhost.Actor{Kind: cardhost.ActorPartner, ID: "p"}
	if _, _, err := e.host.CreateVirtualCard(ctx, u.ID, otherAcc.ID, actor); !errors.Is(err, cardhost.ErrNotFound) {
		t.Fatalf("card on another user's balance: got %v, want ErrNotFound", err)
	}
	if _, err := e.host.OrderPhysicalCard(ctx, other.ID, otherAcc.ID, actor); !errors.Is(err, cardhost.ErrCardType) {
		t.Fatalf("physical card in a virtual-only program: got %v, want ErrCardType", err)
	}
	if _, err := e.host.CreateBalance(ctx, u.ID, "XXX"); err == nil {
		t.Fatal("balance in an unknown currency: got no error")
	}
	c, _, err := e.host.CreateVirtualCard(ctx, u.ID, acc.ID, actor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.host.PrintVirtual(ctx, c.ID, actor); !errors.Is(err, cardhost.ErrNotDigitalFirst) {
		t.Fatalf("print virtual outside Digital First: got %v", err)
	}
	job, err := e.host.CreateVirtualCardAsync(ctx, u.ID, acc.ID, actor)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200 && job.Status == "pending"; i++ {
		if job, err = e.host.CardJob(ctx, u.ID, job.ID); err != nil {
			t.Fatal(err)
		}
		if job.Status == "pending" {
			ctxSleep(ctx, 10)
		}
	}
	if job.Status != "done" || job.CardID == 0 {
		t.Fatalf("async job: %+v, want done with a card", job)
	}
	if _, err := e.host.CardJob(ctx, other.ID, job.ID); !errors.Is(err, cardhost.ErrNotFound) {
		t.Fatalf("another user's job: got %v, want ErrNotFound", err)
	}
}

// TestCardJobsSurviveAStoppedProcess: a job left pending (its process
// answered 202 and stopped) is run by RetryCardJobs once it is old enough;
// four runners at once (four API processes) make one card; a refused job
// fails with its reason and no card; a job pending too long fails.
func TestCardJobsSurviveAStoppedProcess(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cardhost.ProgramSpec{CardTypes: []cardhost.CardType{cardhost.Virtual}})
	pool := e.host.Pool()
	u, acc := e.verifiedBalance(t, "u1")
	unverified, unverifiedAcc := e.verifiedBalance(t, "u2")
	if _, err := e.host.SetKYC(ctx, unverified.ID, cardhost.KYCRejected, "partner"); err != nil {
		t.Fatal(err)
	}
	young := pendingJob(t, pool, acc.ID, "1 second")
	stopped := pendingJob(t, pool, acc.ID, "1 minute")
	refused := pendingJob(t, pool, unverifiedAcc.ID, "1 minute")
	stale := pendingJob(t, pool, acc.ID, "11 minutes")

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := e.host.RetryCardJobs(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	get := func(userID, id int64) cardhost.CardJob {
		t.Helper()
		j, err := e.host.CardJob(ctx, userID, id)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	if j := get(u.ID, stopped); j.Status != "done" || j.CardID == 0 {
		t.Errorf("stopped job: %+v, want done with a card", j)
	}
	var cards int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM cards WHERE account_id = $1`, acc.ID).Scan(&cards); err != nil {
		t.Fatal(err)
	}
	if cards != 1 {
		t.Errorf("four runners made %d cards of one job, want 1", cards)
	}
	if j := get(u.ID, young); j.Status != "pending" {
		t.Errorf("job of 1 s: %+v, want pending (its own process may still run it)", j)
	}
	if j := get(unverified.ID, refused); j.Status != "failed" || !strings.Contains(j.Error, "KYC") {
		t.Errorf("job of a user whose KYC was rejected: %+v, want failed naming KYC", j)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM cards WHERE account_id = $1`, unverifiedAcc.ID).Scan(&cards); err != nil || cards != 0 {
		t.Errorf("refused job made %d cards (%v), want 0", cards, err)
	}
	if j := get(u.ID, stale); j.Status != "failed" || j.Error != "not completed in time" || j.CardID != 0 {
		t.Errorf("job of 11 minutes: %+v, want failed, not completed in time", j)
	}
}

// pendingJob records a card job of account created age ago (an SQL
// interval) and never run, as a process that answered 202 and stopped
// left it.
func pendingJob(t *testing.T, pool *pgxpool.Pool, account int64, age string) int64 {
	t.Helper()
	var id int64
	if err := pool.QueryRow(context.Background(), `INSERT INTO card_jobs (account_id, actor_kind, actor_id, created_at)
		VALUES ($1, 'partner', 'p', now() - $2::interval) RETURNING id`, account, age).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCardJobStaysPendingOnDatabaseErrors: a database that fails while a
// job reads its balance leaves the job pending (it was failed as "not
// found" for good); the next round makes its card.
func TestCardJobStaysPendingOnDatabaseErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cardhost.ProgramSpec{CardTypes: []cardhost.CardType{cardhost.Virtual}})
	pool := e.host.Pool()
	u, acc := e.verifiedBalance(t, "u1")
	id := pendingJob(t, pool, acc.ID, "1 minute")
	// The balance read fails (this test's own database).
	if _, err := pool.Exec(ctx, `ALTER TABLE accounts RENAME TO accounts_away`); err != nil {
		t.Fatal(err)
	}
	e.host.RunCardJob(ctx, id, u.ID, acc.ID, cardhost.Actor{Kind: cardhost.ActorPartner, ID: "p"})
	if _, err := pool.Exec(ctx, `ALTER TABLE accounts_away RENAME TO accounts`); err != nil {
		t.Fatal(err)
	}
	if j, err := e.host.CardJob(ctx, u.ID, id); err != nil || j.Status != "pending" {
		t.Fatalf("job after a database error: %+v %v, want pending", j, err)
	}
	if _, err := e.host.RetryCardJobs(ctx); err != nil {
		t.Fatal(err)
	}
	if j, err := e.host.CardJob(ctx, u.ID, id); err != nil || j.Status != "done" || j.CardID == 0 {
		t.Fatalf("job after the retry: %+v %v, want done with a card", j, err)
	}
}

// TestPANsUniqueUnderConcurrency issues cards at once from a BIN range with
// room for only 10,000 PANs.
func TestPANsUniqueUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cardhost.ProgramSpec{BINLow: "53999912345", BINHigh: "53999912345", CardTypes: []cardhost.CardType{cardhost.Virtual}})
	// Four users of 16 cards each: a user gets at most 20 a day (quota.go).
	var users [4]struct{ u, acc int64 }
	for i := range users {
		u, acc := e.verifiedBalance(t, fmt.Sprintf("u%d", i))
		users[i].u, users[i].acc = u.ID, acc.ID
	}
	const n = 64
	pans := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, d, err := e.host.CreateVirtualCard(ctx, users[i%4].u, users[i%4].acc, cardhost.Actor{Kind: cardhost.ActorSystem})
			if err != nil {
				t.Error(err)
				return
			}
			pans <- d.PAN
		})
	}
	wg.Wait()
	close(pans)
	seen := map[string]bool{}
	for p := range pans {
		if seen[p] {
			t.Fatal("the same PAN was issued twice")
		}
		seen[p] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct PANs, want %d", len(seen), n)
	}
}

func ctxSleep(ctx context.Context, ms int) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(ms) * time.Millisecond):
	}
}

// TestWrongPINsCount sends wrong PINs as copies of one request (a scheme
// repeating it) and as different requests at once: each request counts
// once, copies not at all, concurrent ones each, and the third locks the
// card with code 6 once.
func TestWrongPINsCount(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, cardhost.ProgramSpec{CardTypes: []cardhost.CardType{cardhost.Physical}})
	u, acc := e.verifiedBalance(t, "u1")
	if _, err := e.host.Ledger().Reload(ctx, e.prog.PartnerAccountID, 1000_00, "r2"); err != nil {
		t.Fatal(err)
	}
	actor := cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "1"}
	c, err := e.host.OrderPhysicalCard(ctx, u.ID, acc.ID, actor)
	if err != nil {
		t.Fatal(err)
	}
	e.host.LinkCard(ctx, c.ID, actor)
	e.host.Activate(ctx, c.ID, actor)
	if _, err := e.host.SetPIN(ctx, c.ID, "4821", actor); err != nil {
		t.Fatal(err)
	}
	_, data, err := e.host.FullData(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	block, err := e.keys.ZonePINBlock("iso2003", "1111", data.PAN)
	if err != nil {
		t.Fatal(err)
	}
	request := func(stan string) *cardhost.AuthRequest {
		return &cardhost.AuthRequest{Class: cardhost.ClassAuthorization, Profile: "iso2003", MTI: "2100", PAN: data.PAN, Expiry: data.Expiry,
			PINBlock: block, ZoneKey: "iso2003", ProcessingCode: cardhost.ProcPurchase, Amount: 10_00, Currency: "978",
			STAN: stan, TransmissionTime: "1124120000", RRN: "0000" + stan[4:], AcquirerID: "123456"}
	}
	concurrently := func(reqs ...*cardhost.AuthRequest) {
		var wg sync.WaitGroup
		for _, r := range reqs {
			wg.Go(func() {
				d, err := e.host.Authorize(ctx, r)
				if err != nil {
					t.Error(err)
				} else if d.Reason != cardhost.IncorrectPIN && d.Reason != cardhost.PINTriesExceeded {
					t.Errorf("reason %s, want a wrong-PIN decline", d.Reason)
				}
			})
		}
		wg.Wait()
	}
	tries := func() (int, cardhost.LockCode) {
		got, err := e.host.Card(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.PINTries, got.LockCode
	}
	one := request("000000000001")
	concurrently(one, one, one, one)
	if n, lock := tries(); n != 1 || lock != 0 {
		t.Fatalf("after 4 copies of one request: count %d lock %d, want 1 and 0", n, lock)
	}
	concurrently(request("000000000002"), request("000000000003"))
	if n, lock := tries(); n != 3 || lock != cardhost.LockPINTriesExceeded {
		t.Fatalf("after 2 more requests at once: count %d lock %d, want 3 and 6", n, lock)
	}
	hist, err := e.host.History(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	locks := 0
	for _, ev := range hist {
		if ev.Action == string(cardhost.ActLockOutside) && ev.LockCode == cardhost.LockPINTriesExceeded && ev.Actor.Kind == cardhost.ActorSystem {
			locks++
		}
	}
	if locks != 1 {
		t.Fatalf("history has %d PIN locks, want 1", locks)
	}
}

// TestRemoteAnswersRaceLeaveNoHold sends one request twice at once to a
// program whose partner decides remotely; the partner declines the first
// copy and, once that decline is journaled, approves the second. The
// second copy's batch finds the key taken when it writes: it must answer
// the stored decline and leave no hold behind (a hold without its journal
// row would keep the partner's money held until it expired).
func TestRemoteAnswersRaceLeaveNoHold(t *testing.T) {
	ctx := context.Background()
	arrived := make(chan struct{}, 2)
	declined := make(chan struct{})
	var calls atomic.Int32
	const secret = "rdsec_test"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		id, _, err := partner.ReadDecision(r, secret)
		if err != nil {
			t.Error(err)
		}
		if calls.Add(1) == 1 {
			// Both copies are past the journal probe before either answer.
			for len(arrived) < 2 {
				time.Sleep(time.Millisecond)
			}
			partner.WriteDecision(w, secret, id, false)
			close(declined)
			return
		}
		<-declined
		time.Sleep(300 * time.Millisecond) // the decline commits first
		partner.WriteDecision(w, secret, id, true)
	}))
	defer srv.Close()
	e := newEnv(t, cardhost.ProgramSpec{Funding: cardhost.FundingPartnerDeposit, RemoteURL: srv.URL, RemoteSecret: secret, RemoteTimeout: 5 * time.Second})
	if _, err := e.host.Ledger().Reload(ctx, e.prog.PartnerAccountID, 1000_00, "deposit"); err != nil {
		t.Fatal(err)
	}
	u, acc := e.verifiedBalance(t, "u1")
	_, data, err := e.host.CreateVirtualCard(ctx, u.ID, acc.ID, cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	r := &cardhost.AuthRequest{Class: cardhost.ClassAuthorization, Profile: "iso2003", MTI: "2100", PAN: data.PAN, Expiry: data.Expiry,
		ProcessingCode: cardhost.ProcPurchase, Amount: 10_00, Currency: "978",
		STAN: "000000000001", TransmissionTime: "1124120000", RRN: "000000000001", AcquirerID: "123456"}
	var wg sync.WaitGroup
	decisions := make([]cardhost.Decision, 2)
	for i := range decisions {
		wg.Go(func() {
			copy := *r
			d, err := e.host.Authorize(ctx, &copy)
			if err != nil {
				t.Error(err)
			}
			decisions[i] = d
		})
	}
	wg.Wait()
	if calls.Load() != 2 {
		t.Fatalf("the partner was asked %d times, want 2 (both copies past the probe)", calls.Load())
	}
	for _, d := range decisions {
		if d.Reason == cardhost.Approved || d.Reason != decisions[0].Reason {
			t.Fatalf("decisions %s and %s: want the partner's decline twice", decisions[0].Reason, decisions[1].Reason)
		}
	}
	partner, err := e.host.Account(ctx, e.prog.PartnerAccountID)
	if err != nil {
		t.Fatal(err)
	}
	if partner.Held != 0 {
		t.Fatalf("partner deposit holds %d after a declined request, want 0", partner.Held)
	}
	violations, err := e.host.Ledger().Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Errorf("ledger verify: %s", v)
	}
}

// testDecider is the production remote decider allowed to reach the tests'
// HTTPS partners on 127.0.0.1 (httptest's certificate is the same for
// every server).
func testDecider() cardhost.RemoteDecider {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return partner.NewDecider(partner.NewClient(partner.Config{RootCAs: pool, AllowLoopback: true}))
}
