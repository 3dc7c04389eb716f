package authswitch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
)

func FuzzISO87Frame(f *testing.F)   { fuzzFrame(f, ProfileISO87) }
func FuzzISO2003Frame(f *testing.F) { fuzzFrame(f, ProfileISO2003) }

// fuzzFrame feeds frame bodies to the decoder: unpack, pack, unpack again,
// and the whole handling path, which must neither panic nor need its
// panic recovery. The committed corpus is under testdata/fuzz/.
func fuzzFrame(f *testing.F, profile string) {
	if b, err := os.ReadFile(filepath.Join("testdata", profile+"_auth_request.hex")); err == nil {
		if raw, err := hexDecode(strings.TrimSpace(string(b))); err == nil {
			f.Add(raw)
		}
	}
	spec := testSpec(f, profile)
	s := newBareServer(f, profile, newTestAuthorizer())
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := iso8583.NewMessage(spec)
		if err := m.Unpack(raw); err == nil {
			packed, err := m.Pack()
			if err == nil {
				again := iso8583.NewMessage(spec)
				if err := again.Unpack(packed); err != nil {
					t.Fatalf("repacked message does not unpack: %v", err)
				}
			}
		}
		before := metricValue(s.m.panics)
		out := s.handle(t.Context(), raw, time.Now(), "fuzz")
		if after := metricValue(s.m.panics); after != before {
			t.Fatalf("handling panicked (recovered)")
		}
		if out.answer != nil {
			ans := iso8583.NewMessage(spec)
			if err := ans.Unpack(out.answer); err != nil {
				t.Fatalf("answer does not unpack: %v", err)
			}
		}
	})
}
