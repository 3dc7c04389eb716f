// Package partner makes every call out to a partner's back-end: the remote
// authorisation decision and webhook deliveries. Every call goes through one
// HTTP client that speaks HTTPS only, follows no redirects, has a timeout
// and refuses loopback, private and link-local addresses when it dials (a
// name checked at registration can be rebound to 127.0.0.1 later, so the
// check is on the address really dialled), so a partner's URL cannot reach
// our metrics, Patroni or etcd.
package partner

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Errors of the outbound client.
var (
	// ErrURL is a URL this client will not call (not https, no host, ...).
	ErrURL = errors.New("url refused")
	// ErrAddress is a dialled address in a refused range (loopback,
	// private, link-local, ...).
	ErrAddress = errors.New("address refused")
)

// Config configures the outbound client. The zero value is production's.
type Config struct {
	// Timeout bounds one call, connection to the end of the answer's body
	// (default 10 s). A caller's context may bound it further.
	Timeout time.Duration
	// DevHTTPLoopback allows http:// URLs whose host is 127.0.0.1 (and the
	// dial to it), for a partner back-end on a developer's machine
	// (flag -partner-dev-http). Never set in production.
	DevHTTPLoopback bool
	// AllowLoopback allows dialling loopback addresses over https: the
	// tests' httptest TLS servers listen on 127.0.0.1. Production never
	// sets it; private and link-local addresses stay refused.
	AllowLoopback bool
	// RootCAs are the roots trusted for partners' certificates; nil: the
	// system's.
	RootCAs *x509.CertPool
}

// Client is the outbound HTTP client. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
}

// NewClient returns a client with cfg's defaults filled in.
func NewClient(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	c := &Client{cfg: cfg}
	d := &net.Dialer{Timeout: cfg.Timeout, Control: c.control}
	tr := &http.Transport{
		Proxy:               nil, // a proxy would dial for us, past the address check
		DialContext:         d.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: cfg.Timeout,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	c.http = &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// A redirect is answered as it is: a 3xx, which callers treat as a
		// failure. The Location is never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// CheckURL reports whether the client would call raw: an absolute https://
// URL with a host and no user information; http:// only for 127.0.0.1 with
// DevHTTPLoopback. The address a name resolves to is checked again at
// every dial.
func (c *Client) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: not a URL", ErrURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: user information in the URL", ErrURL)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%w: no host", ErrURL)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if c.cfg.DevHTTPLoopback && u.Hostname() == "127.0.0.1" {
			return nil
		}
		return fmt.Errorf("%w: http:// is not allowed, use https://", ErrURL)
	}
	return fmt.Errorf("%w: scheme %q, use https://", ErrURL, u.Scheme)
}

// Do sends req after checking its URL; the caller closes the answer's body.
// A redirect comes back as the 3xx answer, never followed.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if err := c.CheckURL(req.URL.String()); err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

// control runs after the name is resolved and before connect: it refuses
// the addresses a partner must never reach.
func (c *Client) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrAddress, address)
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() && (c.cfg.AllowLoopback || c.cfg.DevHTTPLoopback) {
		return nil
	}
	if why := refused(ip); why != "" {
		return fmt.Errorf("%w: %s is %s", ErrAddress, ip, why)
	}
	return nil
}

// refusedPrefixes are ranges beyond netip's predicates: carrier-grade NAT,
// the IETF protocol block, benchmarking, and the IPv4 "this network".
var refusedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can embed any IPv4 address
}

// refused says why ip may not be dialled, or "" when it may.
func refused(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, p := range refusedPrefixes {
		if p.Contains(ip) {
			return "reserved"
		}
	}
	return ""
}

// unreachable reports whether err means the partner could not be reached
// in time: a timeout or a refused connection (the cases a stand-in covers).
// A refused address, a TLS failure or any answer is not.
func unreachable(ctx context.Context, err error) bool {
	if errors.Is(err, ErrAddress) || errors.Is(err, ErrURL) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// hostOf is the URL's host for errors and logs (never its path or query,
// which may carry a token).
func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return strings.SplitN(raw, "/", 2)[0]
}
