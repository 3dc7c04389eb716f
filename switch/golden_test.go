package authswitch

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/moov-io/iso8583"
	"github.com/prometheus/client_golang/prometheus"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenRequest is the authorisation request of the golden files: PIN
// block, CVC2 in DE48, billing amount and currency.
func goldenRequest(t testing.TB, profile string) *iso8583.Message {
	t.Helper()
	m := request(t, profile, "100", 123456, panApproved, 1999, map[int]string{48: "9203123", 6: "000000002150", 51: "840"})
	if err := m.BinaryField(52, []byte{0x04, 0x12, 0x34, 0xfe, 0xdc, 0xba, 0x98, 0x76}); err != nil {
		t.Fatal(err)
	}
	return m
}

// newBareServer is a Server for calling handle directly, without sockets.
func newBareServer(t testing.TB, profile string, a Authorizer) *Server {
	t.Helper()
	s, err := New(Config{Profile: profile, Logger: testLogger(t), ZoneKey: "zpk-test", Registerer: prometheus.NewRegistry()}, a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readHex(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return raw
}

func writeHex(t *testing.T, path string, raw []byte) {
	t.Helper()
	if err := os.WriteFile(path, []byte(hex.EncodeToString(raw)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGolden pins the wire bytes of one authorisation request and its
// answer per profile. Run with -update after an intended change.
func TestGolden(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			reqPath := filepath.Join("testdata", profile+"_auth_request.hex")
			ansPath := filepath.Join("testdata", profile+"_auth_answer.hex")
			built, err := goldenRequest(t, profile).Pack()
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				writeHex(t, reqPath, built)
			}
			raw := readHex(t, reqPath)
			if !bytes.Equal(raw, built) {
				t.Errorf("request packs differently from %s:\ngot  %x\nwant %x", reqPath, built, raw)
			}

			a := newTestAuthorizer()
			s := newBareServer(t, profile, a)
			out := s.handle(t.Context(), raw, time.Now(), "golden")
			if out.answer == nil || out.close {
				t.Fatalf("no answer: %+v", out)
			}
			if *update {
				writeHex(t, ansPath, out.answer)
			}
			if want := readHex(t, ansPath); !bytes.Equal(out.answer, want) {
				t.Errorf("answer differs from %s:\ngot  %x\nwant %x", ansPath, out.answer, want)
			}
			r := a.requests()[0]
			if r.CVC2 != "123" || r.BillingAmount != 2150 || r.BillingCurrency != "840" || r.Amount != 1999 || len(r.PINBlock) != 8 {
				t.Errorf("golden request mapped wrongly")
			}
			ans := iso8583.NewMessage(testSpec(t, profile))
			if err := ans.Unpack(out.answer); err != nil {
				t.Fatal(err)
			}
			de54 := "0002978C000000008766"
			if profile == ProfileISO2003 {
				de54 = "00029782C000000008766"
			}
			if get(t, ans, 39) != actionCode(t, profile, cardhost.Approved) || get(t, ans, 38) != "A1B2C3" || get(t, ans, 54) != de54 {
				t.Errorf("golden answer: DE39 %s DE38 %s DE54 %s", get(t, ans, 39), get(t, ans, 38), get(t, ans, 54))
			}
		})
	}
}

// TestFuzzSeeds writes the seed corpus of the fuzz targets with -update:
// the golden request, a reversal with DE90/DE95 (secondary bitmap),
// network management, an unknown MTI and broken variants.
func TestFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	for _, profile := range bothProfiles {
		name := map[string]string{ProfileISO87: "FuzzISO87Frame", ProfileISO2003: "FuzzISO2003Frame"}[profile]
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := profiles[profile]
		orig := "0100000101060112000000000123456" + "00000000000"
		if profile == ProfileISO2003 {
			orig = "2100000000000101" + "20260601140000" + "123456"
		}
		var seeds [][]byte
		pack := func(m *iso8583.Message) {
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, b)
		}
		pack(goldenRequest(t, profile))
		pack(request(t, profile, "400", 2, panApproved, 100, map[int]string{p.originalFields[0]: orig, 95: "000000000050" + strings.Repeat("0", 30)}))
		pack(request(t, profile, "100", 3, "", 100, map[int]string{2: "", 35: panApproved + "=29011010000000000"}))
		net := iso8583.NewMessage(testSpec(t, profile))
		net.MTI(p.netMTI)
		net.Field(7, "0601120000")
		net.Field(11, stanOf(profile, 4))
		net.Field(p.netField, p.echo)
		pack(net)
		unknown := iso8583.NewMessage(testSpec(t, profile))
		unknown.MTI(mtiOf(profile, "600"))
		unknown.Field(11, stanOf(profile, 5))
		pack(unknown)
		seeds = append(seeds, seeds[0][:len(seeds[0])/2], []byte("GET / HTTP/1.1\r\n"), []byte{})
		for i, s := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconvQuote(s) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, "seed"+string(rune('0'+i))), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func strconvQuote(b []byte) string { return strconv.Quote(string(b)) }

// TestEmptySecondaryBitmap: bit 1 set with a secondary bitmap of zeros is
// accepted in both profiles.
func TestEmptySecondaryBitmap(t *testing.T) {
	for _, profile := range bothProfiles {
		t.Run(profile, func(t *testing.T) {
			raw := readHex(t, filepath.Join("testdata", profile+"_auth_request.hex"))
			bm := 4 // the MTI's length: ASCII, or BCD in the CMF
			if profile == ProfileISO2003 {
				bm = 2
			}
			if raw[bm]&0x80 != 0 {
				t.Fatal("golden request already has a secondary bitmap")
			}
			withSecondary := append([]byte(nil), raw[:bm+8]...)
			withSecondary[bm] |= 0x80
			withSecondary = append(withSecondary, make([]byte, 8)...)
			withSecondary = append(withSecondary, raw[bm+8:]...)
			a := newTestAuthorizer()
			out := newBareServer(t, profile, a).handle(t.Context(), withSecondary, time.Now(), "test")
			ans := iso8583.NewMessage(testSpec(t, profile))
			if err := ans.Unpack(out.answer); err != nil {
				t.Fatal(err)
			}
			if get(t, ans, 39) != actionCode(t, profile, cardhost.Approved) || len(a.requests()) != 1 {
				t.Errorf("DE39 %s, authorizer saw %d", get(t, ans, 39), len(a.requests()))
			}
		})
	}
}
