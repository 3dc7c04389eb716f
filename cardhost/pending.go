package cardhost

import (
	"context"
	"errors"
	"time"

	"github.com/antaca/antaca/ledger"
)

// A reversal can overtake its original: sent a few milliseconds after it,
// it may be decided before the original's batch commits, and find nothing.
// It is then acknowledged and kept as a pending reversal (DESIGN section
// 6), keyed as the original's data elements name it; the transaction that
// journals the original finds it and applies it. The two meet on the
// card's balance row: the reversal locks it before it looks for its
// original again, and an authorisation batch locks it before it probes
// for pending reversals, so one of them always sees the other.

// defaultPendingWindow is how long a pending reversal waits for its
// original when its card (and so its program) is unknown.
const defaultPendingWindow = 24 * time.Hour

// pendingKey is the key under which a reversal waits for its original:
// the original's data elements (DE90/DE56) when it names them, else its
// RRN, STAN and acquirer.
func pendingKey(r *AuthRequest) string {
	if o := r.Original; o != nil {
		acq := o.AcquirerID
		if acq == "" {
			acq = r.AcquirerID
		}
		if o.LocalTime != "" {
			return "L|" + acq + "|" + o.STAN + "|" + o.LocalTime + "|" + foldRepeat(o.MTI)
		}
		return "T|" + acq + "|" + o.STAN + "|" + o.TransmissionTime + "|" + foldRepeat(o.MTI)
	}
	return "R|" + r.AcquirerID + "|" + r.RRN + "|" + r.STAN
}

// appendOriginalKeys appends the keys a reversal of r would wait under.
func appendOriginalKeys(keys []string, r *AuthRequest) []string {
	mti := foldRepeat(r.MTI)
	keys = append(keys, "T|"+r.AcquirerID+"|"+r.STAN+"|"+r.TransmissionTime+"|"+mti)
	if r.LocalTime != "" {
		keys = append(keys, "L|"+r.AcquirerID+"|"+r.STAN+"|"+r.LocalTime+"|"+mti)
	}
	if r.Class == ClassAuthorization || r.Class == ClassFinancial || r.Class == ClassAdvice {
		keys = append(keys, "R|"+r.AcquirerID+"|"+r.RRN+"|"+r.STAN)
	}
	return keys
}

// pendingReversal is a reversal waiting for its original.
type pendingReversal struct {
	id          int64
	key         string
	ref         string // the reversal's request key
	replacement *int64 // what remains (DE95 / the CMF's DE4), in the original's currency; nil: all
}

// queuePendingProbe queues on q the probe for reversals waiting for the
// requests of ws; found is called with each request and its reversals.
// Queued after the batch's lock statement, it sees every reversal that
// committed while the batch waited for a card's balance.
func queuePendingProbe(q *ledger.Batch, ws []*writeReq, found func(w *writeReq, p pendingReversal)) {
	var keys []string
	byKey := make(map[string]*writeReq, 3*len(ws))
	for _, w := range ws {
		n := len(keys)
		keys = appendOriginalKeys(keys, w.j.req)
		for _, k := range keys[n:] {
			byKey[k] = w
		}
	}
	ledger.QueuePendingProbe(q, keys, func(p ledger.PendingReversal) {
		if w := byKey[p.Key]; w != nil {
			found(w, pendingOf(p))
		}
	})
}

// pendingOf is the ledger's row as the card host keeps it.
func pendingOf(p ledger.PendingReversal) pendingReversal {
	return pendingReversal{id: p.ID, key: p.Key, ref: p.Ref, replacement: p.Replacement}
}

// applyPending applies, in the transaction that journals it, the reversals
// that waited for an original whose hold is holdID (captured: the original
// captured it itself, under captureRef): each releases the hold down to
// its replacement amount, or gives the capture back above it, once.
func (h *Host) applyPending(ctx context.Context, tx ledger.Tx, ps []pendingReversal, holdID int64, captureRef string) error {
	for _, p := range ps {
		var keep int64
		if p.replacement != nil {
			keep = *p.replacement
		}
		if holdID != 0 {
			_, err := h.ledger.ReleaseTx(ctx, tx, holdID, keep)
			switch {
			case errors.Is(err, ledger.ErrInvalidAmount):
				// The replacement is at or above the hold: nothing to release.
			case errors.Is(err, ledger.ErrHoldResolved):
				if _, err := h.ledger.RefundCaptureTx(ctx, tx, holdID, captureRef, keep, "refund:"+p.ref); err != nil && !errors.Is(err, ledger.ErrHoldNotCaptured) {
					return err
				}
			case err != nil:
				return err
			}
		}
		if err := markApplied(ctx, tx, p, holdID); err != nil {
			return err
		}
	}
	return nil
}

// applyPendingCredit applies, in the transaction that credited a refund
// (under creditRef), the reversals that waited for it: each takes the
// credit back above its replacement amount, once.
func (h *Host) applyPendingCredit(ctx context.Context, tx ledger.Tx, ps []pendingReversal, creditRef string) error {
	for _, p := range ps {
		var keep int64
		if p.replacement != nil {
			keep = *p.replacement
		}
		if _, err := h.ledger.UncreditTx(ctx, tx, creditRef, keep, "uncredit:"+p.ref); err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
		if err := markApplied(ctx, tx, p, 0); err != nil {
			return err
		}
	}
	return nil
}

// markApplied closes a pending reversal (holdID: the hold it released, if
// any).
func markApplied(ctx context.Context, tx ledger.Tx, p pendingReversal, holdID int64) error {
	return ledger.MarkPendingApplied(ctx, tx, p.id, holdID)
}

// errOriginalNow means a reversal's original turned up once the reversal
// held the card's balance: it is reversed as usual.
var errOriginalNow = errors.New("original found")

// reversePending answers a reversal whose original is not known: under
// the lock of the card's balance (when the PAN names a card) it looks for
// the original once more, and, still missing, keeps the reversal pending
// and acknowledges it (enc: the request's PAN encrypted).
func (h *Host) reversePending(ctx context.Context, r *AuthRequest, enc []byte) (Decision, bool, error) {
	var (
		card *Card
		prog *Program
	)
	window := defaultPendingWindow
	if r.PAN != "" {
		c, err := h.CardByPAN(ctx, r.PAN)
		switch {
		case err == nil:
			p, err := h.cachedProgram(ctx, c.ProgramID)
			if err != nil {
				return Decision{}, false, err
			}
			card, prog = &c, &p
			if p.PendingReversalWindow > 0 {
				window = p.PendingReversalWindow
			}
		case !errors.Is(err, ErrNotFound):
			return Decision{}, false, err
		}
	}
	d, err := h.answerTx(ctx, r, "reverse", func(tx ledger.Tx) (Decision, error) {
		if card != nil {
			if err := ledger.LockUserAccount(ctx, tx, card.AccountID); err != nil {
				return Decision{}, err
			}
		}
		if _, found, err := h.originalOn(ctx, tx, r); err != nil {
			return Decision{}, err
		} else if found {
			return Decision{}, errOriginalNow
		}
		return h.pendOn(ctx, tx, r, card, prog, enc, window)
	})
	if errors.Is(err, errOriginalNow) {
		return Decision{}, false, nil
	}
	return d, true, err
}

// pendOn keeps a reversal whose original is not journaled as a pending
// reversal for window and journals its acknowledgement, in tx, which must
// hold the lock of the card's balance (when card is known) and have looked
// for the original under it.
func (h *Host) pendOn(ctx context.Context, tx ledger.Tx, r *AuthRequest, card *Card, prog *Program, enc []byte, window time.Duration) (Decision, error) {
	if err := ledger.InsertPendingReversal(ctx, tx, pendingKey(r), journalRef(r), r.ReplacementAmount, int64(window/time.Second)); err != nil {
		return Decision{}, err
	}
	j := journal{req: r, panEnc: enc, detail: "original not found: pending reversal"}
	if card != nil {
		j.cardID = card.ID
		return h.journalApproval(ctx, tx, card, prog, j)
	}
	d := Decision{Reason: Approved, ApprovalCode: approvalCode(r)}
	j.reason, j.approval = Approved, d.ApprovalCode
	_, err := writeJournal(ctx, tx, j)
	return d, err
}

// pendingFor returns, locked in tx, the reversals waiting for r (a
// message decided outside the batches: a completion).
func pendingFor(ctx context.Context, tx ledger.Tx, r *AuthRequest) ([]pendingReversal, error) {
	ps, err := ledger.PendingFor(ctx, tx, appendOriginalKeys(nil, r))
	if err != nil {
		return nil, err
	}
	var out []pendingReversal
	for _, p := range ps {
		out = append(out, pendingOf(p))
	}
	return out, nil
}
