package cardhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/antaca/antaca/ledger"
)

// ErrSystemLock is returned by Unlock when the cardholder's session asks
// to lift a lock the system made for suspected fraud (code 7 after the
// last wrong CVC2 or expiry in a row): only the partner or an
// Admin/Manager may.
var ErrSystemLock = errors.New("card locked by the system for suspected fraud: only the partner or an admin may unlock it")

// DefaultVerifyMaxTries is the wrong CVC2 or expiry in a row that locks a
// card, unless its program says otherwise.
const DefaultVerifyMaxTries = 5

// pinChange is what a verified PIN, CVC2 or expiry does to a card: a
// right PIN resets the wrong-PIN count, a wrong one adds to it, and the
// third wrong one in a row locks the card from outside with code 6; a
// wrong CVC2 or expiry adds to the wrong-verification count and the
// program's Nth in a row locks the card with code 7 by the system; a
// right one on an approved authorisation resets it.
type pinChange struct {
	pin      bool // a PIN was verified
	right    bool // ... and it was right
	verify   int  // +1 wrong CVC2 or expiry, -1 right (reset), 0 not checked
	maxTries int  // the program's wrong CVC2/expiry limit
}

// cardChangeOf is what out does to card's counts; nil when nothing.
func cardChangeOf(card *Card, prog *Program, out Outcome) *pinChange {
	pc := pinChange{maxTries: verifyMaxTries(prog)}
	if out.PINTries > card.PINTries || out.LockOutside {
		pc.pin = true
	} else if out.PINTries < card.PINTries {
		pc.pin, pc.right = true, true
	}
	switch {
	case out.VerifyTries > card.VerifyTries:
		pc.verify = 1
	case out.VerifyTries < card.VerifyTries:
		pc.verify = -1
	}
	if !pc.pin && pc.verify == 0 {
		return nil
	}
	return &pc
}

func verifyMaxTries(prog *Program) int {
	if prog != nil && prog.VerifyMaxTries > 0 {
		return prog.VerifyMaxTries
	}
	return DefaultVerifyMaxTries
}

// recordCardChange applies a verified PIN, CVC2 or expiry to the card's
// counts in the batch's transaction (approved: the request was approved,
// without which a right CVC2 or expiry resets nothing). The counts change
// relative to the row, not set from the values the decision read, so
// concurrent requests of one card each count; the lock (unless an
// irreversible one stands) and its history entry are written by the
// request that reaches the limit.
func recordCardChange(ctx context.Context, tx ledger.Tx, cardID int64, pc pinChange, approved bool) error {
	if pc.verify < 0 && !approved {
		pc.verify = 0
		if !pc.pin {
			return nil
		}
	}
	before, after, err := ledger.RecordCardTries(ctx, tx, cardID, ledger.CardTries{PIN: pc.pin, RightPIN: pc.right, MaxPINTries: MaxPINTries,
		Verify: pc.verify, MaxVerify: pc.maxTries})
	if err != nil {
		return fmt.Errorf("tries of card %d: %w", cardID, err)
	}
	if before == after {
		return nil
	}
	system := Actor{Kind: ActorSystem, ID: "switch"}
	switch LockCode(after) {
	case LockPINTriesExceeded:
		if err := recordEvent(ctx, tx, cardID, system, string(ActLockOutside), LockPINTriesExceeded, "PIN tries exceeded"); err != nil {
			return fmt.Errorf("pin lock of card %d: %w", cardID, err)
		}
	case LockSuspectedFraud:
		if err := recordEvent(ctx, tx, cardID, system, string(ActLock), LockSuspectedFraud, "wrong CVC2 or expiry tries exceeded"); err != nil {
			return fmt.Errorf("fraud lock of card %d: %w", cardID, err)
		}
	}
	return nil
}

// recordEvent appends an entry to the card's history in tx, the
// transaction that changed the card.
func recordEvent(ctx context.Context, tx ledger.Tx, cardID int64, actor Actor, action string, code LockCode, detail string) error {
	e := eventOf(actor, action, code, detail)
	e.CardID = cardID
	return ledger.InsertCardEvent(ctx, tx, e)
}
