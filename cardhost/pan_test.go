package cardhost

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLuhnValid(t *testing.T) {
	for _, tt := range []struct {
		pan  string
		want bool
	}{
		// Published test card numbers of the schemes' sandboxes.
		{"4111111111111111", true},
		{"5555555555554444", true},
		{"378282246310005", true},
		{"6011111111111117", true},
		{"4123456789012345", false},
		{"4111111111111112", false},
		{"41111111111", false},          // too short
		{"41111111111111111111", false}, // too long
		{"411111111111111a", false},
		{"", false},
	} {
		if got := LuhnValid(tt.pan); got != tt.want {
			t.Errorf("LuhnValid(%s): got %v, want %v", MaskPAN(tt.pan), got, tt.want)
		}
	}
}

func TestGeneratePAN(t *testing.T) {
	for _, tt := range []struct{ lo, hi string }{
		{"400000", "400000"},
		{"535110", "535119"},
		{"45678900000", "45678999999"},
		{"999999", "999999"},
		{"000000", "000001"},
	} {
		seenPrefix := map[string]bool{}
		for range 2000 {
			pan, err := GeneratePAN(tt.lo, tt.hi, rand.Reader)
			if err != nil {
				t.Fatalf("%s-%s: %v", tt.lo, tt.hi, err)
			}
			if len(pan) != 16 || !LuhnValid(pan) {
				t.Fatalf("%s-%s: got %s, want 16 Luhn-valid digits", tt.lo, tt.hi, MaskPAN(pan))
			}
			p := pan[:len(tt.lo)]
			if p < tt.lo || p > tt.hi {
				t.Fatalf("%s-%s: prefix %s outside the range", tt.lo, tt.hi, p)
			}
			seenPrefix[p] = true
		}
		if tt.lo == "535110" && len(seenPrefix) != 10 {
			t.Errorf("%s-%s: %d of 10 prefixes drawn in 2000 tries", tt.lo, tt.hi, len(seenPrefix))
		}
	}
	for _, tt := range []struct{ lo, hi string }{
		{"40000", "40000"},               // 5 digits
		{"400000000000", "400000000000"}, // 12 digits
		{"400000", "4000000"},            // unequal lengths
		{"400001", "400000"},             // low above high
		{"40000a", "400000"},
	} {
		if _, err := GeneratePAN(tt.lo, tt.hi, rand.Reader); err == nil {
			t.Errorf("%s-%s: got no error", tt.lo, tt.hi)
		}
	}
	if _, err := GeneratePAN("400000", "400000", bytes.NewReader(nil)); err == nil {
		t.Error("empty random source: got no error")
	}
}

func TestMaskPAN(t *testing.T) {
	for _, tt := range []struct{ pan, want string }{
		{"4111111111111111", "411111…1111"},
		{"5555555551234567", "555555…4567"},
		{"4000001234562", "400000…4562"},
		{"1234", "…"},
		{"", "…"},
	} {
		if got := MaskPAN(tt.pan); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestExpiry(t *testing.T) {
	issued := time.Date(2026, time.March, 31, 23, 0, 0, 0, time.UTC)
	if got := ExpiryFrom(issued, 4); got != "3003" {
		t.Errorf("ExpiryFrom: got %s, want 3003", got)
	}
	if got := ExpiryFrom(time.Date(2096, time.December, 1, 0, 0, 0, 0, time.UTC), 5); got != "0112" {
		t.Errorf("ExpiryFrom past the century: got %s, want 0112", got)
	}
	now := time.Date(2026, time.May, 31, 23, 59, 59, 0, time.UTC)
	for _, tt := range []struct {
		expiry string
		want   bool
	}{
		{"2605", true}, // valid through the last day of its month
		{"2606", true},
		{"3001", true},
		{"2604", false},
		{"2512", false},
		{"2613", false},
		{"2600", false},
		{"26O5", false},
		{"265", false},
		{"", false},
	} {
		if got := ExpiryOK(tt.expiry, now); got != tt.want {
			t.Errorf("ExpiryOK(%q) at %s: got %v, want %v", tt.expiry, now, got, tt.want)
		}
	}
	// The first second of June: May's cards have expired.
	if ExpiryOK("2605", now.Add(time.Second)) {
		t.Error("2605 still valid on 1 June")
	}
}

func TestParseTrack2(t *testing.T) {
	for _, tt := range []struct {
		in, pan, exp, svc string
	}{
		{"4111111111111111=29121010000000000000", "4111111111111111", "2912", "101"},
		{";4111111111111111=2912101123456789?5", "4111111111111111", "2912", "101"},
		{"4111111111111111D29122010000012300000F", "4111111111111111", "2912", "201"},
		{"5555555555554444=3001000", "5555555555554444", "3001", "000"},
	} {
		pan, exp, svc, err := ParseTrack2(tt.in)
		if err != nil {
			t.Errorf("%s: %v", MaskPAN(tt.pan), err)
			continue
		}
		if pan != tt.pan || exp != tt.exp || svc != tt.svc {
			t.Errorf("%s: got %s %s %s, want %s %s %s", MaskPAN(tt.pan), MaskPAN(pan), exp, svc, MaskPAN(tt.pan), tt.exp, tt.svc)
		}
	}
	for _, in := range []string{
		"",
		"4111111111111111",
		"4111111111111111=291",
		"4111111111111111=2913101",
		"411111111=2912101",
		"4111111111111111=2912101ABC",
		"41111111111111x1=2912101",
		"4111111111111111=29121010000000000000000000", // 38 characters
	} {
		_, _, _, err := ParseTrack2(in)
		if !errors.Is(err, ErrTrack2) {
			t.Errorf("%d characters: got %v, want ErrTrack2", len(in), err)
		}
		if err != nil && len(in) >= 12 && strings.Contains(err.Error(), in[:12]) {
			t.Errorf("error quotes the track data")
		}
	}
}

// FuzzParseTrack2 parses arbitrary DE35 data: it never panics, and what it
// accepts is a PAN, expiry and service code that parse again the same.
func FuzzParseTrack2(f *testing.F) {
	for _, s := range []string{
		"4111111111111111=29121010000000000000",
		";4111111111111111=2912101123456789?5",
		"4111111111111111D29122010000012300000F",
		"4111111111111111=",
		"=",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pan, exp, svc, err := ParseTrack2(s)
		if err != nil {
			if !errors.Is(err, ErrTrack2) {
				t.Fatalf("error %v does not wrap ErrTrack2", err)
			}
			return
		}
		if len(pan) < 12 || len(pan) > 19 || !allDigits(pan) || len(exp) != 4 || len(svc) != 3 || !allDigits(exp+svc) {
			t.Fatal("accepted malformed parts")
		}
		p2, e2, s2, err := ParseTrack2(pan + "=" + exp + svc)
		if err != nil || p2 != pan || e2 != exp || s2 != svc {
			t.Fatalf("parts do not parse again: %v", err)
		}
	})
}
