package partner

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/antaca/antaca/ledger"
)

// Delivery straight from the journal: the journal row is the event. The
// worker holding the cursor's lease reads the rows past it, POSTs their
// events to the endpoints taking them and records per batch one cursor
// update and one webhook_journal_sends row per endpoint served; only an
// event whose first try failed (or whose endpoint is down) becomes event,
// delivery and attempt rows, retried by Deliver like an outbox event.

// gap is a journal id below the highest read and not read yet: its
// transaction has not committed, or rolled back.
type gap struct {
	since time.Time // first seen
	// wait is the first transaction id started after the gap's owner
	// certainly had its own id (0: not known yet); once every
	// transaction below it has ended (the snapshot's xmin passed it) and
	// the row is still not there, it never will be.
	wait uint64
}

// gapSettle is how long after a gap is first seen the snapshot bounding its
// owner's transaction id is taken: an INSERT takes the journal id from the
// sequence a moment before its transaction takes an id (microseconds, in
// one executor call).
const gapSettle = 50 * time.Millisecond

// maxGap is the widest hole in journal ids that Dispatch waits for (a
// sequence jump after a crash is not a transaction in flight).
const maxGap = 10_000

// Dispatch delivers the events of the journal rows committed since the last
// call, if this worker holds the cursor's lease; it returns how many new
// rows it read. Journal ids are taken in order but may commit out of
// order, so an id missing below the highest one read is read again each
// call until it comes or the database shows its transaction ended.
func (w *Webhooks) Dispatch(ctx context.Context) (int, error) {
	lease := w.lease()
	if !w.held || time.Until(w.leaseEnd) < lease/2 {
		st, ok, err := w.store.LeaseJournal(ctx, w.owner, lease)
		if err != nil || !ok {
			w.held = false
			return 0, err
		}
		if !w.held { // taken over: the state last recorded
			w.seen = st.Seen
			clear(w.gaps)
			now := time.Now()
			for _, id := range st.Gaps {
				w.gaps[id] = &gap{since: now}
			}
		}
		w.held, w.leaseEnd = true, time.Now().Add(lease)
	}
	snapAt := time.Now()
	snap, err := w.store.JournalFollow(ctx, JournalTypes)
	if err != nil {
		return 0, err
	}
	if len(snap.Endpoints) == 0 {
		// Nobody listens: the rows until now are nobody's events.
		end, err := w.store.JournalEnd(ctx)
		if err != nil {
			return 0, err
		}
		if end <= w.seen && len(w.gaps) == 0 {
			return 0, nil
		}
		clear(w.gaps)
		w.seen = max(w.seen, end)
		return 0, w.advance(ctx, ledger.JournalAdvance{State: ledger.JournalState{Seen: w.seen}, Position: w.seen})
	}
	gapIDs := make([]int64, 0, len(w.gaps))
	for id := range w.gaps {
		gapIDs = append(gapIDs, id)
	}
	rows, err := w.store.JournalRows(ctx, w.seen, gapIDs, w.cfg.JournalBatch)
	if err != nil {
		return 0, err
	}
	if err := w.complete(ctx, rows); err != nil {
		return 0, err
	}
	now := time.Now()
	read := 0
	for _, r := range rows {
		if r.ID <= w.seen {
			delete(w.gaps, r.ID) // a gap filled by a late commit
			continue
		}
		if r.ID-w.seen <= maxGap {
			for id := w.seen + 1; id < r.ID; id++ {
				w.gaps[id] = &gap{since: now}
			}
		}
		w.seen = r.ID
		read++
	}
	before := len(w.gaps)
	w.settleGaps(snap, snapAt, now)
	if len(rows) == 0 && len(w.gaps) == before {
		return 0, nil // nothing new: no write (the lease is renewed above when due)
	}
	sends, failures := w.sendJournal(ctx, rows, snap.Endpoints)
	if ctx.Err() != nil {
		// Stopped while sending: nothing recorded, the next holder of the
		// lease sends this batch again (at least once).
		return 0, ctx.Err()
	}
	pos, gaps := w.seen, make([]int64, 0, len(w.gaps))
	for id := range w.gaps {
		pos = min(pos, id-1)
		gaps = append(gaps, id)
	}
	slices.Sort(gaps)
	err = w.advance(ctx, ledger.JournalAdvance{State: ledger.JournalState{Seen: w.seen, Gaps: gaps}, Position: pos, Sends: sends, Failures: failures})
	return read, err
}

// maxOwners bounds the cache of card owners.
const maxOwners = 1 << 20

// complete fills in the rows' card owners and alphabetic currencies from
// caches (neither changes), reading only the cards not seen before.
func (w *Webhooks) complete(ctx context.Context, rows []ledger.JournalEventRow) error {
	if w.codes == nil {
		codes, err := w.store.CurrencyCodes(ctx)
		if err != nil {
			return err
		}
		w.codes = codes
	}
	var missing []int64
	asked := map[int64]bool{}
	for _, r := range rows {
		if _, ok := w.owners[r.CardID]; !ok && r.CardID != 0 && !asked[r.CardID] {
			asked[r.CardID] = true
			missing = append(missing, r.CardID)
		}
	}
	if len(missing) > 0 {
		if len(w.owners)+len(missing) > maxOwners {
			clear(w.owners)
		}
		found, err := w.store.CardOwners(ctx, missing)
		if err != nil {
			return err
		}
		for _, id := range missing {
			w.owners[id] = found[id] // an unknown card: nobody's (zero)
		}
	}
	code := func(n string) string {
		if c, ok := w.codes[n]; ok {
			return c
		}
		return n
	}
	for i := range rows {
		r := &rows[i]
		o := w.owners[r.CardID]
		r.UserID, r.AccountID, r.ProgramID, r.PartnerID = o.UserID, o.AccountID, o.ProgramID, o.PartnerID
		if r.PartnerID == 0 {
			r.CardID = 0
		}
		r.Currency, r.BillingCurrency, r.AvailableCurrency = code(r.Currency), code(r.BillingCurrency), code(r.AvailableCurrency)
	}
	return nil
}

// settleGaps forgets the gaps that will never be filled: their owner's
// transaction has ended (snap, taken at snapAt, before the rows were read,
// has every transaction below the gap's bound ended) and the row was not
// there, or GapWait has passed.
func (w *Webhooks) settleGaps(snap ledger.JournalSnapshot, snapAt, now time.Time) {
	for id, g := range w.gaps {
		switch {
		case g.wait != 0 && snap.Xmin >= g.wait:
			delete(w.gaps, id) // rolled back
		case now.Sub(g.since) > w.cfg.GapWait:
			w.log.Warn("webhooks: journal id given up", "journal_id", id, "waited", now.Sub(g.since).Round(time.Second))
			delete(w.gaps, id)
		case g.wait == 0 && snapAt.Sub(g.since) >= gapSettle:
			// The snapshot came after the owner took its id: it is below
			// the snapshot's xmax.
			g.wait = snap.Xmax
		}
	}
}

// advance records a batch; losing the lease meanwhile records nothing (the
// new holder sends the batch again).
func (w *Webhooks) advance(ctx context.Context, a ledger.JournalAdvance) error {
	ok, err := w.store.AdvanceJournal(context.WithoutCancel(ctx), w.owner, w.lease(), a)
	if err != nil || !ok {
		w.held = false
		return err
	}
	w.leaseEnd = time.Now().Add(w.lease())
	return nil
}

// journalJob is one event of a journal row for one endpoint.
type journalJob struct {
	ev  ledger.Event
	row int64
	ep  *ledger.JournalEndpoint
}

// sendJournal sends the events of rows to the endpoints taking them and
// says what to record: per endpoint the journal ids served, and the events
// not delivered. Each endpoint's events go in journal order, up to
// EndpointParallel of them at a time and Parallel in all, each send
// waiting JournalTimeout at most: an endpoint that fails or is slow is
// marked down at once, and the rest of its events become pending
// deliveries without a try, so it holds the batch back by JournalTimeout
// at the most.
func (w *Webhooks) sendJournal(ctx context.Context, rows []ledger.JournalEventRow, eps []ledger.JournalEndpoint) ([]ledger.JournalSend, []ledger.JournalFailure) {
	byPartner := map[int64][]*ledger.JournalEndpoint{}
	for i := range eps {
		byPartner[eps[i].PartnerID] = append(byPartner[eps[i].PartnerID], &eps[i])
	}
	jobs := map[*ledger.JournalEndpoint][]journalJob{}
	for _, r := range rows {
		for _, ev := range JournalEvents(r) {
			for _, ep := range byPartner[r.PartnerID] {
				if takes(ep.EventTypes, ev.Type) {
					jobs[ep] = append(jobs[ep], journalJob{ev: ev, row: r.ID, ep: ep})
				}
			}
		}
	}
	var (
		mu       sync.Mutex
		sent     = map[int64]*ledger.JournalSend{}
		failures []ledger.JournalFailure
		wg       sync.WaitGroup
		sem      = make(chan struct{}, w.cfg.Parallel)
	)
	record := func(j journalJob, f ledger.JournalFailure) {
		mu.Lock()
		defer mu.Unlock()
		if f.Tried || !f.NextAt.IsZero() {
			failures = append(failures, f)
			return
		}
		s := sent[j.ep.ID]
		if s == nil {
			s = &ledger.JournalSend{EndpointID: j.ep.ID, First: j.row, Last: j.row}
			sent[j.ep.ID] = s
		}
		s.First, s.Last, s.Events, s.MS = min(s.First, j.row), max(s.Last, j.row), s.Events+1, max(s.MS, int(f.Took.Milliseconds()))
	}
	for _, list := range jobs {
		wg.Go(func() {
			var epWG sync.WaitGroup
			defer epWG.Wait()
			epSem := make(chan struct{}, w.cfg.EndpointParallel)
			for _, j := range list {
				f := ledger.JournalFailure{Event: j.ev, EndpointID: j.ep.ID}
				if f.NextAt = w.downUntil(j.ep.ID); !f.NextAt.IsZero() {
					record(j, f)
					continue
				}
				epSem <- struct{}{} // this endpoint's slot first: a slow one never waits holding a shared slot
				w.pace.wait(ctx)    // returns at once when ctx ends
				sem <- struct{}{}
				epWG.Go(func() {
					defer func() { <-sem; <-epSem }()
					if f.NextAt = w.downUntil(j.ep.ID); f.NextAt.IsZero() { // not failed meanwhile
						w.sendOne(ctx, j, &f)
					}
					record(j, f)
				})
			}
		})
	}
	wg.Wait()
	sends := make([]ledger.JournalSend, 0, len(sent))
	for _, s := range sent {
		sends = append(sends, *s)
	}
	return sends, failures
}

// sendOne makes the journal's one try of j, waiting JournalTimeout at most;
// a failure marks the endpoint down and f says when to retry.
func (w *Webhooks) sendOne(ctx context.Context, j journalJob, f *ledger.JournalFailure) {
	sctx, cancel := context.WithTimeout(ctx, w.cfg.JournalTimeout)
	defer cancel()
	var err error
	f.Status, f.Took, err = w.post(sctx, j.ep.URL, j.ep.Secrets, j.ev.ID, eventBody(j.ev.ID, j.ev.Type, j.ev.At, j.ev.Data))
	if err == nil {
		return
	}
	if ctx.Err() == nil && sctx.Err() != nil {
		err = fmt.Errorf("no answer within %v from the journal; retried with the full timeout", w.cfg.JournalTimeout)
	}
	w.markDown(j.ep.ID, true)
	f.Tried, f.Error = true, err.Error()
	f.NextAt, _ = w.retry(0, time.Now())
}
