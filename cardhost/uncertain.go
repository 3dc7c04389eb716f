package cardhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/ledger"
)

// Uncertain commits (issue 21). When the connection is lost while a
// batch's COMMIT is on its way (the primary died, a failover, a network
// cut), nobody knows whether the batch committed: the server may have
// committed, and with synchronous replication the new primary may hold the
// commit, without the answer ever reaching us. Its requests are answered
// issuer unavailable (9112) like any database failure, and the host
// remembers them (uncertainSet) until the ledger can be asked again; then
// it reconciles each with what the ledger holds:
//
//   - no journal row: the batch did not commit; a journal row with the
//     issuer-unavailable answer is written, so a repeat gets 9112 again;
//   - a journal row with a hold (an approval that did commit): the hold is
//     released and the row rewritten to the answer that was sent;
//   - a journal row with any other answer (a decline): rewritten alike.
//
// Until a request is reconciled, a repeat of it to this host is answered
// 9112 without going to the ledger. The set lives in this process: a
// process that dies with requests in it leaves them to the hold expiry
// and the acquirer's reversal (docs/operations.md).

// errCommitUnknown marks a batch error after which the commit may or may
// not have happened.
var errCommitUnknown = errors.New("commit outcome unknown")

// commitOutcome classifies the error of a statement pipeline that ended
// with COMMIT: an error from the server (ledger.ServerError) means the
// transaction did not commit; any other (connection lost, timeout while
// waiting) leaves the outcome unknown.
func commitOutcome(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := ledger.ServerError(err); ok {
		return err
	}
	return fmt.Errorf("%w: %w", errCommitUnknown, err)
}

// maxUncertain bounds the set: past it, requests are still answered 9112,
// but no longer remembered (a log line says how many).
const maxUncertain = 100_000

// uncertainSet holds the journal rows of requests whose commit outcome is
// unknown, by journal key. It is safe for concurrent use.
type uncertainSet struct {
	n       atomic.Int64 // len(rows), read without the lock on the hot path
	noted   prometheus.Counter
	settled *prometheus.CounterVec
	mu      sync.Mutex
	rows    map[ledger.JournalKey]journal
	running bool
	quit    chan struct{}
	dropped int
}

func newUncertainSet(reg prometheus.Registerer) *uncertainSet {
	u := &uncertainSet{rows: map[ledger.JournalKey]journal{}, quit: make(chan struct{}),
		noted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "antaca_auth_uncertain_total", Help: "Requests answered issuer unavailable because their batch's commit outcome was unknown.",
		}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "antaca_auth_uncertain_reconciled_total", Help: "Uncertain requests reconciled with the ledger, by outcome (not_committed, hold_released, answer_rewritten, already).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.Register(u.noted)
		reg.Register(u.settled)
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "antaca_auth_uncertain_pending", Help: "Uncertain requests waiting for reconciliation.",
		}, func() float64 { return float64(u.n.Load()) }))
	}
	return u
}

// noteUncertain remembers the requests of a batch that failed with err
// when its commit outcome is unknown, and starts the reconciliation.
func (h *Host) noteUncertain(items []*batchItem[*writeReq], err error) {
	if !errors.Is(err, errCommitUnknown) {
		return
	}
	u := h.uncertain
	u.mu.Lock()
	for _, it := range items {
		if it.in.j.req == nil {
			continue
		}
		if len(u.rows) >= maxUncertain {
			u.dropped++
			continue
		}
		u.rows[journalKey(it.in.j.req)] = it.in.j
	}
	u.n.Store(int64(len(u.rows)))
	start := !u.running
	u.running = true
	u.mu.Unlock()
	u.noted.Add(float64(len(items)))
	h.log.Warn("authorisation batch: commit outcome unknown, answered issuer unavailable; reconciling", "requests", len(items), "err", err)
	if start {
		go h.reconcileLoop()
	}
}

// errUncertainRepeat answers a repeat of a request not yet reconciled.
var errUncertainRepeat = errors.New("repeat of a request whose commit outcome is not known yet")

// checkUncertain returns errUncertainRepeat for a request whose earlier
// copy is waiting for reconciliation.
func (h *Host) checkUncertain(r *AuthRequest) error {
	u := h.uncertain
	if u.n.Load() == 0 {
		return nil
	}
	u.mu.Lock()
	_, ok := u.rows[journalKey(r)]
	u.mu.Unlock()
	if ok {
		return errUncertainRepeat
	}
	return nil
}

// reconcileLoop reconciles the set until it is empty, trying again every
// reconcileEvery while the ledger cannot be reached.
func (h *Host) reconcileLoop() {
	const reconcileEvery = 250 * time.Millisecond
	u := h.uncertain
	for {
		u.mu.Lock()
		var key ledger.JournalKey
		var j journal
		for key, j = range u.rows {
			break
		}
		if len(u.rows) == 0 {
			u.running = false
			if u.dropped > 0 {
				h.log.Error("uncertain commits not remembered (set full): left to hold expiry", "requests", u.dropped)
				u.dropped = 0
			}
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		outcome, err := h.reconcile(ctx, j)
		cancel()
		if err != nil {
			select {
			case <-u.quit:
				return
			case <-time.After(reconcileEvery):
			}
			continue
		}
		u.settled.WithLabelValues(outcome).Inc()
		h.log.Info("uncertain commit reconciled", "stan", j.req.STAN, "rrn", j.req.RRN, "outcome", outcome)
		u.mu.Lock()
		delete(u.rows, key)
		u.n.Store(int64(len(u.rows)))
		u.mu.Unlock()
	}
}

// Reconciliation outcomes, the label of antaca_auth_uncertain_reconciled_total.
const (
	reconciledNotCommitted = "not_committed"    // no journal row: 9112 recorded
	reconciledHoldReleased = "hold_released"    // the approval had committed: hold released, 9112 recorded
	reconciledRewritten    = "answer_rewritten" // a decline had committed: 9112 recorded
	reconciledAlready      = "already"          // recorded as 9112 before
)

// uncertainDetail is the journal's note of a reconciled request.
const uncertainDetail = "answered issuer unavailable: commit outcome unknown (connection lost during COMMIT); reconciled"

// reconcile makes the ledger agree with the 9112 that was sent for j.
func (h *Host) reconcile(ctx context.Context, j journal) (string, error) {
	var outcome string
	err := ledger.BeginFunc(ctx, h.pool, func(tx ledger.Tx) error {
		r := j.req
		id, reason, holdID, found, err := ledger.LockJournalRow(ctx, tx, journalKey(r))
		if err == nil && !found {
			row := j
			row.reason, row.approval, row.holdID, row.available, row.availCcy, row.detail = IssuerUnavailable, "", 0, nil, "", uncertainDetail
			_, err = writeJournal(ctx, tx, row)
			outcome = reconciledNotCommitted
			return err
		}
		if err != nil {
			return err
		}
		if reason == string(IssuerUnavailable) {
			outcome = reconciledAlready
			return nil
		}
		outcome = reconciledRewritten
		if holdID != nil {
			_, err := h.ledger.ReleaseTx(ctx, tx, *holdID, 0)
			switch {
			case errors.Is(err, ledger.ErrHoldResolved):
				// A financial request's capture committed: money moved
				// that the answer refused. It takes a person.
				h.log.Error("uncertain commit: captured, needs a refund by hand", "stan", r.STAN, "rrn", r.RRN, "hold_id", *holdID)
			case err != nil:
				return err
			default:
				outcome = reconciledHoldReleased
			}
		}
		return ledger.RewriteJournalAnswer(ctx, tx, id, string(IssuerUnavailable), uncertainDetail+" (was "+reason+")")
	})
	return outcome, err
}

// Close stops a reconciliation waiting for the ledger.
func (u *uncertainSet) close() {
	select {
	case <-u.quit:
	default:
		close(u.quit)
	}
}
