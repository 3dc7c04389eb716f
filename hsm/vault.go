package hsm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/antaca/antaca/internal/decimal"
)

// panCipherVersion is the first byte of every encrypted PAN: the layout and
// key generation, so a later key rotation can tell old rows from new.
const panCipherVersion = 1

// panAAD binds an encrypted PAN to its purpose: a ciphertext of some other
// field under the same key does not decrypt as a PAN.
var panAAD = []byte("antaca pan v1")

// ErrPANCiphertext is returned by DecryptPAN for a value that is not a PAN
// encrypted under this key set.
var ErrPANCiphertext = errors.New("pan ciphertext invalid")

func newPANAEAD(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

func (k *Keys) panAEAD() (cipher.AEAD, error) {
	if k.c != nil {
		return k.c.panAEAD, nil
	}
	return newPANAEAD(k.PANKey)
}

// EncryptPAN encrypts pan with AES-256-GCM under the PAN key. The result is
// version byte (1) | 12-byte random nonce | ciphertext and tag; encrypting
// the same PAN twice gives different bytes, so look cards up by PANLookup.
func (k *Keys) EncryptPAN(pan string) ([]byte, error) {
	if len(pan) < 12 || len(pan) > 19 || !decimal.AllDigits(pan) {
		return nil, errors.New("encrypt pan: not a 12-19 digit pan")
	}
	aead, err := k.panAEAD()
	if err != nil {
		return nil, fmt.Errorf("encrypt pan: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(pan)+aead.Overhead())
	out[0] = panCipherVersion
	rand.Read(out[1:]) // never fails (crypto/rand since Go 1.24)
	return aead.Seal(out, out[1:], []byte(pan), panAAD), nil
}

// DecryptPAN reverses EncryptPAN. It fails with ErrPANCiphertext when the
// bytes were altered or were made under another key.
func (k *Keys) DecryptPAN(enc []byte) (string, error) {
	aead, err := k.panAEAD()
	if err != nil {
		return "", fmt.Errorf("decrypt pan: %w", err)
	}
	ns := aead.NonceSize()
	if len(enc) < 1+ns+aead.Overhead() || enc[0] != panCipherVersion {
		return "", ErrPANCiphertext
	}
	plain, err := aead.Open(nil, enc[1:1+ns], enc[1+ns:], panAAD)
	if err != nil {
		return "", ErrPANCiphertext
	}
	return string(plain), nil
}

// PANLookup returns HMAC-SHA-256 of pan under the PAN lookup key: a stable,
// non-reversible handle by which the database finds a card (unique index).
func (k *Keys) PANLookup(pan string) []byte {
	if k.c == nil {
		m := hmac.New(sha256.New, k.PANLookupKey)
		m.Write([]byte(pan))
		return m.Sum(nil)
	}
	m := k.c.lookup.Get().(hash.Hash)
	m.Reset()
	io.WriteString(m, pan)
	sum := m.Sum(make([]byte, 0, sha256.Size))
	k.c.lookup.Put(m)
	return sum
}
