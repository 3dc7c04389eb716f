package cardhost

import (
	"slices"
	"testing"
	"time"

	"github.com/antaca/antaca/ledger"
)

// check returns Pipeline's check by name.
func check(t testing.TB, name string) Check {
	t.Helper()
	for _, c := range Pipeline {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in Pipeline", name)
	return Check{}
}

// The list is the order of DESIGN.md section 5, every check named once and
// listing the reasons it gives.
func TestPipelineOrder(t *testing.T) {
	var names []string
	for _, c := range Pipeline {
		names = append(names, c.Name)
		if c.run == stepNone {
			t.Errorf("%s: no function", c.Name)
		}
	}
	want := []string{"card found", "card program", "hold reference", "card locks", "lifecycle", "expiry", "cvc2",
		"verification tries", "pin", "processing code", "currency", "spend rules", "verification reset",
		"advice stand-in", "velocity", "no hold: inquiry, refund authorisation", "partner remote decision", "funds and holds"}
	if !slices.Equal(names, want) {
		t.Errorf("Pipeline order:\n got %q\nwant %q", names, want)
	}
}

// pipelineCase is one check applied alone to a decision built from the
// base card, program and request.
type pipelineCase struct {
	name  string
	setup func(d *decision)
	want  Reason // "" : the check did not decide
	stop  bool   // the check ends its stage
	after func(t *testing.T, d *decision)
}

func runCheckCases(t *testing.T, checkName string, cases []pipelineCase) {
	c := check(t, checkName)
	for _, tc := range cases {
		t.Run(checkName+"/"+tc.name, func(t *testing.T) {
			d := newDecision(DecideInput{Card: baseCard(), Program: baseProgram(), Req: baseRequest(), Now: decideNow}, stubVerifier{})
			if tc.setup != nil {
				tc.setup(&d)
			}
			before := d.out.Reason
			stop := c.run.apply(&d)
			if d.out.Reason != tc.want || stop != tc.stop {
				t.Fatalf("got reason %q stop %v, want %q stop %v", d.out.Reason, stop, tc.want, tc.stop)
			}
			if d.out.Reason != before && d.out.Reason != Approved && !slices.Contains(c.Reasons, d.out.Reason) {
				t.Errorf("%q answers %q, which its Reasons %q do not list", c.Name, d.out.Reason, c.Reasons)
			}
			if tc.after != nil {
				tc.after(t, &d)
			}
		})
	}
}

func TestCheckCardFound(t *testing.T) {
	runCheckCases(t, "card found", []pipelineCase{
		{name: "found", after: func(t *testing.T, d *decision) {
			if d.out.PINTries != 0 {
				t.Errorf("PINTries %d", d.out.PINTries)
			}
		}},
		{name: "nil", setup: func(d *decision) { d.in.Card = nil }, want: InvalidCard, stop: true},
		{name: "removed", setup: func(d *decision) { d.in.Card.State = StateRemoved }, want: CardRemoved, stop: true},
		{name: "counts carried", setup: func(d *decision) { d.in.Card.PINTries, d.in.Card.VerifyTries = 2, 3 }, after: func(t *testing.T, d *decision) {
			if d.out.PINTries != 2 || d.out.VerifyTries != 3 {
				t.Errorf("tries %d %d, want 2 3", d.out.PINTries, d.out.VerifyTries)
			}
		}},
	})
}

func TestCheckCardProgram(t *testing.T) {
	runCheckCases(t, "card program", []pipelineCase{
		{name: "the card's"},
		{name: "missing", setup: func(d *decision) { d.in.Program = nil }, want: SystemError, stop: true},
		{name: "another's", setup: func(d *decision) { d.in.Program.ID = 9 }, want: SystemError, stop: true},
	})
}

func TestCheckHoldReference(t *testing.T) {
	runCheckCases(t, "hold reference", []pipelineCase{
		{name: "authorisation goes on"},
		{name: "completion ends with the billing amount", setup: func(d *decision) { d.in.Req.Class = ClassCompletion }, want: Approved, stop: true,
			after: func(t *testing.T, d *decision) {
				if d.out.HoldAmount != 1000 {
					t.Errorf("hold %d, want 1000", d.out.HoldAmount)
				}
			}},
		{name: "reversal in another currency", setup: func(d *decision) { d.in.Req.Class, d.in.Req.Currency = ClassReversal, "840" }, want: NotPermitted, stop: true},
	})
}

func TestCheckLocks(t *testing.T) {
	cases := []pipelineCase{{name: "unlocked"}}
	for code := LockLost; code <= LockCardReplaced; code++ {
		cases = append(cases, pipelineCase{name: string(code.Reason()), setup: func(d *decision) { d.in.Card.LockCode = code }, want: code.Reason(), stop: true})
	}
	cases = append(cases, pipelineCase{name: "unknown code", setup: func(d *decision) { d.in.Card.LockCode = 42 }, want: SystemError, stop: true})
	runCheckCases(t, "card locks", cases)
}

func TestCheckLifecycle(t *testing.T) {
	runCheckCases(t, "lifecycle", []pipelineCase{
		{name: "active"},
		{name: "ordered", setup: func(d *decision) { d.in.Card.State = StateOrdered }, want: CardNotActive, stop: true},
		{name: "inactive", setup: func(d *decision) { d.in.Card.State = StateInactive }, want: CardNotActive, stop: true},
		{name: "unknown", setup: func(d *decision) { d.in.Card.State = "odd" }, want: SystemError, stop: true},
	})
}

func TestCheckExpiry(t *testing.T) {
	wrong := func(w Reason) func(t *testing.T, d *decision) {
		return func(t *testing.T, d *decision) {
			if d.wrong != w {
				t.Errorf("wrong %q, want %q", d.wrong, w)
			}
		}
	}
	runCheckCases(t, "expiry", []pipelineCase{
		{name: "right", after: wrong("")},
		{name: "card's own past", setup: func(d *decision) { d.in.Card.Expiry, d.in.Req.Expiry = "2605", "2605" }, want: ExpiredCard, stop: true},
		{name: "presented not the card's: noted, not decided", setup: func(d *decision) { d.in.Req.Expiry = "2811" }, after: wrong(ExpiredCard)},
		{name: "absent", setup: func(d *decision) { d.in.Req.Expiry = "" }, after: wrong("")},
	})
}

func TestCheckCVC2(t *testing.T) {
	note := func(w Reason, verified bool) func(t *testing.T, d *decision) {
		return func(t *testing.T, d *decision) {
			if d.wrong != w || d.verified != verified {
				t.Errorf("wrong %q verified %v, want %q %v", d.wrong, d.verified, w, verified)
			}
		}
	}
	runCheckCases(t, "cvc2", []pipelineCase{
		{name: "right", after: note("", true)},
		{name: "wrong", setup: func(d *decision) { d.in.Req.CVC2 = "999" }, after: note(CVC2Failed, false)},
		{name: "advice not checked", setup: func(d *decision) { d.in.Req.CVC2, d.in.Req.Class, d.in.Req.Expiry = "999", ClassAdvice, "" }, after: note("", false)},
		{name: "after a wrong expiry", setup: func(d *decision) { d.in.Req.CVC2, d.wrong = "999", ExpiredCard }, after: note(ExpiredCard, false)},
	})
}

// verifyTries checks the wrong-verification count a check leaves.
func verifyTries(n int) func(t *testing.T, d *decision) {
	return func(t *testing.T, d *decision) {
		if d.out.VerifyTries != n {
			t.Errorf("VerifyTries %d, want %d", d.out.VerifyTries, n)
		}
	}
}

func TestCheckVerifyTries(t *testing.T) {
	runCheckCases(t, "verification tries", []pipelineCase{
		{name: "nothing wrong", after: verifyTries(0)},
		{name: "wrong cvc2 counts", setup: func(d *decision) { d.wrong = CVC2Failed }, want: CVC2Failed, stop: true, after: verifyTries(1)},
		{name: "fifth locks", setup: func(d *decision) { d.wrong, d.in.Card.VerifyTries = ExpiredCard, 4 }, want: SuspectedFraud, stop: true, after: verifyTries(5)},
		{name: "program's limit", setup: func(d *decision) { d.wrong, d.in.Program.VerifyMaxTries = CVC2Failed, 1 }, want: SuspectedFraud, stop: true},
		{name: "advice answered, not counted", setup: func(d *decision) { d.wrong, d.in.Req.Class = ExpiredCard, ClassAdvice }, want: ExpiredCard, stop: true, after: verifyTries(0)},
	})
}

func TestCheckPIN(t *testing.T) {
	pin := func(n int, lock bool) func(t *testing.T, d *decision) {
		return func(t *testing.T, d *decision) {
			if d.out.PINTries != n || d.out.LockOutside != lock {
				t.Errorf("PINTries %d lock %v, want %d %v", d.out.PINTries, d.out.LockOutside, n, lock)
			}
		}
	}
	runCheckCases(t, "pin", []pipelineCase{
		{name: "right resets", setup: func(d *decision) { d.out.PINTries = 2 }, after: pin(0, false)},
		{name: "wrong", setup: func(d *decision) { d.in.Req.PINBlock = wrongPIN }, want: IncorrectPIN, stop: true, after: pin(1, false)},
		{name: "third wrong locks", setup: func(d *decision) { d.in.Req.PINBlock, d.in.Card.PINTries = wrongPIN, 2 }, want: PINTriesExceeded, stop: true, after: pin(3, true)},
		{name: "malformed block", setup: func(d *decision) { d.in.Req.PINBlock = malformedPIN }, want: FormatError, stop: true, after: pin(0, false)},
		{name: "unknown zone", setup: func(d *decision) { d.in.Req.ZoneKey = "nozone" }, want: SystemError, stop: true},
		{name: "advice skips", setup: func(d *decision) { d.in.Req.PINBlock, d.in.Req.Class = wrongPIN, ClassAdvice }},
		{name: "absent", setup: func(d *decision) { d.in.Req.PINBlock = nil; d.out.PINTries = 1 }, after: pin(1, false)},
	})
}

func TestCheckProcessing(t *testing.T) {
	runCheckCases(t, "processing code", []pipelineCase{
		{name: "purchase"},
		{name: "cash on a virtual card", setup: func(d *decision) { d.in.Card.Type, d.in.Req.ProcessingCode = Virtual, ProcCash }, want: NotPermitted, stop: true},
		{name: "unknown code", setup: func(d *decision) { d.in.Req.ProcessingCode = "40" }, want: NotPermitted, stop: true},
	})
}

func TestCheckCurrency(t *testing.T) {
	hold := func(n int64, fx bool) func(t *testing.T, d *decision) {
		return func(t *testing.T, d *decision) {
			if d.out.HoldAmount != n || d.out.FX != fx {
				t.Errorf("hold %d fx %v, want %d %v", d.out.HoldAmount, d.out.FX, n, fx)
			}
		}
	}
	// billing decides without ending the stage: the spend rules follow.
	runCheckCases(t, "currency", []pipelineCase{
		{name: "program currency", want: Approved, after: hold(1000, false)},
		{name: "billing currency", setup: func(d *decision) {
			d.in.Req.Currency, d.in.Req.BillingAmount, d.in.Req.BillingCurrency = "840", 950, "978"
		}, want: Approved, after: hold(950, true)},
		{name: "no convertible currency", setup: func(d *decision) { d.in.Req.Currency = "840" }, want: NotPermitted},
		{name: "negative", setup: func(d *decision) { d.in.Req.Amount = -1 }, want: FormatError},
	})
}

func TestCheckVerifyReset(t *testing.T) {
	runCheckCases(t, "verification reset", []pipelineCase{
		{name: "approved and verified", setup: func(d *decision) { d.out.Reason, d.verified, d.out.VerifyTries = Approved, true, 3 }, want: Approved, after: verifyTries(0)},
		{name: "approved, nothing verified", setup: func(d *decision) { d.out.Reason, d.out.VerifyTries = Approved, 3 }, want: Approved, after: verifyTries(3)},
		{name: "declined by a spend rule", setup: func(d *decision) { d.out.Reason, d.verified, d.out.VerifyTries = MCCNotPermitted, true, 3 }, want: MCCNotPermitted, after: verifyTries(3)},
	})
}

func TestCheckAdviceStandIn(t *testing.T) {
	runCheckCases(t, "advice stand-in", []pipelineCase{
		{name: "authorisation's decline stays", setup: func(d *decision) { d.out.Reason = CardLost }, want: CardLost},
		{name: "advice's decline approved and held", setup: func(d *decision) { d.in.Req.Class, d.out.Reason = ClassAdvice, CardLost }, want: Approved,
			after: func(t *testing.T, d *decision) {
				if d.out.HoldAmount != 1000 {
					t.Errorf("hold %d, want 1000", d.out.HoldAmount)
				}
			}},
		{name: "removed card stays", setup: func(d *decision) { d.in.Req.Class, d.out.Reason = ClassAdvice, CardRemoved }, want: CardRemoved},
		{name: "format error stays", setup: func(d *decision) { d.in.Req.Class, d.out.Reason = ClassAdvice, FormatError }, want: FormatError},
	})
	if !check(t, "advice stand-in").Always {
		t.Error("advice stand-in must run after a decline")
	}
}

func TestBatchNext(t *testing.T) {
	cases := []struct {
		name  string
		setup func(d *decision)
		want  next
	}{
		{"hold", func(d *decision) {}, nextHold},
		{"inquiry", func(d *decision) { d.in.Req.ProcessingCode, d.out.HoldAmount = ProcBalanceInquiry, 0 }, nextInquiry},
		{"refund authorisation", func(d *decision) { d.in.Req.ProcessingCode, d.out.HoldAmount = ProcRefund, 0 }, nextInquiry},
		{"remote", func(d *decision) {
			d.in.Program.Funding, d.in.Program.RemoteURL = FundingPartnerDeposit, "https://p.example"
		}, nextRemote},
		{"advice on a remote program holds", func(d *decision) {
			d.in.Program.Funding, d.in.Program.RemoteURL, d.in.Req.Class = FundingPartnerDeposit, "https://p.example", ClassAdvice
		}, nextHold},
		{"decline answered", func(d *decision) { d.out.Reason = InsufficientFunds }, nextAnswer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecision(DecideInput{Card: baseCard(), Program: baseProgram(), Req: baseRequest(), Now: decideNow}, stubVerifier{})
			d.out = Outcome{Reason: Approved, HoldAmount: 1000}
			tc.setup(&d)
			runChecks(batchChecks, &d)
			if d.next != tc.want {
				t.Errorf("next %d, want %d", d.next, tc.want)
			}
		})
	}
}

func TestCheckSpendRules(t *testing.T) {
	rules := func(rs ...SpendRule) func(d *decision) {
		return func(d *decision) { d.in.Program.SpendRules = newSpendRuleSet(rs) }
	}
	with := func(f func(d *decision), g func(r *AuthRequest)) func(d *decision) {
		return func(d *decision) { f(d); g(d.in.Req) }
	}
	mcc := func(scope string, target int64, mode string, v ...string) SpendRule {
		return SpendRule{Scope: scope, TargetID: target, Kind: RuleMCC, Mode: mode, Values: v}
	}
	runCheckCases(t, "spend rules", []pipelineCase{
		{name: "no rules"},
		{name: "mcc blocked on the program", setup: with(rules(mcc(ScopeProgram, 1, ModeBlock, "7995")), func(r *AuthRequest) { r.MCC = "7995" }), want: MCCNotPermitted, stop: true},
		{name: "mcc range blocked", setup: with(rules(mcc(ScopeProgram, 1, ModeBlock, "5812-5814")), func(r *AuthRequest) { r.MCC = "5813" }), want: MCCNotPermitted, stop: true},
		{name: "mcc outside the range", setup: with(rules(mcc(ScopeProgram, 1, ModeBlock, "5812-5814")), func(r *AuthRequest) { r.MCC = "5815" })},
		{name: "mcc not in the allow list", setup: with(rules(mcc(ScopeProgram, 1, ModeAllow, "5411")), func(r *AuthRequest) { r.MCC = "5999" }), want: MCCNotPermitted, stop: true},
		{name: "mcc missing, allow list", setup: rules(mcc(ScopeProgram, 1, ModeAllow, "5411")), want: MCCNotPermitted, stop: true},
		{name: "mcc in the allow list", setup: with(rules(mcc(ScopeProgram, 1, ModeAllow, "5411")), func(r *AuthRequest) { r.MCC = "5411" })},
		{name: "another card's rule", setup: with(rules(mcc(ScopeCard, 8, ModeBlock, "7995")), func(r *AuthRequest) { r.MCC = "7995" })},
		{name: "the card's rule", setup: with(func(d *decision) { d.in.Card.ID = 8; rules(mcc(ScopeCard, 8, ModeBlock, "7995"))(d) }, func(r *AuthRequest) { r.MCC = "7995" }), want: MCCNotPermitted, stop: true},
		{name: "the balance's rule", setup: with(func(d *decision) { d.in.Card.AccountID = 70; rules(mcc(ScopeBalance, 70, ModeBlock, "7995"))(d) }, func(r *AuthRequest) { r.MCC = "7995" }), want: MCCNotPermitted, stop: true},
		{name: "country blocked", setup: with(rules(SpendRule{Scope: ScopeProgram, Kind: RuleCountry, Mode: ModeBlock, Values: []string{"PRK"}}), func(r *AuthRequest) { r.MerchantCountry = "PRK" }), want: CountryNotPermitted, stop: true},
		{name: "country unknown, block list", setup: rules(SpendRule{Scope: ScopeProgram, Kind: RuleCountry, Mode: ModeBlock, Values: []string{"PRK"}})},
		{name: "country not allowed", setup: with(rules(SpendRule{Scope: ScopeProgram, Kind: RuleCountry, Mode: ModeAllow, Values: []string{"FRA", "DEU"}}), func(r *AuthRequest) { r.MerchantCountry = "USA" }), want: CountryNotPermitted, stop: true},
		{name: "atm blocked, cash", setup: with(rules(SpendRule{Scope: ScopeProgram, Kind: RuleChannel, Mode: ModeBlock, Values: []string{ChannelATM}}), func(r *AuthRequest) { r.ProcessingCode = ProcCash }), want: ChannelNotPermitted, stop: true},
		{name: "atm blocked, purchase", setup: rules(SpendRule{Scope: ScopeProgram, Kind: RuleChannel, Mode: ModeBlock, Values: []string{ChannelATM}})},
		{name: "contactless blocked", setup: with(rules(SpendRule{Scope: ScopeProgram, Kind: RuleChannel, Mode: ModeBlock, Values: []string{ChannelContactless}}), func(r *AuthRequest) { r.Profile, r.POSEntryMode = "iso87", "071" }), want: ChannelNotPermitted, stop: true},
		{name: "card not present blocked, e-commerce", setup: with(rules(SpendRule{Scope: ScopeProgram, Kind: RuleChannel, Mode: ModeBlock, Values: []string{ChannelCardNotPresent}}), func(r *AuthRequest) { r.Profile, r.POSEntryMode = "iso87", "812" }), want: ChannelNotPermitted, stop: true},
		{name: "card not present blocked, chip", setup: with(rules(SpendRule{Scope: ScopeProgram, Kind: RuleChannel, Mode: ModeBlock, Values: []string{ChannelCardNotPresent}}), func(r *AuthRequest) { r.Profile, r.POSEntryMode = "iso87", "051" })},
		{name: "per transaction amount over", setup: func(d *decision) {
			d.out.HoldAmount = 1000
			rules(SpendRule{Scope: ScopeProgram, Kind: RuleVelocity, Period: PeriodTransaction, MaxAmount: ptr(int64(999))})(d)
		}, want: ExceedsAmountLimit, stop: true},
		{name: "per transaction amount at the limit", setup: func(d *decision) {
			d.out.HoldAmount = 1000
			rules(SpendRule{Scope: ScopeProgram, Kind: RuleVelocity, Period: PeriodTransaction, MaxAmount: ptr(int64(1000))})(d)
		}},
		{name: "period velocity is the batch's", setup: rules(SpendRule{Scope: ScopeProgram, Kind: RuleVelocity, Period: PeriodDay, MaxAmount: ptr(int64(0))})},
		{name: "refunds pass", setup: with(rules(mcc(ScopeProgram, 1, ModeBlock, "7995")), func(r *AuthRequest) { r.MCC, r.ProcessingCode = "7995", ProcRefund })},
		{name: "advices pass", setup: with(rules(mcc(ScopeProgram, 1, ModeBlock, "7995")), func(r *AuthRequest) { r.MCC, r.Class = "7995", ClassAdvice })},
	})
}

func TestChannelsOf(t *testing.T) {
	// iso2003 POS data codes as jPOS's PosDataCode packs them: reading
	// method (bytes 0-3), verification (4-7), environment (8-11).
	cmf := func(rm, env uint32) string {
		b := make([]byte, 16)
		b[0], b[1], b[8], b[9] = byte(rm), byte(rm>>8), byte(env), byte(env>>8)
		const hexd = "0123456789abcdef"
		out := make([]byte, 32)
		for i, c := range b {
			out[2*i], out[2*i+1] = hexd[c>>4], hexd[c&15]
		}
		return string(out)
	}
	cases := []struct {
		name string
		req  AuthRequest
		want Channels
	}{
		{"iso87 chip", AuthRequest{Profile: "iso87", POSEntryMode: "051"}, Channels{CardPresent: true}},
		{"iso87 contactless", AuthRequest{Profile: "iso87", POSEntryMode: "071"}, Channels{CardPresent: true, Contactless: true}},
		{"iso87 key entry", AuthRequest{Profile: "iso87", POSEntryMode: "012"}, Channels{}},
		{"iso87 absent", AuthRequest{Profile: "iso87"}, Channels{}},
		{"iso87 atm by mcc", AuthRequest{Profile: "iso87", POSEntryMode: "051", MCC: "6011"}, Channels{CardPresent: true, ATM: true}},
		{"cash", AuthRequest{Profile: "iso87", ProcessingCode: ProcCash}, Channels{ATM: true}},
		{"cmf icc", AuthRequest{Profile: "iso2003", POSEntryMode: cmf(1<<5, 1<<1)}, Channels{CardPresent: true}},
		{"cmf contactless", AuthRequest{Profile: "iso2003", POSEntryMode: cmf(1<<1, 1<<1)}, Channels{CardPresent: true, Contactless: true}},
		{"cmf e-commerce", AuthRequest{Profile: "iso2003", POSEntryMode: cmf(1<<6, 1<<4)}, Channels{}},
		{"cmf stripe by mail order", AuthRequest{Profile: "iso2003", POSEntryMode: cmf(1<<4, 1<<3)}, Channels{}},
		{"cmf not hex", AuthRequest{Profile: "iso2003", POSEntryMode: "zz000000000000000000000000000000"}, Channels{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ChannelsOf(&tc.req); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidSpendRule(t *testing.T) {
	ok := []SpendRule{
		{Scope: ScopeCard, TargetID: 1, Kind: RuleMCC, Mode: ModeBlock, Values: []string{"7995", "5812-5814"}},
		{Scope: ScopeBalance, TargetID: 1, Kind: RuleCountry, Mode: ModeAllow, Values: []string{"fra"}},
		{Scope: ScopeProgram, TargetID: 1, Kind: RuleChannel, Mode: ModeBlock, Values: []string{ChannelATM, ChannelContactless}},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleVelocity, Period: PeriodDay, MaxAmount: ptr(int64(500_00)), MaxCount: ptr(3)},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleVelocity, Period: PeriodTransaction, MaxAmount: ptr(int64(100_00))},
	}
	for _, r := range ok {
		if err := validSpendRule(&r); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := []SpendRule{
		{Scope: "user", TargetID: 1, Kind: RuleMCC, Mode: ModeBlock, Values: []string{"7995"}},
		{Scope: ScopeCard, TargetID: 0, Kind: RuleMCC, Mode: ModeBlock, Values: []string{"7995"}},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleMCC, Mode: ModeBlock, Values: []string{"799"}},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleMCC, Mode: ModeBlock, Values: []string{"5814-5812"}},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleMCC, Mode: "deny", Values: []string{"7995"}},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleCountry, Mode: ModeBlock, Values: []string{"F"}},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleCountry, Mode: ModeBlock, Values: []string{"ZZ"}},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleChannel, Mode: ModeAllow, Values: []string{ChannelATM}},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleChannel, Mode: ModeBlock, Values: []string{"moto"}},
		{Scope: ScopeCard, TargetID: 1, Kind: "velocity", Mode: ModeBlock, Values: []string{"1"}},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleVelocity, Period: PeriodDay},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleVelocity, Period: "year", MaxCount: ptr(3)},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleVelocity, Period: PeriodTransaction, MaxCount: ptr(3)},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleVelocity, Period: PeriodDay, MaxAmount: ptr(int64(-1))},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleMCC, Mode: ModeBlock, Values: []string{"7995"}, Period: PeriodDay},
		{Scope: ScopeCard, TargetID: 1, Kind: RuleMCC, Mode: ModeBlock},
	}
	for _, r := range bad {
		if err := validSpendRule(&r); err == nil {
			t.Errorf("%+v: accepted", r)
		}
	}
}

// BenchmarkPipeline runs the whole decision of one approved purchase in
// memory: the card checks (Decide) and the batch's, no database; "rules"
// with a program carrying an MCC block list, a country allow list and a
// channel toggle.
func BenchmarkPipeline(b *testing.B) {
	for _, bc := range []struct {
		name  string
		rules []SpendRule
	}{
		{"norules", nil},
		{"rules", []SpendRule{
			{Scope: ScopeProgram, Kind: RuleMCC, Mode: ModeBlock, Values: []string{"7995", "5812-5814"}},
			{Scope: ScopeProgram, Kind: RuleCountry, Mode: ModeAllow, Values: []string{"FRA", "DEU"}},
			{Scope: ScopeProgram, Kind: RuleChannel, Mode: ModeBlock, Values: []string{ChannelATM}},
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			card, prog, req := baseCard(), baseProgram(), baseRequest()
			req.MCC, req.MerchantCountry = "5411", "FRA"
			prog.SpendRules = newSpendRuleSet(bc.rules)
			b.ReportAllocs()
			for b.Loop() {
				d := newDecision(DecideInput{Card: card, Program: prog, Req: req, Now: decideNow}, stubVerifier{})
				runChecks(cardChecks, &d)
				runChecks(batchChecks, &d)
				if d.out.Reason != Approved || d.next != nextHold {
					b.Fatalf("got %s %d", d.out.Reason, d.next)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestPeriodStart(t *testing.T) {
	now := time.Date(2026, time.June, 18, 23, 30, 0, 0, time.FixedZone("CEST", 2*3600)) // Thursday 21:30 UTC
	cases := map[string]time.Time{
		PeriodDay:      time.Date(2026, time.June, 18, 0, 0, 0, 0, time.UTC),
		PeriodWeek:     time.Date(2026, time.June, 15, 0, 0, 0, 0, time.UTC),
		PeriodMonth:    time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC),
		PeriodLifetime: time.Unix(0, 0).UTC(),
	}
	for p, want := range cases {
		if got := periodStart(p, now); !got.Equal(want) {
			t.Errorf("%s: got %s, want %s", p, got, want)
		}
	}
	if got := periodStart(PeriodWeek, time.Date(2026, time.June, 21, 12, 0, 0, 0, time.UTC)); !got.Equal(cases[PeriodWeek]) {
		t.Errorf("Sunday's week starts %s", got)
	}
}

func TestCheckVelocity(t *testing.T) {
	d := newDecision(DecideInput{Card: baseCard(), Program: baseProgram(), Req: baseRequest(), Now: decideNow}, stubVerifier{})
	d.in.Card.AccountID = 70
	d.in.Program.SpendRules = newSpendRuleSet([]SpendRule{
		{ID: 1, Scope: ScopeProgram, Kind: RuleVelocity, Period: PeriodDay, MaxCount: ptr(3)},
		{ID: 2, Scope: ScopeBalance, TargetID: 70, Kind: RuleVelocity, Period: PeriodMonth, MaxAmount: ptr(int64(5000))},
		{ID: 3, Scope: ScopeCard, TargetID: 8, Kind: RuleVelocity, Period: PeriodDay, MaxCount: ptr(1)},
		{ID: 4, Scope: ScopeProgram, Kind: RuleVelocity, Period: PeriodTransaction, MaxAmount: ptr(int64(5000))},
	})
	if check(t, "velocity").run.apply(&d) || d.out.Reason != "" {
		t.Fatal("velocity decided alone")
	}
	if len(d.vel) != 2 || d.vel[0].key.RuleID != 1 || d.vel[1].key.RuleID != 2 || !d.vel[1].key.PeriodStart.Equal(time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("uses %+v, want rules 1 and 2", d.vel)
	}
	d.in.Req.Class = ClassAdvice
	if checkVelocity(&d); d.vel != nil {
		t.Error("an advice is counted")
	}
}

// velocityDecide declines in arrival order on the locked usage, counting
// the approvals before.
func TestVelocityDecide(t *testing.T) {
	day := ledger.SpendCounterKey{RuleID: 1, PeriodStart: decideNow}
	amt := ledger.SpendCounterKey{RuleID: 2, PeriodStart: decideNow}
	uses := []velUse{{key: amt, maxAmount: ptr(int64(100_00))}, {key: day, maxCount: ptr(3)}}
	w := func(amount int64) *writeReq {
		return &writeReq{spec: &ledger.HoldSpec{Amount: amount}, vel: uses, capture: true}
	}
	ws := []*writeReq{w(40_00), w(40_00), w(30_00), w(10_00), w(5_00)}
	velocityDecide(ws, map[ledger.SpendCounterKey]ledger.SpendUsage{day: {Count: 1}, amt: {Amount: 10_00}})
	want := []Reason{"", "", ExceedsAmountLimit, ExceedsCountLimit, ExceedsCountLimit} // a decline charges nothing
	for i, w := range ws {
		if w.decision.Reason != want[i] || (w.spec == nil) != (want[i] != "") || (w.capture && want[i] != "") {
			t.Errorf("write %d: %q spec %v, want %q", i, w.decision.Reason, w.spec != nil, want[i])
		}
	}
	// No counters locked (no rule in the batch): nothing changes.
	x := w(1)
	velocityDecide([]*writeReq{x}, nil)
	if x.spec == nil {
		t.Error("declined without counters")
	}
}
