package cardhost

import "time"

// Function codes (the CMF's DE24; iso87 maps its DE48 tags onto them) that
// change what the issuer does with a request.
const (
	FuncPartialSupported       = "181" // the terminal accepts a partial approval
	FuncPartialSupportedNoCash = "185" // the same, not for cashback
	FuncIncremental            = "187" // raise the hold of the authorisation DE56/DE90 names
	FuncCompletionNotLast      = "280" // a completion that is not the last (CMF private range)
)

// PartialAccepted reports whether the terminal accepts a partial approval.
func (r *AuthRequest) PartialAccepted() bool {
	return (r.FunctionCode == FuncPartialSupported || r.FunctionCode == FuncPartialSupportedNoCash) &&
		(r.Class == ClassAuthorization || r.Class == ClassFinancial) && r.ProcessingCode != ProcRefund
}

// Approval reports whether reason approves (wholly or partly).
func (r Reason) Approval() bool { return r == Approved || r == PartialApproved }

// MessageClass is what an ISO 8583 request asks the issuer to do,
// independent of profile (x100 authorisation, x200 financial, ...).
type MessageClass int

const (
	ClassAuthorization  MessageClass = iota + 1 // x100: reserve funds (hold)
	ClassFinancial                              // x200: authorise and capture at once
	ClassAdvice                                 // x120: stand-in by the scheme, recorded without a funds check
	ClassCompletion                             // x220: capture a hold for its final amount
	ClassReversal                               // x400: release a hold fully or to the replacement amount
	ClassReversalAdvice                         // x420: same as reversal, as an advice
)

// Processing codes (DE3 positions 1-2) the issuer knows.
const (
	ProcPurchase       = "00"
	ProcCash           = "01"
	ProcRefund         = "20"
	ProcBalanceInquiry = "30"
)

// AuthRequest is one card transaction as the switch hands it over, already
// decoded from the wire. Amounts are minor units; currencies are ISO 4217
// numeric codes as on the wire. Secrets (PAN, CVC2, PINBlock, Track2) must
// never be logged: use MaskPAN.
type AuthRequest struct {
	Class   MessageClass
	Profile string // "iso2003" or "iso87", for the journal
	MTI     string

	PAN            string
	Expiry         string // YYMM from DE14 or track 2; empty when absent
	Track2         bool   // expiry came from track 2 (DE35)
	CVC2           string // iso87 DE48 tag 92, iso2003 DE49.2; empty when absent
	PINBlock       []byte // DE52, 8 bytes, ISO 9564 format 0 under the zone key; nil when absent
	ZoneKey        string // name of the connection's zone PIN key
	ProcessingCode string // DE3 positions 1-2

	Amount          int64  // DE4
	Currency        string // DE49 (iso2003: inside DE4)
	BillingAmount   int64  // DE6; zero when absent
	BillingCurrency string // DE51 (iso2003: inside DE6); empty when absent

	STAN             string // DE11
	TransmissionTime string // DE7 MMDDhhmmss
	LocalTime        string // DE12
	RRN              string // DE37
	AcquirerID       string // DE32
	TerminalID       string // DE41
	MerchantID       string // DE42
	MerchantName     string // DE43
	MerchantCountry  string // ISO 3166 alpha-3, alpha-2 or numeric, as sent (upper case): iso2003 DE43.7, iso87 DE43 positions 38-40; empty when absent
	MCC              string // DE18
	POSEntryMode     string // DE22 (iso2003: the 16-byte POS data code in hex)
	FunctionCode     string // the CMF function code: iso2003 DE24; iso87 from DE48 tags 93-95 (181/185/187/280), else empty

	// Original identifies the authorisation a completion or reversal
	// refers to (DE90); nil when absent (then RRN+STAN+acquirer).
	Original *OriginalData
	// ReplacementAmount is DE95's actual amount for a partial reversal or
	// completion; nil when absent.
	ReplacementAmount *int64

	Received time.Time
}

// OriginalData is DE90 (iso87) or the CMF's DE56/DE90 (iso2003): the
// original message's MTI, STAN, date-time and acquirer. iso87 carries the
// original's transmission date-time (DE7); the CMF carries its local
// date-time (DE12) instead, so exactly one of TransmissionTime and
// LocalTime is set and the original is looked up by that one.
type OriginalData struct {
	MTI              string
	STAN             string
	TransmissionTime string // the original's DE7 (iso87)
	LocalTime        string // the original's DE12 (iso2003)
	AcquirerID       string
}

// Reason is why an authorisation was answered the way it was. Each reason
// maps to an action code per profile in the table in specs/ (actioncodes.json).
// Several reasons share a wire code (1016, 1011); the journal keeps the reason.
type Reason string

const (
	Approved                 Reason = "approved"
	PartialApproved          Reason = "partial_approved"           // less than asked, the terminal accepts it (Decision.ApprovedAmount)
	InvalidCard              Reason = "invalid_card"               // no card with this PAN
	CardLost                 Reason = "card_lost"                  // lock code 1
	CardStolen               Reason = "card_stolen"                // lock code 2
	PendingQuery             Reason = "pending_query"              // lock code 3
	CardConsolidation        Reason = "card_consolidation"         // lock code 4
	CardInactive             Reason = "card_inactive"              // lock code 5
	PINTriesExceeded         Reason = "pin_tries_exceeded"         // lock code 6, and the third wrong PIN
	SuspectedFraud           Reason = "suspected_fraud"            // lock code 7
	CardReplaced             Reason = "card_replaced"              // lock code 8
	CardRemoved              Reason = "card_removed"               // removed: answers as unknown
	CardNotActive            Reason = "card_not_active"            // physical card ordered, not activated
	ExpiredCard              Reason = "expired_card"               // expiry past or not the card's
	CVC2Failed               Reason = "cvc2_failed"                // CVC2 present and wrong
	IncorrectPIN             Reason = "incorrect_pin"              // PIN present and wrong
	NotPermitted             Reason = "not_permitted"              // processing code not allowed for the card type, or currency not convertible
	InsufficientFunds        Reason = "insufficient_funds"         // user balance short
	InsufficientPartnerFunds Reason = "insufficient_partner_funds" // partner credit/deposit short
	DoNotHonour              Reason = "do_not_honour"              // partner remote decision declined
	IssuerUnavailable        Reason = "issuer_unavailable"         // ledger or partner unreachable in budget
	FormatError              Reason = "format_error"               // message could not be parsed
	SystemError              Reason = "system_error"               // internal error, recovered panic
)

// Decision is the issuer's answer to one AuthRequest.
type Decision struct {
	Reason       Reason
	ApprovalCode string // DE38, six characters, set when approved
	// Available is the available balance (minor units, Currency) reported in
	// DE54 when approved or declined for funds; HasAvailable says whether to send it.
	Available    int64
	Currency     string // ISO 4217 numeric
	HasAvailable bool
	HoldID       int64 // the hold placed, when any
	// ApprovedAmount is a partial approval's amount in the request's DE4
	// currency (the switch answers it in DE4, and DE6 in proportion); 0
	// when the whole amount was approved.
	ApprovedAmount int64
	Duplicate      bool // the answer replays an earlier one
}
