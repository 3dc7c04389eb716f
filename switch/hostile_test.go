package authswitch

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/internal/faulttest"
)

// raiseNoFile lifts the test process's soft RLIMIT_NOFILE towards n (the
// hard limit caps it); it returns the limit in force.
func raiseNoFile(t *testing.T, n uint64) uint64 {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < n {
		old := rl.Cur
		rl.Cur = min(n, rl.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			rl.Cur = old
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		})
	}
	return rl.Cur
}

// wellBehaved sends n authorisations one after the other on a connection
// of its own and returns their latencies.
func (e *e2e) wellBehaved(t *testing.T, card testCard, n int) []time.Duration {
	t.Helper()
	c := e.dial()
	want := actionCode(t, e.profile, cardhost.Approved)
	lats := make([]time.Duration, 0, n)
	for range n {
		m := e.msg("100", card, 100, nil)
		start := time.Now()
		resp, err := c.Send(m)
		if err != nil {
			t.Fatalf("well-behaved client: %v", err)
		}
		lats = append(lats, time.Since(start))
		if got := get(t, resp, 39); got != want {
			t.Fatalf("well-behaved client: DE39 %s, want %s", got, want)
		}
	}
	return lats
}

// TestHostileClients runs a real switch over the real host and ledger and
// attacks it at once with 1,000 idle connections, slow writers (a byte a
// second), a length header larger than its body, a message over the size
// limit and pipelined bursts far past the in-flight bound, while a
// well-behaved connection keeps sending: its latency stays comparable to
// the baseline measured before (p99 under 10× baseline, floor 5 ms, and
// under 200 ms), every burst request is answered, and the broken streams
// are closed.
func TestHostileClients(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped with -short")
	}
	const idle = 1000
	raiseNoFile(t, 3*idle+1024)
	e := newE2E(t, ProfileISO2003, nil)
	s, addr := startServer(t, e.profile, e.host, func(c *Config) {
		c.ZoneKey = e.profile
		c.ReadTimeout = 2 * time.Second
		c.MaxInFlight = 16
		// This test is about idle connections that are let in.
		c.MaxConnections, c.MaxConnectionsPerSource, c.FirstMessageTimeout = 4096, 4096, time.Minute
		c.Logger = testLogger(t)
	})
	e.addr = addr
	good := e.virtualCard(e.prog, 10_000_000)
	burstCard := e.virtualCard(e.prog, 10_000_000)

	e.wellBehaved(t, good, 20) // warm-up: pool connections, caches
	baseline := e.wellBehaved(t, good, 200)
	base99 := percentile(baseline, 0.99)

	// 1,000 idle connections, opened before the others and kept open.
	idles := make([]net.Conn, 0, idle)
	for range idle {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(idles), err)
		}
		idles = append(idles, nc)
	}
	defer func() {
		for _, nc := range idles {
			nc.Close()
		}
	}()
	waitFor(t, 5*time.Second, func() bool { return metricValue(s.m.connections) >= idle })

	var wg sync.WaitGroup
	attack := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }

	// Slow writers: a valid frame, one byte a second; the switch closes
	// them at ReadTimeout (2 s) after the first byte.
	const slow = 20
	var slowClosed atomic.Int64
	frame := rawFrame(e.pack(e.msg("100", good, 100, nil)))
	for range slow {
		attack(func() {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer nc.Close()
			for i := range min(len(frame), 6) {
				if _, err := nc.Write(frame[i : i+1]); err != nil {
					slowClosed.Add(1)
					return
				}
				time.Sleep(time.Second)
			}
			if closedWithin(nc, 3*time.Second) {
				slowClosed.Add(1)
			}
		})
	}
	// A length header larger than its body, then silence.
	var shortClosed atomic.Bool
	attack(func() {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer nc.Close()
		nc.Write(append([]byte{0x01, 0xf4}, bytes.Repeat([]byte("0"), 40)...))
		shortClosed.Store(closedWithin(nc, 5*time.Second))
	})
	// A message over the size limit (8 KiB): closed at once.
	var oversizeClosed atomic.Bool
	var oversizeTook time.Duration
	attack(func() {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer nc.Close()
		start := time.Now()
		nc.Write(append([]byte{0xff, 0x00}, bytes.Repeat([]byte("9"), 9000)...))
		oversizeClosed.Store(closedWithin(nc, 5*time.Second))
		oversizeTook = time.Since(start)
	})
	// Bursts: 3 × 200 requests written back to back without reading,
	// 12× the in-flight bound each; every one must be answered.
	const bursts, burst = 3, 200
	var burstAnswered atomic.Int64
	attack(func() {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Errorf("burst: %v", err)
			return
		}
		defer nc.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for burstAnswered.Load() < bursts*burst {
				nc.SetReadDeadline(time.Now().Add(20 * time.Second))
				n, err := ReadLengthHeader(nc)
				if err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, nc, int64(n)); err != nil {
					return
				}
				burstAnswered.Add(1)
			}
		}()
		for range bursts {
			var buf bytes.Buffer
			for range burst {
				buf.Write(rawFrame(e.pack(e.msg("100", burstCard, 1, nil))))
			}
			if _, err := nc.Write(buf.Bytes()); err != nil {
				t.Errorf("burst write: %v", err)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		<-done
	})

	time.Sleep(200 * time.Millisecond) // let the attacks start
	attacked := make(chan struct{})
	go func() { wg.Wait(); close(attacked) }()
	var during []time.Duration
	for running := true; running; {
		select {
		case <-attacked:
			running = false
		default:
		}
		during = append(during, e.wellBehaved(t, good, 50)...)
	}
	during99 := percentile(during, 0.99)

	limit := 10 * max(base99, 5*time.Millisecond)
	if during99 > limit || during99 > 200*time.Millisecond {
		t.Errorf("well-behaved p99 under attack %v, baseline %v: want under %v and 200ms", during99, base99, limit)
	}
	if got := burstAnswered.Load(); got != bursts*burst {
		t.Errorf("burst requests answered: %d, want %d", got, bursts*burst)
	}
	if got := slowClosed.Load(); got != slow {
		t.Errorf("slow writers closed: %d of %d", got, slow)
	}
	if !shortClosed.Load() {
		t.Error("a length header larger than its body did not close the connection")
	}
	if !oversizeClosed.Load() {
		t.Error("an oversize frame did not close the connection")
	}
	// The idle connections are still served: one of them sends a request.
	resp, err := writeAndRead(idles[idle-1], e.pack(e.msg("100", good, 100, nil)), e.spec())
	if err != nil {
		t.Fatalf("idle connection after the attacks: %v", err)
	}
	e.expect(resp, cardhost.Approved)

	faulttest.Record(t, faulttest.Row{Area: "switch", Fault: fmt.Sprintf("hostile clients at once: %d idle connections, %d slow writers (1 byte/s), a length header of 500 over a 40-byte body, a 65,280-byte length header (limit 8 KiB), %d pipelined bursts of %d requests (in-flight bound 16)", idle, slow, bursts, burst),
		Behaviour: fmt.Sprintf("well-behaved connection (%d requests while the attacks ran) p50 %v p99 %v (baseline p50 %v p99 %v); all %d burst requests answered (back-pressure, none dropped); slow writers and the short frame closed at ReadTimeout (2 s), the oversize frame closed in %v; idle connections still served",
			len(during), percentile(during, 0.5).Round(10*time.Microsecond), during99.Round(10*time.Microsecond), percentile(baseline, 0.5).Round(10*time.Microsecond), base99.Round(10*time.Microsecond),
			burstAnswered.Load(), oversizeTook.Round(time.Millisecond)),
		Verify: "clean"})
}

// spec is the message spec of the test's profile.
func (e *e2e) spec() *iso8583.MessageSpec { return testSpec(e.t, e.profile) }

// pack packs m.
func (e *e2e) pack(m *iso8583.Message) []byte {
	e.t.Helper()
	b, err := m.Pack()
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// closedWithin reports whether the peer closes nc within d.
func closedWithin(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	for {
		if _, err := nc.Read(buf); err != nil {
			ne, ok := err.(net.Error)
			return !(ok && ne.Timeout())
		}
	}
}

// writeAndRead sends one frame on a plain socket and reads its answer.
func writeAndRead(nc net.Conn, body []byte, spec *iso8583.MessageSpec) (*iso8583.Message, error) {
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write(rawFrame(body)); err != nil {
		return nil, err
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := ReadLengthHeader(nc)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(nc, b); err != nil {
		return nil, err
	}
	m := iso8583.NewMessage(spec)
	return m, m.Unpack(b)
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
