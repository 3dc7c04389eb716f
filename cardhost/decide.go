package cardhost

import (
	"errors"
	"time"
)

// DecideInput is everything the authorisation decision looks at. Decide
// reads no database and no clock: the caller loads the card and program and
// passes the time.
type DecideInput struct {
	Card    *Card    // nil: no card with this PAN
	Program *Program // the card's program; required when Card is set
	Req     *AuthRequest
	Now     time.Time
	// PAN is the clear PAN from the request, for the expiry, CVC2 and PIN
	// checks; empty means Req.PAN.
	PAN string
}

// Verifier checks the card secrets a request presents. The host's crypto
// module implements it (crypto.go);
// tests use a stub.
type Verifier interface {
	// CVC2OK reports whether cvc2 is the card's CVC2 for pan and expiry.
	CVC2OK(card *Card, pan, expiry, cvc2 string) bool
	// PINOK reports whether the PIN block, encrypted under the named zone
	// key, carries the card's PIN. err is set only for a block that cannot
	// be checked (malformed, or an unknown zone key); it is not a wrong PIN.
	PINOK(card *Card, pan string, zoneKey string, block []byte) (ok bool, err error)
}

// Outcome is the result of Decide: the reason to answer with, the card's new
// wrong-PIN count and what to reserve when the card checks pass.
type Outcome struct {
	Reason Reason
	// PINTries is the card's wrong-PIN count after this request: +1 for a
	// wrong PIN, 0 after a right one, unchanged when no PIN was checked.
	// The caller persists it when it differs from Card.PINTries.
	PINTries int
	// LockOutside is set on the third wrong PIN in a row: lock the card
	// from outside with code 6 (LockPINTriesExceeded), who = system.
	LockOutside bool
	// VerifyTries is the card's wrong CVC2 or expiry count after this
	// request: +1 for a wrong one, 0 after a right one on an approval,
	// unchanged when neither was presented. The program's Nth in a row
	// answers SuspectedFraud and locks the card with code 7 by the system
	// (the caller persists it, recordCardChange).
	VerifyTries int
	// HoldAmount and HoldCurrency (ISO 4217 numeric, the program's) are
	// what to reserve, in the card balance's currency, when Reason is
	// Approved; the ledger then checks funds. Zero for refunds, balance
	// inquiries and zero-amount verifications.
	HoldAmount   int64
	HoldCurrency string
	// CreditAmount is what a financial refund (x200, processing code 20)
	// credits, in the program's currency, when Reason is Approved.
	CreditAmount int64
	// FX is set when the transaction currency (DE49) differs from the
	// billing currency and the hold comes from DE6/DE51.
	FX bool
	// Err explains a SystemError or FormatError outcome (for the log and
	// the journal). It never contains a PAN, CVC2, PIN or key.
	Err error
}

// Decide is the authorisation decision of DESIGN.md section 5, as far as it
// depends on the card, its program and the request: the StageCard checks
// of Pipeline (pipeline.go), in order, the first that declines deciding;
// funds, the partner's remote decision and availability are the batch's,
// the ledger's and the switch's.
//
// Advices (x120) skip CVC2 and PIN, which the scheme checked when it stood
// in, and spend rules. Completions and reversals refer to an earlier hold,
// which the ledger resolves whatever the card's state now is: for them only
// the card's presence is checked and the outcome carries the billing amount.
//
// Processing codes: 00 purchase, any card type; 01 cash, physical and
// digital-first only (a virtual card has no plastic for an ATM); 20 refund,
// any type, no hold; 30 balance inquiry, any type, no hold. Any other code
// is NotPermitted.
//
// Decide is a pure function and safe for concurrent use as long as v is.
func Decide(in DecideInput, v Verifier) Outcome {
	if in.Req == nil {
		return Outcome{Reason: SystemError, Err: errors.New("decide: no request")}
	}
	d := newDecision(in, v)
	runChecks(cardChecks, &d)
	return d.out
}

// newDecision starts in on its way through the checks.
func newDecision(in DecideInput, v Verifier) decision {
	d := decision{in: in, v: v, pan: in.PAN}
	if d.pan == "" {
		d.pan = in.Req.PAN
	}
	return d
}

// ProcessingAllowed reports whether a card of type t may do the transaction
// with processing code proc (DE3 positions 1-2).
func ProcessingAllowed(t CardType, proc string) bool {
	switch proc {
	case ProcPurchase, ProcRefund, ProcBalanceInquiry:
		return t == Virtual || t == Physical || t == DigitalFirst
	case ProcCash:
		return t == Physical || t == DigitalFirst
	}
	return false
}

// billing fills the hold of an outcome whose card checks passed: the amount
// in the program's currency, from DE4/DE49 when DE49 is the program's
// currency, else from DE6/DE51 when DE51 is (FX); with no rates configured
// any other pair is NotPermitted. Refunds and balance inquiries hold nothing.
func billing(out Outcome, req *AuthRequest, prog *Program) Outcome {
	out.HoldCurrency = prog.CurrencyNumeric
	if req.Amount < 0 || req.BillingAmount < 0 {
		out.Reason = FormatError
		out.Err = errors.New("decide: negative amount")
		return out
	}
	if req.ProcessingCode == ProcBalanceInquiry && !isHoldClass(req.Class) {
		out.Reason = Approved
		return out
	}
	var amount int64
	switch {
	case req.Currency == prog.CurrencyNumeric:
		amount = req.Amount
	case req.BillingCurrency != "" && req.BillingCurrency == prog.CurrencyNumeric:
		amount = req.BillingAmount
		out.FX = true
	default:
		out.Reason = NotPermitted
		return out
	}
	out.Reason = Approved
	if isHoldClass(req.Class) || (req.ProcessingCode != ProcRefund && req.ProcessingCode != ProcBalanceInquiry) {
		out.HoldAmount = amount
	}
	if req.ProcessingCode == ProcRefund && req.Class == ClassFinancial {
		out.CreditAmount = amount
	}
	return out
}

// isHoldClass reports whether class refers to an existing hold.
func isHoldClass(c MessageClass) bool {
	return c == ClassCompletion || c == ClassReversal || c == ClassReversalAdvice
}
