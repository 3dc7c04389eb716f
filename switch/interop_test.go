package authswitch

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/specs"
	"github.com/moov-io/iso8583"
)

// jposPAN is the card of the golden vectors packed by jPOS.
const jposPAN = "5399990000000001"

// goldenRequests reads the request vectors of one folder of
// ../specs/testdata/jpos (packed by jPOS itself).
func goldenRequests(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	hexes, err := filepath.Glob(filepath.Join("..", "specs", "testdata", "jpos", dir, "*.hex"))
	if err != nil || len(hexes) == 0 {
		t.Fatalf("no vectors in %s: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, h := range hexes {
		name := strings.TrimSuffix(filepath.Base(h), ".hex")
		b, err := os.ReadFile(h)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			MTI string `json:"mti"`
		}
		j, err := os.ReadFile(strings.TrimSuffix(h, ".hex") + ".json")
		if err != nil || json.Unmarshal(j, &v) != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !isRequestMTI(v.MTI) {
			continue // answers are not sent
		}
		raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = raw
	}
	return out
}

// TestJPOSVectorsThroughLinks sends every request jPOS packed, in each
// encoding variant, to a link of that variant over TCP with each length
// header, and reads the answer in the same variant: approved, STAN and
// (iso2003) DE24 echoed. The CMF messages are mapped to what jPOS meant:
// amount and currency from DE4, CVC2 from DE49.2, MCC from DE26, the
// card acceptor's sub-fields, DE56 and a partial reversal's DE4/DE30.
func TestJPOSVectorsThroughLinks(t *testing.T) {
	for _, f := range []struct{ dir, profile, variant string }{
		{"cmf", ProfileISO2003, specs.VariantCMF},
		{"iso87a", ProfileISO87, specs.VariantISO87A},
		{"iso87a-bbitmap", ProfileISO87, specs.VariantISO87ABBitmap},
		{"iso87b", ProfileISO87, specs.VariantISO87B},
	} {
		for _, header := range []int{2, 4} {
			t.Run(f.dir+"/header"+string(rune('0'+header)), func(t *testing.T) {
				a := newTestAuthorizer()
				a.decisions[jposPAN] = cardhost.Decision{Reason: cardhost.Approved, ApprovalCode: "A7X9Q2", Available: 98750, Currency: "978", HasAvailable: true}
				_, addr := startServer(t, f.profile, a, func(c *Config) { c.Variant, c.Header = f.variant, header })
				spec, err := specs.ISOSpecVariant(f.profile, f.variant)
				if err != nil {
					t.Fatal(err)
				}
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				for name, raw := range goldenRequests(t, f.dir) {
					frame := make([]byte, header+len(raw))
					binary.BigEndian.PutUint16(frame, uint16(len(raw)))
					copy(frame[header:], raw)
					if _, err := nc.Write(frame); err != nil {
						t.Fatal(err)
					}
					nc.SetReadDeadline(time.Now().Add(5 * time.Second))
					hdr := make([]byte, header)
					if _, err := io.ReadFull(nc, hdr); err != nil {
						t.Fatalf("%s: no answer: %v", name, err)
					}
					if header == 4 && (hdr[2] != 0 || hdr[3] != 0) {
						t.Errorf("%s: 4-byte header %x, want two zero bytes after the length", name, hdr)
					}
					body := make([]byte, binary.BigEndian.Uint16(hdr))
					if _, err := io.ReadFull(nc, body); err != nil {
						t.Fatal(err)
					}
					req, ans := iso8583.NewMessage(spec), iso8583.NewMessage(spec)
					if err := req.Unpack(raw); err != nil {
						t.Fatal(err)
					}
					if err := ans.Unpack(body); err != nil {
						t.Fatalf("%s: answer does not unpack in %s: %v", name, f.variant, err)
					}
					if got, want := get(t, ans, 39), actionCode(t, f.profile, cardhost.Approved); got != want {
						t.Errorf("%s: DE39 %s, want %s", name, got, want)
					}
					for _, n := range []int{11, 24, 37} {
						if got, want := get(t, ans, n), get(t, req, n); got != want {
							t.Errorf("%s: DE%d %q, want %q", name, n, got, want)
						}
					}
				}
				if f.dir == "cmf" {
					checkCMFMapping(t, a.requests())
				}
			})
		}
	}
}

func checkCMFMapping(t *testing.T, seen []cardhost.AuthRequest) {
	t.Helper()
	byRRN := map[string]cardhost.AuthRequest{}
	for _, r := range seen {
		byRRN[r.RRN] = r
	}
	auth := byRRN["634012000101"]
	if auth.Amount != 1250 || auth.Currency != "978" || auth.CVC2 != "123" || auth.MCC != "5999" || auth.FunctionCode != "100" ||
		auth.MerchantName != "DEMO SHOP, MADRID, ESP" || auth.PAN != jposPAN || auth.Expiry != "2812" || len(auth.PINBlock) != 8 ||
		auth.POSEntryMode != "04000000080000000200000000000000" || auth.LocalTime != "20261206145000" {
		t.Errorf("2100: amount %d %s cvc2 set %v MCC %s DE24 %s merchant %q entry %s", auth.Amount, auth.Currency, auth.CVC2 == "123",
			auth.MCC, auth.FunctionCode, auth.MerchantName, auth.POSEntryMode)
	}
	cash := byRRN["634012000102"]
	if cash.PAN != jposPAN || !cash.Track2 || cash.Expiry != "2812" || cash.ProcessingCode != "01" || cash.Amount != 10000 {
		t.Errorf("2100 cash: track2 %v expiry %s processing %s amount %d", cash.Track2, cash.Expiry, cash.ProcessingCode, cash.Amount)
	}
	wantOrig := cardhost.OriginalData{MTI: "2100", STAN: "000000000101", LocalTime: "20261206145000", AcquirerID: "4830123"}
	for _, rrn := range []string{"634012000104", "634012000105", "634012000106"} {
		r := byRRN[rrn]
		if r.Original == nil || *r.Original != wantOrig {
			t.Errorf("%s: original %+v, want %+v", rrn, r.Original, wantOrig)
		}
	}
	if c := byRRN["634012000104"]; c.Class != cardhost.ClassCompletion || c.Amount != 1250 || c.FunctionCode != "201" || c.ReplacementAmount != nil {
		t.Errorf("2220: class %v amount %d DE24 %s", c.Class, c.Amount, c.FunctionCode)
	}
	if r := byRRN["634012000105"]; r.Class != cardhost.ClassReversal || r.Amount != 1250 || r.ReplacementAmount != nil {
		t.Errorf("2400: class %v amount %d replacement %v", r.Class, r.Amount, r.ReplacementAmount)
	}
	// A partial reversal: DE4 is what remains (7.50), DE30 the original (12.50).
	if r := byRRN["634012000106"]; r.Class != cardhost.ClassReversalAdvice || r.Amount != 1250 || r.ReplacementAmount == nil || *r.ReplacementAmount != 750 || r.FunctionCode != "401" {
		t.Errorf("2420 partial: class %v amount %d replacement %v", r.Class, r.Amount, r.ReplacementAmount)
	}
}

// TestControlsAsFunctionCodes: iso87 carries the CMF's DE24 controls as
// DE48 tags 93-95; the issuer gets them in the CMF's terms either way.
func TestControlsAsFunctionCodes(t *testing.T) {
	for _, tc := range []struct {
		profile, fn string
		extra       map[int]string
		want        string
	}{
		{ProfileISO87, "100", map[int]string{48: "9203123" + "93011"}, "181"},
		{ProfileISO87, "100", map[int]string{48: "93012"}, "185"},
		{ProfileISO87, "100", map[int]string{48: "94011"}, "187"},
		{ProfileISO87, "220", map[int]string{48: "95011"}, "280"},
		{ProfileISO87, "100", nil, ""},
		{ProfileISO2003, "100", map[int]string{24: "181"}, "181"},
		{ProfileISO2003, "220", map[int]string{24: "280"}, "280"},
	} {
		a := newTestAuthorizer()
		s := newBareServer(t, tc.profile, a)
		raw, err := request(t, tc.profile, tc.fn, 1, panApproved, 100, tc.extra).Pack()
		if err != nil {
			t.Fatal(err)
		}
		s.handle(t.Context(), raw, time.Now(), "test")
		seen := a.requests()
		if len(seen) != 1 {
			t.Fatalf("%s %s %v: issuer saw %d requests", tc.profile, tc.fn, tc.extra, len(seen))
		}
		if seen[0].FunctionCode != tc.want {
			t.Errorf("%s %s %v: function code %q, want %q", tc.profile, tc.fn, tc.extra, seen[0].FunctionCode, tc.want)
		}
	}
	// A function code of another message class is a format error.
	a := newTestAuthorizer()
	raw, _ := request(t, ProfileISO2003, "100", 2, panApproved, 100, map[int]string{24: "400"}).Pack()
	out := newBareServer(t, ProfileISO2003, a).handle(t.Context(), raw, time.Now(), "test")
	ans := iso8583.NewMessage(testSpec(t, ProfileISO2003))
	if err := ans.Unpack(out.answer); err != nil || get(t, ans, 39) != "9100" || len(a.requests()) != 0 {
		t.Errorf("2100 with DE24 400: %v, DE39 %s", err, get(t, ans, 39))
	}
}
