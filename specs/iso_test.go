package specs

import (
	"bytes"
	"testing"

	"github.com/moov-io/iso8583"
)

func TestISOSpecsLoad(t *testing.T) {
	for _, tc := range []struct {
		profile string
		lengths map[int]int // field -> spec length
	}{
		{"iso87", map[int]int{2: 19, 7: 10, 11: 6, 12: 6, 39: 2, 41: 8, 52: 8, 54: 120, 70: 3, 90: 42, 95: 42}},
		{"iso2003", map[int]int{2: 19, 4: 16, 7: 10, 11: 12, 12: 14, 22: 16, 24: 3, 26: 4, 39: 4, 41: 16, 42: 35, 43: 9999, 49: 9999, 52: 8, 54: 126, 56: 41}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			spec, err := ISOSpec(tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := ISOSpec(tc.profile)
			if again != spec {
				t.Errorf("spec not cached")
			}
			for n, want := range tc.lengths {
				f, ok := spec.Fields[n]
				if !ok {
					t.Errorf("DE%d missing", n)
					continue
				}
				if got := f.Spec().Length; got != want {
					t.Errorf("DE%d length: got %d, want %d", n, got, want)
				}
			}
		})
	}
	if _, err := ISOSpec("iso93"); err == nil {
		t.Error("unknown profile: got nil error")
	}
}

// TestISOSpecsRoundTrip packs a message with a secondary bitmap and raw PIN
// block in each profile and unpacks it again.
func TestISOSpecsRoundTrip(t *testing.T) {
	pin := []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	for _, tc := range []struct {
		profile, mti, stan string
		extra              map[int]string
	}{
		{"iso87", "0100", "000123", map[int]string{4: "000000001000", 49: "978", 70: "301", 90: "0100000122060112000000000012345000000000000"[:42]}},
		{"iso2003", "2100", "000000000123", map[int]string{4: "9782000000001000", 24: "100", 12: "20260601120000", 56: "210000000000012220260601120000612345"}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			spec, err := ISOSpec(tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			m := iso8583.NewMessage(spec)
			m.MTI(tc.mti)
			fields := map[int]string{2: "4000001234567899", 3: "000000", 11: tc.stan}
			for k, v := range tc.extra {
				fields[k] = v
			}
			for k, v := range fields {
				if err := m.Field(k, v); err != nil {
					t.Fatalf("set DE%d: %v", k, err)
				}
			}
			if err := m.BinaryField(52, pin); err != nil {
				t.Fatal(err)
			}
			raw, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(raw, pin) {
				t.Errorf("PIN block not raw on the wire")
			}
			got := iso8583.NewMessage(spec)
			if err := got.Unpack(raw); err != nil {
				t.Fatalf("unpack: %v", err)
			}
			for k, v := range fields {
				s, err := got.GetString(k)
				if err != nil {
					t.Fatalf("DE%d: %v", k, err)
				}
				if s != v {
					t.Errorf("DE%d: got %q, want %q", k, s, v)
				}
			}
			b, err := got.GetBytes(52)
			if err != nil || !bytes.Equal(b, pin) {
				t.Errorf("DE52: got %x, %v", b, err)
			}
		})
	}
}
