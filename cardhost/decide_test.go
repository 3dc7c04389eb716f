package cardhost

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/antaca/antaca/specs"
)

// stubVerifier accepts CVC2 "123"; a PIN block's first byte says what it
// carries: 1 the right PIN, 0 a wrong one, 0xEE a malformed block. Zone key
// "nozone" is unknown.
type stubVerifier struct{}

func (stubVerifier) CVC2OK(_ *Card, _, _, cvc2 string) bool { return cvc2 == "123" }

func (stubVerifier) PINOK(_ *Card, _ string, zone string, block []byte) (bool, error) {
	if zone == "nozone" {
		return false, fmt.Errorf("verify pin: %w %q", ErrUnknownZoneKey, zone)
	}
	switch block[0] {
	case 1:
		return true, nil
	case 0xEE:
		return false, fmt.Errorf("verify pin: %w: control nibble not 0", ErrPINBlock)
	}
	return false, nil
}

var (
	rightPIN     = []byte{1, 0, 0, 0, 0, 0, 0, 0}
	wrongPIN     = []byte{0, 0, 0, 0, 0, 0, 0, 0}
	malformedPIN = []byte{0xEE, 0, 0, 0, 0, 0, 0, 0}
	decideNow    = time.Date(2026, time.June, 15, 12, 0, 0, 0, time.UTC)
)

func baseCard() *Card {
	return &Card{ID: 7, ProgramID: 1, Type: Physical, State: StateActive, Expiry: "2812",
		PANFirst6: "411111", PANLast4: "1111", PVV: "1234"}
}

func baseProgram() *Program {
	return &Program{ID: 1, Currency: "EUR", CurrencyNumeric: "978", CardTypes: []CardType{Virtual, Physical, DigitalFirst}}
}

// baseRequest passes every check: purchase of 10.00 EUR with expiry, the
// right CVC2 and the right PIN.
func baseRequest() *AuthRequest {
	return &AuthRequest{Class: ClassAuthorization, Profile: "iso2003", MTI: "2100", PAN: "4111111111111111",
		Expiry: "2812", CVC2: "123", PINBlock: rightPIN, ZoneKey: ZoneISO2003, ProcessingCode: ProcPurchase,
		Amount: 1000, Currency: "978"}
}

func TestDecide(t *testing.T) {
	type row struct {
		name string
		card func(*Card) *Card // nil: base card unchanged
		prog func(*Program) *Program
		req  func(*AuthRequest)
		want Outcome // Err is compared for nil-ness only
	}
	approved := func(hold int64) Outcome {
		return Outcome{Reason: Approved, HoldAmount: hold, HoldCurrency: "978"}
	}
	set := func(f func(c *Card)) func(*Card) *Card { return func(c *Card) *Card { f(c); return c } }
	lock := func(code LockCode) func(*Card) *Card { return set(func(c *Card) { c.LockCode = code }) }
	rows := []row{
		{name: "approved", want: approved(1000)},

		// One failing check per row, in DESIGN.md's order.
		{name: "1 card not found", card: func(*Card) *Card { return nil }, want: Outcome{Reason: InvalidCard}},
		{name: "1 card removed", card: set(func(c *Card) { c.State = StateRemoved }), want: Outcome{Reason: CardRemoved}},
		{name: "2 lock 1 lost", card: lock(LockLost), want: Outcome{Reason: CardLost}},
		{name: "2 lock 2 stolen", card: lock(LockStolen), want: Outcome{Reason: CardStolen}},
		{name: "2 lock 3 pending query", card: lock(LockPendingQuery), want: Outcome{Reason: PendingQuery}},
		{name: "2 lock 4 consolidation", card: lock(LockCardConsolidation), want: Outcome{Reason: CardConsolidation}},
		{name: "2 lock 5 inactive", card: lock(LockCardInactive), want: Outcome{Reason: CardInactive}},
		{name: "2 lock 6 pin tries", card: lock(LockPINTriesExceeded), want: Outcome{Reason: PINTriesExceeded}},
		{name: "2 lock 7 fraud", card: lock(LockSuspectedFraud), want: Outcome{Reason: SuspectedFraud}},
		{name: "2 lock 8 replaced", card: lock(LockCardReplaced), want: Outcome{Reason: CardReplaced}},
		{name: "3 physical ordered", card: set(func(c *Card) { c.State = StateOrdered }), want: Outcome{Reason: CardNotActive}},
		{name: "3 physical inactive", card: set(func(c *Card) { c.State = StateInactive }), want: Outcome{Reason: CardNotActive}},
		{name: "4 card expired", card: set(func(c *Card) { c.Expiry = "2605" }), req: func(r *AuthRequest) { r.Expiry = "2605" }, want: Outcome{Reason: ExpiredCard}},
		{name: "4 card expired, no DE14", card: set(func(c *Card) { c.Expiry = "2605" }), req: func(r *AuthRequest) { r.Expiry = "" }, want: Outcome{Reason: ExpiredCard}},
		{name: "4 expiry not the card's", req: func(r *AuthRequest) { r.Expiry = "2912" }, want: Outcome{Reason: ExpiredCard, VerifyTries: 1}},
		{name: "4 track 2 expiry not the card's", req: func(r *AuthRequest) { r.Expiry = "2811"; r.Track2 = true }, want: Outcome{Reason: ExpiredCard, VerifyTries: 1}},
		{name: "4 expiry malformed", req: func(r *AuthRequest) { r.Expiry = "28X2" }, want: Outcome{Reason: ExpiredCard, VerifyTries: 1}},
		{name: "5 cvc2 wrong", req: func(r *AuthRequest) { r.CVC2 = "124" }, want: Outcome{Reason: CVC2Failed, VerifyTries: 1}},
		{name: "6 pin wrong, first", req: func(r *AuthRequest) { r.PINBlock = wrongPIN }, want: Outcome{Reason: IncorrectPIN, PINTries: 1}},
		{name: "6 pin wrong, second", card: set(func(c *Card) { c.PINTries = 1 }), req: func(r *AuthRequest) { r.PINBlock = wrongPIN }, want: Outcome{Reason: IncorrectPIN, PINTries: 2}},
		{name: "6 pin wrong, third locks", card: set(func(c *Card) { c.PINTries = 2 }), req: func(r *AuthRequest) { r.PINBlock = wrongPIN }, want: Outcome{Reason: PINTriesExceeded, PINTries: 3, LockOutside: true}},
		{name: "6 pin wrong, card without pin", card: set(func(c *Card) { c.PVV = "" }), req: func(r *AuthRequest) { r.PINBlock = wrongPIN }, want: Outcome{Reason: IncorrectPIN, PINTries: 1}},
		{name: "6 pin block malformed: no try counted", card: set(func(c *Card) { c.PINTries = 2 }), req: func(r *AuthRequest) { r.PINBlock = malformedPIN }, want: Outcome{Reason: FormatError, PINTries: 2, Err: ErrPINBlock}},
		{name: "6 unknown zone key", req: func(r *AuthRequest) { r.ZoneKey = "nozone" }, want: Outcome{Reason: SystemError, Err: ErrUnknownZoneKey}},
		{name: "7 cash on a virtual card", card: set(func(c *Card) { c.Type = Virtual }), req: func(r *AuthRequest) { r.ProcessingCode = ProcCash; r.PINBlock = nil }, want: Outcome{Reason: NotPermitted}},
		{name: "7 unknown processing code", req: func(r *AuthRequest) { r.ProcessingCode = "40" }, want: Outcome{Reason: NotPermitted}},
		{name: "8 currency without billing amount", req: func(r *AuthRequest) { r.Currency = "840" }, want: Outcome{Reason: NotPermitted, HoldCurrency: "978"}},
		{name: "8 billing currency not the program's", req: func(r *AuthRequest) { r.Currency = "840"; r.BillingCurrency = "826"; r.BillingAmount = 900 }, want: Outcome{Reason: NotPermitted, HoldCurrency: "978"}},

		// Passing variants.
		{name: "right pin resets tries", card: set(func(c *Card) { c.PINTries = 2 }), want: approved(1000)},
		{name: "no cvc2, no pin, no expiry: tries kept", card: set(func(c *Card) { c.PINTries = 1 }), req: func(r *AuthRequest) { r.CVC2 = ""; r.PINBlock = nil; r.Expiry = "" }, want: Outcome{Reason: Approved, PINTries: 1, HoldAmount: 1000, HoldCurrency: "978"}},
		{name: "card valid through its expiry month", card: set(func(c *Card) { c.Expiry = "2606" }), req: func(r *AuthRequest) { r.Expiry = "2606" }, want: approved(1000)},
		{name: "virtual card purchase", card: set(func(c *Card) { c.Type = Virtual; c.PVV = "" }), req: func(r *AuthRequest) { r.PINBlock = nil }, want: approved(1000)},
		{name: "cash on a physical card", req: func(r *AuthRequest) { r.ProcessingCode = ProcCash }, want: approved(1000)},
		{name: "cash on a digital-first card", card: set(func(c *Card) { c.Type = DigitalFirst }), req: func(r *AuthRequest) { r.ProcessingCode = ProcCash }, want: approved(1000)},
		{name: "refund places no hold", card: set(func(c *Card) { c.Type = Virtual }), req: func(r *AuthRequest) { r.ProcessingCode = ProcRefund; r.PINBlock = nil }, want: approved(0)},
		{name: "financial refund credits", card: set(func(c *Card) { c.Type = Virtual }), req: func(r *AuthRequest) { r.ProcessingCode = ProcRefund; r.PINBlock = nil; r.Class = ClassFinancial }, want: Outcome{Reason: Approved, HoldCurrency: "978", CreditAmount: 1000}},
		{name: "balance inquiry places no hold", req: func(r *AuthRequest) { r.ProcessingCode = ProcBalanceInquiry; r.Amount = 0; r.Currency = "840" }, want: approved(0)},
		{name: "fx: billing amount held", req: func(r *AuthRequest) { r.Currency = "840"; r.BillingCurrency = "978"; r.BillingAmount = 925 }, want: Outcome{Reason: Approved, HoldAmount: 925, HoldCurrency: "978", FX: true}},
		{name: "DE6 in the same currency: DE4 held", req: func(r *AuthRequest) { r.BillingCurrency = "978"; r.BillingAmount = 1000 }, want: approved(1000)},
		{name: "zero-amount verification", req: func(r *AuthRequest) { r.Amount = 0 }, want: approved(0)},
		{name: "advice skips a wrong cvc2 and pin", card: set(func(c *Card) { c.PINTries = 2 }), req: func(r *AuthRequest) { r.Class = ClassAdvice; r.CVC2 = "999"; r.PINBlock = wrongPIN }, want: Outcome{Reason: Approved, PINTries: 2, HoldAmount: 1000, HoldCurrency: "978"}},
		{name: "financial request", req: func(r *AuthRequest) { r.Class = ClassFinancial }, want: approved(1000)},

		// Advices still answer for the card; completions and reversals only
		// need the card to exist.
		{name: "advice on a locked card", card: lock(LockSuspectedFraud), req: func(r *AuthRequest) { r.Class = ClassAdvice }, want: Outcome{Reason: SuspectedFraud}},
		{name: "completion on a locked card", card: lock(LockLost), req: func(r *AuthRequest) { r.Class = ClassCompletion; r.Amount = 800 }, want: approved(800)},
		{name: "reversal on an expired card", card: set(func(c *Card) { c.Expiry = "2001" }), req: func(r *AuthRequest) { r.Class = ClassReversal }, want: approved(1000)},
		{name: "reversal advice of an unknown card", card: func(*Card) *Card { return nil }, req: func(r *AuthRequest) { r.Class = ClassReversalAdvice }, want: Outcome{Reason: InvalidCard}},

		// Defects of the caller's data.
		{name: "program missing", prog: func(*Program) *Program { return nil }, want: Outcome{Reason: SystemError, Err: errors.New("")}},
		{name: "program not the card's", prog: func(p *Program) *Program { p.ID = 2; return p }, want: Outcome{Reason: SystemError, Err: errors.New("")}},
		{name: "lock code out of range", card: lock(9), want: Outcome{Reason: SystemError, Err: errors.New("")}},
		{name: "unknown state", card: set(func(c *Card) { c.State = "lost_in_post" }), want: Outcome{Reason: SystemError, Err: errors.New("")}},
		{name: "negative amount", req: func(r *AuthRequest) { r.Amount = -1 }, want: Outcome{Reason: FormatError, HoldCurrency: "978", Err: errors.New("")}},

		// Two checks fail: the first in DESIGN.md's order decides.
		{name: "order: removed before locked", card: set(func(c *Card) { c.State = StateRemoved; c.LockCode = LockStolen }), want: Outcome{Reason: CardRemoved}},
		{name: "order: locked before not active", card: set(func(c *Card) { c.State = StateOrdered; c.LockCode = LockPendingQuery }), want: Outcome{Reason: PendingQuery}},
		{name: "order: lock 6 before a wrong pin (no further try)", card: set(func(c *Card) { c.LockCode = LockPINTriesExceeded; c.PINTries = 3 }), req: func(r *AuthRequest) { r.PINBlock = wrongPIN }, want: Outcome{Reason: PINTriesExceeded, PINTries: 3}},
		{name: "order: not active before expired", card: set(func(c *Card) { c.State = StateInactive; c.Expiry = "2401" }), req: func(r *AuthRequest) { r.Expiry = "2401" }, want: Outcome{Reason: CardNotActive}},
		{name: "order: expired before cvc2", req: func(r *AuthRequest) { r.Expiry = "2811"; r.CVC2 = "000" }, want: Outcome{Reason: ExpiredCard, VerifyTries: 1}},
		{name: "order: cvc2 before pin (no try counted)", req: func(r *AuthRequest) { r.CVC2 = "000"; r.PINBlock = wrongPIN }, want: Outcome{Reason: CVC2Failed, VerifyTries: 1}},
		{name: "order: pin before processing code", card: set(func(c *Card) { c.Type = Virtual }), req: func(r *AuthRequest) { r.ProcessingCode = ProcCash; r.PINBlock = wrongPIN }, want: Outcome{Reason: IncorrectPIN, PINTries: 1}},
		{name: "order: third pin before processing code", card: set(func(c *Card) { c.Type = Virtual; c.PINTries = 2 }), req: func(r *AuthRequest) { r.ProcessingCode = ProcCash; r.PINBlock = wrongPIN }, want: Outcome{Reason: PINTriesExceeded, PINTries: 3, LockOutside: true}},
		{name: "5 fifth wrong cvc2 in a row", card: set(func(c *Card) { c.VerifyTries = 4 }), req: func(r *AuthRequest) { r.CVC2 = "124" }, want: Outcome{Reason: SuspectedFraud, VerifyTries: 5}},
		{name: "5 third wrong expiry, program limit 3", card: set(func(c *Card) { c.VerifyTries = 2 }), prog: func(p *Program) *Program { p.VerifyMaxTries = 3; return p },
			req: func(r *AuthRequest) { r.Expiry = "2912" }, want: Outcome{Reason: SuspectedFraud, VerifyTries: 3}},
		{name: "5 right cvc2 resets", card: set(func(c *Card) { c.VerifyTries = 4 }), req: func(r *AuthRequest) { r.CVC2 = "123" }, want: approved(1000)},
		{name: "5 nothing presented keeps the count", card: set(func(c *Card) { c.VerifyTries = 4 }), req: func(r *AuthRequest) { r.Expiry = ""; r.CVC2 = "" },
			want: Outcome{Reason: Approved, HoldAmount: 1000, HoldCurrency: "978", VerifyTries: 4}},
		{name: "order: processing code before currency", card: set(func(c *Card) { c.Type = Virtual }), req: func(r *AuthRequest) {
			r.ProcessingCode = ProcCash
			r.PINBlock = nil
			r.Currency = "840"
			r.BillingCurrency = "978"
			r.BillingAmount = 925
		}, want: Outcome{Reason: NotPermitted}},
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			card, prog, req := baseCard(), baseProgram(), baseRequest()
			if tt.card != nil {
				card = tt.card(card)
			}
			if tt.prog != nil {
				prog = tt.prog(prog)
			}
			if tt.req != nil {
				tt.req(req)
			}
			got := Decide(DecideInput{Card: card, Program: prog, Req: req, Now: decideNow}, stubVerifier{})
			if (got.Err != nil) != (tt.want.Err != nil) {
				t.Errorf("err: got %v, want error %v", got.Err, tt.want.Err != nil)
			}
			if tt.want.Err != nil && tt.want.Err.Error() != "" && !errors.Is(got.Err, tt.want.Err) {
				t.Errorf("err: got %v, want %v", got.Err, tt.want.Err)
			}
			got.Err, tt.want.Err = nil, nil
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// decideReasons is every reason Decide can return.
var decideReasons = []Reason{
	Approved, InvalidCard, CardRemoved, CardLost, CardStolen, PendingQuery, CardConsolidation,
	CardInactive, PINTriesExceeded, SuspectedFraud, CardReplaced, CardNotActive, ExpiredCard,
	CVC2Failed, IncorrectPIN, NotPermitted, FormatError, SystemError,
}

// TestDecideReasonsHaveActionCodes checks that every reason Decide can
// return has its row in specs' action-code table, with DESIGN.md section
// 5's codes in both profiles.
func TestDecideReasonsHaveActionCodes(t *testing.T) {
	design := map[Reason][2]string{ // iso2003, iso87 as in DESIGN.md section 5
		Approved: {"0000", "00"}, InvalidCard: {"1011", "14"}, CardLost: {"2008", "41"},
		CardStolen: {"2009", "43"}, PendingQuery: {"1000", "05"}, CardConsolidation: {"1016", "05"},
		CardInactive: {"1018", "62"}, PINTriesExceeded: {"1006", "75"}, SuspectedFraud: {"1002", "59"},
		CardReplaced: {"1011", "14"}, CardRemoved: {"1011", "14"}, CardNotActive: {"1025", "62"},
		ExpiredCard: {"1001", "54"}, CVC2Failed: {"1045", "N7"}, IncorrectPIN: {"1017", "55"},
		NotPermitted: {"1019", "57"}, FormatError: {"9100", "30"},
	}
	rows := map[string]specs.ActionCodeRow{}
	for _, r := range specs.ActionCodes() {
		rows[r.Reason] = r
	}
	for _, reason := range decideReasons {
		if _, ok := rows[string(reason)]; !ok {
			t.Errorf("%s: no row in the action-code table", reason)
			continue
		}
		for i, profile := range []string{"iso2003", "iso87"} {
			code, err := specs.ActionCode(profile, string(reason))
			if err != nil || code == "" {
				t.Errorf("%s %s: code %q, err %v", reason, profile, code, err)
				continue
			}
			if want, ok := design[reason]; ok && code != want[i] {
				t.Errorf("%s %s: got %s, want DESIGN.md's %s", reason, profile, code, want[i])
			}
		}
	}
	// Each lock code's reason is a reason Decide returns.
	for code := LockLost; code <= LockCardReplaced; code++ {
		found := false
		for _, r := range decideReasons {
			found = found || r == code.Reason()
		}
		if !found {
			t.Errorf("lock code %d: reason %q missing from decideReasons", code, code.Reason())
		}
	}
}

// TestDecideWithKeys runs Decide over the real verifier: CVC2 and PIN
// computed from a key set, and the malformed-block path of VerifyPIN.
func TestDecideWithKeys(t *testing.T) {
	k := testKeys(t)
	const pan = "4111111111111111"
	card := baseCard()
	card.CVCGeneration = 1
	var err error
	if card.PVV, err = k.PVV(pan, "2468"); err != nil {
		t.Fatal(err)
	}
	block := func(zone, pin string) []byte {
		b, err := k.ZonePINBlock(zone, pin, pan)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cvc2 := k.CVC2(pan, card.Expiry, 1)
	for _, tt := range []struct {
		name  string
		cvc2  string
		block []byte
		zone  string
		want  Reason
	}{
		{"right cvc2 and pin", cvc2, block(ZoneISO2003, "2468"), ZoneISO2003, Approved},
		{"cvc2 of generation 0 after reset", k.CVC2(pan, card.Expiry, 0), nil, ZoneISO2003, CVC2Failed},
		{"wrong pin", cvc2, block(ZoneISO2003, "2469"), ZoneISO2003, IncorrectPIN},
		{"block under the other zone's key", cvc2, block(ZoneISO87, "2468"), ZoneISO2003, FormatError},
		{"right pin on iso87", "", block(ZoneISO87, "2468"), ZoneISO87, Approved},
	} {
		req := baseRequest()
		req.PAN, req.CVC2, req.PINBlock, req.ZoneKey = pan, tt.cvc2, tt.block, tt.zone
		got := Decide(DecideInput{Card: card, Program: baseProgram(), Req: req, Now: decideNow}, k)
		if got.Reason != tt.want {
			t.Errorf("%s: got %s (%v), want %s", tt.name, got.Reason, got.Err, tt.want)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	card, prog, req := baseCard(), baseProgram(), baseRequest()
	in := DecideInput{Card: card, Program: prog, Req: req, Now: decideNow}
	b.ReportAllocs()
	for b.Loop() {
		if out := Decide(in, stubVerifier{}); out.Reason != Approved {
			b.Fatal(out.Reason)
		}
	}
}

// BenchmarkDecideWithKeys is Decide with the real CVC2 and PIN checks.
func BenchmarkDecideWithKeys(b *testing.B) {
	k := testKeys(b)
	const pan = "4111111111111111"
	card, prog, req := baseCard(), baseProgram(), baseRequest()
	card.PVV, _ = k.PVV(pan, "2468")
	req.CVC2 = k.CVC2(pan, card.Expiry, 0)
	req.PINBlock, _ = k.ZonePINBlock(ZoneISO2003, "2468", pan)
	in := DecideInput{Card: card, Program: prog, Req: req, Now: decideNow}
	b.ReportAllocs()
	for b.Loop() {
		if out := Decide(in, k); out.Reason != Approved {
			b.Fatal(out.Reason)
		}
	}
}
