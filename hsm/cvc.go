package hsm

import (
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/antaca/antaca/internal/decimal"
)

// ServiceCodeCVC2 is the service code the CVC2/CVV2 printed on a card is
// computed with.
const ServiceCodeCVC2 = "000"

// ComputeCVV computes a Visa CVV (CVC for Mastercard) with the double-length
// key cvk (CVK A | CVK B): the digits of pan, expiry (YYMM) and serviceCode
// are right-padded with zeros to 32 hex digits and split into blocks B1 and
// B2; B1 is DES-encrypted under CVK A, XORed with B2 and 3DES-encrypted under
// A|B; the result is decimalised (its decimal digits left to right, then its
// hex letters A-F less ten) and the first three digits are the CVV. The
// CVC2/CVV2 is the same with service code "000".
func ComputeCVV(cvk []byte, pan, expiry, serviceCode string) (string, error) {
	if len(cvk) != 16 {
		return "", fmt.Errorf("compute cvv: cvk %d bytes, want 16", len(cvk))
	}
	kA, err := des.NewCipher(cvk[:8])
	if err != nil {
		return "", fmt.Errorf("compute cvv: %w", err)
	}
	kAB, err := tdesBlock(cvk)
	if err != nil {
		return "", fmt.Errorf("compute cvv: %w", err)
	}
	return computeCVV(kA, kAB, pan, expiry, serviceCode)
}

// computeCVV is ComputeCVV with its key schedules prepared.
func computeCVV(kA, kAB cipher.Block, pan, expiry, serviceCode string) (string, error) {
	if len(pan) < 12 || len(pan) > 19 || !decimal.AllDigits(pan) {
		return "", errors.New("compute cvv: pan must be 12-19 digits")
	}
	if len(expiry) != 4 || !decimal.AllDigits(expiry) {
		return "", errors.New("compute cvv: expiry must be 4 digits")
	}
	if len(serviceCode) != 3 || !decimal.AllDigits(serviceCode) {
		return "", errors.New("compute cvv: service code must be 3 digits")
	}
	var digits [32]byte
	for i := range digits {
		digits[i] = '0'
	}
	n := copy(digits[:], pan)
	n += copy(digits[n:], expiry)
	copy(digits[n:], serviceCode)
	var data [16]byte
	if _, err := hex.Decode(data[:], digits[:]); err != nil {
		return "", fmt.Errorf("compute cvv: %w", err)
	}
	var r [8]byte
	kA.Encrypt(r[:], data[:8])
	subtle.XORBytes(r[:], r[:], data[8:])
	kAB.Encrypt(r[:], r[:])
	return decimalise(r[:], 3), nil
}

// decimalise takes n digits from the 16 nibbles of b: first the decimal
// nibbles left to right, then, if too few, the nibbles A-F less ten, left to
// right (the Visa CVV and PVV decimalisation).
func decimalise(b []byte, n int) string {
	out := make([]byte, 0, n)
	for pass := 0; pass < 2 && len(out) < n; pass++ {
		for i := 0; i < 2*len(b) && len(out) < n; i++ {
			nib := b[i/2] >> 4
			if i%2 == 1 {
				nib = b[i/2] & 0x0F
			}
			switch {
			case pass == 0 && nib <= 9:
				out = append(out, '0'+nib)
			case pass == 1 && nib > 9:
				out = append(out, '0'+nib-10)
			}
		}
	}
	return string(out)
}

// CardCVK returns the CVK of a card's CVC generation. Generation 0 is the
// CVK itself. A higher generation g derives a fresh double-length key from
// the CVK, so that "reset CVV" (which bumps the generation) gives the card a
// new CVC2 without changing its PAN or expiry:
//
//	D_i = 'C' 'V' i 0x00 || g as 4-byte big-endian   (i = 0 for the left half, 1 for the right)
//	K_i = 3DES-encrypt(CVK, D_i), with odd parity set on every byte
//	key = K_0 || K_1
//
// The derivation is one-way for anyone without the CVK, and generations
// never collide because the blocks are distinct under one permutation.
func (k *Keys) CardCVK(generation int) []byte {
	if generation == 0 {
		return append([]byte(nil), k.CVK...)
	}
	blk, err := k.cvkBlock()
	if err != nil {
		return nil
	}
	return deriveCardCVK(blk, generation)
}

func deriveCardCVK(cvk cipher.Block, generation int) []byte {
	out := make([]byte, 16)
	for i := range 2 {
		var d [8]byte
		d[0], d[1], d[2] = 'C', 'V', byte(i)
		binary.BigEndian.PutUint32(d[4:], uint32(generation))
		cvk.Encrypt(out[8*i:8*i+8], d[:])
	}
	fixParity(out)
	return out
}

func (k *Keys) cvkBlock() (cipher.Block, error) {
	if k.c != nil {
		return k.c.cvk, nil
	}
	return tdesBlock(k.CVK)
}

// cvcKeys are the two key schedules the CVV algorithm needs: DES under
// key A and 3DES under A|B.
type cvcKeys struct{ a, ab cipher.Block }

func newCVCKeys(cvk []byte) (*cvcKeys, error) {
	a, err := des.NewCipher(cvk[:8])
	if err != nil {
		return nil, err
	}
	ab, err := tdesBlock(cvk)
	if err != nil {
		return nil, err
	}
	return &cvcKeys{a: a, ab: ab}, nil
}

// cvcKeysFor returns the CVV key schedules of a CVC generation, from the
// cache when the Keys has one.
func (k *Keys) cvcKeysFor(generation int) (*cvcKeys, error) {
	if k.c != nil {
		if ck, ok := k.c.cvc.Load(generation); ok {
			return ck.(*cvcKeys), nil
		}
	}
	var cvk []byte
	if generation == 0 {
		cvk = k.CVK
	} else {
		blk, err := k.cvkBlock()
		if err != nil {
			return nil, err
		}
		cvk = deriveCardCVK(blk, generation)
	}
	if len(cvk) != 16 {
		return nil, fmt.Errorf("cvk: %d bytes, want 16", len(cvk))
	}
	ck, err := newCVCKeys(cvk)
	if err != nil {
		return nil, err
	}
	if k.c != nil {
		k.c.cvc.Store(generation, ck)
	}
	return ck, nil
}

// CVC2 returns the CVC2 of the card with this pan, expiry (YYMM) and CVC
// generation: the Visa CVV with service code "000" under CardCVK(generation).
// It returns "" when the inputs are malformed (a PAN that is not 12-19
// digits, an expiry that is not 4 digits, a negative generation), and ""
// never matches a presented CVC2.
func (k *Keys) CVC2(pan, expiry string, generation int) string {
	if generation < 0 {
		return ""
	}
	ck, err := k.cvcKeysFor(generation)
	if err != nil {
		return ""
	}
	cvc2, err := computeCVV(ck.a, ck.ab, pan, expiry, ServiceCodeCVC2)
	if err != nil {
		return ""
	}
	return cvc2
}

// VerifyCVC2 reports whether cvc2 is the CVC2 of the card with this pan,
// expiry (YYMM) and CVC generation. The comparison takes constant time.
func (k *Keys) VerifyCVC2(pan, expiry string, generation int, cvc2 string) bool {
	want := k.CVC2(pan, expiry, generation)
	if want == "" || len(cvc2) != len(want) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(cvc2)) == 1
}
