package hsm

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/antaca/antaca/internal/decimal"
)

// PVKI is the PIN verification key index this issuer computes every PVV
// with. It is part of the PVV's input (the TSP), so changing it invalidates
// every stored PVV; a PVK rotation would introduce index 2 alongside.
const PVKI = 1

// ErrPINBlock is returned for a PIN block that does not decode as ISO 9564
// format 0 under the given PAN (wrong length, control nibble, PIN length,
// PIN digit or filler): a malformed block, typically a zone key mismatch,
// as opposed to a well-formed block carrying a wrong PIN.
var ErrPINBlock = errors.New("pin block malformed")

// ErrUnknownZoneKey is returned when a PIN block names a zone PIN key the
// key set does not hold.
var ErrUnknownZoneKey = errors.New("unknown zone pin key")

// ValidPIN reports whether pin is 4 to 12 decimal digits.
func ValidPIN(pin string) bool { return len(pin) >= 4 && len(pin) <= 12 && decimal.AllDigits(pin) }

// panField is the account number field of an ISO 9564 format 0 block:
// 0000 and the 12 rightmost PAN digits excluding the check digit.
func panField(pan string) ([8]byte, error) {
	var f [8]byte
	if len(pan) < 13 || len(pan) > 19 || !decimal.AllDigits(pan) {
		return f, errors.New("pan must be 13-19 digits")
	}
	digits := "0000" + pan[len(pan)-13:len(pan)-1]
	hex.Decode(f[:], []byte(digits)) // digits only: cannot fail
	return f, nil
}

// PINBlockFormat0 returns the clear ISO 9564-1 format 0 PIN block (8 bytes)
// of pin (4-12 digits) for pan: the PIN field 0, length, PIN digits, F
// filler, XORed with the account number field.
func PINBlockFormat0(pin, pan string) ([]byte, error) {
	if !ValidPIN(pin) {
		return nil, errors.New("pin block: pin must be 4-12 digits")
	}
	pf, err := panField(pan)
	if err != nil {
		return nil, fmt.Errorf("pin block: %w", err)
	}
	nibbles := make([]byte, 16)
	nibbles[0] = 0
	nibbles[1] = byte(len(pin))
	for i := 2; i < 16; i++ {
		if i-2 < len(pin) {
			nibbles[i] = pin[i-2] - '0'
		} else {
			nibbles[i] = 0xF
		}
	}
	block := make([]byte, 8)
	for i := range block {
		block[i] = (nibbles[2*i]<<4 | nibbles[2*i+1]) ^ pf[i]
	}
	return block, nil
}

// PINFromBlockFormat0 recovers the PIN from a clear ISO 9564 format 0 block
// for pan. It checks the whole structure (8 bytes, control nibble 0, PIN
// length 4-12, decimal PIN digits, F filler) and returns an error wrapping
// ErrPINBlock when any part is off; the error never contains the PIN.
func PINFromBlockFormat0(block []byte, pan string) (string, error) {
	if len(block) != 8 {
		return "", fmt.Errorf("%w: %d bytes, want 8", ErrPINBlock, len(block))
	}
	pf, err := panField(pan)
	if err != nil {
		return "", fmt.Errorf("pin block: %w", err)
	}
	var p [8]byte
	subtle.XORBytes(p[:], block, pf[:])
	nib := func(i int) byte {
		if i%2 == 0 {
			return p[i/2] >> 4
		}
		return p[i/2] & 0x0F
	}
	if nib(0) != 0 {
		return "", fmt.Errorf("%w: control nibble not 0", ErrPINBlock)
	}
	n := int(nib(1))
	if n < 4 || n > 12 {
		return "", fmt.Errorf("%w: pin length out of 4-12", ErrPINBlock)
	}
	pin := make([]byte, n)
	for i := range n {
		d := nib(2 + i)
		if d > 9 {
			return "", fmt.Errorf("%w: pin digit not decimal", ErrPINBlock)
		}
		pin[i] = '0' + d
	}
	for i := 2 + n; i < 16; i++ {
		if nib(i) != 0xF {
			return "", fmt.Errorf("%w: filler not F", ErrPINBlock)
		}
	}
	return string(pin), nil
}

// EncryptPINBlock encrypts a clear 8-byte PIN block under the double-length
// zone PIN key zpk with 3DES ECB.
func EncryptPINBlock(zpk, clear []byte) ([]byte, error) {
	blk, err := tdesBlock(zpk)
	if err != nil {
		return nil, fmt.Errorf("encrypt pin block: %w", err)
	}
	return ecb8(blk, clear, true)
}

// DecryptPINBlock decrypts an 8-byte PIN block encrypted under the zone PIN
// key zpk with 3DES ECB.
func DecryptPINBlock(zpk, enc []byte) ([]byte, error) {
	blk, err := tdesBlock(zpk)
	if err != nil {
		return nil, fmt.Errorf("decrypt pin block: %w", err)
	}
	return ecb8(blk, enc, false)
}

func ecb8(blk cipher.Block, in []byte, encrypt bool) ([]byte, error) {
	if len(in) != 8 {
		return nil, fmt.Errorf("%w: %d bytes, want 8", ErrPINBlock, len(in))
	}
	out := make([]byte, 8)
	if encrypt {
		blk.Encrypt(out, in)
	} else {
		blk.Decrypt(out, in)
	}
	return out, nil
}

// ComputePVV computes the Visa PIN verification value with the double-length
// key pvk: the transformed security parameter (TSP) is the 11 rightmost PAN
// digits excluding the check digit, the PVKI (one digit) and the first four
// PIN digits; it is 3DES-encrypted under pvk and decimalised like the CVV to
// four digits. Only the first four PIN digits take part (Visa's rule).
func ComputePVV(pvk []byte, pan string, pvki int, pin string) (string, error) {
	blk, err := tdesBlock(pvk)
	if err != nil {
		return "", fmt.Errorf("compute pvv: %w", err)
	}
	return computePVV(blk, pan, pvki, pin)
}

func computePVV(pvk cipher.Block, pan string, pvki int, pin string) (string, error) {
	if len(pan) < 12 || len(pan) > 19 || !decimal.AllDigits(pan) {
		return "", errors.New("compute pvv: pan must be 12-19 digits")
	}
	if pvki < 0 || pvki > 9 {
		return "", errors.New("compute pvv: pvki must be one digit")
	}
	if !ValidPIN(pin) {
		return "", errors.New("compute pvv: pin must be 4-12 digits")
	}
	var tsp [16]byte
	copy(tsp[:11], pan[len(pan)-12:len(pan)-1])
	tsp[11] = '0' + byte(pvki)
	copy(tsp[12:], pin[:4])
	var b [8]byte
	hex.Decode(b[:], tsp[:]) // digits only: cannot fail
	pvk.Encrypt(b[:], b[:])
	return decimalise(b[:], 4), nil
}

func (k *Keys) pvkBlock() (cipher.Block, error) {
	if k.c != nil {
		return k.c.pvk, nil
	}
	return tdesBlock(k.PVK)
}

func (k *Keys) zoneBlock(name string) (cipher.Block, error) {
	if k.c != nil {
		if b, ok := k.c.zones[name]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("%w %q", ErrUnknownZoneKey, name)
	}
	zk, ok := k.ZonePINKeys[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownZoneKey, name)
	}
	return tdesBlock(zk)
}

// PVV returns the PVV to store for pin on the card with this pan, under the
// PVK and PVKI. Set-PIN calls it; the PIN itself is never stored.
func (k *Keys) PVV(pan, pin string) (string, error) {
	blk, err := k.pvkBlock()
	if err != nil {
		return "", fmt.Errorf("pvv: %w", err)
	}
	return computePVV(blk, pan, PVKI, pin)
}

// ZonePINBlock returns pin as an ISO 9564 format 0 block for pan encrypted
// under the named zone PIN key, as an acquirer sends it in DE52. Test
// clients and the load generator use it.
func (k *Keys) ZonePINBlock(zoneKey, pin, pan string) ([]byte, error) {
	blk, err := k.zoneBlock(zoneKey)
	if err != nil {
		return nil, fmt.Errorf("zone pin block: %w", err)
	}
	clear, err := PINBlockFormat0(pin, pan)
	if err != nil {
		return nil, fmt.Errorf("zone pin block: %w", err)
	}
	return ecb8(blk, clear, true)
}

// VerifyPIN decrypts encBlock under the named zone PIN key, decodes it as
// ISO 9564 format 0 for pan and checks the PIN against pvv. ok is false for
// a well-formed block with a wrong PIN, and for a card without a PVV. err
// is set only when the block cannot be checked at all: it wraps
// ErrUnknownZoneKey or ErrPINBlock (a malformed block, which must not count
// as a wrong PIN).
func (k *Keys) VerifyPIN(zoneKey string, encBlock []byte, pan, pvv string) (ok bool, err error) {
	zb, err := k.zoneBlock(zoneKey)
	if err != nil {
		return false, fmt.Errorf("verify pin: %w", err)
	}
	clear, err := ecb8(zb, encBlock, false)
	if err != nil {
		return false, fmt.Errorf("verify pin: %w", err)
	}
	pin, err := PINFromBlockFormat0(clear, pan)
	if err != nil {
		if !errors.Is(err, ErrPINBlock) {
			err = fmt.Errorf("%w: %w", ErrPINBlock, err) // a PAN unfit for format 0
		}
		return false, fmt.Errorf("verify pin: %w", err)
	}
	if len(pvv) != 4 {
		return false, nil
	}
	want, err := k.PVV(pan, pin)
	if err != nil {
		return false, fmt.Errorf("verify pin: %w", err)
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(pvv)) == 1, nil
}
