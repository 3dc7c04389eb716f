package loadtest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/antaca/antaca/specs"
)

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
	// With ReportEvery, per interval (written by the reader only): where
	// its answers start in lat and moneyLat, and its counts.
	latCut, moneyCut []int
	iv               []intervalCount
	noInterval       intervalCount

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
	idx := c.r.byKind[kind]
	return c.r.cfg.Cards[idx[c.rnd.IntN(len(idx))]]
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
		iv := c.interval(now)
		c.lat = append(c.lat, now.Sub(p.start))
		c.codes[a.code]++
		r.answered.Add(1)
		iv.answered++
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
				iv.money++
			}
		}
		if a.code != r.approved {
			continue
		}
		c.approvedByOp[p.op]++
		if p.op.authorisation() {
			r.approvedN.Add(1)
			iv.approved++
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

// intervalCount counts one client's answers in one report interval.
type intervalCount struct{ answered, approved, money int64 }

// interval returns the counts of the report interval an answer at now
// falls in, opening intervals (marking where their latencies start) up
// to it; without ReportEvery, a scratch count nobody reads. Reader only.
func (c *client) interval(now time.Time) *intervalCount {
	r := c.r
	if r.cfg.ReportEvery <= 0 {
		return &c.noInterval
	}
	i := int(now.Sub(r.start) / r.cfg.ReportEvery)
	if r.intervals > 0 {
		i = min(i, r.intervals-1)
	}
	for len(c.iv) <= i {
		c.latCut, c.moneyCut = append(c.latCut, len(c.lat)), append(c.moneyCut, len(c.moneyLat))
		c.iv = append(c.iv, intervalCount{})
	}
	return &c.iv[i]
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
