package cardhost

import "time"

// CardType is the kind of card.
type CardType string

const (
	Virtual      CardType = "virtual"
	Physical     CardType = "physical"
	DigitalFirst CardType = "digital_first" // plastic copy of a virtual card, Digital First programs only
)

// CardState is where a card is in its lifecycle. Locks are separate (LockCode).
type CardState string

const (
	StateActive   CardState = "active"   // usable: virtual at creation, physical after activation
	StateOrdered  CardState = "ordered"  // physical ordered, personalisation not confirmed ("link") yet
	StateInactive CardState = "inactive" // physical linked and visible to the user, awaiting activation
	StateRemoved  CardState = "removed"  // irreversibly removed; answers as unknown
)

// LockCode is a reason code of the reference document's lock table; 0 means
// not locked.
type LockCode int

const (
	LockNone              LockCode = 0
	LockLost              LockCode = 1
	LockStolen            LockCode = 2
	LockPendingQuery      LockCode = 3
	LockCardConsolidation LockCode = 4
	LockCardInactive      LockCode = 5
	LockPINTriesExceeded  LockCode = 6
	LockSuspectedFraud    LockCode = 7
	LockCardReplaced      LockCode = 8
)

// Valid reports whether c is one of the codes 1-8.
func (c LockCode) Valid() bool { return c >= LockLost && c <= LockCardReplaced }

// Irreversible reports whether a lock with this code can never be unlocked
// (codes 1, 2, 5 and 8).
func (c LockCode) Irreversible() bool {
	return c == LockLost || c == LockStolen || c == LockCardInactive || c == LockCardReplaced
}

// Reason is the decline reason a card locked with this code answers with.
func (c LockCode) Reason() Reason {
	switch c {
	case LockLost:
		return CardLost
	case LockStolen:
		return CardStolen
	case LockPendingQuery:
		return PendingQuery
	case LockCardConsolidation:
		return CardConsolidation
	case LockCardInactive:
		return CardInactive
	case LockPINTriesExceeded:
		return PINTriesExceeded
	case LockSuspectedFraud:
		return SuspectedFraud
	case LockCardReplaced:
		return CardReplaced
	}
	return ""
}

// Card is a card as the issuer sees it. It never holds the clear PAN, CVC2
// or PIN.
type Card struct {
	ID            int64
	ProgramID     int64
	UserID        int64
	AccountID     int64 // the user balance it belongs to, for life
	Type          CardType
	State         CardState
	LockCode      LockCode
	Expiry        string // YYMM
	PANFirst6     string
	PANLast4      string
	CVCGeneration int    // bumped by reset CVV; part of the CVC2 key derivation
	PVV           string // Visa PVV (4 digits) of the PIN; empty when no PIN is set
	PINTries      int    // wrong PINs in a row
	VerifyTries   int    // wrong CVC2 or expiry in a row
	PrintedFrom   int64  // digital-first: the virtual card it copies; 0 otherwise
	Version       int64  // bumped by every change of state, lock, PIN or CVC generation
	CreatedAt     time.Time
}

// MaskedPAN is the PAN as logs and admin views show it: first6…last4.
func (c *Card) MaskedPAN() string { return c.PANFirst6 + "…" + c.PANLast4 }

// FundingModel says who holds user balances in a program.
type FundingModel string

const (
	// FundingPartnerCredit: we hold user balances; authorisations must fit
	// the user balance and the program's partner credit balance.
	FundingPartnerCredit FundingModel = "partner_credit"
	// FundingPartnerDeposit: the partner holds user balances and decides at
	// its remote URL; authorisations must fit the partner deposit balance.
	FundingPartnerDeposit FundingModel = "partner_deposit"
)

// Program is a partner's card programme.
type Program struct {
	ID               int64
	PartnerID        int64
	Name             string
	BINLow, BINHigh  string // inclusive range of PAN prefixes of equal length (6-11 digits)
	Currency         string // ISO 4217 alphabetic, e.g. EUR
	CurrencyNumeric  string // ISO 4217 numeric, e.g. 978
	CardTypes        []CardType
	DigitalFirst     bool
	Funding          FundingModel
	RemoteURL        string        // partner decision endpoint (partner_deposit programs)
	RemoteTimeout    time.Duration // budget for the remote decision
	StandInApprove   bool          // decision when the remote URL does not answer in time
	PartnerAccountID int64         // the program's partner credit/deposit account
	CreatedAt        time.Time
	// RemoteSecret is set only in CreateProgram's answer: the secret of
	// the remote decision, shown once.
	RemoteSecret string
	ProgramLimits
	MCCRules []programMCCRule // overrides of DefaultMCCRules (program_mcc_rules)
	// SpendRules are the active spend rules on the program, its balances
	// and its cards (spendrules.go), loaded with the cached program.
	SpendRules spendRuleSet
}

// ProgramLimits are a program's money-safety settings (migration 012,
// defaults documented in docs/ledger.md, "Exceptions").
type ProgramLimits struct {
	// BlindRefundLimit is what a refund matched to no purchase may credit
	// (minor units; default 0): the rest waits for an Admin.
	BlindRefundLimit int64
	// StandInLimit is how far below the available balance a stand-in
	// advice may go (minor units; default 0): the rest is an exception.
	StandInLimit int64
	// VerifyMaxTries is the wrong CVC2 or expiry in a row that locks the
	// card with code 7 (default 5).
	VerifyMaxTries int
	// PendingReversalWindow is how long a reversal that overtook its
	// original waits for it (default 24 h).
	PendingReversalWindow time.Duration
}

// Allows reports whether the program issues cards of type t.
func (p *Program) Allows(t CardType) bool {
	for _, ct := range p.CardTypes {
		if ct == t {
			return true
		}
	}
	return false
}
