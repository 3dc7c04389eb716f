package cardhost

import "github.com/antaca/antaca/hsm"

// Zone PIN key names: one per ISO 8583 listener (DESIGN.md section 3).
const (
	ZoneISO2003 = hsm.ZoneISO2003
	ZoneISO87   = hsm.ZoneISO87
)

// ErrPINBlock and ErrUnknownZoneKey are the crypto module's: a PIN block
// that cannot be checked (a format error, not a wrong PIN) and a zone PIN
// key the module does not hold (a system error).
var (
	ErrPINBlock       = hsm.ErrPINBlock
	ErrUnknownZoneKey = hsm.ErrUnknownZoneKey
)

// ValidPIN reports whether pin is 4 to 12 decimal digits, the PINs a card
// may be given.
func ValidPIN(pin string) bool { return hsm.ValidPIN(pin) }

// MaxPINTries is the number of wrong PINs in a row that locks a card from
// outside with lock code 6.
const MaxPINTries = 3

// cardKeys is the host's card cryptography: the crypto module (the keys
// file in software, or an HSM) with the card-level checks Decide asks of a
// Verifier. It is safe for concurrent use when the module is.
type cardKeys struct{ hsm.Module }

var _ Verifier = cardKeys{}

// CVC2OK reports whether cvc2 is the CVC2 of card, whose clear PAN is pan,
// for the given expiry (YYMM), under the card's CVC generation.
func (k cardKeys) CVC2OK(card *Card, pan, expiry, cvc2 string) bool {
	return k.VerifyCVC2(pan, expiry, card.CVCGeneration, cvc2)
}

// PINOK checks the PIN block, encrypted under the named zone PIN key,
// against the card's PVV.
func (k cardKeys) PINOK(card *Card, pan, zoneKey string, block []byte) (bool, error) {
	return k.VerifyPIN(zoneKey, block, pan, card.PVV)
}
