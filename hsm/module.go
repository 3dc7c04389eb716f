// Package hsm holds the issuer's card cryptography behind one interface,
// Module, so that a hardware security module can replace the software
// implementation: the PAN vault (AES-256-GCM) and PAN lookup (HMAC-SHA-256),
// CVC2 (Visa CVV under a 3DES CVK), PIN blocks (ISO 9564 format 0 under zone
// PIN keys) and PVV (Visa PVV under a 3DES PVK).
//
// Keys, the software implementation, reads its key material from the
// ANTACA_KEYS file; it also holds the JWE server key and the internal CA,
// which the API uses directly. No error or log of this package carries key
// material, a PAN, a CVC2 or a PIN.
package hsm

// Module is the card-cryptography command set, shaped after a payment HSM's
// (encrypt data, generate and verify CVV, verify and translate PIN, generate
// PVV). *Keys implements it in software; an adapter to a hardware module
// would implement the same methods. Implementations are safe for
// concurrent use.
type Module interface {
	// EncryptPAN encrypts a 12-19 digit PAN for storage; encrypting the
	// same PAN twice gives different bytes.
	EncryptPAN(pan string) ([]byte, error)
	// DecryptPAN reverses EncryptPAN; it fails with ErrPANCiphertext for
	// altered bytes or bytes made under another key.
	DecryptPAN(enc []byte) (string, error)
	// PANLookup returns a stable, non-reversible handle of pan by which the
	// database finds a card.
	PANLookup(pan string) []byte
	// CVC2 returns the CVC2 of a card of this CVC generation, or "" for
	// malformed input.
	CVC2(pan, expiry string, generation int) string
	// VerifyCVC2 reports, in constant time, whether cvc2 is that CVC2.
	VerifyCVC2(pan, expiry string, generation int, cvc2 string) bool
	// PVV returns the PIN verification value to store for pin.
	PVV(pan, pin string) (string, error)
	// VerifyPIN checks a PIN block encrypted under the named zone PIN key
	// against the card's PVV; err wraps ErrPINBlock or ErrUnknownZoneKey
	// when the block cannot be checked at all.
	VerifyPIN(zoneKey string, encBlock []byte, pan, pvv string) (ok bool, err error)
	// ZonePINBlock makes the format 0 PIN block an acquirer would send
	// under the named zone PIN key (test clients and the load generator).
	ZonePINBlock(zoneKey, pin, pan string) ([]byte, error)
}

var _ Module = (*Keys)(nil)
