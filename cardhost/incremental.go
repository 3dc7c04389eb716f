package cardhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/antaca/antaca/ledger"
)

// increment answers an incremental authorisation (DE24 187; iso87 DE48
// tag 94) its batch could not take (moneybatch.go: a partner's remote
// decision, a card the batch cannot lock), which raises the hold of the
// authorisation DE56/DE90 names: the card checks of any authorisation, the
// partner's remote decision where the program has one, then incrementOn
// in a transaction of its own.
func (h *Host) increment(ctx context.Context, r *AuthRequest, enc []byte) (Decision, error) {
	card, prog, out, d, done, err := h.checkedCard(ctx, r)
	if done || err != nil {
		return d, err
	}
	pc := cardChangeOf(&card, &prog, out)
	orig, found, err := h.original(ctx, r)
	if err != nil {
		return Decision{}, err
	}
	if prog.Funding == FundingPartnerDeposit && prog.RemoteURL != "" && incrementable(r, orig, found, &card, out) == "" {
		if reason, detail := h.remoteDecision(ctx, &card, &prog, r, out); reason != Approved {
			return h.decline(ctx, journal{req: r, cardID: card.ID}, reason, detail, pc)
		}
	}
	return h.answerTx(ctx, r, "increment", func(tx ledger.Tx) (Decision, error) {
		return h.incrementOn(ctx, tx, r, orig, found, &card, &prog, out, enc)
	})
}

// incrementable returns why an incremental that passed the card checks
// (out) cannot raise the hold of orig (found), "" when it can.
func incrementable(r *AuthRequest, orig originalRow, found bool, card *Card, out Outcome) string {
	switch {
	case out.HoldAmount <= 0:
		return "incremental of nothing"
	case !found || orig.holdID == 0 || orig.cardID != card.ID || orig.class != ClassAuthorization:
		return "incremental without an authorisation of this card to raise"
	}
	return ""
}

// incrementOn raises, in tx, the hold of an incremental's original (orig,
// found) by the request's amount when its balances allow it (declined for
// funds otherwise, the hold unchanged), applies the card's PIN or
// verification count change (out) and journals the answer: the body of
// increment's transaction and of an incremental in its batch's tail
// (moneySlow), after the card checks passed.
func (h *Host) incrementOn(ctx context.Context, tx ledger.Tx, r *AuthRequest, orig originalRow, found bool, card *Card, prog *Program, out Outcome, enc []byte) (Decision, error) {
	pc := cardChangeOf(card, prog, out)
	j := journal{req: r, cardID: card.ID, panEnc: enc}
	if why := incrementable(r, orig, found, card, out); why != "" {
		return declineOn(ctx, tx, j, NotPermitted, why, pc)
	}
	j.holdID, j.originalID = orig.holdID, orig.id
	_, avail, err := h.incrementHold(ctx, tx, card, prog, r, orig.holdID, out.HoldAmount, holdTTL(prog, r.MCC)) // velocity.go
	var funds *ledger.FundsError
	var spend *spendDecline
	switch {
	case errors.As(err, &spend): // a velocity rule: nothing changed
		j.holdID = 0
		return declineOn(ctx, tx, j, spend.reason, spend.Error(), pc)
	case errors.As(err, &funds):
		reason := InsufficientFunds
		if funds.Partner {
			reason = InsufficientPartnerFunds
		}
		// A decline for funds of a partner deposit reports the
		// deposit's available, as the batch does.
		j.available, j.availCcy, j.holdID = &avail, prog.CurrencyNumeric, 0
		d, err := declineOn(ctx, tx, j, reason, fmt.Sprintf("incremental of %d on hold %d declined", out.HoldAmount, orig.holdID), pc)
		d.Available, d.Currency, d.HasAvailable = avail, prog.CurrencyNumeric, true
		return d, err
	case errors.Is(err, ledger.ErrHoldResolved), errors.Is(err, ledger.ErrAccountNotActive):
		j.holdID = 0
		return declineOn(ctx, tx, j, NotPermitted, "incremental: "+err.Error(), pc)
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
	return h.journalApproval(ctx, tx, card, prog, j)
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
