// Package authswitch is the ISO 8583 side of the issuer: one TCP listener
// per link (links.go) with 2- or 4-byte length framing, the connection
// lifecycle (limits, back-pressure, idle timeouts, graceful shutdown), the
// iso87 (four encodings) and iso2003 (jPOS CMF) profiles, mapping wire
// fields to cardhost.AuthRequest and decisions back to answers, network
// management and the metrics of the wire. The decision itself comes from an
// Authorizer.
package authswitch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/specs"
	"github.com/moov-io/iso8583"
	"github.com/prometheus/client_golang/prometheus"
)

// Authorizer decides one request. It must honour ctx: when ctx ends the
// switch answers "issuer unavailable" with whatever Authorize returns, so an
// Authorizer must not commit a decision it cannot report in time.
type Authorizer interface {
	Authorize(ctx context.Context, req *cardhost.AuthRequest) (cardhost.Decision, error)
}

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("authswitch: server closed")

// Config configures one listener. The zero value of every field but the
// Authorizer (given to New) has a default.
type Config struct {
	// Addr is where ListenAndServe listens: default ":8583" for iso2003 and
	// ":8587" for iso87.
	Addr string
	// Profile is "iso2003" (default) or "iso87".
	Profile string
	// Link names the peer this listener serves, for logs; default the
	// profile's name.
	Link string
	// Variant is the encoding variant of the profile (specs.Variants):
	// default specs.DefaultVariant(Profile).
	Variant string
	// Header is the length header: 2 (default: 2-byte big-endian binary
	// length) or 4 (the same followed by two zero bytes).
	Header int
	// AcquirerIDs, when not empty, are the DE32 values this link may send;
	// a request with another is answered format error.
	AcquirerIDs []string
	// OtherAcquirerIDs are DE32 values of other links, refused here the
	// same way (used when AcquirerIDs is empty).
	OtherAcquirerIDs []string
	// AllowedSources, when not empty, are the IP addresses or CIDR
	// prefixes a connection may come from; others are closed at once.
	AllowedSources []netip.Prefix
	// MaxConnections bounds the open connections of this listener;
	// past it new ones are closed at once. Default 1024.
	MaxConnections int
	// MaxConnectionsPerSource bounds the open connections from one IP
	// address. Default 128.
	MaxConnectionsPerSource int
	// FirstMessageTimeout closes a new connection that sent no complete
	// message (sign-on or any request) within it. Default 10 seconds.
	FirstMessageTimeout time.Duration
	// Spec is the message spec; default specs.ISOSpecVariant(Profile, Variant).
	Spec *iso8583.MessageSpec
	// ZoneKey names the zone PIN key of this listener's connections; it is
	// passed on in every AuthRequest so the issuer can translate DE52.
	ZoneKey string
	// MaxInFlight bounds the requests read and not yet answered per
	// connection; when reached the switch stops reading that socket.
	// Default 64.
	MaxInFlight int
	// IdleTimeout closes a connection with nothing in flight that sent no
	// byte for this long (half-open or forgotten peers). Default 5 minutes.
	IdleTimeout time.Duration
	// ReadTimeout bounds reading the rest of a frame once its first byte
	// arrived. Default 10 seconds.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing answers to a peer that does not read.
	// Default 10 seconds.
	WriteTimeout time.Duration
	// MaxMessageSize is the largest frame body accepted; a larger length
	// header closes the connection. Default 8 KiB (at most 65535).
	MaxMessageSize int
	// DecideTimeout is the budget of one Authorize call; past it the
	// request is answered "issuer unavailable". Default 5 seconds.
	DecideTimeout time.Duration
	// SignOff, when true, sends each peer a network management sign-off
	// request (0800 DE70=002 / 2804 DE24=802) after its in-flight requests
	// are answered during Shutdown. Its answer is not awaited.
	SignOff bool
	// SignOffWait is how long a connection stays open after the sign-off,
	// reading and discarding, unless the peer closes first. Default 1 second.
	SignOffWait time.Duration
	// Logger receives JSON-friendly structured logs; PANs are masked.
	// Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; default a private registry (nothing
	// global). Both profiles may share one.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() error {
	if c.Profile == "" {
		c.Profile = ProfileISO2003
	}
	if c.Addr == "" {
		c.Addr = ":8583"
		if c.Profile == ProfileISO87 {
			c.Addr = ":8587"
		}
	}
	if c.Link == "" {
		c.Link = c.Profile
	}
	if c.Variant == "" {
		c.Variant = specs.DefaultVariant(c.Profile)
	}
	switch c.Header {
	case 0:
		c.Header = 2
	case 2, 4:
	default:
		return fmt.Errorf("length header of %d bytes (want 2 or 4)", c.Header)
	}
	if c.Spec == nil {
		spec, err := specs.ISOSpecVariant(c.Profile, c.Variant)
		if err != nil {
			return err
		}
		c.Spec = spec
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 1024
	}
	if c.MaxConnectionsPerSource <= 0 {
		c.MaxConnectionsPerSource = 128
	}
	if c.FirstMessageTimeout <= 0 {
		c.FirstMessageTimeout = 10 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 64
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 8 << 10
	}
	if c.MaxMessageSize > 65535 {
		c.MaxMessageSize = 65535
	}
	if c.SignOffWait <= 0 {
		c.SignOffWait = time.Second
	}
	if c.DecideTimeout <= 0 {
		c.DecideTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return nil
}

// Server is one ISO 8583 listener of one profile. Its methods are safe for
// concurrent use.
type Server struct {
	cfg  Config
	p    *profile
	spec *iso8583.MessageSpec
	auth Authorizer
	log  *slog.Logger
	m    *metrics

	approvals atomic.Uint64
	netSTAN   atomic.Uint64
	workers   *workers

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*conn]struct{}
	sources map[netip.Addr]int // open connections per source address
	closing bool
	quit    chan struct{} // closed by Shutdown
	connsWG sync.WaitGroup

	// baseCtx is the parent of every Authorize call; cancelled when a
	// Shutdown runs out of time.
	baseCtx context.Context
	cancel  context.CancelFunc
}

// New makes a server of cfg's profile deciding with a.
func New(cfg Config, a Authorizer) (*Server, error) {
	if a == nil {
		return nil, errors.New("new switch: nil authorizer")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("new switch: %w", err)
	}
	p, err := lookupProfile(cfg.Profile)
	if err != nil {
		return nil, fmt.Errorf("new switch: %w", err)
	}
	m, err := newMetrics(cfg.Registerer, p.name)
	if err != nil {
		return nil, fmt.Errorf("new switch: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		baseCtx: ctx,
		cancel:  cancel,
		cfg:     cfg,
		p:       p,
		spec:    cfg.Spec,
		auth:    a,
		log:     cfg.Logger.With("profile", p.name, "link", cfg.Link),
		m:       m,
		conns:   make(map[*conn]struct{}),
		sources: make(map[netip.Addr]int),
		quit:    make(chan struct{}),
		workers: newWorkers(),
	}, nil
}

// ListenAndServe listens on cfg.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ln)
}

// Addr is the address the server listens on; nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts connections on ln until Shutdown, then returns
// ErrServerClosed. Accept errors other than a closed listener are retried
// with a back-off (5 ms doubling to 1 s), as running out of file
// descriptors must not stop the switch.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("listening", "addr", ln.Addr().String())

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.quit:
				return ErrServerClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept: %w", err)
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			s.log.Warn("accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.quit:
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		src := sourceAddr(nc)
		if !s.allowed(src) {
			s.refuse(nc, "source")
			continue
		}
		c := s.newConn(nc)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		if len(s.conns) >= s.cfg.MaxConnections {
			s.mu.Unlock()
			s.refuse(nc, "total")
			continue
		}
		if s.sources[src] >= s.cfg.MaxConnectionsPerSource {
			s.mu.Unlock()
			s.refuse(nc, "per_source")
			continue
		}
		s.sources[src]++
		s.conns[c] = struct{}{}
		s.connsWG.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.connsWG.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			if s.sources[src]--; s.sources[src] <= 0 {
				delete(s.sources, src)
			}
			s.mu.Unlock()
		}()
	}
}

// sourceAddr is the IP address a connection comes from.
func sourceAddr(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(nc.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// allowed reports whether src may connect: any address when the link
// names none.
func (s *Server) allowed(src netip.Addr) bool {
	if len(s.cfg.AllowedSources) == 0 {
		return true
	}
	for _, p := range s.cfg.AllowedSources {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// refuse closes a connection at once (a connection limit or a source not
// allowed), counting it; the log is rate-free on purpose: a flood is
// seen in the metric, not in a line per connection.
func (s *Server) refuse(nc net.Conn, reason string) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0) // a reset: no TIME_WAIT kept for a refused peer
	}
	nc.Close()
	s.m.refused.WithLabelValues(s.p.name, reason).Inc()
}

// Shutdown stops accepting, stops reading new requests, answers every
// request already read, signs off when configured and closes the
// connections. When ctx ends first the remaining connections are closed
// at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.quit)
		if s.ln != nil {
			s.ln.Close()
		}
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.stopReading()
	}

	done := make(chan struct{})
	go func() {
		s.connsWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		s.log.Info("shut down")
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return fmt.Errorf("shutdown: %w", ctx.Err())
	}
}
