package hsm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestPINBlockFormat0KnownAnswers(t *testing.T) {
	tests := []struct {
		source, pin, pan, want string
	}{
		// ID TECH knowledge base, "ISO 9564 format 0" example (the same
		// vector as Wikipedia's ISO 9564 article): PIN 1234,
		// PAN 43219876543210987 → 0412AC89ABCDEF67.
		{"ID TECH ISO-0 example", "1234", "43219876543210987", "0412AC89ABCDEF67"},
		// knovichikhin/psec, tests/test_pinblock.py, test_encode_pin_block_iso_0.
		{"psec 4-digit", "1234", "5555555551234567", "041261AAAAEDCBA9"},
		{"psec 12-digit", "123456789012", "5555555551234567", "0C1261032D8226A9"},
		// Thales payShield host command reference, PIN block "Format 01"
		// (ANSI X9.8, ISO 9564 format 0) example: PIN 92389,
		// PAN 4000001234562 (check digit 2) → 0592 789F FFED CBA9.
		{"Thales format 01 example", "92389", "4000001234562", "0592789FFFEDCBA9"},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			got, err := PINBlockFormat0(tt.pin, tt.pan)
			if err != nil {
				t.Fatal(err)
			}
			if h := strings.ToUpper(hex.EncodeToString(got)); h != tt.want {
				t.Errorf("got block %s, want %s", h, tt.want)
			}
			pin, err := PINFromBlockFormat0(mustHex(t, tt.want), tt.pan)
			if err != nil {
				t.Fatal(err)
			}
			if pin != tt.pin {
				t.Errorf("decoded a different pin of length %d, want length %d", len(pin), len(tt.pin))
			}
		})
	}
}

func TestEncryptPINBlockKnownAnswer(t *testing.T) {
	// rkbalgi/isosim, internal/iso/crypto_ops_test.go, Test_GeneratePinBlock_ISO0
	// (cross-checked there with neapay's online PIN block calculator):
	// PIN 1234, PAN 4356876509876788, ISO-0 under the 3DES key
	// AB9292288227277226252525224665FE → B4BF8522DFFB6FFB.
	zpk := mustHex(t, "AB9292288227277226252525224665FE")
	clear, err := PINBlockFormat0("1234", "4356876509876788")
	if err != nil {
		t.Fatal(err)
	}
	enc, err := EncryptPINBlock(zpk, clear)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ToUpper(hex.EncodeToString(enc)); got != "B4BF8522DFFB6FFB" {
		t.Errorf("got %s, want B4BF8522DFFB6FFB", got)
	}
	back, err := DecryptPINBlock(zpk, enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, clear) {
		t.Error("decrypt does not give back the clear block")
	}
	if _, err := EncryptPINBlock(zpk[:8], clear); err == nil {
		t.Error("single-length zpk: got no error")
	}
	if _, err := DecryptPINBlock(zpk, enc[:7]); !errors.Is(err, ErrPINBlock) {
		t.Errorf("7-byte block: got %v, want ErrPINBlock", err)
	}
}

func TestPINFromBlockFormat0Malformed(t *testing.T) {
	const pan = "5555555551234567"
	good, err := PINBlockFormat0("1234", pan)
	if err != nil {
		t.Fatal(err)
	}
	pf, _ := panField(pan)
	// clearField builds a block whose PIN field is the given 16 nibbles.
	clearField := func(nibbles string) []byte {
		b := mustHex(t, nibbles)
		for i := range b {
			b[i] ^= pf[i]
		}
		return b
	}
	for _, tt := range []struct {
		name  string
		block []byte
	}{
		{"7 bytes", good[:7]},
		{"9 bytes", append(append([]byte(nil), good...), 0xFF)},
		{"control nibble 1", clearField("141234FFFFFFFFFF")},
		{"length 3", clearField("03123FFFFFFFFFFF")},
		{"length 13", clearField("0D1234567890123F")},
		{"length 15", clearField("0F12345678901234")},
		{"digit A", clearField("04123AFFFFFFFFFF")},
		{"filler E", clearField("041234FFFFFFFFFE")},
		{"filler digit", clearField("0412340FFFFFFFFF")},
	} {
		_, err := PINFromBlockFormat0(tt.block, pan)
		if !errors.Is(err, ErrPINBlock) {
			t.Errorf("%s: got %v, want ErrPINBlock", tt.name, err)
		}
	}
	if _, err := PINFromBlockFormat0(good, "555555555123"); err == nil {
		t.Error("12-digit pan: got no error")
	}
}

func TestPINBlockFormat0Rejects(t *testing.T) {
	for _, tt := range []struct{ pin, pan string }{
		{"123", "5555555551234567"},
		{"1234567890123", "5555555551234567"},
		{"12a4", "5555555551234567"},
		{"1234", "555555555123"},
		{"1234", "55555555512345X7"},
	} {
		if _, err := PINBlockFormat0(tt.pin, tt.pan); err == nil {
			t.Errorf("pin of length %d, pan of length %d: got no error", len(tt.pin), len(tt.pan))
		}
	}
}

func TestComputePVVKnownAnswers(t *testing.T) {
	// knovichikhin/psec, tests/test_pin.py, test_generate_visa_pvv, all
	// under PVK 0123456789ABCDEFFEDCBA9876543210.
	pvk := mustHex(t, "0123456789ABCDEFFEDCBA9876543210")
	for _, tt := range []struct {
		pvki          int
		pin, pan, pvv string
	}{
		{1, "4524", "1122334455667788", "8523"},
		{2, "1912", "1122334455667788", "3244"},
		{1, "0570", "1122334455667718", "3144"},
		{1, "8299", "1122334455667708", "4422"},
	} {
		got, err := ComputePVV(pvk, tt.pan, tt.pvki, tt.pin)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.pvv {
			t.Errorf("pan %s pvki %d: got PVV %s, want %s", maskPAN(tt.pan), tt.pvki, got, tt.pvv)
		}
	}
	// Only the first four PIN digits take part (Visa's rule).
	a, _ := ComputePVV(pvk, "1122334455667788", 1, "4524")
	b, _ := ComputePVV(pvk, "1122334455667788", 1, "452499")
	if a != b {
		t.Errorf("6-digit pin: got %s, want the 4-digit PVV %s", b, a)
	}
	for _, tt := range []struct {
		pvki     int
		pin, pan string
	}{{10, "1234", "1122334455667788"}, {-1, "1234", "1122334455667788"}, {1, "123", "1122334455667788"}, {1, "1234", "11223344556"}} {
		if _, err := ComputePVV(pvk, tt.pan, tt.pvki, tt.pin); err == nil {
			t.Errorf("pvki %d pin length %d pan length %d: got no error", tt.pvki, len(tt.pin), len(tt.pan))
		}
	}
}

func TestVerifyPIN(t *testing.T) {
	k := testKeys(t)
	const pan = "4356876509876788"
	pvv, err := k.PVV(pan, "1234")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ComputePVV(k.PVK, pan, PVKI, "1234")
	if pvv != want {
		t.Fatalf("PVV: got %s, want ComputePVV with PVKI %d = %s", pvv, PVKI, want)
	}
	right, err := k.ZonePINBlock(ZoneISO2003, "1234", pan)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := k.ZonePINBlock(ZoneISO2003, "4321", pan)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := k.VerifyPIN(ZoneISO2003, right, pan, pvv); !ok || err != nil {
		t.Errorf("right pin: got %v, %v; want true, nil", ok, err)
	}
	if ok, err := k.VerifyPIN(ZoneISO2003, wrong, pan, pvv); ok || err != nil {
		t.Errorf("wrong pin: got %v, %v; want false, nil", ok, err)
	}
	if ok, err := k.VerifyPIN(ZoneISO2003, right, pan, ""); ok || err != nil {
		t.Errorf("card without pvv: got %v, %v; want false, nil", ok, err)
	}
	// Under the other zone's key the block decrypts to garbage: malformed,
	// not a wrong PIN.
	if ok, err := k.VerifyPIN(ZoneISO87, right, pan, pvv); ok || !errors.Is(err, ErrPINBlock) {
		t.Errorf("block under another zone key: got %v, %v; want false, ErrPINBlock", ok, err)
	}
	if ok, err := k.VerifyPIN(ZoneISO2003, right[:7], pan, pvv); ok || !errors.Is(err, ErrPINBlock) {
		t.Errorf("short block: got %v, %v; want false, ErrPINBlock", ok, err)
	}
	if ok, err := k.VerifyPIN("nosuchzone", right, pan, pvv); ok || !errors.Is(err, ErrUnknownZoneKey) {
		t.Errorf("unknown zone: got %v, %v; want false, ErrUnknownZoneKey", ok, err)
	}
	// A Keys built by hand (no cache) verifies the same way.
	bare := &Keys{PVK: k.PVK, ZonePINKeys: k.ZonePINKeys}
	if ok, err := bare.VerifyPIN(ZoneISO2003, right, pan, pvv); !ok || err != nil {
		t.Errorf("uncached keys: got %v, %v; want true, nil", ok, err)
	}
}

// FuzzPINFromBlockFormat0 decodes arbitrary blocks: it never panics, and a
// block it accepts encodes back to itself from the PIN it returned.
func FuzzPINFromBlockFormat0(f *testing.F) {
	for _, s := range []struct{ block, pan string }{
		{"0412AC89ABCDEF67", "43219876543210987"},
		{"041261AAAAEDCBA9", "5555555551234567"},
		{"0C1261032D8226A9", "5555555551234567"},
		{"0592789FFFEDCBA9", "4000001234562"},
		{"FFFFFFFFFFFFFFFF", "4111111111111111"},
		{"00", "4111111111111111"},
	} {
		b, _ := hex.DecodeString(s.block)
		f.Add(b, s.pan)
	}
	f.Fuzz(func(t *testing.T, block []byte, pan string) {
		pin, err := PINFromBlockFormat0(block, pan)
		if err != nil {
			if len(pan) >= 6 && strings.Contains(err.Error(), pan) {
				t.Fatal("error quotes the pan")
			}
			return
		}
		if !ValidPIN(pin) {
			t.Fatalf("accepted a pin of length %d that ValidPIN refuses", len(pin))
		}
		again, err := PINBlockFormat0(pin, pan)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, block) {
			t.Fatal("re-encoded block differs")
		}
	})
}

func BenchmarkVerifyPIN(b *testing.B) {
	k := testKeys(b)
	const pan = "4356876509876788"
	pvv, _ := k.PVV(pan, "1234")
	blk, _ := k.ZonePINBlock(ZoneISO2003, "1234", pan)
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := k.VerifyPIN(ZoneISO2003, blk, pan, pvv); !ok || err != nil {
			b.Fatal("verify failed")
		}
	}
}

func BenchmarkCVC2(b *testing.B) {
	k := testKeys(b)
	const pan, exp = "4123456789012345", "8701"
	b.Run("generation0", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k.CVC2(pan, exp, 0)
		}
	})
	b.Run("generation3", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k.CVC2(pan, exp, 3)
		}
	})
}
