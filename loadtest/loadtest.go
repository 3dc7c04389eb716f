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
// Mix means approvals only.
type Mix struct {
	Approve  int // authorisation of an "ok" card: approved
	Funds    int // authorisation of a "poor" card (or an "ok" card for an amount no balance holds): declined for funds
	Locked   int // authorisation of a "locked" card: declined
	CVC2     int // authorisation of an "ok" card with a wrong CVC2: declined
	Reversal int // full reversal of an earlier approval (an approval when none is left to reverse)
	Echo     int // network management echo
}

// ParseMix reads a mix as "approve=90,funds=2,locked=2,cvc2=2,reversal=2,echo=2";
// kinds left out weigh 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	if strings.TrimSpace(s) == "" {
		return Mix{Approve: 1}, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return Mix{}, fmt.Errorf("mix %q: want kind=weight", part)
		}
		switch k {
		case "approve":
			m.Approve = n
		case "funds":
			m.Funds = n
		case "locked":
			m.Locked = n
		case "cvc2":
			m.CVC2 = n
		case "reversal":
			m.Reversal = n
		case "echo":
			m.Echo = n
		default:
			return Mix{}, fmt.Errorf("mix: unknown kind %q (approve, funds, locked, cvc2, reversal, echo)", k)
		}
	}
	return m, nil
}

func (m Mix) String() string {
	return fmt.Sprintf("approve=%d,funds=%d,locked=%d,cvc2=%d,reversal=%d,echo=%d", m.Approve, m.Funds, m.Locked, m.CVC2, m.Reversal, m.Echo)
}

type op int

const (
	opApprove op = iota
	opFunds
	opLocked
	opCVC2
	opReversal
	opEcho
	numOps
)

var opNames = [numOps]string{"approve", "funds", "locked", "cvc2", "reversal", "echo"}

func (m Mix) weights() [numOps]int {
	return [numOps]int{m.Approve, m.Funds, m.Locked, m.CVC2, m.Reversal, m.Echo}
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

// original is what a reversal needs of the approval it reverses.
type original struct {
	mti, stan, de7, de12, pan, expiry string
	amount                            int64
}

type pending struct {
	start time.Time
	op    op
	mti   string // expected answer MTI
	orig  *original
}

// runner is one run: its configuration and shared counters.
type runner struct {
	cfg        Config
	codec      *codec
	approved   string // DE39 of an approval in this profile
	byKind     map[string][]Card
	weights    [numOps]int
	total      int
	start      time.Time
	end        time.Time // zero: no time limit
	claimed    atomic.Int64
	stanSeq    atomic.Uint64
	rrnBase    uint64
	minorUnit  string // the currency's minor unit digit (the CMF's DE4)
	stanMod    uint64
	stanWidth  int
	reversible chan *original

	sent, answered, approvedN, timeouts, errs, unmatched atomic.Int64
	sentByOp                                             [numOps]atomic.Int64

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
	r := &runner{cfg: cfg, codec: cd, approved: approved, byKind: map[string][]Card{}, weights: cfg.Mix.weights(),
		reversible: make(chan *original, 65536)}
	for _, c := range cfg.Cards {
		r.byKind[c.Kind] = append(r.byKind[c.Kind], c)
	}
	if err := r.checkCards(); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	for _, w := range r.weights {
		r.total += w
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
	if err := need(KindOK, opApprove, opCVC2, opReversal); err != nil {
		return err
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

	mu      sync.Mutex
	pending map[string]*pending

	lat   []time.Duration // written by the reader only
	codes map[string]int64

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
	if o == opReversal {
		select {
		case orig = <-r.reversible:
		default:
			o = opApprove
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
		cvc2 := ""
		switch o {
		case opApprove:
			card = c.card(KindOK)
			cvc2 = card.CVC2
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
		case opReversal:
			card = Card{PAN: orig.pan, Expiry: orig.expiry}
			amount = orig.amount
		}
		mti, answerMTI = string([]byte{v, '1', '0', '0'}), string([]byte{v, '1', '1', '0'})
		if o == opReversal {
			mti, answerMTI = string([]byte{v, '4', '0', '0'}), string([]byte{v, '4', '1', '0'})
		}
		de4 := amountField(amount)
		if !iso87 {
			// The CMF's DE4: currency n3, minor unit n1, amount n12.
			de4 = r.cfg.Currency + r.minorUnit + de4
		}
		f = append(f, field{2, card.PAN}, field{3, "000000"}, field{4, de4},
			field{7, c.de7}, field{11, stan}, field{12, c.de12})
		if iso87 {
			f = append(f, field{13, c.de13})
		}
		if card.Expiry != "" {
			f = append(f, field{14, card.Expiry})
		}
		if !iso87 {
			fc := "100"
			if o == opReversal {
				fc = "400"
			}
			f = append(f, field{24, fc})
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
		if o == opReversal {
			if iso87 {
				f = append(f, field{90, fmt.Sprintf("%s%s%s%011s%011d", orig.mti, orig.stan, orig.de7, r.cfg.AcquirerID, 0)})
			} else {
				f = insertField(f, field{56, orig.mti + orig.stan + orig.de12 + r.cfg.AcquirerID})
			}
		}
		if o == opApprove {
			p.orig = &original{mti: mti, stan: stan, de7: c.de7, de12: c.de12, pan: card.PAN, expiry: card.Expiry, amount: amount}
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

// insertField puts f into fields, which are in ascending order.
func insertField(fields []field, f field) []field {
	i := len(fields)
	for i > 0 && fields[i-1].n > f.n {
		i--
	}
	fields = append(fields, field{})
	copy(fields[i+1:], fields[i:])
	fields[i] = f
	return fields
}

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
		if a.code == r.approved && p.op != opEcho && p.op != opReversal {
			r.approvedN.Add(1)
			if p.orig != nil {
				select {
				case r.reversible <- p.orig:
				default:
				}
			}
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
