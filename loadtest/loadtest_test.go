package loadtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/specs"
	authswitch "github.com/antaca/antaca/switch"
	"github.com/moov-io/iso8583"
)

// Test cards (not real: Luhn-valid numbers in a test BIN).
var testCards = []Card{
	{PAN: "4000001234567899", Expiry: "3012", CVC2: "123", Kind: KindOK},
	{PAN: "4000001234567881", Expiry: "3012", CVC2: "456", Kind: KindPoor},
	{PAN: "4000001234567873", Expiry: "3012", CVC2: "789", Kind: KindLocked},
}

// stubAuthorizer approves "ok" cards with the right CVC2, declines the
// others, approves reversals and remembers the approvals it gave so that a
// reversal can be checked against its original.
type stubAuthorizer struct {
	delay time.Duration
	// slowFrom (unix nanoseconds, 0: never) is when every answer starts
	// taking slowDelay more.
	slowFrom  atomic.Int64
	slowDelay time.Duration

	mu        sync.Mutex
	approved  map[string]bool // "stan/time" of approvals
	reversals int
	matched   int
	bad       []string
}

func newStub() *stubAuthorizer { return &stubAuthorizer{approved: map[string]bool{}} }

func (a *stubAuthorizer) Authorize(ctx context.Context, r *cardhost.AuthRequest) (cardhost.Decision, error) {
	delay := a.delay
	if from := a.slowFrom.Load(); from != 0 && time.Now().UnixNano() >= from {
		delay += a.slowDelay
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return cardhost.Decision{}, ctx.Err()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Currency != "978" || r.Amount <= 0 || r.STAN == "" || r.RRN == "" || r.AcquirerID != "123456" ||
		len(r.TransmissionTime) != 10 || r.TerminalID == "" || r.MerchantID == "" {
		a.bad = append(a.bad, fmt.Sprintf("stan %s: fields %+v", r.STAN, *r))
	}
	if r.Class == cardhost.ClassReversal {
		a.reversals++
		if o := r.Original; o != nil {
			t := o.TransmissionTime
			if o.LocalTime != "" {
				t = o.LocalTime
			}
			if a.approved[o.STAN+"/"+t] {
				a.matched++
			}
		}
		return cardhost.Decision{Reason: cardhost.Approved}, nil
	}
	var c *Card
	for i := range testCards {
		if testCards[i].PAN == r.PAN {
			c = &testCards[i]
		}
	}
	switch {
	case c == nil:
		return cardhost.Decision{Reason: cardhost.InvalidCard}, nil
	case c.Kind == KindLocked:
		return cardhost.Decision{Reason: cardhost.SuspectedFraud}, nil
	case r.CVC2 != c.CVC2:
		return cardhost.Decision{Reason: cardhost.CVC2Failed}, nil
	case c.Kind == KindPoor || r.Amount > 1_000_000:
		return cardhost.Decision{Reason: cardhost.InsufficientFunds, Available: 0, HasAvailable: true, Currency: "978"}, nil
	}
	key := r.STAN + "/" + r.TransmissionTime
	if r.Profile == authswitch.ProfileISO2003 {
		key = r.STAN + "/" + r.LocalTime
	}
	a.approved[key] = true
	return cardhost.Decision{Reason: cardhost.Approved, ApprovalCode: "ABC123", Available: 5000, HasAvailable: true, Currency: "978"}, nil
}

func startSwitch(t *testing.T, profile string, a authswitch.Authorizer) string {
	t.Helper()
	srv, err := authswitch.New(authswitch.Config{Profile: profile, Addr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}, a)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

func TestCodecAgainstMoov(t *testing.T) {
	for _, profile := range []string{ProfileISO87, ProfileISO2003} {
		t.Run(profile, func(t *testing.T) {
			spec, err := specs.ISOSpec(profile)
			if err != nil {
				t.Fatal(err)
			}
			c, err := newCodec(spec)
			if err != nil {
				t.Fatal(err)
			}
			stan, mti, ansMTI, de4 := "000042", "0100", "0110", "000000001000"
			fields := []field{{2, "4000001234567899"}, {3, "000000"}, {4, de4}, {11, stan}, {32, "123456"},
				{37, "000000000001"}, {41, "TERM"}, {48, "9203123"}, {49, "978"}, {95, strings.Repeat("0", 42)}}
			if profile == ProfileISO2003 {
				stan, mti, ansMTI, de4 = "000000000042", "2100", "2110", "9782000000001000"
				fields = []field{{2, "4000001234567899"}, {3, "000000"}, {4, de4}, {11, stan}, {24, "100"}, {32, "123456"},
					{37, "000000000001"}, {41, "TERM"}, {49, cmfCVC2("123")}, {56, "2100000000000041202612061450004830123"}}
			}
			raw, err := c.pack(nil, mti, fields)
			if err != nil {
				t.Fatal(err)
			}
			if got := int(binary.BigEndian.Uint16(raw)); got != len(raw)-2 {
				t.Fatalf("length header %d, want %d", got, len(raw)-2)
			}
			m := iso8583.NewMessage(spec)
			if err := m.Unpack(raw[2:]); err != nil {
				t.Fatalf("moov unpacks our message: %v", err)
			}
			if got, _ := m.GetMTI(); got != mti {
				t.Errorf("MTI: got %q, want %q", got, mti)
			}
			for _, f := range fields {
				got, _ := m.GetString(f.n)
				want := f.v
				if profile == ProfileISO2003 && f.n == 49 {
					want = hex.EncodeToString([]byte(f.v)) // binary: moov gives hex
				}
				if f.n == 41 {
					got = strings.TrimRight(got, " ")
				}
				if got != want {
					t.Errorf("DE%d: got %q, want %q", f.n, got, want)
				}
			}

			ans := iso8583.NewMessage(spec)
			ans.MTI(ansMTI)
			for n, v := range map[int]string{2: "4000001234567899", 3: "000000", 4: de4, 7: "0102030405", 11: stan, 32: "123456", 37: "000000000001", 38: "ABC123", 39: "00", 54: "0002978C000000008766"} {
				if n == 39 && profile == ProfileISO2003 {
					v = "0000"
				}
				if err := ans.Field(n, v); err != nil {
					t.Fatal(err)
				}
			}
			b, err := ans.Pack()
			if err != nil {
				t.Fatal(err)
			}
			a, err := c.parse(b)
			if err != nil {
				t.Fatal(err)
			}
			wantCode := "00"
			if profile == ProfileISO2003 {
				wantCode = "0000"
			}
			if a.mti != ansMTI || a.stan != stan || a.code != wantCode {
				t.Errorf("parse: got %+v, want %s %s %s", a, ansMTI, stan, wantCode)
			}
			if _, err := c.parse(b[:len(b)-30]); err == nil {
				t.Error("parse of a cut answer: no error")
			}
		})
	}
}

func TestRunMixClosedLoop(t *testing.T) {
	for _, profile := range []string{ProfileISO87, ProfileISO2003} {
		t.Run(profile, func(t *testing.T) {
			a := newStub()
			addr := startSwitch(t, profile, a)
			var progress bytes.Buffer
			rep, err := Run(t.Context(), Config{
				Addr: addr, Profile: profile, Conns: 3, InFlight: 4, Count: 600, Cards: testCards,
				Mix:      Mix{Approve: 5, Funds: 1, Locked: 1, CVC2: 1, Reversal: 2, Echo: 1},
				Progress: &progress, Seed: 7,
			})
			if err != nil {
				t.Fatal(err)
			}
			var js bytes.Buffer
			rep.WriteText(t.Output())
			if err := rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			if rep.Sent != 600 || rep.Answered != 600 || rep.Timeouts != 0 || rep.Errors != 0 || rep.Unmatched != 0 {
				t.Fatalf("sent %d answered %d timeouts %d errors %d unmatched %d, want 600 600 0 0 0", rep.Sent, rep.Answered, rep.Timeouts, rep.Errors, rep.Unmatched)
			}
			code := func(reason cardhost.Reason) string {
				c, err := specs.ActionCode(profile, string(reason))
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			k := rep.SentByKind
			// Approvals: approve-kind requests; reversals and echoes are
			// answered approved too but not counted as approvals.
			if rep.Approved != k["approve"] {
				t.Errorf("approved %d, want %d (approve requests)", rep.Approved, k["approve"])
			}
			if got, want := rep.Codes[code(cardhost.Approved)], k["approve"]+k["reversal"]+k["echo"]; got != want {
				t.Errorf("approved codes %d, want %d", got, want)
			}
			if got := rep.Codes[code(cardhost.InsufficientFunds)]; got != k["funds"] {
				t.Errorf("funds declines %d, want %d", got, k["funds"])
			}
			if got := rep.Codes[code(cardhost.CVC2Failed)]; got != k["cvc2"] {
				t.Errorf("cvc2 declines %d, want %d", got, k["cvc2"])
			}
			if got := rep.Codes[code(cardhost.SuspectedFraud)]; got != k["locked"] {
				t.Errorf("locked declines %d, want %d", got, k["locked"])
			}
			if k["reversal"] == 0 || k["echo"] == 0 || k["funds"] == 0 || k["locked"] == 0 || k["cvc2"] == 0 {
				t.Errorf("a kind of the mix was never sent: %v", k)
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.reversals != int(k["reversal"]) || a.matched != a.reversals {
				t.Errorf("reversals seen %d, matching an approval %d, want %d", a.reversals, a.matched, k["reversal"])
			}
			if len(a.bad) > 0 {
				t.Errorf("requests with bad fields: %v", a.bad[:1])
			}
			var back Report
			if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Answered != 600 || bytes.Count(js.Bytes(), []byte("\n")) != 1 {
				t.Errorf("JSON report: %v, %q", err, js.String())
			}
			if rep.Latency.P50 <= 0 || rep.Latency.P50 > rep.Latency.P99 || rep.Latency.P99 > rep.Latency.Max {
				t.Errorf("latency percentiles out of order: %+v", rep.Latency)
			}
		})
	}
}

func TestRunOpenLoopDuration(t *testing.T) {
	addr := startSwitch(t, ProfileISO2003, newStub())
	var progress bytes.Buffer
	rep, err := Run(t.Context(), Config{Addr: addr, Conns: 2, Rate: 400, Duration: 1500 * time.Millisecond,
		Cards: testCards[:1], Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	rep.WriteText(t.Output())
	if rep.Mode != "open" || rep.Sent < 540 || rep.Sent > 610 || rep.Answered != rep.Sent || rep.Approved != rep.Sent {
		t.Errorf("open loop 400/s for 1.5 s: mode %s sent %d answered %d approved %d, want about 600 all approved", rep.Mode, rep.Sent, rep.Answered, rep.Approved)
	}
	if !strings.Contains(progress.String(), "loadtest:    1s sent=") {
		t.Errorf("no progress line: %q", progress.String())
	}
}

// A run split into report intervals gives each its own rates and p99,
// by the time answers came: a switch that slows down part-way shows in
// the later intervals, and the intervals add up to the run.
func TestRunReportIntervals(t *testing.T) {
	a := newStub()
	a.slowDelay = 40 * time.Millisecond
	addr := startSwitch(t, ProfileISO2003, a)
	a.slowFrom.Store(time.Now().Add(1000 * time.Millisecond).UnixNano())
	rep, err := Run(t.Context(), Config{Addr: addr, Conns: 2, Rate: 300, Duration: 1500 * time.Millisecond,
		ReportEvery: 500 * time.Millisecond, Cards: testCards[:1]})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(io.MultiWriter(&text, t.Output()))
	if len(rep.Intervals) != 3 {
		t.Fatalf("%d intervals for 1.5 s by 0.5 s, want 3: %+v", len(rep.Intervals), rep.Intervals)
	}
	var answered, approved, money int64
	for i, iv := range rep.Intervals {
		answered, approved, money = answered+iv.Answered, approved+iv.Approved, money+iv.MoneyAnswered
		if iv.Start != 0.5*float64(i) || iv.Seconds < 0.5 || (i < 2 && iv.Seconds != 0.5) {
			t.Errorf("interval %d: start %.2f s, %.2f s long", i, iv.Start, iv.Seconds)
		}
		// 300/s for 0.5 s: about 150 in each.
		if iv.Answered < 100 || iv.Answered > 200 || iv.AnswersPerSec != float64(iv.Answered)/iv.Seconds {
			t.Errorf("interval %d: %d answers, %.0f/s", i, iv.Answered, iv.AnswersPerSec)
		}
	}
	if answered != rep.Answered || approved != rep.Approved || money != rep.MoneyAnswered {
		t.Errorf("intervals add up to %d answered, %d approved, %d money; the run %d, %d, %d",
			answered, approved, money, rep.Answered, rep.Approved, rep.MoneyAnswered)
	}
	first, last, _, p99, ok := rep.Decay()
	if !ok || first.P99 >= 40 || last.P99 < 40 || last.MoneyP99 < 40 || p99 <= 1 {
		t.Errorf("first interval p99 %.1f ms, last %.1f ms (money %.1f), ratio %.2f: want the 40 ms slow-down in the last only",
			first.P99, last.P99, last.MoneyP99, p99)
	}
	if !strings.Contains(text.String(), "interval   0-0.5 s: answers/s") || !strings.Contains(text.String(), "interval   1-") ||
		!strings.Contains(text.String(), "decay: first_per_s=") {
		t.Errorf("no interval lines in the text report: %q", text.String())
	}
}

func TestRunTimeouts(t *testing.T) {
	a := newStub()
	a.delay = 400 * time.Millisecond
	addr := startSwitch(t, ProfileISO87, a)
	rep, err := Run(t.Context(), Config{Addr: addr, Profile: ProfileISO87, Conns: 1, InFlight: 5, Count: 5,
		Timeout: 100 * time.Millisecond, Cards: testCards[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 5 || rep.Timeouts != 5 || rep.Answered != 0 {
		t.Errorf("sent %d timeouts %d answered %d, want 5 5 0", rep.Sent, rep.Timeouts, rep.Answered)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Cards: testCards, Count: 1},
		{Addr: "127.0.0.1:1", Cards: testCards},
		{Addr: "127.0.0.1:1", Cards: testCards[:1], Count: 1, Mix: Mix{Locked: 1}},
		{Addr: "127.0.0.1:1", Cards: testCards, Count: 1, Profile: "iso93"},
	} {
		if _, err := Run(t.Context(), c); err == nil {
			t.Errorf("config %+v: no error", c)
		}
	}
	if _, err := ParseMix("approve=9,bogus=1"); err == nil {
		t.Error("ParseMix of an unknown kind: no error")
	}
	m, err := ParseMix("approve=9,echo=1")
	if err != nil || m != (Mix{Approve: 9, Echo: 1}) {
		t.Errorf("ParseMix: %+v %v", m, err)
	}
}

// TestDigitsIsFmts: the generator's hand-made numeric fields read as the
// fmt verbs they replaced.
func TestDigitsIsFmts(t *testing.T) {
	for _, v := range []uint64{0, 7, 42, 999_999, 123_456_789_012, 999_999_999_999} {
		for _, w := range []int{6, 12} {
			if v >= 1_000_000 && w == 6 {
				continue
			}
			if got, want := digits(v, w), fmt.Sprintf("%0*d", w, v); got != want {
				t.Errorf("digits(%d, %d) = %q, want %q", v, w, got, want)
			}
		}
	}
	for _, v := range []int64{0, 1000, 999_999_999_999, 1_000_000_000_000, -5} {
		if got, want := amountField(v), fmt.Sprintf("%012d", v); got != want {
			t.Errorf("amountField(%d) = %q, want %q", v, got, want)
		}
	}
}
