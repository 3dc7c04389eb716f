package ledger

// The statements of a hold batch, for the plan checks of the external
// tests.
var (
	InsertHolds         = insertHolds
	UpdateHeld          = updateHeld
	UpdateHeldIfAllowed = updateHeldIfAllowed
	CaptureHolds        = captureHolds
	ReleaseHolds        = releaseHolds
)

// The card store's and the access store's reads by key, for the plan
// checks of the external tests: name, statement, parameter types. Two are
// left out because their generic plans on analysed-empty tables do read
// an index whole and filter it by a join: quotaCount (cards of the last
// hour of every partner, joined to programs) and selectSession (admin_users
// for the left join); both are as they were before the store seam.
var StoreReads = [][3]string{
	{"card", selectCard, "bigint"},
	{"card_by_lookup", selectCardByLookup, "bytea"},
	{"cards_of_account", selectCardsOfAcct, "bigint"},
	{"card_events", selectCardEvents, "bigint"},
	{"system_locked", selectSystemLocked, "bigint"},
	{"program", selectProgram, "bigint"},
	{"user_by_id", selectUser, "bigint"},
	{"admin_login", selectAdminLogin, "text, text"},
	{"certificate", selectCertificate, "text"},
	{"idempotency_key", selectIdempotencyKey, "text, text"},
}

// The card host's hot-path statements, for the plan checks of the
// external tests.
var (
	JournalProbe = journalProbe
	MoneyProbe   = moneyProbe
	PendingProbe = pendingProbe
	CardsLock    = cardsLock(&cardScan{}).Statement()
	AccountsLock = lockRows{Users: `SELECT unnest($1::bigint[])`}.Statement()
)
