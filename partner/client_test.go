package partner

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tlsServer starts a real HTTPS server on 127.0.0.1 and returns it with a
// pool trusting its certificate.
func tlsServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool
}

func get(t *testing.T, c *Client, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err == nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

// TestDefaultRefusesLoopback: production's client refuses 127.0.0.1 at dial
// time, by IP and by a name that resolves to it.
func TestDefaultRefusesLoopback(t *testing.T) {
	var hits atomic.Int32
	srv, pool := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	c := NewClient(Config{RootCAs: pool})
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, u := range []string{srv.URL, "https://localhost" + port} {
		_, err := get(t, c, u)
		if !errors.Is(err, ErrAddress) {
			t.Errorf("%s: got %v, want %v", u, err, ErrAddress)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback server was reached %d times", hits.Load())
	}
	// The test option lets the same client config reach it.
	c = NewClient(Config{RootCAs: pool, AllowLoopback: true})
	resp, err := get(t, c, srv.URL)
	if err != nil || resp.StatusCode != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("with AllowLoopback: got %v %v, hits %d; want 200 and one hit", resp, err, hits.Load())
	}
}

// TestRefusedRanges: private, link-local and reserved addresses are refused;
// public ones pass.
func TestRefusedRanges(t *testing.T) {
	c := NewClient(Config{AllowLoopback: true})
	for _, a := range []string{"10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1",
		"fd00::1", "fe80::1", "::", "[::ffff:10.0.0.1]", "224.0.0.1", "64:ff9b::a00:1"} {
		a = strings.Trim(a, "[]")
		ip := netip.MustParseAddr(a)
		if err := c.control("tcp", netip.AddrPortFrom(ip, 443).String(), nil); !errors.Is(err, ErrAddress) {
			t.Errorf("%s: got %v, want refused", a, err)
		}
	}
	for _, a := range []string{"93.184.215.14", "2606:4700::1111", "8.8.8.8"} {
		if err := c.control("tcp", netip.AddrPortFrom(netip.MustParseAddr(a), 443).String(), nil); err != nil {
			t.Errorf("%s: got %v, want allowed", a, err)
		}
	}
	// Without the test option loopback is refused too.
	if err := NewClient(Config{}).control("tcp", "[::1]:443", nil); !errors.Is(err, ErrAddress) {
		t.Errorf("::1: got %v, want refused", err)
	}
}

// TestHTTPOnlyForDevLoopback: http:// is refused unless the development
// flag is set, and then only for 127.0.0.1.
func TestHTTPOnlyForDevLoopback(t *testing.T) {
	var hits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer plain.Close()
	if _, err := get(t, NewClient(Config{AllowLoopback: true}), plain.URL); !errors.Is(err, ErrURL) {
		t.Fatalf("http:// without the flag: got %v, want %v", err, ErrURL)
	}
	dev := NewClient(Config{DevHTTPLoopback: true})
	if resp, err := get(t, dev, plain.URL); err != nil || resp.StatusCode != 200 {
		t.Fatalf("http://127.0.0.1 with the flag: got %v, want 200", err)
	}
	for _, u := range []string{"http://localhost:1/x", "http://10.0.0.1/x", "ftp://127.0.0.1/x", "https:///x", "https://user:pw@example.com/"} {
		if err := dev.CheckURL(u); !errors.Is(err, ErrURL) {
			t.Errorf("%s: got %v, want %v", u, err, ErrURL)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("plain server hits: got %d, want 1", hits.Load())
	}
}

// TestRedirectNotFollowed: a 307 to another origin comes back as the 307;
// the other origin is never asked.
func TestRedirectNotFollowed(t *testing.T) {
	var other atomic.Int32
	target, pool := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { other.Add(1) })
	redirect := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	pool.AddCert(redirect.Certificate())
	resp, err := get(t, NewClient(Config{RootCAs: pool, AllowLoopback: true}), redirect.URL)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTemporaryRedirect || other.Load() != 0 {
		t.Fatalf("got %d with %d calls to the target, want 307 and none", resp.StatusCode, other.Load())
	}
}

// TestTimeout: a partner slower than the timeout is cut off, and counts as
// unreachable (the stand-in case).
func TestTimeout(t *testing.T) {
	stop := make(chan struct{})
	srv, pool := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) })
	c := NewClient(Config{RootCAs: pool, AllowLoopback: true, Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := get(t, c, srv.URL)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("got %v after %v, want a timeout error within 2 s", err, time.Since(start))
	}
	if !unreachable(context.Background(), err) {
		t.Fatalf("a timeout is not unreachable: %v", err)
	}
	if unreachable(context.Background(), fmt.Errorf("x: %w", ErrAddress)) {
		t.Fatal("a refused address counts as unreachable; it must decline")
	}
}

func TestSignatureVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	h := Signature(now, body, "new", "old")
	if !strings.HasPrefix(h, "t=1700000000,v1=") || strings.Count(h, "v1=") != 2 {
		t.Fatalf("header %q: want t= and two v1=", h)
	}
	for _, s := range []string{"new", "old"} {
		if err := Verify(h, body, s, now, 5*time.Minute); err != nil {
			t.Errorf("secret %s: %v", s, err)
		}
	}
	if err := Verify(h, body, "wrong", now, 5*time.Minute); !errors.Is(err, ErrNoSignature) {
		t.Errorf("wrong secret: got %v, want %v", err, ErrNoSignature)
	}
	if err := Verify(h, []byte(`{"id":"evt_2"}`), "new", now, 5*time.Minute); !errors.Is(err, ErrNoSignature) {
		t.Errorf("changed body: got %v", err)
	}
	if err := Verify(h, body, "new", now.Add(time.Hour), 5*time.Minute); !errors.Is(err, ErrSignatureOld) {
		t.Errorf("old: got %v", err)
	}
	// The documented openssl form: HMAC of "1700000000.{\"id\":\"evt_1\"}" with key "new".
	if got := sign("new", "1700000000", body); len(got) != 64 {
		t.Fatalf("v1 %q is not hex SHA-256", got)
	}
}
