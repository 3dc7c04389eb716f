package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/antaca/antaca/ledger"
)

// Admin login defences (issue 21). In the order a login meets them:
//
//  1. sourceLimiter: a token bucket per source address in memory, before
//     the body is read (no JWE decryption, no database, no hashing).
//  2. loginDelay on "src:<address>": progressive delays per source address,
//     in the database so that every API process sees them.
//  3. loginDelay on "name:<name>": progressive delays per admin name, for
//     sources the admin has never logged in from; the admin's known sources
//     are exempt, so a stranger's wrong passwords cannot keep the admin out.
//  4. hashGate: at most Config.HashConcurrency PBKDF2 computations at once;
//     a login that waits longer than Config.HashWait answers 503 BUSY.
//
// A delay answers 429 TOO_MANY_ATTEMPTS with Retry-After, even for the
// right password. The interface (name and password) is unchanged.

// sourceLimiter is a token bucket per source address. It is safe for
// concurrent use.
type sourceLimiter struct {
	mu      sync.Mutex
	burst   float64
	per     time.Duration // one token back per per
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
	until  time.Time // the source's progressive delay, learnt from the database
}

func newSourceLimiter(burst int, per time.Duration) *sourceLimiter {
	return &sourceLimiter{burst: float64(burst), per: per, buckets: map[string]*bucket{}}
}

// take takes a token for src at now; when none is left it returns how long
// until one is back.
func (l *sourceLimiter) take(src string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		// Full buckets carry no state: drop them so the map stays small.
		for k, b := range l.buckets {
			if b.tokens+float64(now.Sub(b.at))/float64(l.per) >= l.burst && !now.Before(b.until) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[src]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[src] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.per))
	b.at = now
	if now.Before(b.until) {
		return b.until.Sub(now), false
	}
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(l.per)), false
	}
	b.tokens--
	return 0, true
}

// hold refuses src until the time its progressive delay ends, so that
// its next attempts are refused here, without the database.
func (l *sourceLimiter) hold(src string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[src]; ok && until.After(b.until) {
		b.until = until
	}
}

// give returns a token to src: a successful login does not count.
func (l *sourceLimiter) give(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[src]; ok {
		b.tokens = math.Min(l.burst, b.tokens+1)
	}
}

// hashGate bounds the PBKDF2 computations running at once: a fixed set of
// low-priority workers (hashWorker) take them. It is safe for concurrent
// use.
type hashGate struct {
	jobs chan func()
	quit chan struct{}
	stop sync.Once
	wait time.Duration
	m    *metrics

	mu   sync.Mutex
	cur  int
	peak int // most computations seen at once, for tests and the metric
}

func newHashGate(workers int, wait time.Duration, m *metrics) *hashGate {
	g := &hashGate{jobs: make(chan func()), quit: make(chan struct{}), wait: wait, m: m}
	for range workers {
		go hashWorker(g.jobs, g.quit)
	}
	return g
}

// close stops the workers (Server.Shutdown).
func (g *hashGate) close() { g.stop.Do(func() { close(g.quit) }) }

// errBusy answers a login whose hash waited past Config.HashWait.
var errBusy = &Error{Status: http.StatusServiceUnavailable, Code: CodeBusy, Message: "too many logins at once; try again shortly"}

// run has a worker run fn when one is free within the gate's wait, and
// waits for it.
func (g *hashGate) run(ctx context.Context, fn func()) *Error {
	t := time.NewTimer(g.wait)
	defer t.Stop()
	done := make(chan struct{})
	job := func() {
		defer close(done)
		g.mu.Lock()
		g.cur++
		g.peak = max(g.peak, g.cur)
		g.m.hashInFlight.Set(float64(g.cur))
		g.mu.Unlock()
		g.m.hashes.Inc()
		fn()
		g.mu.Lock()
		g.cur--
		g.m.hashInFlight.Set(float64(g.cur))
		g.mu.Unlock()
	}
	select {
	case g.jobs <- job:
	case <-t.C:
		g.m.hashBusy.Inc()
		return errBusy
	case <-ctx.Done():
		return errBusy
	case <-g.quit:
		return errBusy
	}
	<-done
	return nil
}

// Peak returns the most password hashes that ran at once.
func (g *hashGate) Peak() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak
}

// loginSlot waits at most HashWait for one of LoginConcurrency places of
// the login path past the per-source bucket, and returns its release.
func (s *Server) loginSlot(ctx context.Context) (func(), *Error) {
	t := time.NewTimer(s.cfg.HashWait)
	defer t.Stop()
	select {
	case s.loginSlots <- struct{}{}:
		return func() { <-s.loginSlots }, nil
	case <-t.C:
	case <-ctx.Done():
	}
	s.metrics.loginRefused.WithLabelValues("busy").Inc()
	return nil, errBusy
}

// sourceOf is the request's source address: the TCP peer. Forwarded
// headers are not trusted (a client could name any address); behind a
// load balancer use one that keeps the peer address (PROXY-less TCP mode)
// or limit there.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limitSource is step 1, run before the body is read.
func (s *Server) limitSource(w http.ResponseWriter, r *http.Request) *Error {
	wait, ok := s.logins.take(sourceOf(r), s.cfg.Now())
	if ok {
		return nil
	}
	s.metrics.loginRefused.WithLabelValues("source_rate").Inc()
	w.Header().Set("Retry-After", strconv.Itoa(max(int(math.Ceil(wait.Seconds())), 1)))
	return errorf(http.StatusTooManyRequests, CodeTooManyAttempts, "too many login attempts from this address; try again later")
}

// loginDelay counts a failure for key before the password is checked (a
// success takes it back, clearLoginDelay) and returns 0, or the time the
// key must still wait, without counting. The first LoginFreeFailures
// failures within LoginWindow pass at once; each further one doubles the
// wait from LoginDelay up to maxWait.
func (s *Server) loginDelay(ctx context.Context, key string, now time.Time, maxWait time.Duration) (wait time.Duration, next time.Time, err error) {
	wait, next, err = s.access().CountLoginFailure(ctx, key, now, s.cfg.LoginWindow, func(failures int) time.Duration {
		return delayAfter(failures, s.cfg.LoginFreeFailures, s.cfg.LoginDelay, maxWait)
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("admin login: delay %s: %w", strings.SplitN(key, ":", 2)[0], err)
	}
	return wait, next, nil
}

// delayAfter is the wait after the n-th failure: none for the first
// free-1, then base, doubling, at most maxWait.
func delayAfter(n, free int, base, maxWait time.Duration) time.Duration {
	if n < free {
		return 0
	}
	shift := min(n-free, 30)
	return min(base<<shift, maxWait)
}

// tooMany is the 429 of a delay.
func tooMany(q *request, wait time.Duration, what string) *Error {
	q.header.Set("Retry-After", strconv.Itoa(max(int(math.Ceil(wait.Seconds())), 1)))
	return errorf(http.StatusTooManyRequests, CodeTooManyAttempts, "too many login attempts %s; try again later", what)
}

var (
	dummyOnce sync.Once
	dummyHash string
)

func (s *Server) adminLogin(q *request) (int, any, error) {
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Name == "" || in.Password == "" {
		return 0, nil, errorf(http.StatusBadRequest, CodeValidation, "name and password are required")
	}
	if len(in.Name) > maxAdminName || !utf8.ValidString(in.Name) || strings.ContainsRune(in.Name, 0) || strings.TrimSpace(in.Name) != in.Name {
		// No admin has such a name (checkAdminInput): nothing to count.
		return 0, nil, unauthenticated("name or password is wrong")
	}
	ctx, src := q.Context(), sourceOf(q.Request)
	// The database work of a login (delays, the admin's row) shares the
	// pool with authorisations: a flood must not hold its connections.
	release, e := s.loginSlot(ctx)
	if e != nil {
		q.header.Set("Retry-After", "1")
		return 0, nil, e
	}
	defer func() { release() }() // at the latest; before the hash when it comes to one
	wait, next, err := s.loginDelay(ctx, "src:"+src, q.now, s.cfg.LoginDelayMaxSource)
	if err != nil {
		return 0, nil, err
	}
	s.logins.hold(src, next)
	if wait > 0 {
		s.metrics.loginRefused.WithLabelValues("source_delay").Inc()
		return 0, nil, tooMany(q, wait, "from this address")
	}
	admin, err := s.access().AdminLogin(ctx, in.Name, src)
	exists := err == nil
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return 0, nil, fmt.Errorf("admin login: %w", err)
	}
	id, hash, role, known := admin.ID, admin.PasswordHash, Role(admin.Role), admin.KnownSource
	if !known {
		// Names no admin has are delayed alike: the answer does not tell
		// whether a name exists.
		wait, _, err := s.loginDelay(ctx, "name:"+in.Name, q.now, s.cfg.LoginDelayMaxName)
		if err != nil {
			return 0, nil, err
		}
		if wait > 0 {
			s.metrics.loginRefused.WithLabelValues("name_delay").Inc()
			return 0, nil, tooMany(q, wait, "for this name from a new address")
		}
	}
	if !exists {
		// Spend the same time as for a known name, so timing does not tell.
		dummyOnce.Do(func() { dummyHash, _ = hashPassword("antaca-dummy-password", s.cfg.PasswordIterations) })
		hash = dummyHash
	}
	release()
	release = func() {}
	var ok bool
	if e := s.hashes.run(ctx, func() { ok = checkPassword(hash, in.Password) }); e != nil {
		q.header.Set("Retry-After", "1")
		return 0, nil, e
	}
	if !ok || !exists {
		if exists {
			s.log.Warn("admin login refused", "admin", in.Name, "known_source", known)
		}
		return 0, nil, unauthenticated("name or password is wrong")
	}
	// The source's failures go, and the name's when this login went
	// through them (a new source): the password holder is here. A known
	// source leaves the name's delay to the strangers it is for.
	clearKeys := []string{"src:" + src}
	if !known {
		clearKeys = append(clearKeys, "name:"+in.Name)
	}
	if err := s.access().LoginSucceeded(ctx, clearKeys, id, src, q.now); err != nil {
		return 0, nil, fmt.Errorf("admin login: clear delay: %w", err)
	}
	s.logins.give(src)
	tok, exp, err := s.createSession(ctx, "admin", 0, 0, id, q.now)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, sessionAnswer{Token: tok, ExpiresAt: exp, Role: role}, nil
}

// maxAdminName is the longest admin name (bytes).
const maxAdminName = 64

// PasswordHashPeak returns the most password hashes that ran at once
// since the server started (never more than Config.HashConcurrency).
func (s *Server) PasswordHashPeak() int { return s.hashes.Peak() }
