package authswitch

import (
	"encoding/hex"
	"sync/atomic"
	"testing"
	"time"

	connection "github.com/moov-io/iso8583-connection"
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

// BenchmarkTCPAuthorisation measures round trips over loopback TCP with
// the iso8583-connection client: 4 connections, many requests in flight.
func BenchmarkTCPAuthorisation(b *testing.B) {
	for _, profile := range bothProfiles {
		b.Run(profile, func(b *testing.B) {
			_, addr := startServer(b, profile, newTestAuthorizer(), nil)
			clients := make([]*connection.Connection, 4)
			for i := range clients {
				clients[i] = dial(b, addr, profile)
			}
			var seq atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					c := clients[n%int64(len(clients))]
					if _, err := c.Send(request(b, profile, "100", int(n%999999), panApproved, 100, nil)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
