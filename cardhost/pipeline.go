package cardhost

import (
	"errors"
	"fmt"
)

// This file is the authorisation decision of DESIGN.md section 5 in one
// place: the checks in the order they run, each named, with the reasons it
// can answer and the function that applies it (jPOS's transaction
// participants, in the order a deploy file lists them). Every check is a
// pure function of the decision it is handed: the card, its program (with
// its spend rules), the request, the time and the card's counts as the
// batch's lock statement read them. None reads a database or a clock, so
// each is testable alone (pipeline_test.go) and the batch runs them with no
// round trip of their own.
//
// Two stages:
//   - StageCard runs in Decide, for every message that names a card; the
//     first check that declines ends it (completions and reversals stop
//     after "hold reference": the ledger resolves their hold whatever the
//     card's state is now).
//   - StageBatch runs in the authorisation batch (decideInBatch) after
//     StageCard and the card's counts are noted: it turns an advice's
//     decline into the scheme's stand-in approval and says what the batch
//     does with an approval: answer it without a hold, ask the partner, or
//     hold funds. The last two decide later, outside these functions (the
//     partner's remote decision in remote.go, funds in ledger.HoldBatch),
//     and their reasons are listed here so the table is complete.

// Stage is where a check runs: in Decide or in the batch.
type Stage int

const (
	StageCard  Stage = iota + 1 // Decide: card, request and program; no I/O
	StageBatch                  // decideInBatch: what the batch does with the answer
)

// Check is one named step of the authorisation decision.
type Check struct {
	Name    string
	Stage   Stage
	Reasons []Reason // what it can answer
	// Always: the check runs even after an earlier check declined (the
	// advice stand-in); the others are skipped once a check declined.
	Always bool
	// run names the function that applies the check to d (step.apply);
	// it returns true to end the stage (a decision made, or nothing left
	// for the later checks to do).
	run step
}

// step names a check's function. The checks are called through
// step.apply's switch rather than as func values: a call through a func
// value makes the decision escape to the heap (one allocation per
// authorisation, about ten times Decide's time; BenchmarkDecide).
type step int

const (
	stepNone step = iota
	stepCardFound
	stepCardProgram
	stepHoldReference
	stepLocks
	stepLifecycle
	stepExpiry
	stepCVC2
	stepVerifyTries
	stepPIN
	stepProcessing
	stepCurrency
	stepSpendRules
	stepVerifyReset
	stepAdviceStandIn
	stepVelocity
	stepNoHold
	stepRemote
	stepFunds
)

// apply runs the check s names on d.
func (s step) apply(d *decision) bool {
	switch s {
	case stepCardFound:
		return checkCardFound(d)
	case stepCardProgram:
		return checkCardProgram(d)
	case stepHoldReference:
		return checkHoldReference(d)
	case stepLocks:
		return checkLocks(d)
	case stepLifecycle:
		return checkLifecycle(d)
	case stepExpiry:
		return checkExpiry(d)
	case stepCVC2:
		return checkCVC2(d)
	case stepVerifyTries:
		return checkVerifyTries(d)
	case stepPIN:
		return checkPIN(d)
	case stepProcessing:
		return checkProcessing(d)
	case stepCurrency:
		return checkCurrency(d)
	case stepSpendRules:
		return checkSpendRules(d)
	case stepVerifyReset:
		return checkVerifyReset(d)
	case stepAdviceStandIn:
		return checkAdviceStandIn(d)
	case stepVelocity:
		return checkVelocity(d) // velocity.go; decided by the batch on the locked counters (velocityDecide)
	case stepNoHold:
		return checkNoHold(d)
	case stepRemote:
		return checkRemote(d)
	case stepFunds:
		return checkFunds(d)
	}
	return false
}

// next is what the batch does with a decision once its checks ran.
type next int

const (
	nextAnswer  next = iota // a decline: journal it and answer
	nextInquiry             // approved without a hold: DE54 from the funds account
	nextRemote              // ask the partner's remote URL, decide in a later batch
	nextHold                // hold the amount: the ledger checks funds
)

// decision is one request on its way through the checks. The fields below
// "out" are the checks' scratch values.
type decision struct {
	in   DecideInput
	v    Verifier
	pan  string  // the clear PAN, for the secrets' checks
	out  Outcome // what the checks decided
	next next    // StageBatch: what the batch does with it

	vel      []velUse // "velocity": the counters an approval is charged to (velocity.go)
	wrong    Reason   // a wrong expiry or CVC2 presented, counted by "verification tries"
	verified bool     // an expiry or CVC2 was presented and checked
}

// Pipeline is the authorisation decision, in order. Reading it top to
// bottom is reading DESIGN.md section 5.
var Pipeline = []Check{
	{Name: "card found", Stage: StageCard, Reasons: []Reason{InvalidCard, CardRemoved}, run: stepCardFound},
	{Name: "card program", Stage: StageCard, Reasons: []Reason{SystemError}, run: stepCardProgram},
	{Name: "hold reference", Stage: StageCard, Reasons: []Reason{Approved, NotPermitted, FormatError}, run: stepHoldReference},
	{Name: "card locks", Stage: StageCard, Reasons: []Reason{CardLost, CardStolen, PendingQuery, CardConsolidation, CardInactive,
		PINTriesExceeded, SuspectedFraud, CardReplaced, SystemError}, run: stepLocks},
	{Name: "lifecycle", Stage: StageCard, Reasons: []Reason{CardNotActive, SystemError}, run: stepLifecycle},
	{Name: "expiry", Stage: StageCard, Reasons: []Reason{ExpiredCard}, run: stepExpiry},
	{Name: "cvc2", Stage: StageCard, Reasons: []Reason{CVC2Failed}, run: stepCVC2},
	{Name: "verification tries", Stage: StageCard, Reasons: []Reason{ExpiredCard, CVC2Failed, SuspectedFraud}, run: stepVerifyTries},
	{Name: "pin", Stage: StageCard, Reasons: []Reason{IncorrectPIN, PINTriesExceeded, FormatError, SystemError}, run: stepPIN},
	{Name: "processing code", Stage: StageCard, Reasons: []Reason{NotPermitted}, run: stepProcessing},
	{Name: "currency", Stage: StageCard, Reasons: []Reason{Approved, NotPermitted, FormatError}, run: stepCurrency},
	{Name: "spend rules", Stage: StageCard, Reasons: []Reason{MCCNotPermitted, CountryNotPermitted, ChannelNotPermitted, ExceedsAmountLimit}, run: stepSpendRules},
	{Name: "verification reset", Stage: StageCard, run: stepVerifyReset},

	{Name: "advice stand-in", Stage: StageBatch, Always: true, Reasons: []Reason{Approved}, run: stepAdviceStandIn},
	{Name: "velocity", Stage: StageBatch, Reasons: []Reason{ExceedsAmountLimit, ExceedsCountLimit}, run: stepVelocity},
	{Name: "no hold: inquiry, refund authorisation", Stage: StageBatch, Reasons: []Reason{Approved}, run: stepNoHold},
	{Name: "partner remote decision", Stage: StageBatch, Reasons: []Reason{Approved, DoNotHonour, IssuerUnavailable}, run: stepRemote},
	{Name: "funds and holds", Stage: StageBatch, Reasons: []Reason{Approved, PartialApproved, InsufficientFunds,
		InsufficientPartnerFunds, NotPermitted, IssuerUnavailable}, run: stepFunds},
}

var (
	cardChecks  = stageChecks(StageCard)
	batchChecks = stageChecks(StageBatch)
)

func stageChecks(s Stage) []Check {
	var cs []Check
	for _, c := range Pipeline {
		if c.Stage == s {
			cs = append(cs, c)
		}
	}
	return cs
}

// runChecks runs cs on d in order until one ends the stage; after a
// decline only the checks marked Always run.
func runChecks(cs []Check, d *decision) {
	for i := range cs {
		if d.declined() && !cs[i].Always {
			return
		}
		if cs[i].run.apply(d) {
			return
		}
	}
}

// declined reports whether a check answered with anything but an approval.
func (d *decision) declined() bool { return d.out.Reason != "" && d.out.Reason != Approved }

func (d *decision) decline(r Reason) bool {
	d.out.Reason = r
	return true
}

func (d *decision) fail(err error) bool {
	d.out.Reason, d.out.Err = SystemError, err
	return true
}

func checkCardFound(d *decision) bool {
	card := d.in.Card
	if card == nil {
		return d.decline(InvalidCard)
	}
	d.out.PINTries, d.out.VerifyTries = card.PINTries, card.VerifyTries
	if card.State == StateRemoved {
		return d.decline(CardRemoved)
	}
	return false
}

func checkCardProgram(d *decision) bool {
	card, prog := d.in.Card, d.in.Program
	if prog == nil || (prog.ID != 0 && card.ProgramID != 0 && prog.ID != card.ProgramID) {
		return d.fail(fmt.Errorf("decide: card %d: program missing or not the card's", card.ID))
	}
	return false
}

// checkHoldReference ends the card checks of a completion or reversal:
// they refer to an earlier hold, which the ledger resolves whatever the
// card's state is now; the outcome carries the billing amount.
func checkHoldReference(d *decision) bool {
	if !isHoldClass(d.in.Req.Class) {
		return false
	}
	d.out = billing(d.out, d.in.Req, d.in.Program)
	return true
}

func checkLocks(d *decision) bool {
	card := d.in.Card
	if card.LockCode == LockNone {
		return false
	}
	if r := card.LockCode.Reason(); r != "" {
		return d.decline(r)
	}
	return d.fail(fmt.Errorf("decide: card %d: unknown lock code %d", card.ID, card.LockCode))
}

func checkLifecycle(d *decision) bool {
	switch card := d.in.Card; card.State {
	case StateActive:
		return false
	case StateOrdered, StateInactive:
		return d.decline(CardNotActive)
	default:
		return d.fail(fmt.Errorf("decide: card %d: unknown state %q", card.ID, card.State))
	}
}

// checkExpiry declines a card whose own expiry is past; a presented expiry
// that is not the card's is a wrong one, counted by "verification tries".
func checkExpiry(d *decision) bool {
	card, req := d.in.Card, d.in.Req
	if !ExpiryOK(card.Expiry, d.in.Now) {
		return d.decline(ExpiredCard)
	}
	if req.Expiry != "" && req.Expiry != card.Expiry {
		d.wrong = ExpiredCard
	}
	return false
}

// checkCVC2 notes a wrong CVC2 (not checked on advices: the scheme stood
// in, and not after a wrong expiry).
func checkCVC2(d *decision) bool {
	card, req := d.in.Card, d.in.Req
	advice := req.Class == ClassAdvice
	if d.wrong == "" && req.CVC2 != "" && !advice && !d.v.CVC2OK(card, d.pan, card.Expiry, req.CVC2) {
		d.wrong = CVC2Failed
	}
	d.verified = d.wrong == "" && (req.Expiry != "" || req.CVC2 != "" && !advice)
	return false
}

// checkVerifyTries answers a wrong expiry or CVC2 and counts it: the
// program's Nth in a row (default 5) answers SuspectedFraud, which locks
// the card with code 7 (cardChangeOf). An advice's is answered, not counted.
func checkVerifyTries(d *decision) bool {
	if d.wrong == "" {
		return false
	}
	if d.in.Req.Class == ClassAdvice {
		return d.decline(d.wrong)
	}
	d.out.VerifyTries = d.in.Card.VerifyTries + 1
	if d.out.VerifyTries >= verifyMaxTries(d.in.Program) {
		return d.decline(SuspectedFraud)
	}
	return d.decline(d.wrong)
}

// checkPIN verifies a presented PIN block (not on advices): a wrong one
// counts, the third in a row locks the card from outside with code 6; a
// right one resets the count.
func checkPIN(d *decision) bool {
	card, req := d.in.Card, d.in.Req
	if len(req.PINBlock) == 0 || req.Class == ClassAdvice {
		return false
	}
	ok, err := d.v.PINOK(card, d.pan, req.ZoneKey, req.PINBlock)
	switch {
	case errors.Is(err, ErrPINBlock):
		// Not the cardholder's mistake (usually a zone key mismatch):
		// decline, but do not count a try.
		d.out.Err = err
		return d.decline(FormatError)
	case err != nil:
		return d.fail(err)
	case !ok:
		d.out.PINTries = card.PINTries + 1
		if d.out.PINTries >= MaxPINTries {
			d.out.LockOutside = true
			return d.decline(PINTriesExceeded)
		}
		return d.decline(IncorrectPIN)
	}
	d.out.PINTries = 0
	return false
}

func checkProcessing(d *decision) bool {
	if !ProcessingAllowed(d.in.Card.Type, d.in.Req.ProcessingCode) {
		return d.decline(NotPermitted)
	}
	return false
}

// checkCurrency fills the hold in the program's currency (billing).
func checkCurrency(d *decision) bool {
	d.out = billing(d.out, d.in.Req, d.in.Program)
	return false
}

// checkSpendRules applies the program's, the balance's and the card's
// spend rules (spendrules.go) to purchases and cash; advices are not
// refused (the scheme stood in), refunds and inquiries move no money out.
func checkSpendRules(d *decision) bool {
	req := d.in.Req
	if req.Class == ClassAdvice || (req.ProcessingCode != ProcPurchase && req.ProcessingCode != ProcCash) {
		return false
	}
	if r := d.in.Program.SpendRules.refuse(d.in.Card, req, d.out.HoldAmount); r != "" {
		return d.decline(r)
	}
	return false
}

// checkVerifyReset: a right expiry or CVC2 on an approval resets the
// card's wrong-verification count.
func checkVerifyReset(d *decision) bool {
	if d.out.Reason == Approved && d.verified {
		d.out.VerifyTries = 0
	}
	return false
}

// checkAdviceStandIn approves an advice the card checks declined: the
// scheme stood in and approved, the money is spent whatever the card's
// state now, so the advice is held all the same (unless the card is
// removed or the message unreadable).
func checkAdviceStandIn(d *decision) bool {
	r := d.out.Reason
	if d.in.Req.Class != ClassAdvice || r == Approved || r == CardRemoved || r == FormatError {
		return false
	}
	if b := billing(Outcome{}, d.in.Req, d.in.Program); b.Reason == Approved {
		d.out.HoldAmount, d.out.FX, d.out.Reason = b.HoldAmount, b.FX, Approved
	}
	return false
}

// checkNoHold answers a balance inquiry, or a request that holds nothing
// (a refund authorisation: its credit comes with its clearing), with the
// available balance and no money moved. A financial refund (x200, code 20)
// never reaches the batch: Authorize sends it to refund(), which caps its
// credit (DESIGN section 6).
func checkNoHold(d *decision) bool {
	req := d.in.Req
	if req.ProcessingCode == ProcBalanceInquiry || d.out.HoldAmount == 0 && req.Class != ClassAdvice {
		d.next = nextInquiry
		return true
	}
	return false
}

// checkRemote sends an authorisation of a partner-deposit program with a
// remote URL to the partner (asked before funds, outside the batch's
// transaction; remote.go decides, with the program's stand-in rule).
func checkRemote(d *decision) bool {
	p := d.in.Program
	if p.Funding == FundingPartnerDeposit && p.RemoteURL != "" && d.in.Req.Class != ClassAdvice {
		d.next = nextRemote
		return true
	}
	return false
}

// checkFunds holds the amount: ledger.HoldBatch checks the user balance
// (where we hold it) and the partner credit/deposit balance, and may hold
// less when the terminal accepts a partial approval (applyHoldResult).
func checkFunds(d *decision) bool {
	d.next = nextHold
	return true
}
