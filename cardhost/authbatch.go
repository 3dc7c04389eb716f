package cardhost

import (
	"context"
	"fmt"

	"github.com/antaca/antaca/ledger"
)

// writeReq is one request in an authorisation batch. An authorisation
// (auth set) is looked up, decided and written by the batch; a request
// decided before (auth nil: a remote partner's answer, or a decline) brings
// its hold spec (nil: a journal row only) and journal row.
type writeReq struct {
	auth      *authReq
	money     *moneyReq // a completion or reversal (moneybatch.go)
	spec      *ledger.HoldSpec
	capture   bool  // financial (x200): capture the hold at once
	inquiry   int64 // approved without a hold: DE54 from this account, locked by the batch
	pin       *pinChange
	j         journal
	prog      *Program
	decision  Decision          // set by the flush
	newHold   bool              // the flush placed a new hold (not a duplicate's)
	held      int64             // the amount of the hold placed (less than asked: a partial approval)
	excess    int64             // an advice: what its new hold could not take (to exceptions receivable)
	opened    []string          // kinds of the exceptions its write opened, counted once committed
	pending   []pendingReversal // reversals that overtook it, applied with its journal row
	duplicate bool              // the journal key existed: answer with the stored decision
	vel       []velUse          // velocity counters its hold is charged to (velocity.go)
	err       error             // this request alone could not be decided
}

// authReq is what the batch finds for an authorisation: its card by PAN
// lookup hash, an earlier answer to the same request (a duplicate), and,
// for a program whose partner decides remotely, what the request needs to
// ask it outside the batch's transaction.
type authReq struct {
	panLookup []byte
	card      *Card     // nil: no card with this PAN
	stored    *Decision // the request was answered before: nothing to write
	remote    *remoteReq
}

type remoteReq struct {
	card Card
	prog Program
	out  Outcome
	pc   *pinChange
}

// queueJournalProbe queues on q the probe for earlier answers of ws'
// requests (ledger.QueueJournalProbe); found is called with each request
// answered before and its stored decision.
func queueJournalProbe(q *ledger.Batch, ws []*writeReq, found func(w *writeReq, d Decision)) {
	k := ledger.NewJournalKeys(len(ws))
	for _, w := range ws {
		k.Add(journalKey(w.j.req))
	}
	ledger.QueueJournalProbe(q, k, func(i int, a ledger.StoredAnswer) { found(ws[i], storedDecision(a)) })
}

// storedDecision is the decision a journal row records.
func storedDecision(a ledger.StoredAnswer) Decision {
	d := Decision{Reason: Reason(a.Reason), ApprovalCode: a.ApprovalCode, Duplicate: true, Currency: a.AvailableCurrency,
		HoldID: a.HoldID, ApprovedAmount: a.ApprovedAmount}
	if a.Available != nil {
		d.Available, d.HasAvailable = *a.Available, true
	}
	return d
}

// dropJournaled returns writes less the requests whose journal key exists
// now (committed by another transaction since the batch's probe), each
// marked a duplicate: its answer is the stored one, and nothing of it
// (hold, capture, PIN count) is written.
func (h *Host) dropJournaled(ctx context.Context, tx ledger.Tx, writes []*writeReq) ([]*writeReq, error) {
	var q ledger.Batch
	queueJournalProbe(&q, writes, func(w *writeReq, _ Decision) { w.duplicate = true })
	if err := ledger.SendBatch(ctx, tx, &q); err != nil {
		return nil, err
	}
	kept := writes[:0:0]
	for _, w := range writes {
		if !w.duplicate {
			kept = append(kept, w)
		}
	}
	return kept, nil
}

// flushWrites decides and commits a batch: card look-ups, holds, financial
// captures and every journal row, all in one transaction: one commit for
// the batch. A request's decline does not affect the others; a database
// error fails the whole batch and nothing of it is committed.
func (h *Host) flushWrites(ctx context.Context, items []*batchItem[*writeReq]) {
	err := h.writeSplitting(ctx, items) // writeBatch, split when one request's value is refused
	if err != nil {
		err = fmt.Errorf("authorisation batch of %d: %w", len(items), err)
		h.noteUncertain(items, err)
	}
	for _, it := range items {
		if err == nil && it.in.err != nil {
			it.reply <- it.in.err
			continue
		}
		it.reply <- err
	}
}

// writeBatch is flushWrites' transaction, sent as two pipelines: BEGIN, the
// look-up of the authorisations' cards and earlier answers, and the locks
// of the user accounts the batch may touch (the partner accounts are read;
// see ledger.HoldBatch); then, once every request is decided (card rules
// in Go, holds on those rows), the holds, the journal rows, the partner
// accounts' update and COMMIT. Financial captures, stand-in excesses and PIN
// counts, which depend on what the journal insert reports, take a third
// round trip when the batch has any; the partner accounts' update then
// goes before them, with the second pipeline, so that a capture releases
// a hold the partner account already holds.
func (h *Host) writeBatch(ctx context.Context, items []*batchItem[*writeReq]) error {
	var auths, money []*writeReq
	var decided []ledger.HoldSpec
	for _, it := range items {
		if it.in.auth != nil {
			auths = append(auths, it.in)
		} else if it.in.money != nil {
			money = append(money, it.in)
		} else if it.in.spec != nil {
			decided = append(decided, *it.in.spec)
		}
	}
	lookups := make([][]byte, len(auths))
	for i, w := range auths {
		lookups[i] = w.auth.panLookup
	}
	for _, w := range money {
		lookups = append(lookups, w.money.panLookup)
	}
	hb := h.ledger.NewHoldBatch()
	q := ledger.NewTxBatch() // BEGIN, ledger.GenericPlans
	cards := make(map[string]*Card, len(auths))
	// One probe of earlier answers for the authorisations and the money
	// messages (a completion, a reversal, a refund, an incremental).
	for _, w := range money {
		*w.money = moneyReq{panLookup: w.money.panLookup}
	}
	if probed := append(auths[:len(auths):len(auths)], money...); len(probed) > 0 {
		queueJournalProbe(q, probed, func(w *writeReq, d Decision) {
			if w.auth != nil {
				w.auth.stored = &d
			} else {
				w.money.stored = &d
			}
		})
	}
	hb.QueueLockCards(q, len(items), ledger.SpecAccounts(decided), lookups, func(lookup []byte, r ledger.CardRow) error {
		c := cardOf(r)
		cards[string(lookup)] = &c
		return nil
	})
	all := make([]*writeReq, len(items))
	for i, it := range items {
		all[i] = it.in
		it.in.pending = it.in.pending[:0]
	}
	queuePendingProbe(q, all, func(w *writeReq, p pendingReversal) { w.pending = append(w.pending, p) })
	queueMoneyProbe(q, money)
	bt, err := ledger.SendBegin(ctx, h.pool, q)
	if err != nil {
		return err
	}
	tx := bt.Tx()
	committed := false
	defer func() { bt.End(ctx, committed) }()

	// Every authorisation is decided on its card; those left to write
	// join the requests decided before.
	var writes []*writeReq
	seen := map[int64]bool{}
	for _, it := range items {
		w := it.in
		if w.money != nil && !h.decideMoney(ctx, tx, hb, w, cards, seen) {
			continue
		}
		if w.auth != nil {
			if c := cards[string(w.auth.panLookup)]; c != nil {
				card := *c // a request's own: its decision may change it
				w.auth.card = &card
			}
			h.decideInBatch(ctx, tx, hb, w)
			if w.auth.stored != nil || w.auth.remote != nil || w.err != nil {
				continue
			}
		}
		writes = append(writes, w)
	}
	// Velocity counters (velocity.go): locked after the user accounts,
	// before the partner rows; no round trip when no rule applies.
	velBase, err := lockVelocity(ctx, tx, writes)
	if err != nil {
		return err
	}
	var inserted []bool
	rewrites := 0
	for {
		velocityDecide(writes, velBase)
		var specs []ledger.HoldSpec
		var withSpec []*writeReq
		for _, w := range writes {
			if w.spec != nil {
				specs = append(specs, *w.spec)
				withSpec = append(withSpec, w)
			}
		}
		for k, res := range hb.Decide(specs) {
			h.applyHoldResult(withSpec[k], res)
		}
		tail := false
		for _, w := range writes {
			tail = tail || w.capture || w.pin != nil || w.excess > 0 || len(w.pending) > 0 || w.money != nil && w.money.slow
		}
		for _, w := range writes {
			if w.inquiry != 0 {
				h.applyInquiry(w, hb)
			}
		}
		if err := h.planMoney(ctx, hb, writes); err != nil {
			return err
		}
		var wq ledger.Batch
		hb.QueueWrite(&wq)
		queueVelocity(&wq, writes) // velocity.go: the approvals' charges
		inserted = queueWriteJournals(&wq, writes)
		if !tail {
			if err := queueCommit(ctx, &wq, hb); err != nil {
				return err
			}
		} else {
			// The partner accounts take the batch's holds before the
			// tail captures some of them: a capture releases what its
			// hold put there (before, a financial x200 on a partner
			// account holding less than its amount failed the batch).
			hb.QueueFinish(&wq)
		}
		err := bt.Send(ctx, &wq)
		if !tail {
			err = commitOutcome(err) // the pipeline ended with COMMIT
		}
		if err == nil && tail {
			if err = h.writeTailInOrder(ctx, tx, hb, writes, inserted); err == nil {
				if err := beforeCommit(ctx); err != nil {
					return err
				}
				err = commitOutcome(bt.Commit(ctx))
			}
		}
		if err == nil {
			committed = true
			break
		}
		if ledger.JournalDuplicate(err) {
			// A request of the batch was journaled meanwhile (see
			// ledger.QueueInsertJournals): it is a duplicate, answered as stored,
			// and the others are written again without it.
			if rewrites++; rewrites > 3 {
				return fmt.Errorf("journal keys kept being taken by other transactions: %w", err)
			}
			if err := hb.Undo(ctx, tx); err != nil {
				return err
			}
			if writes, err = h.dropJournaled(ctx, tx, writes); err != nil {
				return err
			}
			continue
		}
		if retry, err := hb.Retry(ctx, tx, err); !retry {
			return err
		}
	}
	for i, w := range writes {
		w.duplicate = !inserted[i]
		if !w.duplicate {
			h.ledger.ExceptionsOpened(w.opened...)
		}
	}
	return nil
}

// queueCommit ends a batch's transaction on q: the holds' last update
// (the partner accounts, locked only from there to the commit), then
// COMMIT, unless the decision is too late already.
func queueCommit(ctx context.Context, q *ledger.Batch, hb *ledger.HoldBatch) error {
	if err := beforeCommit(ctx); err != nil {
		return err
	}
	hb.QueueFinish(q)
	ledger.QueueCommit(q)
	return nil
}

// writeTail captures the new holds of financial requests, posts stand-in
// advices' excess to exceptions and applies the PIN counts, for the requests
// whose journal row is new. (Financial refunds never come here: refund()
// credits them, capped.)
func (h *Host) writeTail(ctx context.Context, tx ledger.Tx, writes []*writeReq, inserted []bool) error {
	for i, w := range writes {
		w.opened = w.opened[:0] // this attempt's only
		if !inserted[i] {
			continue
		}
		if w.capture && w.newHold {
			if _, err := h.ledger.CaptureTx(ctx, tx, w.j.holdID, w.held, false, "capture:"+w.spec.Ref); err != nil {
				return err
			}
		}
		if w.excess > 0 && w.newHold {
			// A stand-in advice beyond the available balance and the
			// stand-in limit: acknowledged, the excess is the scheme's
			// against exceptions receivable (DESIGN section 6).
			s := w.spec
			_, err := h.ledger.OpenExceptionTx(ctx, tx, ledger.Exception{Kind: ledger.ExceptionStandInOverdraft, Currency: s.Currency,
				Amount: w.excess, Receivable: w.excess, CardID: w.j.cardID, AccountID: s.UserAccountID, ProgramID: w.prog.ID,
				HoldID: w.j.holdID, Detail: fmt.Sprintf("advice of %d, held %d", s.Amount, s.Amount-w.excess)}, "exception:"+s.Ref)
			if err != nil {
				return err
			}
			w.opened = append(w.opened, ledger.ExceptionStandInOverdraft)
		}
		if len(w.pending) > 0 {
			var holdID int64
			if w.newHold {
				holdID = w.j.holdID
			}
			ref := ""
			if w.spec != nil {
				ref = "capture:" + w.spec.Ref
			}
			if err := h.applyPending(ctx, tx, w.pending, holdID, ref); err != nil {
				return err
			}
		}
		if pc := w.pin; pc != nil {
			if err := recordCardChange(ctx, tx, w.j.cardID, *pc, w.decision.Reason.Approval()); err != nil {
				return err
			}
		}
	}
	return nil
}

// queueJournals queues the insert of rows on q and returns, per row,
// whether it is inserted once q has run without error (false: the same
// request earlier in rows, whose row stands: a duplicate). A key that
// exists already fails the statement (see ledger.QueueInsertJournals).
func queueJournals(q *ledger.Batch, rows []journal) []bool {
	n := len(rows)
	b := ledger.NewJournalRows(n)
	inserted := make([]bool, n)
	keys := make(map[ledger.JournalKey]bool, n)
	for i, j := range rows {
		k := journalKey(j.req)
		if keys[k] {
			continue // the same request twice in the batch: the first stands
		}
		keys[k], inserted[i] = true, true
		b.Add(j.row())
	}
	ledger.QueueInsertJournals(q, b)
	return inserted
}
