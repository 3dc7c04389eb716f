package hsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestEncryptPAN(t *testing.T) {
	k := testKeys(t)
	const pan = "4111111111111111"
	a, err := k.EncryptPAN(pan)
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.EncryptPAN(pan)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Error("two encryptions of one PAN are equal: nonce not random")
	}
	if bytes.Contains(a, []byte(pan)) || bytes.Contains(a, []byte(pan[6:12])) {
		t.Error("ciphertext contains PAN digits")
	}
	if a[0] != panCipherVersion || len(a) != 1+12+len(pan)+16 {
		t.Errorf("layout: version %d, length %d", a[0], len(a))
	}
	for _, enc := range [][]byte{a, b} {
		got, err := k.DecryptPAN(enc)
		if err != nil {
			t.Fatal(err)
		}
		if got != pan {
			t.Errorf("got %s, want %s", maskPAN(got), maskPAN(pan))
		}
	}
	// Any altered byte, a truncation, another version or another key fails.
	for i := range a {
		c := bytes.Clone(a)
		c[i] ^= 0x01
		if _, err := k.DecryptPAN(c); !errors.Is(err, ErrPANCiphertext) {
			t.Errorf("byte %d altered: got %v, want ErrPANCiphertext", i, err)
		}
	}
	if _, err := k.DecryptPAN(a[:20]); !errors.Is(err, ErrPANCiphertext) {
		t.Errorf("truncated: got %v, want ErrPANCiphertext", err)
	}
	other := testKeys(t)
	other.PANKey = bytes.Repeat([]byte{7}, 32)
	if err := other.prepare(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.DecryptPAN(a); !errors.Is(err, ErrPANCiphertext) {
		t.Errorf("other key: got %v, want ErrPANCiphertext", err)
	}
	// A hand-built Keys (no cache) reads what the prepared one wrote.
	bare := &Keys{PANKey: k.PANKey}
	if got, err := bare.DecryptPAN(a); err != nil || got != pan {
		t.Errorf("uncached: got %s, %v", maskPAN(got), err)
	}
	for _, bad := range []string{"", "41111111111", "411111111111111a", "41111111111111111111"} {
		_, err := k.EncryptPAN(bad)
		if err == nil {
			t.Errorf("pan of length %d: got no error", len(bad))
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Error("error quotes the pan")
		}
	}
}

func TestPANLookup(t *testing.T) {
	k := testKeys(t)
	a := k.PANLookup("4111111111111111")
	if len(a) != 32 {
		t.Fatalf("got %d bytes, want 32", len(a))
	}
	if !bytes.Equal(a, k.PANLookup("4111111111111111")) {
		t.Error("not deterministic")
	}
	if bytes.Equal(a, k.PANLookup("4111111111111129")) {
		t.Error("two PANs share a lookup hash")
	}
	other := &Keys{PANLookupKey: bytes.Repeat([]byte{9}, 32)}
	if bytes.Equal(a, other.PANLookup("4111111111111111")) {
		t.Error("lookup hash independent of the key")
	}
	// It is HMAC-SHA-256 under the lookup key, also when the keyed states
	// are reused by goroutines at once.
	want := func(pan string) []byte {
		m := hmac.New(sha256.New, k.PANLookupKey)
		m.Write([]byte(pan))
		return m.Sum(nil)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				pan := fmt.Sprintf("4111%012d", g*1000+i)
				got := k.PANLookup(pan)
				if !bytes.Equal(got, want(pan)) {
					t.Errorf("PANLookup of card %d/%d is not HMAC-SHA-256 under the key", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
	byHand := &Keys{PANLookupKey: k.PANLookupKey}
	if !bytes.Equal(byHand.PANLookup("4111111111111111"), a) {
		t.Error("Keys built by hand hash differently")
	}
}

func BenchmarkDecryptPAN(b *testing.B) {
	k := testKeys(b)
	enc, _ := k.EncryptPAN("4111111111111111")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.DecryptPAN(enc); err != nil {
			b.Fatal(err)
		}
	}
}
