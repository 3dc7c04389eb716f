package cardhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/antaca/antaca/ledger"
)

// increment answers an incremental authorisation (DE24 187; iso87 DE48
// tag 94), which raises the hold of the authorisation DE56/DE90 names:
// the card checks of any authorisation, the partner's remote decision
// where the program has one, then, in one transaction, the hold grows by
// the request's amount when its balances allow it (declined for funds
// otherwise, the hold unchanged), and the journal row. Incrementals are
// rare: they run outside the authorisation batches, as refunds do.
func (h *Host) increment(ctx context.Context, r *AuthRequest) (Decision, error) {
	card, prog, out, d, done, err := h.checkedCard(ctx, r)
	if done || err != nil {
		return d, err
	}
	pc := cardChangeOf(&card, &prog, out)
	j := journal{req: r, cardID: card.ID}
	if out.HoldAmount <= 0 {
		return h.decline(ctx, j, NotPermitted, "incremental of nothing", pc)
	}
	orig, found, err := h.original(ctx, r)
	if err != nil {
		return Decision{}, err
	}
	if !found || orig.holdID == 0 || orig.cardID != card.ID || orig.class != ClassAuthorization {
		return h.decline(ctx, j, NotPermitted, "incremental without an authorisation of this card to raise", pc)
	}
	if prog.Funding == FundingPartnerDeposit && prog.RemoteURL != "" {
		if reason, detail := h.remoteDecision(ctx, &card, &prog, r, out); reason != Approved {
			return h.decline(ctx, j, reason, detail, pc)
		}
	}
	if j.panEnc, err = h.encryptedPAN(r.PAN); err != nil {
		return Decision{}, err
	}
	j.holdID, j.originalID = orig.holdID, orig.id
	return h.answerTx(ctx, r, "increment", func(tx ledger.Tx) (Decision, error) {
		_, avail, err := h.incrementHold(ctx, tx, &card, &prog, r, orig.holdID, out.HoldAmount, holdTTL(&prog, r.MCC)) // velocity.go
		var funds *ledger.FundsError
		var spend *spendDecline
		switch {
		case errors.As(err, &spend): // a velocity rule: nothing changed
			j.reason, j.detail, j.holdID = spend.reason, spend.Error(), 0
			if err := h.recordPIN(ctx, tx, &j, pc, false); err != nil {
				return Decision{}, err
			}
			_, err := writeJournal(ctx, tx, j)
			return Decision{Reason: spend.reason}, err
		case errors.As(err, &funds):
			reason := InsufficientFunds
			if funds.Partner {
				reason = InsufficientPartnerFunds
			}
			// A decline for funds of a partner deposit reports the
			// deposit's available, as the batch does.
			j.reason, j.available, j.availCcy, j.holdID = reason, &avail, prog.CurrencyNumeric, 0
			j.detail = fmt.Sprintf("incremental of %d on hold %d declined", out.HoldAmount, orig.holdID)
			if err := h.recordPIN(ctx, tx, &j, pc, false); err != nil {
				return Decision{}, err
			}
			_, err := writeJournal(ctx, tx, j)
			return Decision{Reason: reason, Available: avail, Currency: prog.CurrencyNumeric, HasAvailable: true}, err
		case errors.Is(err, ledger.ErrHoldResolved), errors.Is(err, ledger.ErrAccountNotActive):
			j.reason, j.detail, j.holdID = NotPermitted, "incremental: "+err.Error(), 0
			if err := h.recordPIN(ctx, tx, &j, pc, false); err != nil {
				return Decision{}, err
			}
			_, err := writeJournal(ctx, tx, j)
			return Decision{Reason: NotPermitted}, err
		case errors.Is(err, ledger.ErrDuplicateRef):
			return Decision{}, errDuplicate
		case err != nil:
			return Decision{}, err
		}
		j.detail = fmt.Sprintf("hold %d raised by %d", orig.holdID, out.HoldAmount)
		if err := h.recordPIN(ctx, tx, &j, pc, true); err != nil {
			return Decision{}, err
		}
		// A reversal of this incremental that overtook it: the increment
		// locked the card's balance, so it is seen here (pending.go).
		ps, err := pendingFor(ctx, tx, r)
		if err != nil {
			return Decision{}, err
		}
		for _, p := range ps {
			var keep int64
			if p.replacement != nil {
				keep = *p.replacement
			}
			if _, _, err := h.ledger.ReleaseIncrementTx(ctx, tx, journalRef(r), keep); err != nil {
				return Decision{}, err
			}
			if err := markApplied(ctx, tx, p, orig.holdID); err != nil {
				return Decision{}, err
			}
		}
		return h.journalApproval(ctx, tx, &card, &prog, j)
	})
}

// recordPIN applies a request's PIN or verification count change in tx.
func (h *Host) recordPIN(ctx context.Context, tx ledger.Tx, j *journal, pc *pinChange, approved bool) error {
	if pc == nil {
		return nil
	}
	return recordCardChange(ctx, tx, j.cardID, *pc, approved)
}

// reverseIncrement answers the reversal of an incremental authorisation
// (orig): only what the increment added is released (above DE95's amount
// when the reversal is partial), once. ok is false when orig raised no
// hold (it was declined): the reversal is then answered as any other.
func (h *Host) reverseIncrement(ctx context.Context, tx ledger.Tx, r *AuthRequest, orig originalRow) (string, bool, error) {
	var keep int64
	if r.ReplacementAmount != nil {
		keep = *r.ReplacementAmount
	}
	n, found, err := h.ledger.ReleaseIncrementTx(ctx, tx, orig.ref, keep)
	if err != nil || !found {
		return "", found, err
	}
	return fmt.Sprintf("increment released %d", n), true, nil
}
