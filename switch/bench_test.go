package authswitch

import (
	"encoding/hex"
	"testing"
	"time"
)

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }

// BenchmarkAuthorisation measures the wire cost of one authorisation:
// unpack, map, decide with the in-memory test Authorizer, pack the answer.
func BenchmarkAuthorisation(b *testing.B) {
	for _, profile := range bothProfiles {
		b.Run(profile, func(b *testing.B) {
			raw, err := goldenRequest(b, profile).Pack()
			if err != nil {
				b.Fatal(err)
			}
			s := newBareServer(b, profile, newTestAuthorizer())
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				out := s.handle(ctx, raw, time.Now(), "bench")
				if out.answer == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}
