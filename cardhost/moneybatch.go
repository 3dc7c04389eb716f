package cardhost

import (
	"context"
	"errors"
	"strconv"

	"github.com/antaca/antaca/ledger"
)

// Every message that moves money on a card is written by the
// authorisation batches (issues 17, 18; docs/decisions.md "Group commit of
// money messages" and "Refunds and incrementals in the batch"): besides
// approvals, completions (x220), reversals (x400/x420), refunds (x200 and
// x220 of processing code 20) and incremental authorisations, one
// transaction and one commit for a whole batch.
//
// The batch's first pipeline probes every request's earlier answer (a
// duplicate: the stored answer), finds each money message's card by PAN
// (its balance is locked by the batch's lock statement, with the
// approvals') and, after the lock statement, its original and the
// original's hold, locked: user balances, then holds, then, in the final
// update just before COMMIT, the partner and internal rows, each by id.
// A completion within its open hold and a release of an open hold are
// then written set-based (ledger.HoldBatch.PlanMoney); anything else (a
// capture above the hold, FX, parts, an expired or resolved hold, an
// original the batch itself journals, a pending reversal, and every
// refund and incremental) runs per message after the final update, in
// arrival order, under a savepoint, on rows the batch then holds already
// (slow path): refunds and incrementals pass the card checks of an
// authorisation first (Decide on the card the lock statement read; a
// decline is journaled with its PIN or verification count change), then
// refundOn or incrementOn, the bodies their per-message transactions run
// too. A message whose card the batch cannot lock (no PAN, an unknown
// PAN, an original on another balance, a refund of another card's
// purchase) or that needs a call out (an incremental of a program whose
// partner decides remotely) takes the per-message transaction of
// complete, reverse, refund or increment instead.

// moneyReq is what a batch finds and decides for a money message: a
// completion, a reversal, a refund or an incremental.
type moneyReq struct {
	panLookup []byte
	stored    *Decision // answered before: the stored answer
	orig      *moneyOrig
	fallback  bool // not for the batch: complete/reverse decide it alone
	slow      bool // written per message in the batch's tail
	card      *Card
	prog      *Program
	out       Outcome         // a refund's (x200) or incremental's card checks (Decide)
	op        *ledger.MoneyOp // the fast path's capture or release (nil: nothing to move)
	detail    string
}

// errLeaveBatch takes a money message out of its batch's tail: its
// original turned out to be another card's (committed since the batch's
// probe), whose balance the batch has not locked; the per-message path
// decides it after the batch.
var errLeaveBatch = errors.New("money message left to the per-message path")

// creditOrIncrement reports whether r is a refund (x200 or x220 of
// processing code 20) or an incremental authorisation: decided on its
// card, its original and its balances in the batch's tail, always.
func creditOrIncrement(r *AuthRequest) bool {
	return isRefund(r) || isIncrement(r)
}

func isRefund(r *AuthRequest) bool {
	return r.ProcessingCode == ProcRefund && (r.Class == ClassFinancial || r.Class == ClassCompletion)
}

func isIncrement(r *AuthRequest) bool {
	return r.Class == ClassAuthorization && r.FunctionCode == FuncIncremental
}

// moneyMessage reports whether r is a message that follows or credits an
// earlier one, which the batches take when it has a PAN (moneyInBatch):
// a completion, a reversal, a refund, an incremental.
func moneyMessage(r *AuthRequest) bool {
	return r.Class == ClassCompletion || r.Class == ClassReversal || r.Class == ClassReversalAdvice || creditOrIncrement(r)
}

// moneyOrig is the original of a money message as the batch's probe found
// it, with its hold (locked) when it has one.
type moneyOrig struct {
	journalID, holdID, cardID int64
	class                     MessageClass
	names                     bool // it names an original in turn (an incremental authorisation)
	amount                    int64
	currency                  string
	status, holdCcy           string
	held, user, partner       int64
	excepted, partsTaken      int64
	toleranceUsed             int64
	part                      bool
}

// moneyKey is the original look-up key of r, as originalOn reads it.
func moneyKey(r *AuthRequest) (kind, acq, stan, t, mti, rrn string) {
	if o := r.Original; o != nil {
		acq = o.AcquirerID
		if acq == "" {
			acq = r.AcquirerID
		}
		if o.LocalTime != "" {
			return "L", acq, o.STAN, o.LocalTime, foldRepeat(o.MTI), ""
		}
		return "T", acq, o.STAN, o.TransmissionTime, foldRepeat(o.MTI), ""
	}
	return "R", r.AcquirerID, r.STAN, "", "", r.RRN
}

// queueMoneyProbe queues on q, after the batch's lock statement, the look-up
// of the money messages' originals, whose holds it locks (their earlier
// answers are probed with the authorisations', before the lock statement).
func queueMoneyProbe(q *ledger.Batch, ws []*writeReq) {
	if len(ws) == 0 {
		return
	}
	k := ledger.NewMoneyKeys(len(ws))
	for _, w := range ws {
		k.Add(moneyKey(w.j.req))
	}
	ledger.QueueMoneyProbe(q, k, func(i int, o ledger.MoneyOriginal) {
		ws[i].money.orig = &moneyOrig{journalID: o.JournalID, holdID: o.HoldID, cardID: o.CardID, class: MessageClass(o.Class),
			names: o.NamesOriginal, amount: o.Amount, currency: o.Currency, status: o.HoldStatus, holdCcy: o.HoldCurrency,
			held: o.Held, user: o.UserAccount, partner: o.PartnerAccount, excepted: o.Excepted, partsTaken: o.PartsTaken,
			toleranceUsed: o.ToleranceUsed, part: o.Part}
	})
}

// decideMoney decides a money message of the batch on what the first
// pipeline found (seen: the holds earlier messages of the batch name). It
// reports whether the message is written by the batch.
func (h *Host) decideMoney(ctx context.Context, tx ledger.Tx, hb *ledger.HoldBatch, w *writeReq, cards map[string]*Card, seen map[int64]bool) bool {
	m, r := w.money, w.j.req
	if m.stored != nil {
		w.decision = *m.stored
		return false
	}
	c := cards[string(m.panLookup)]
	o := m.orig
	if c == nil || !hb.Locked(c.AccountID) || o != nil && o.user != 0 && o.user != c.AccountID ||
		isRefund(r) && o != nil && o.cardID != 0 && o.cardID != c.ID {
		// Its balance is not among the batch's locks (a refund is
		// credited to its original's card): alone, as before.
		m.fallback = true
		return false
	}
	card := *c
	prog, err := h.cachedProgramOn(ctx, tx, card.ProgramID)
	if err != nil {
		w.err = err
		return false
	}
	if isIncrement(r) && prog.Funding == FundingPartnerDeposit && prog.RemoteURL != "" {
		m.fallback = true // the partner decides over HTTP, outside any transaction
		return false
	}
	if isIncrement(r) && len(velocityUses(&card, &prog, r, h.cfg.Now())) > 0 {
		// Its velocity counters are locked after its hold and before the
		// partner rows (incrementHold); the batch's tail runs after the
		// final update holds the partner rows: alone, in DESIGN section
		// 6's order.
		m.fallback = true
		return false
	}
	m.card, m.prog = &card, &prog
	w.j.cardID = card.ID
	if r.Class != ClassCompletion || isRefund(r) {
		w.pending = nil // reversals waiting for a reversal: none apply; a refund's own path applies its own
	}
	if creditOrIncrement(r) && r.Class != ClassCompletion {
		// The card checks of an authorisation (checkedCard's), on the
		// card as the batch's lock statement read it.
		m.out = Decide(DecideInput{Card: &card, Program: &prog, Req: r, Now: h.cfg.Now(), PAN: r.PAN}, h.keys)
	}
	fast := !creditOrIncrement(r) && o != nil && o.holdID != 0 && o.status == ledger.HoldOpen && !o.part && o.partsTaken == 0 && o.excepted == 0 &&
		o.holdCcy == prog.Currency && !seen[o.holdID] && len(w.pending) == 0
	if o != nil && o.holdID != 0 {
		seen[o.holdID] = true
	}
	if fast {
		op := ledger.MoneyOp{HoldID: o.holdID, UserAccountID: o.user, PartnerAccountID: o.partner, Currency: o.holdCcy, Held: o.held}
		switch r.Class {
		case ClassCompletion:
			final, fx := completionAmount(r, &prog)
			// Above the hold within the MCC's tolerance (ClearTx's
			// allowance); beyond it the excess goes to exceptions, per
			// message.
			bp := min(max(mccRule(&prog, r.MCC).ToleranceBP, 0), 10000)
			allowance := max(o.held*int64(bp)/10000-o.toleranceUsed, 0)
			fast = !fx && r.FunctionCode != FuncCompletionNotLast && final > 0 && final <= o.held+allowance
			op.Capture, op.Final, op.Ref = true, final, "capture:"+journalRef(r)
			m.op, m.detail = &op, "captured "+strconv.FormatInt(final, 10)
		default:
			var remaining int64
			if rep := r.ReplacementAmount; rep != nil {
				remaining = *rep
				// In another currency than the hold's, replacementInHold
				// converts it: per message.
				fast = fast && remaining >= 0 && (o.currency == "" || o.currency == prog.CurrencyNumeric || o.amount <= 0)
			}
			fast = fast && !(o.class == ClassAuthorization && o.names) // an increment's own reversal
			op.Final = remaining
			m.op, m.detail = &op, "released to "+strconv.FormatInt(remaining, 10)
			if remaining >= o.held {
				m.op, m.detail = nil, "replacement amount not below the hold: nothing released"
			}
		}
	}
	if !fast {
		m.op, m.detail, m.slow = nil, "", true
		// The rows the per-message path may post to are locked by the
		// batch's final update, in order, before it runs.
		hb.Touch(prog.PartnerAccountID)
		if o != nil {
			hb.Touch(o.partner)
		}
		if isIncrement(r) {
			// It raises a hold: the user and partner rows only, never
			// settlement or the other internal rows.
			return true
		}
		ids, err := h.ledger.MoneyAccounts(ctx, prog.Currency, prog.PartnerID)
		if err != nil {
			w.err = err
			return false
		}
		hb.Touch(ids...)
	}
	return true
}

// planMoney plans the fast path of the batch's money messages among writes
// on hb (after its Decide) and fills their journal rows and answers, with
// DE54 as the batch leaves the card's funds account.
func (h *Host) planMoney(ctx context.Context, hb *ledger.HoldBatch, writes []*writeReq) error {
	var ops []ledger.MoneyOp
	for _, w := range writes {
		if m := w.money; m != nil && !m.slow && m.op != nil {
			ops = append(ops, *m.op)
		}
	}
	if err := hb.PlanMoney(ctx, ops); err != nil {
		return err
	}
	for _, w := range writes {
		m := w.money
		if m == nil || m.slow {
			continue
		}
		r := w.j.req
		avail, _ := hb.AvailableAfter(h.fundsAccount(m.card, m.prog))
		w.decision = Decision{Reason: Approved, ApprovalCode: approvalCode(r), Available: avail, Currency: m.prog.CurrencyNumeric,
			HasAvailable: true, HoldID: m.orig.holdID}
		w.j.reason, w.j.approval, w.j.available, w.j.availCcy = Approved, w.decision.ApprovalCode, &avail, m.prog.CurrencyNumeric
		w.j.holdID, w.j.originalID, w.j.detail = m.orig.holdID, m.orig.journalID, m.detail
	}
	return nil
}

// queueWriteJournals queues the journal rows of writes but those of money
// messages written per message (they journal in the tail), and returns
// whether each row is inserted (see queueJournals; true for the tail's,
// which moneySlow corrects).
func queueWriteJournals(q *ledger.Batch, writes []*writeReq) []bool {
	rows := make([]journal, 0, len(writes))
	for _, w := range writes {
		if w.money == nil || !w.money.slow {
			rows = append(rows, w.j)
		}
	}
	got := queueJournals(q, rows)
	inserted := make([]bool, len(writes))
	k := 0
	for i, w := range writes {
		if w.money == nil || !w.money.slow {
			inserted[i] = got[k]
			k++
			continue
		}
		inserted[i] = true
	}
	return inserted
}

// writeTailInOrder is the batch's tail in arrival order: writeTail for
// the requests that have one, moneySlow for the money messages written
// per message (a reversal after its authorisation in the same batch finds
// and releases the hold the batch placed).
func (h *Host) writeTailInOrder(ctx context.Context, tx ledger.Tx, hb *ledger.HoldBatch, writes []*writeReq, inserted []bool) error {
	for i, w := range writes {
		if w.money != nil && w.money.slow {
			later := laterOriginal(writes[i+1:], w.j.req)
			if later != nil && laterOriginal(writes[:i], w.j.req) != nil {
				later = nil // a copy of an original that arrived before it
			}
			ok, err := h.moneySlow(ctx, tx, hb, w, later)
			if err != nil {
				return err
			}
			inserted[i] = ok
			continue
		}
		if err := h.writeTail(ctx, tx, writes[i:i+1], inserted[i:i+1]); err != nil {
			return err
		}
	}
	return nil
}

// laterOriginal returns the request among later (the batch's requests
// that arrived after r) that r names as its original, if any.
func laterOriginal(later []*writeReq, r *AuthRequest) *writeReq {
	key := pendingKey(r)
	var keys []string
	for _, w := range later {
		if w.money != nil {
			continue
		}
		keys = appendOriginalKeys(keys[:0], w.j.req)
		for _, k := range keys {
			if k == key {
				return w
			}
		}
	}
	return nil
}

// moneySlow writes one money message in tx under a savepoint, as its own
// transaction would (completeOn, reverseOn, pendOn), on rows the batch
// has locked; false: its journal key was taken meanwhile, nothing of it
// stays and its answer is the stored one. later is its original when that
// arrived after it in the same batch (journaled by the batch already, but
// in arrival order not there yet): a completion of it is one without an
// authorisation, a reversal of it waits as a pending reversal, which the
// original's own tail (writeTail) applies.
func (h *Host) moneySlow(ctx context.Context, tx ledger.Tx, hb *ledger.HoldBatch, w *writeReq, later *writeReq) (bool, error) {
	m, r := w.money, w.j.req
	w.opened, w.err = w.opened[:0], nil // this attempt's only
	var pend *pendingReversal
	err := ledger.BeginFunc(ctx, tx, func(tx ledger.Tx) error {
		orig, found, err := h.originalIn(ctx, tx, r, ledger.FindHotOriginal)
		if err != nil {
			return err
		}
		if later != nil {
			orig, found = originalRow{}, false
		}
		var card *Card
		if orig.cardID == 0 || orig.cardID == m.card.ID {
			card = m.card
		}
		switch {
		case card == nil:
			// Another card's original: its rows would be locked after the
			// partner rows the batch holds.
			return errLeaveBatch
		case !found && later == nil && r.Original != nil:
			// It names an original the hot journal lacks: perhaps archived,
			// which its own transaction reads, holding nothing meanwhile.
			return errLeaveBatch
		case creditOrIncrement(r) && r.Class != ClassCompletion && m.out.Reason != Approved:
			j := w.j
			if m.out.Err != nil {
				j.detail = m.out.Err.Error()
			}
			w.decision, err = declineOn(ctx, tx, j, m.out.Reason, j.detail, cardChangeOf(m.card, m.prog, m.out))
			return err
		case isIncrement(r):
			w.decision, err = h.incrementOn(ctx, tx, r, orig, found, m.card, m.prog, m.out, w.j.panEnc)
			return err
		case isRefund(r):
			var opened string
			w.decision, opened, err = h.refundOn(ctx, tx, r, orig, found, m.card, m.prog, w.j.panEnc, hb.State)
			if opened != "" {
				w.opened = append(w.opened, opened)
			}
			return err
		case r.Class == ClassCompletion && (!found || orig.holdID == 0):
			w.decision = Decision{Reason: InvalidCard}
			j := w.j
			j.cardID, j.reason, j.detail = 0, InvalidCard, "completion without an authorisation"
			_, err := writeJournal(ctx, tx, j)
			return err
		case r.Class == ClassCompletion:
			d, opened, err := h.completeOn(ctx, tx, r, orig, m.card, m.prog, w.j.panEnc)
			if err != nil {
				return err
			}
			w.decision = d
			if opened != "" {
				w.opened = append(w.opened, opened)
			}
			return nil
		case !found:
			window := defaultPendingWindow
			if m.prog.PendingReversalWindow > 0 {
				window = m.prog.PendingReversalWindow
			}
			w.decision, err = h.pendOn(ctx, tx, r, m.card, m.prog, w.j.panEnc, window)
			if err == nil && later != nil {
				p := pendingReversal{key: pendingKey(r), ref: journalRef(r), replacement: r.ReplacementAmount}
				p.id, err = ledger.PendingReversalID(ctx, tx, p.ref)
				pend = &p
			}
			return err
		default:
			prog := m.prog
			if card == nil {
				prog = nil
			}
			w.decision, err = h.reverseOn(ctx, tx, r, orig, true, card, prog, w.j.panEnc)
			return err
		}
	})
	if errors.Is(err, errDuplicate) {
		return false, nil
	}
	if errors.Is(err, errLeaveBatch) {
		m.fallback = true
		return false, nil
	}
	if refusedAlone(err) {
		// Its savepoint took back what it wrote: it fails alone, as in a
		// transaction of its own, and the batch goes on.
		w.err = err
		return false, nil
	}
	if err == nil && pend != nil {
		later.pending = append(later.pending, *pend)
	}
	return err == nil, err
}

// refusedAlone reports whether err is the ledger refusing one message's
// values (an amount out of bounds, a closed or mismatched account), not
// the database failing: that message fails, not its batch.
func refusedAlone(err error) bool {
	if err == nil || errors.Is(err, ledger.ErrDatabase) {
		return false
	}
	for _, s := range []error{ledger.ErrInvalidAmount, ledger.ErrInvalid, ledger.ErrAccountNotActive, ledger.ErrCurrencyMismatch,
		ledger.ErrUnknownCurrency, ledger.ErrHoldNotCaptured, ledger.ErrNotFound} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// moneyInBatch answers a money message (enc: its PAN encrypted) with the
// authorisation batch of its PAN; ok false: the batch left it to the
// per-message path.
func (h *Host) moneyInBatch(ctx context.Context, r *AuthRequest, enc []byte) (d Decision, ok bool, err error) {
	w := &writeReq{money: &moneyReq{panLookup: h.keys.PANLookup(r.PAN)}, j: journal{req: r, panEnc: enc}}
	if err := h.writes[h.shardOf(ctx, r.PAN)].do(ctx, w); err != nil {
		return Decision{}, true, err
	}
	switch m := w.money; {
	case m.stored != nil:
		return *m.stored, true, nil
	case m.fallback:
		return Decision{}, false, nil
	}
	d, err = h.answer(ctx, w)
	return d, true, err
}
