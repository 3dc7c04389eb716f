package ledger

// Bounds every amount and every balance obeys (DESIGN section 6), in minor
// units of the amount's currency. They are system-wide ceilings; a program
// may set lower limits of its own. They are chosen so that every amount and
// every balance fits the narrowest wire field that carries it: ISO 8583
// amounts are n12 (DE4, DE6, and the amount inside a DE54 entry), so a
// balance never needs more than 12 digits and DE54 can never overflow
// (docs/ledger.md, "Bounds").
const (
	// MaxAmount is the largest amount of one operation (a reload, an
	// authorisation, a capture, a refund): 12 digits.
	MaxAmount int64 = 999_999_999_999
	// MaxBalance is the largest balance any user or partner account may
	// reach, and the most negative (-MaxBalance) an advice may push it to.
	MaxBalance int64 = 999_999_999_999
)
