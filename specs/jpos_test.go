package specs

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moov-io/iso8583"
)

// jposVector is one golden message packed by jPOS (testdata/jpos/README.md).
type jposVector struct {
	Name      string
	Raw       []byte
	MTI       string                       `json:"mti"`
	Fields    map[string]string            `json:"fields"`
	HexFields []string                     `json:"hex_fields"`
	Subfields map[string]map[string]string `json:"subfields"`
}

// jposFolders maps each folder of golden vectors to its profile and variant.
var jposFolders = []struct{ dir, profile, variant string }{
	{"cmf", "iso2003", VariantCMF},
	{"iso87a", "iso87", VariantISO87A},
	{"iso87a-bbitmap", "iso87", VariantISO87ABBitmap},
	{"iso87b", "iso87", VariantISO87B},
}

func loadJPOSVectors(t *testing.T, dir string) []jposVector {
	t.Helper()
	hexes, err := filepath.Glob(filepath.Join("testdata", "jpos", dir, "*.hex"))
	if err != nil || len(hexes) == 0 {
		t.Fatalf("no vectors in %s: %v", dir, err)
	}
	var out []jposVector
	for _, h := range hexes {
		b, err := os.ReadFile(h)
		if err != nil {
			t.Fatal(err)
		}
		var v jposVector
		if v.Raw, err = hex.DecodeString(strings.TrimSpace(string(b))); err != nil {
			t.Fatal(err)
		}
		j, err := os.ReadFile(strings.TrimSuffix(h, ".hex") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j, &v); err != nil {
			t.Fatal(err)
		}
		v.Name = strings.TrimSuffix(filepath.Base(h), ".hex")
		out = append(out, v)
	}
	return out
}

// TestJPOSGoldenVectors: every vector jPOS packed unpacks to exactly its
// fields (none missing, none extra), and the message built from those
// fields packs to the same bytes.
func TestJPOSGoldenVectors(t *testing.T) {
	for _, f := range jposFolders {
		spec, err := ISOSpecVariant(f.profile, f.variant)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range loadJPOSVectors(t, f.dir) {
			t.Run(f.dir+"/"+v.Name, func(t *testing.T) {
				m := iso8583.NewMessage(spec)
				if err := m.Unpack(v.Raw); err != nil {
					t.Fatalf("unpack: %v", err)
				}
				if mti, _ := m.GetMTI(); mti != v.MTI {
					t.Errorf("MTI: got %q, want %q", mti, v.MTI)
				}
				var got []int
				for n := range m.GetFields() {
					if n > 1 {
						got = append(got, n)
					}
				}
				var want []int
				for k := range v.Fields {
					n, _ := strconv.Atoi(k)
					want = append(want, n)
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("fields: got %v, want %v", got, want)
				}
				built := iso8583.NewMessage(spec)
				built.MTI(v.MTI)
				for k, val := range v.Fields {
					n, _ := strconv.Atoi(k)
					if slices.Contains(v.HexFields, k) {
						b, err := m.GetBytes(n)
						if err != nil || hex.EncodeToString(b) != val {
							t.Errorf("DE%d: got %x, %v; want %s", n, b, err, val)
						}
						raw, _ := hex.DecodeString(val)
						if err := built.BinaryField(n, raw); err != nil {
							t.Fatalf("set DE%d: %v", n, err)
						}
						continue
					}
					if s, err := m.GetString(n); err != nil || s != val {
						t.Errorf("DE%d: got %q, %v; want %q", n, s, err, val)
					}
					if err := built.Field(n, val); err != nil {
						t.Fatalf("set DE%d: %v", n, err)
					}
				}
				checkCMFSubfields(t, m, v)
				if err := Check(m, len(v.Raw)); err != nil {
					t.Errorf("Check: %v", err)
				}
				trailing := append(append([]byte(nil), v.Raw...), "0123456789abc"...)
				again := iso8583.NewMessage(spec)
				if err := again.Unpack(trailing); err == nil {
					if err := Check(again, len(trailing)); !errors.Is(err, ErrTrailing) {
						t.Errorf("13 trailing bytes: Check got %v, want ErrTrailing", err)
					}
				}
				packed, err := built.Pack()
				if err != nil {
					t.Fatalf("pack: %v", err)
				}
				if !bytes.Equal(packed, v.Raw) {
					t.Errorf("packs differently:\ngot  %x\nwant %x", packed, v.Raw)
				}
			})
		}
	}
}

// checkCMFSubfields reads DE30, DE43 and DE49 with the CMF sub-field
// functions and compares them with what jPOS's GenericPackager saw; DE43
// and DE49 are built again from those sub-fields byte for byte.
func checkCMFSubfields(t *testing.T, m *iso8583.Message, v jposVector) {
	t.Helper()
	for de, subs := range v.Subfields {
		n, _ := strconv.Atoi(de)
		raw, err := m.GetBytes(n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 30 {
			txn, recon, err := AmountsOriginal(raw)
			if err != nil || txn.String() != subs["0"] || recon.String() != subs["1"] {
				t.Errorf("DE30: got %s %s, %v; want %v", txn, recon, err, subs)
			}
			if !bytes.Equal(PackAmountsOriginal(txn, recon), raw) {
				t.Errorf("DE30 packs differently")
			}
			continue
		}
		table := map[int]SubfieldTable{43: CardAcceptorTable, 49: VerificationTable}[n]
		got, err := ParseSubfields(raw, table)
		if err != nil {
			t.Fatalf("DE%d: %v", n, err)
		}
		values := map[int]string{}
		for k, want := range subs {
			i, _ := strconv.Atoi(k)
			values[i] = want
			if got[i] != want {
				t.Errorf("DE%d.%d: got %q, want %q", n, i, got[i], want)
			}
		}
		for i, g := range got {
			if _, ok := values[i]; !ok && g != "" {
				t.Errorf("DE%d.%d: got %q, want none", n, i, g)
			}
		}
		packed, err := PackSubfields(table, values)
		if err != nil || !bytes.Equal(packed, raw) {
			t.Errorf("DE%d packs as %x, %v; want %x", n, packed, err, raw)
		}
	}
}

// TestParseSubfieldsRejects: bytes after the last sub-field, a NUL in the
// text, a length past the end and an undefined sub-field are errors.
func TestParseSubfieldsRejects(t *testing.T) {
	good, err := PackSubfields(CardAcceptorTable, map[int]string{2: "DEMO SHOP", 4: "MADRID", 7: "ESP"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSubfields(good, CardAcceptorTable); err != nil {
		t.Fatalf("good DE43: %v", err)
	}
	nul := bytes.Replace(good, []byte("SHOP"), []byte("SH\x00P"), 1)
	undefined := append([]byte(nil), good...)
	undefined[0] |= 0x40 >> 1 // sub-field 3 set, not present
	for name, b := range map[string][]byte{
		"trailing":  append(append([]byte(nil), good...), 'X'),
		"nul":       nul,
		"short":     good[:len(good)-1],
		"undefined": append([]byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01}, good[8:]...),
		"shifted":   undefined,
	} {
		if _, err := ParseSubfields(b, CardAcceptorTable); !errors.Is(err, ErrCMF) {
			t.Errorf("%s: got %v, want ErrCMF", name, err)
		}
	}
}
