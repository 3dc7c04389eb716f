package authswitch

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
)

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return len(ents)
}

// TestSilentConnectionsLimited: 400 silent connections from one address
// get at most the per-source limit let in, the rest closed at once and
// counted; the file descriptors they hold stay bounded; a well-behaved
// client from another address is answered at once throughout, and the
// silent ones let in are closed at the first-message deadline.
func TestSilentConnectionsLimited(t *testing.T) {
	const perSource, total, silent = 20, 60, 400
	s, addr := startServer(t, ProfileISO87, newTestAuthorizer(), func(c *Config) {
		c.MaxConnections, c.MaxConnectionsPerSource, c.FirstMessageTimeout = total, perSource, 700*time.Millisecond
	})
	fdsBefore := openFDs(t)
	attacker := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range silent {
		nc, err := attacker.Dial("tcp", addr)
		if err != nil {
			continue // a refused connection may already be reset
		}
		conns = append(conns, nc)
	}
	waitFor(t, 5*time.Second, func() bool {
		return metricValue(s.m.refused.WithLabelValues(ProfileISO87, "per_source")) >= silent-perSource
	})
	if open := metricValue(s.m.connections); open > perSource {
		t.Errorf("%v connections open from one address, want at most %d", open, perSource)
	}
	// The client's own descriptors (400 here) are not the server's: what
	// the server holds is what it let in.
	if grown := openFDs(t) - fdsBefore - len(conns); grown > perSource+10 {
		t.Errorf("the server holds %d more descriptors, want about %d", grown, perSource)
	}

	good := dial(t, addr, ProfileISO87)
	for i := range 5 {
		start := time.Now()
		resp, err := good.Send(request(t, ProfileISO87, "100", 900+i, panApproved, 100, nil))
		if err != nil {
			t.Fatal(err)
		}
		if get(t, resp, 39) != actionCode(t, ProfileISO87, cardhost.Approved) || time.Since(start) > time.Second {
			t.Errorf("well-behaved client: DE39 %s after %v", get(t, resp, 39), time.Since(start))
		}
	}
	// The silent ones let in are closed at the deadline; the client that
	// sent a message stays.
	waitFor(t, 5*time.Second, func() bool {
		return metricValue(s.m.refused.WithLabelValues(ProfileISO87, "first_message")) >= perSource
	})
	if resp, err := good.Send(request(t, ProfileISO87, "100", 990, panApproved, 100, nil)); err != nil || get(t, resp, 39) != "00" {
		t.Errorf("well-behaved client after the deadline: %v", err)
	}
}

// TestTotalConnectionLimit: past MaxConnections a connection is closed at
// once, whatever its address; a source not allowed is closed at once.
func TestTotalConnectionLimit(t *testing.T) {
	s, addr := startServer(t, ProfileISO87, newTestAuthorizer(), func(c *Config) {
		c.MaxConnections, c.MaxConnectionsPerSource = 3, 3
	})
	var conns []net.Conn
	for i := range 3 {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i))}}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
	}
	waitFor(t, 5*time.Second, func() bool { return metricValue(s.m.connections) == 3 })
	nc, err := net.Dial("tcp", addr)
	if err == nil {
		expectClosed(t, nc)
		nc.Close()
	}
	waitFor(t, 5*time.Second, func() bool { return metricValue(s.m.refused.WithLabelValues(ProfileISO87, "total")) == 1 })
	_ = conns
}

// TestAllowedSources: a link that names its peers' addresses closes any
// other at once and serves its own.
func TestAllowedSources(t *testing.T) {
	s, addr := startServer(t, ProfileISO87, newTestAuthorizer(), func(c *Config) {
		c.AllowedSources = []netip.Prefix{netip.MustParsePrefix("127.0.0.5/32")}
	})
	nc, err := net.Dial("tcp", addr)
	if err == nil {
		expectClosed(t, nc)
		nc.Close()
	}
	waitFor(t, 5*time.Second, func() bool { return metricValue(s.m.refused.WithLabelValues(ProfileISO87, "source")) == 1 })
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 5)}}
	peer, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peer.Write(rawFrame(mustPack(t, request(t, ProfileISO87, "100", 5, panApproved, 100, nil))))
	resp, err := readAnswer(t, peer, ProfileISO87)
	if err != nil || get(t, resp, 39) != "00" {
		t.Errorf("allowed peer: %v", err)
	}
}
