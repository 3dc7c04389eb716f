package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientFrom is an HTTPS client whose connections come from the loopback
// address ip (127.0.0.0/8 is all local on Linux): a source address of its
// own for the per-source limits.
func (e *env) clientFrom(ip string) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(e.ca)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

func (e *env) login(c *http.Client, name, password string) resp {
	e.t.Helper()
	return e.do(c, "POST", "/admin/login", map[string]string{"name": name, "password": password}, nil)
}

func (e *env) loginDelayRows() int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM login_delays`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestAdminLoginDelays: wrong passwords get progressive delays per source
// address and per name, counted before the password check (parallel
// guesses cannot skip them), answered 429 TOO_MANY_ATTEMPTS with
// Retry-After even for the right password; but the admin's own known
// source is never delayed by a stranger's guesses, so nobody without the
// password can lock the admin out. Unknown names are treated alike and not
// logged; a success clears its source; PruneExpired drops old rows.
func TestAdminLoginDelays(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelWarn}))
		c.LoginSourceBurst = 1000 // this test is about the delays, not the bucket
	})
	e.admin("alice", RoleAdmin) // from 127.0.0.1: alice's known source
	home := e.clientFrom("127.0.0.1")
	attacker := e.clientFrom("127.0.0.2")
	expect := func(r resp, status int, retry string, what string) {
		t.Helper()
		if r.status != status || (status == 429 && (r.errCode() != CodeTooManyAttempts || r.header.Get("Retry-After") != retry)) {
			t.Fatalf("%s: got %d %s Retry-After %q, want %d %s", what, r.status, r.body, r.header.Get("Retry-After"), status, retry)
		}
	}
	// Names no admin can have are refused at once, not counted.
	rows := e.loginDelayRows()
	for _, name := range []string{"a\x00b", " alice", strings.Repeat("n", 65)} {
		expect(e.login(attacker, name, "wrong-password-1"), 401, "", "invalid name")
	}
	if n := e.loginDelayRows(); n != rows {
		t.Fatalf("invalid names left %d delay rows, want %d", n, rows)
	}
	// Three failures pass at once, then 1 s, 2 s, 4 s between checks.
	for i := range 3 {
		expect(e.login(attacker, "alice", "wrong-password-1"), 401, "", "free failure "+itoa(int64(i+1)))
	}
	expect(e.login(attacker, "alice", "alice-password-123"), 429, "1", "right password during the source's delay")
	e.advance(time.Second)
	expect(e.login(attacker, "alice", "wrong-password-1"), 401, "", "after 1 s")
	expect(e.login(attacker, "alice", "wrong-password-1"), 429, "2", "second delay")
	e.advance(2 * time.Second)
	expect(e.login(attacker, "alice", "wrong-password-1"), 401, "", "after 2 s")
	expect(e.login(attacker, "alice", "wrong-password-1"), 429, "4", "third delay")

	// The stranger's failures do not keep alice out from her known source.
	expect(e.login(home, "alice", "alice-password-123"), 200, "", "alice from her known source during the attack")

	// Strangers from many addresses: the name's delay (at most
	// LoginDelayMaxName) applies to new sources only.
	for i := 3; i < 12; i++ {
		e.login(e.clientFrom("127.0.0."+itoa(int64(i))), "alice", "wrong-password-1")
	}
	r := e.login(e.clientFrom("127.0.0.20"), "alice", "alice-password-123")
	if r.status != 429 || r.errCode() != CodeTooManyAttempts || r.header.Get("Retry-After") == "" {
		t.Fatalf("right password from a new source while the name is delayed: got %d %s, want 429", r.status, r.body)
	}
	expect(e.login(home, "alice", "alice-password-123"), 200, "", "alice from her known source after a distributed attack")
	e.advance(time.Minute) // LoginDelayMaxName: a new source gets in at last
	expect(e.login(e.clientFrom("127.0.0.20"), "alice", "alice-password-123"), 200, "", "alice from a new source after the name's longest delay")

	// Unknown names are delayed alike (the answer does not tell whether a
	// name exists) and never logged: it may be a password typed as a name.
	const nobody = "hunter2-typed-as-name"
	other := e.clientFrom("127.0.0.30")
	for range 3 {
		expect(e.login(other, nobody, "wrong-password-1"), 401, "", "unknown name")
	}
	expect(e.login(other, nobody, "wrong-password-1"), 429, "1", "unknown name delayed")
	if l := logs.String(); strings.Contains(l, nobody) || !strings.Contains(l, "admin=alice") {
		t.Errorf("logs: want alice's refusals named and the unknown name absent:\n%s", l)
	}

	// Parallel guesses from one source: the count is taken before the
	// check, so only the free ones are checked.
	par := e.clientFrom("127.0.0.40")
	var wg sync.WaitGroup
	codes := make(chan int, 12)
	for range 12 {
		wg.Go(func() { codes <- e.login(par, "alice", "wrong-password-2").status })
	}
	wg.Wait()
	close(codes)
	got := map[int]int{}
	for c := range codes {
		got[c]++
	}
	if got[401] != 3 || got[429] != 9 {
		t.Fatalf("12 parallel wrong attempts: got %v, want 3×401 and 9×429", got)
	}

	e.advance(16 * time.Minute)
	if _, _, err := e.s.PruneExpired(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.loginDelayRows(); n != 0 {
		t.Fatalf("login_delays rows after prune: %d, want 0", n)
	}
}

// TestLoginSourceBucket: a source gets LoginSourceBurst attempts at once
// before anything is read or hashed, then 429 with Retry-After; other
// sources are unaffected, and a success gives its attempt back.
func TestLoginSourceBucket(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LoginSourceBurst = 4; c.LoginSourceEvery = time.Hour; c.LoginFreeFailures = 100 })
	e.admin("alice", RoleAdmin) // one attempt of 127.0.0.1, given back
	flood := e.clientFrom("127.0.0.2")
	for i := range 4 {
		if r := e.login(flood, "nobody-"+itoa(int64(i)), "wrong-password-1"); r.status != 401 {
			t.Fatalf("attempt %d: got %d %s, want 401", i+1, r.status, r.body)
		}
	}
	before := e.loginDelayRows()
	r := e.login(flood, "nobody-9", "wrong-password-1")
	if r.status != 429 || r.errCode() != CodeTooManyAttempts || r.header.Get("Retry-After") != "3600" {
		t.Fatalf("fifth attempt: got %d %s Retry-After %q, want 429 3600", r.status, r.body, r.header.Get("Retry-After"))
	}
	if after := e.loginDelayRows(); after != before {
		t.Fatalf("a refused attempt reached the database: %d delay rows, had %d", after, before)
	}
	for range 6 {
		if r := e.login(e.clientFrom("127.0.0.1"), "alice", "alice-password-123"); r.status != 200 {
			t.Fatalf("alice from her source: got %d %s, want 200 (successes give their attempt back)", r.status, r.body)
		}
	}
}
