// Package loadtest is the ISO 8583 load generator: N connections to a
// switch, open-loop at a target rate or closed-loop with a window of
// requests in flight per connection, a mix of approvals, declines,
// reversals and echoes over a set of test cards, a progress line each
// second and a final report with latency percentiles and answers by action
// code. It frames messages itself (2-byte big-endian length header) with
// one reader goroutine per connection matching answers by STAN, so that it
// measures the switch rather than a client library.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/antaca/antaca/specs"
)

// Profile names, as the switch spells them.
const (
	ProfileISO2003 = "iso2003"
	ProfileISO87   = "iso87"
)

// Config configures a run. Zero fields get the defaults documented on
// each.
type Config struct {
	// Addr is the switch's ISO listener, host:port. Required.
	Addr string
	// Profile is "iso2003" (default) or "iso87".
	Profile string
	// Conns is the number of connections (default 8).
	Conns int
	// Rate, when > 0, runs open-loop: requests per second over all
	// connections, sent on schedule whatever the answers do; latency is
	// measured from the scheduled time. 0 runs closed-loop.
	Rate float64
	// InFlight is the closed-loop window: requests in flight per
	// connection (default 16).
	InFlight int
	// MaxInFlight caps the requests in flight per connection in open loop
	// (default 4096); past it sending waits.
	MaxInFlight int
	// Duration ends sending after this long; Count after this many
	// requests. At least one is required; the first reached ends the run.
	Duration time.Duration
	Count    int64
	// Timeout is how long a request waits for its answer (default 5 s).
	Timeout time.Duration
	// Mix is what to send; the zero Mix sends approvals only.
	Mix Mix
	// Cards is the card set. Required.
	Cards []Card
	// Currency is DE49, ISO 4217 numeric (default "978").
	Currency string
	// Amount is DE4 in minor units (default 1000).
	Amount int64
	// AcquirerID is DE32, digits (default "123456").
	AcquirerID string
	// Terminal and Merchant are DE41 and DE42 (defaults "LOADTEST",
	// "LOADTESTMERCH01").
	Terminal, Merchant string
	// Progress, when set, gets a progress line each second.
	Progress io.Writer
	// ReportEvery, when > 0, splits the report into intervals of this
	// length (Report.Intervals): rates and p99 per interval, to see
	// whether a long run slows down. Answers that come after the last
	// interval's end (the drain) count in the last interval.
	ReportEvery time.Duration
	// Logger receives connection errors (never card data). Default
	// discards.
	Logger *slog.Logger
	// Seed seeds the choice of cards and kinds (default from the clock).
	Seed uint64
}

func (c *Config) setDefaults() error {
	if c.Addr == "" {
		return errors.New("no address")
	}
	if c.Profile == "" {
		c.Profile = ProfileISO2003
	}
	if c.Profile != ProfileISO2003 && c.Profile != ProfileISO87 {
		return fmt.Errorf("unknown profile %q", c.Profile)
	}
	if c.Conns <= 0 {
		c.Conns = 8
	}
	if c.InFlight <= 0 {
		c.InFlight = 16
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4096
	}
	if c.Duration <= 0 && c.Count <= 0 {
		return errors.New("neither duration nor count")
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Mix == (Mix{}) {
		c.Mix = Mix{Approve: 1}
	}
	if c.Currency == "" {
		c.Currency = "978"
	}
	if c.Amount <= 0 {
		c.Amount = 1000
	}
	if c.AcquirerID == "" {
		c.AcquirerID = "123456"
	}
	for _, r := range c.AcquirerID {
		if r < '0' || r > '9' {
			return errors.New("acquirer id must be digits")
		}
	}
	if c.Terminal == "" {
		c.Terminal = "LOADTEST"
	}
	if c.Merchant == "" {
		c.Merchant = "LOADTESTMERCH01"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.ReportEvery < 0 {
		return errors.New("negative report interval")
	}
	return nil
}

// original is what later messages need of an approval the generator saw
// approved: its MTI, STAN, date-times, RRN and acquirer name it (DE56,
// DE90), its card and amounts what the completion, reversal or refund
// sends.
type original struct {
	mti, stan, de7, de12, rrn, acquirer, pan, expiry, mcc string
	amount                                                int64 // still held
	captured                                              int64 // what its completion captured (refunds)
}

// ring is a bounded FIFO of originals; past its size the oldest is
// dropped (in the field, its hold expires).
type ring struct {
	buf     []*original
	head, n int
}

func newRing(size int) ring { return ring{buf: make([]*original, size)} }

func (q *ring) push(o *original) {
	if q.n == len(q.buf) {
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
	q.buf[(q.head+q.n)%len(q.buf)] = o
	q.n++
}

func (q *ring) pop() *original {
	if q.n == 0 {
		return nil
	}
	o := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return o
}

// Per connection: approvals (and advices) waiting for their completion or
// reversal, and completed purchases a refund may name.
const (
	openRingSize     = 4096
	capturedRingSize = 1024
)

type pending struct {
	start  time.Time
	op     op
	mti    string // expected answer MTI
	orig   *original
	amount int64 // DE4 sent (completions: the capture; partial reversals: what remains)
}

// runner is one run: its configuration and shared counters.
type runner struct {
	cfg       Config
	codec     *codec
	approved  string             // DE39 of an approval in this profile
	failed    map[string]bool    // DE39 of issuer unavailable, system and format error: no decision
	byKind    map[string][]int32 // indexes into cfg.Cards: no copies, no pointers for the collector to scan
	weights   [numOps]int
	total     int
	start     time.Time
	end       time.Time // zero: no time limit
	claimed   atomic.Int64
	stanSeq   atomic.Uint64
	rrnBase   uint64
	minorUnit string // the currency's minor unit digit (the CMF's DE4)
	stanMod   uint64
	stanWidth int
	mcc5812   int // per mille of approvals sent at a restaurant (MCC 5812), -1: no DE26
	intervals int // with ReportEvery and Duration: how many; 0: unbounded

	sent, answered, approvedN, moneyAnswered, timeouts, errs, unmatched atomic.Int64
	sentByOp                                                            [numOps]atomic.Int64

	errMu     sync.Mutex
	errSample []string
}

func (r *runner) noteErr(err error) {
	r.errs.Add(1)
	r.errMu.Lock()
	if len(r.errSample) < 5 {
		r.errSample = append(r.errSample, err.Error())
	}
	r.errMu.Unlock()
}

// Run runs the load described by cfg against a switch and returns its
// report. It returns an error only when the run cannot start (bad
// configuration, no connection); errors during the run are counted in the
// report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	spec, err := specs.ISOSpec(cfg.Profile)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	cd, err := newCodec(spec)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	approved, err := specs.ActionCode(cfg.Profile, "approved")
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	r := &runner{cfg: cfg, codec: cd, approved: approved, byKind: map[string][]int32{}, weights: cfg.Mix.weights(), mcc5812: -1,
		failed: map[string]bool{}}
	for _, reason := range []string{"issuer_unavailable", "system_error", "format_error"} {
		code, err := specs.ActionCode(cfg.Profile, reason)
		if err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		r.failed[code] = true
	}
	// Indexes, not copies of the cards: with a million cards, copying
	// them per kind cost a second of CPU per run (growslice) and gave the
	// collector 64 MB more of pointers to scan for the whole load.
	counts := map[string]int{}
	for i := range cfg.Cards {
		counts[cfg.Cards[i].Kind]++
	}
	for k, n := range counts {
		r.byKind[k] = make([]int32, 0, n)
	}
	for i := range cfg.Cards {
		k := cfg.Cards[i].Kind
		r.byKind[k] = append(r.byKind[k], int32(i))
	}
	if err := r.checkCards(); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	for _, w := range r.weights {
		r.total += w
	}
	if completions := cfg.Mix.Complete + cfg.Mix.CompletePartial + cfg.Mix.CompleteOver; completions > 0 {
		r.mcc5812 = 1000 * cfg.Mix.CompleteOver / completions
	}
	r.stanMod, r.stanWidth = 1_000_000, 6
	if cfg.Profile == ProfileISO2003 {
		r.stanMod, r.stanWidth = 1_000_000_000_000, 12
		r.minorUnit = string(rune('0' + specs.MinorUnit(cfg.Currency)))
	}
	now := time.Now()
	// STANs start at a point of the clock and RRNs carry the run's start
	// second, so that runs against one switch seldom repeat a request key.
	r.stanSeq.Store(uint64(now.UnixNano()/1000) % r.stanMod)
	r.rrnBase = uint64(now.Unix()%100_000) * 10_000_000

	dialer := net.Dialer{Timeout: 5 * time.Second}
	clients := make([]*client, 0, cfg.Conns)
	for i := 0; i < cfg.Conns; i++ {
		nc, err := dialer.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			for _, c := range clients {
				c.nc.Close()
			}
			return nil, fmt.Errorf("loadtest: dial %s: %w", cfg.Addr, err)
		}
		clients = append(clients, newClient(r, nc, i))
	}

	r.start = time.Now()
	if cfg.Duration > 0 {
		r.end = r.start.Add(cfg.Duration)
		if cfg.ReportEvery > 0 {
			r.intervals = int((cfg.Duration + cfg.ReportEvery - 1) / cfg.ReportEvery)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go r.progress(runCtx, clients, progressDone)
	} else {
		close(progressDone)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(runCtx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(r.start)
	cancel()
	<-progressDone
	return r.report(clients, elapsed), nil
}

func (r *runner) checkCards() error {
	need := func(kind string, ops ...op) error {
		for _, o := range ops {
			if r.weights[o] > 0 && len(r.byKind[kind]) == 0 {
				return fmt.Errorf("mix sends %s but the card set has no %q card", opNames[o], kind)
			}
		}
		return nil
	}
	if r.cfg.Profile != ProfileISO2003 && !r.cfg.Mix.sendsOnlyClassic() {
		return fmt.Errorf("mix %s: completions, partial reversals, refunds, advices, balance inquiries and expired cards are sent in profile %s only", r.cfg.Mix, ProfileISO2003)
	}
	if err := need(KindOK, opApprove, opCVC2, opReversal, opReversalPartial, opComplete, opCompletePartial, opCompleteOver, opRefund, opAdvice, opBalance); err != nil {
		return err
	}
	if r.weights[opExpired] > 0 && len(r.byKind[KindExpired]) == 0 && len(r.byKind[KindOK]) == 0 {
		return errors.New("mix sends expired but the card set has no expired or ok card")
	}
	if err := need(KindLocked, opLocked); err != nil {
		return err
	}
	if r.weights[opFunds] > 0 && len(r.byKind[KindPoor]) == 0 && len(r.byKind[KindOK]) == 0 {
		return errors.New("mix sends funds but the card set has no poor or ok card")
	}
	return nil
}

// progress writes one line each second until ctx ends.
func (r *runner) progress(ctx context.Context, clients []*client, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastAns, lastApp int64
	last := r.start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ans, app := r.answered.Load(), r.approvedN.Load()
			dt := now.Sub(last).Seconds()
			inflight := 0
			for _, c := range clients {
				inflight += c.inflight()
			}
			fmt.Fprintf(r.cfg.Progress, "loadtest: %4.0fs sent=%d answered=%d answers/s=%.0f approved/s=%.0f inflight=%d timeouts=%d errors=%d\n",
				now.Sub(r.start).Seconds(), r.sent.Load(), ans, float64(ans-lastAns)/dt, float64(app-lastApp)/dt,
				inflight, r.timeouts.Load(), r.errs.Load())
			lastAns, lastApp, last = ans, app, now
		}
	}
}
