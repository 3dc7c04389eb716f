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
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
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

// Mix weighs the kinds of requests sent. Weights are relative; the zero
// Mix means approvals only. The kinds after Echo need the iso2003 profile.
type Mix struct {
	Approve  int // authorisation of an "ok" card: approved
	Funds    int // authorisation of a "poor" card (or an "ok" card for an amount no balance holds): declined for funds
	Locked   int // authorisation of a "locked" card: declined
	CVC2     int // authorisation of an "ok" card with a wrong CVC2: declined
	Reversal int // full reversal of an earlier approval (an approval when none is left to reverse)
	Echo     int // network management echo

	Expired         int // authorisation of an "expired" card (or an "ok" card with a past DE14): declined
	ReversalPartial int // partial reversal (DE24 401) of an earlier approval, keeping 60 % of it; the rest is completed later
	// Complete, CompletePartial and CompleteOver are completions (x220) of
	// earlier approvals: for the amount held (DE24 201), for 60 % of it
	// (202), and 15 % above it (202) at a restaurant (MCC 5812, 20 %
	// tolerance). An over-hold completion needs a restaurant approval:
	// with completions in the mix, that share of the approvals is sent
	// with MCC 5812 (the others 5411), and whatever completion is drawn, a
	// restaurant approval is completed 15 % above its hold.
	Complete, CompletePartial, CompleteOver int
	Refund                                  int // refund (x200, processing code 20) naming a completed purchase, for half its capture
	Advice                                  int // authorisation advice (x120) of an "ok" card: approved, completed later like an approval
	Balance                                 int // balance inquiry (x100, processing code 30) of an "ok" card
}

// Realistic is the `-mix realistic` preset (docs/operations.md, "Load
// mixes"): dual-message traffic where most approvals are completed later
// in the run, about 2 % of them reversed, declines at published rates.
var Realistic = Mix{Approve: 94, Funds: 3, Locked: 1, CVC2: 1, Expired: 1,
	Reversal: 1, ReversalPartial: 1, Complete: 70, CompletePartial: 8, CompleteOver: 8,
	Refund: 1, Advice: 1, Balance: 1}

// ParseMix reads a mix as "approve=90,funds=2,locked=2,cvc2=2,reversal=2,echo=2",
// kinds left out weighing 0, or the name of a preset ("realistic").
func ParseMix(s string) (Mix, error) {
	var m Mix
	switch strings.TrimSpace(s) {
	case "":
		return Mix{Approve: 1}, nil
	case "realistic":
		return Realistic, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return Mix{}, fmt.Errorf("mix %q: want kind=weight", part)
		}
		i := slices.Index(opNames[:], k)
		if i < 0 {
			return Mix{}, fmt.Errorf("mix: unknown kind %q (%s, or the preset realistic)", k, strings.Join(opNames[:], ", "))
		}
		*m.weight(op(i)) = n
	}
	return m, nil
}

// String lists the kinds of non-zero weight.
func (m Mix) String() string {
	var parts []string
	for o := range numOps {
		if w := *m.weight(o); w > 0 || o <= opEcho && m.sendsOnlyClassic() {
			parts = append(parts, fmt.Sprintf("%s=%d", opNames[o], w))
		}
	}
	return strings.Join(parts, ",")
}

// sendsOnlyClassic reports whether m sends only the kinds of before issue
// 18 (then String names all six, as it always did).
func (m Mix) sendsOnlyClassic() bool {
	for o := opEcho + 1; o < numOps; o++ {
		if *m.weight(o) > 0 {
			return false
		}
	}
	return true
}

type op int

const (
	opApprove op = iota
	opFunds
	opLocked
	opCVC2
	opReversal
	opEcho
	opExpired
	opReversalPartial
	opComplete
	opCompletePartial
	opCompleteOver
	opRefund
	opAdvice
	opBalance
	numOps
)

var opNames = [numOps]string{"approve", "funds", "locked", "cvc2", "reversal", "echo",
	"expired", "reversal_partial", "complete", "complete_partial", "complete_over", "refund", "advice", "balance"}

func (m *Mix) weight(o op) *int {
	return [numOps]*int{&m.Approve, &m.Funds, &m.Locked, &m.CVC2, &m.Reversal, &m.Echo,
		&m.Expired, &m.ReversalPartial, &m.Complete, &m.CompletePartial, &m.CompleteOver, &m.Refund, &m.Advice, &m.Balance}[o]
}

func (m Mix) weights() [numOps]int {
	var w [numOps]int
	for o := range numOps {
		w[o] = *m.weight(o)
	}
	return w
}

// money reports whether answers to o count as money messages (all but
// echoes and balance inquiries).
func (o op) money() bool { return o != opEcho && o != opBalance }

// authorisation reports whether o is an authorisation or advice of a
// purchase: its approvals are what approved_per_s counts.
func (o op) authorisation() bool {
	switch o {
	case opApprove, opFunds, opLocked, opCVC2, opExpired, opAdvice:
		return true
	}
	return false
}

func (o op) completion() bool {
	return o == opComplete || o == opCompletePartial || o == opCompleteOver
}

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
	approved  string          // DE39 of an approval in this profile
	failed    map[string]bool // DE39 of issuer unavailable, system and format error: no decision
	byKind    map[string][]Card
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
	r := &runner{cfg: cfg, codec: cd, approved: approved, byKind: map[string][]Card{}, weights: cfg.Mix.weights(), mcc5812: -1,
		failed: map[string]bool{}}
	for _, reason := range []string{"issuer_unavailable", "system_error", "format_error"} {
		code, err := specs.ActionCode(cfg.Profile, reason)
		if err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		r.failed[code] = true
	}
	for _, c := range cfg.Cards {
		r.byKind[c.Kind] = append(r.byKind[c.Kind], c)
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

// client is one connection: its sender (run), reader and timeout sweeper.
type client struct {
	r   *runner
	nc  net.Conn
	bw  *bufio.Writer
	rnd *rand.Rand
	sem chan struct{}
	id  int

	mu       sync.Mutex
	pending  map[string]*pending
	open     ring // approvals and advices to complete or reverse
	captured ring // completed purchases to refund

	lat           []time.Duration // written by the reader only
	codes         map[string]int64
	answeredByOp  [numOps]int64 // written by the reader only
	approvedByOp  [numOps]int64
	moneyLat      []time.Duration // latencies of money messages
	moneyAnswered int64

	// time fields, cached per second by the sender
	sec             int64
	de7, de12, de13 string
	buf             []byte
	fields          []field
	readerDone      chan struct{}
}

func newClient(r *runner, nc net.Conn, id int) *client {
	window := r.cfg.InFlight
	if r.cfg.Rate > 0 {
		window = r.cfg.MaxInFlight
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &client{
		r: r, nc: nc, id: id,
		bw:         bufio.NewWriterSize(nc, 32<<10),
		rnd:        rand.New(rand.NewPCG(r.cfg.Seed, uint64(id))),
		sem:        make(chan struct{}, window),
		pending:    make(map[string]*pending, window),
		open:       newRing(openRingSize),
		captured:   newRing(capturedRingSize),
		codes:      map[string]int64{},
		lat:        make([]time.Duration, 0, 1<<14),
		readerDone: make(chan struct{}),
	}
}

func (c *client) inflight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// run sends until the run ends, then waits for the answers still due and
// closes the connection.
func (c *client) run(ctx context.Context) {
	go c.read()
	sweepDone := make(chan struct{})
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	go func() {
		defer close(sweepDone)
		c.sweep(sweepCtx)
	}()

	c.send(ctx)
	c.bw.Flush()

	// Drain: wait for every request in flight to be answered or time out.
	deadline := time.Now().Add(c.r.cfg.Timeout + 100*time.Millisecond)
	for c.inflight() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-c.readerDone:
			deadline = time.Now()
		case <-time.After(2 * time.Millisecond):
		}
	}
	stopSweep()
	<-sweepDone
	c.nc.Close()
	<-c.readerDone
	// Whatever is still pending was not answered.
	c.mu.Lock()
	c.r.timeouts.Add(int64(len(c.pending)))
	clear(c.pending)
	c.mu.Unlock()
}

func (c *client) send(ctx context.Context) {
	r := c.r
	var interval time.Duration
	var next time.Time
	if r.cfg.Rate > 0 {
		interval = time.Duration(float64(r.cfg.Conns) / r.cfg.Rate * float64(time.Second))
		next = r.start.Add(interval * time.Duration(c.id) / time.Duration(r.cfg.Conns))
	}
	for ctx.Err() == nil {
		if !r.end.IsZero() && !time.Now().Before(r.end) {
			return
		}
		if r.cfg.Count > 0 && r.claimed.Add(1) > r.cfg.Count {
			return
		}
		start := time.Now()
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				if c.flush() != nil {
					return
				}
				time.Sleep(d)
			}
			start = next
			next = next.Add(interval)
		}
		select {
		case c.sem <- struct{}{}:
		default:
			if c.flush() != nil {
				return
			}
			select {
			case c.sem <- struct{}{}:
			case <-ctx.Done():
				return
			case <-c.readerDone:
				return
			}
		}
		if interval == 0 {
			start = time.Now()
		}
		if err := c.sendOne(start); err != nil {
			<-c.sem
			r.noteErr(err)
			return
		}
	}
}

func (c *client) flush() error {
	if c.bw.Buffered() == 0 {
		return nil
	}
	if err := c.bw.Flush(); err != nil {
		c.r.noteErr(fmt.Errorf("write: %w", err))
		return err
	}
	return nil
}

func (c *client) pick() op {
	r := c.r
	n := c.rnd.IntN(r.total)
	for o, w := range r.weights {
		if n < w {
			return op(o)
		}
		n -= w
	}
	return opApprove
}

func (c *client) card(kind string) Card {
	cards := c.r.byKind[kind]
	return cards[c.rnd.IntN(len(cards))]
}

func (c *client) timeFields(now time.Time) {
	if s := now.Unix(); s != c.sec {
		c.sec = s
		u := now.UTC()
		c.de7 = u.Format("0102150405")
		l := now.Local()
		if c.r.cfg.Profile == ProfileISO2003 {
			c.de12 = l.Format("20060102150405")
		} else {
			c.de12, c.de13 = l.Format("150405"), l.Format("0102")
		}
	}
}

// sendOne builds one request of a kind drawn from the mix and writes it
// (buffered) after recording it as pending.
func (c *client) sendOne(start time.Time) error {
	r := c.r
	o := c.pick()
	var orig *original
	switch {
	case o == opReversal || o == opReversalPartial || o.completion():
		c.mu.Lock()
		orig = c.open.pop()
		c.mu.Unlock()
	case o == opRefund:
		c.mu.Lock()
		orig = c.captured.pop()
		c.mu.Unlock()
	}
	if orig == nil && (o == opReversal || o == opReversalPartial || o.completion() || o == opRefund) {
		o = opApprove // nothing (yet) to refer to
	}
	if o.completion() {
		// The original decides the completion: a restaurant's is
		// completed with a tip, above its hold within the tolerance.
		switch {
		case orig.mcc == mccRestaurant:
			o = opCompleteOver
		case o == opCompleteOver:
			o = opComplete
		}
	}
	c.timeFields(time.Now())
	seq := r.stanSeq.Add(1)
	stan := digits(seq%r.stanMod, r.stanWidth)
	rrn := digits((r.rrnBase+seq)%1_000_000_000_000, 12)
	iso87 := r.cfg.Profile == ProfileISO87
	v := byte('2')
	if iso87 {
		v = '0'
	}
	f := c.fields[:0]
	var mti, answerMTI string
	p := &pending{start: start, op: o}

	if o == opEcho {
		if iso87 {
			mti, answerMTI = "0800", "0810"
			f = append(f, field{7, c.de7}, field{11, stan}, field{70, "301"})
		} else {
			mti, answerMTI = "2804", "2814"
			f = append(f, field{7, c.de7}, field{11, stan}, field{24, "831"})
		}
	} else {
		var card Card
		amount := r.cfg.Amount
		cvc2, mcc := "", ""
		class, proc, fc := "10", "000000", "100" // MTI class and function, DE3, DE24
		switch o {
		case opApprove, opAdvice:
			card = c.card(KindOK)
			cvc2 = card.CVC2
			if r.mcc5812 >= 0 {
				mcc = "5411" // grocery stores
				if c.rnd.IntN(1000) < r.mcc5812 {
					mcc = mccRestaurant
				}
			}
			if o == opAdvice {
				class, cvc2 = "12", ""
			}
		case opBalance:
			card = c.card(KindOK)
			cvc2, proc, amount = card.CVC2, "300000", 0
		case opFunds:
			if len(r.byKind[KindPoor]) > 0 {
				card = c.card(KindPoor)
			} else {
				card = c.card(KindOK)
				amount = 999_999_999_999
			}
			cvc2 = card.CVC2
		case opLocked:
			card = c.card(KindLocked)
			cvc2 = card.CVC2
		case opCVC2:
			card = c.card(KindOK)
			cvc2 = wrongCVC2(card.CVC2)
		case opExpired:
			if len(r.byKind[KindExpired]) > 0 {
				card = c.card(KindExpired)
				cvc2 = card.CVC2
			} else {
				card = c.card(KindOK)
				card.Expiry = pastExpiry
			}
		case opReversal, opReversalPartial:
			card = Card{PAN: orig.pan, Expiry: orig.expiry}
			amount, rrn, class, fc = orig.amount, orig.rrn, "40", "400"
			if o == opReversalPartial {
				amount, fc = max(orig.amount*6/10, 1), "401"
			}
		case opComplete, opCompletePartial, opCompleteOver:
			card = Card{PAN: orig.pan, Expiry: orig.expiry}
			amount, rrn, class, fc, mcc = orig.amount, orig.rrn, "22", "201", orig.mcc
			switch o {
			case opCompletePartial:
				amount, fc = max(orig.amount*6/10, 1), "202"
			case opCompleteOver:
				amount, fc = orig.amount*115/100, "202"
			}
		case opRefund:
			card = Card{PAN: orig.pan, Expiry: orig.expiry}
			amount, class, proc, fc = max(orig.captured/2, 1), "20", "200000", "200"
		}
		mti = string([]byte{v, class[0], class[1], '0'})
		answerMTI = string([]byte{v, class[0], class[1] + 1, '0'})
		de4 := amountField(amount)
		if !iso87 {
			// The CMF's DE4: currency n3, minor unit n1, amount n12.
			de4 = r.cfg.Currency + r.minorUnit + de4
		}
		f = append(f, field{2, card.PAN}, field{3, proc}, field{4, de4},
			field{7, c.de7}, field{11, stan}, field{12, c.de12})
		if iso87 {
			f = append(f, field{13, c.de13})
		}
		if card.Expiry != "" {
			f = append(f, field{14, card.Expiry})
		}
		if !iso87 {
			f = append(f, field{24, fc})
			if mcc != "" {
				f = append(f, field{26, mcc})
			}
			if o == opReversalPartial {
				// DE30: the original amounts; DE4 is what remains.
				a := specs.Amount2003{Currency: r.cfg.Currency, MinorUnit: int(r.minorUnit[0] - '0'), Amount: orig.amount}
				f = append(f, field{30, string(specs.PackAmountsOriginal(a, a))})
			}
		}
		f = append(f, field{32, r.cfg.AcquirerID}, field{37, rrn}, field{41, r.cfg.Terminal}, field{42, r.cfg.Merchant})
		if iso87 {
			if cvc2 != "" {
				f = append(f, field{48, "92" + digits(uint64(len(cvc2)), 2) + cvc2})
			}
			f = append(f, field{49, r.cfg.Currency})
		} else if cvc2 != "" {
			// The CMF's DE49 verification data: bitmap with sub-field 2,
			// the CVC2 as n4 in BCD.
			f = append(f, field{49, cmfCVC2(cvc2)})
		}
		if orig != nil {
			if iso87 {
				f = append(f, field{90, fmt.Sprintf("%s%s%s%011s%011d", orig.mti, orig.stan, orig.de7, orig.acquirer, 0)})
			} else {
				f = append(f, field{56, orig.mti + orig.stan + orig.de12 + orig.acquirer})
			}
		}
		p.amount = amount
		switch {
		case o == opApprove || o == opAdvice:
			p.orig = &original{mti: mti, stan: stan, de7: c.de7, de12: c.de12, rrn: rrn, acquirer: r.cfg.AcquirerID,
				pan: card.PAN, expiry: card.Expiry, mcc: mcc, amount: amount}
		case orig != nil:
			p.orig = orig
		}
	}
	c.fields = f
	p.mti = answerMTI
	var err error
	c.buf, err = r.codec.pack(c.buf[:0], mti, f)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.pending[stan] = p
	c.mu.Unlock()
	if _, err := c.bw.Write(c.buf); err != nil {
		c.mu.Lock()
		delete(c.pending, stan)
		c.mu.Unlock()
		return fmt.Errorf("write: %w", err)
	}
	r.sent.Add(1)
	r.sentByOp[o].Add(1)
	return nil
}

const (
	mccRestaurant = "5812" // eating places: 20 % clearing tolerance (cardhost.DefaultMCCRules)
	pastExpiry    = "2001" // January 2020: an expired card's DE14
)

// wrongCVC2 changes the last digit of a CVC2.
func wrongCVC2(cvc2 string) string {
	if cvc2 == "" {
		return "999"
	}
	b := []byte(cvc2)
	last := b[len(b)-1]
	if last < '0' || last > '9' {
		last = '0'
	}
	b[len(b)-1] = '0' + (last-'0'+1)%10
	return string(b)
}

// read reads answers until the connection closes.
func (c *client) read() {
	defer close(c.readerDone)
	r := c.r
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var hdr [2]byte
	body := make([]byte, 0, 1024)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if c.inflight() > 0 && !errors.Is(err, net.ErrClosed) {
				r.noteErr(fmt.Errorf("read: %w", err))
			}
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			r.noteErr(fmt.Errorf("read: %w", err))
			return
		}
		now := time.Now()
		a, err := r.codec.parse(body)
		if err != nil {
			r.noteErr(err)
			continue
		}
		if a.mti == "0800" || a.mti == "2804" {
			continue // the switch signs off: nothing to match
		}
		c.mu.Lock()
		p := c.pending[a.stan]
		delete(c.pending, a.stan)
		c.mu.Unlock()
		if p == nil {
			r.unmatched.Add(1)
			continue
		}
		<-c.sem
		c.lat = append(c.lat, now.Sub(p.start))
		c.codes[a.code]++
		r.answered.Add(1)
		if a.mti != p.mti {
			r.noteErr(fmt.Errorf("answer MTI %s, want %s", a.mti, p.mti))
		}
		c.answeredByOp[p.op]++
		if p.op.money() {
			// Every money message's latency; in the rate only those the
			// issuer decided.
			c.moneyLat = append(c.moneyLat, now.Sub(p.start))
			if !r.failed[a.code] {
				r.moneyAnswered.Add(1)
			}
		}
		if a.code != r.approved {
			continue
		}
		c.approvedByOp[p.op]++
		if p.op.authorisation() {
			r.approvedN.Add(1)
		}
		// What an approval makes possible later: completing or reversing
		// an approval, refunding a completed purchase, completing what a
		// partial reversal left.
		switch o := p.op; {
		case p.orig == nil:
		case o == opApprove || o == opAdvice:
			c.mu.Lock()
			c.open.push(p.orig)
			c.mu.Unlock()
		case o.completion():
			done := *p.orig
			done.captured = p.amount
			c.mu.Lock()
			c.captured.push(&done)
			c.mu.Unlock()
		case o == opReversalPartial:
			left := *p.orig
			left.amount = p.amount
			c.mu.Lock()
			c.open.push(&left)
			c.mu.Unlock()
		}
	}
}

// sweep counts requests unanswered past the timeout and frees their slots.
func (c *client) sweep(ctx context.Context) {
	every := min(c.r.cfg.Timeout/4, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.mu.Lock()
			for stan, p := range c.pending {
				if now.Sub(p.start) > c.r.cfg.Timeout {
					delete(c.pending, stan)
					c.r.timeouts.Add(1)
					<-c.sem
				}
			}
			c.mu.Unlock()
		}
	}
}

// digits writes v in decimal, zero-padded to width (v must fit in it).
func digits(v uint64, width int) string {
	var b [20]byte
	for i := width - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[:width])
}

// cmfCVC2 is the CMF's DE49 holding only sub-field 2, the CVC2 as n4 in
// BCD (specs.VerificationTable): an 8-byte bitmap with bit 2, two bytes.
func cmfCVC2(cvc2 string) string {
	for len(cvc2) < 4 {
		cvc2 = "0" + cvc2
	}
	if len(cvc2) != 4 {
		return ""
	}
	return string([]byte{0x40, 0, 0, 0, 0, 0, 0, 0, (cvc2[0]-'0')<<4 | (cvc2[1] - '0'), (cvc2[2]-'0')<<4 | (cvc2[3] - '0')})
}

// amountField is DE4: n12, or fmt's rendering when the amount does not fit
// (a negative or too large -amount is sent as asked, for the switch to
// refuse).
func amountField(v int64) string {
	if v < 0 || v > 999_999_999_999 {
		return fmt.Sprintf("%012d", v)
	}
	return digits(uint64(v), 12)
}
