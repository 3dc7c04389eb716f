package cardhost

import "fmt"

// Action is a change asked of a card.
type Action string

const (
	ActLock         Action = "lock"
	ActLockOutside  Action = "lock_outside"
	ActUnlock       Action = "unlock"
	ActLink         Action = "link"
	ActActivate     Action = "activate"
	ActResetCVV     Action = "reset_cvv"
	ActSetPIN       Action = "set_pin"
	ActPrintVirtual Action = "print_virtual"
	ActRemove       Action = "remove"
)

// Transition applies action a to card c under the reference document's
// rules and returns the card as it would be after it. It is pure: the
// caller persists the result and its history. code is the lock reason for
// ActLock and ActLockOutside; digitalFirst says whether the card's program is
// in Digital First.
//
// The rules: a removed card takes no action. Locks take codes 1-8; a card
// with an irreversible lock (1, 2, 5, 8) keeps it: it can be neither
// relocked with another code, unlocked, activated, printed, nor given a new
// CVC2 or PIN, only removed. A reversible lock may be replaced by another
// code. Unlock needs a lock and clears the wrong-PIN count. Link moves an
// ordered physical card to inactive; activate an inactive physical card to
// active. Reset CVV is for virtual and digital-first cards, set PIN for
// physical and digital-first ones, print virtual for virtual cards of
// Digital First programs (the card becomes its own plastic copy:
// digital-first, same PAN, no activation).
func Transition(c Card, a Action, code LockCode, digitalFirst bool) (Card, error) {
	if c.State == StateRemoved {
		return c, ErrCardRemoved
	}
	if a == ActRemove {
		c.State = StateRemoved
		return c, nil
	}
	if c.LockCode.Irreversible() {
		return c, fmt.Errorf("%s: %w (code %d)", a, ErrIrreversibleLock, c.LockCode)
	}
	switch a {
	case ActLock, ActLockOutside:
		if !code.Valid() {
			return c, ErrInvalidLockCode
		}
		c.LockCode = code
	case ActUnlock:
		if c.LockCode == LockNone {
			return c, ErrNotLocked
		}
		c.LockCode = LockNone
		c.PINTries, c.VerifyTries = 0, 0
	case ActLink:
		if c.Type != Physical {
			return c, fmt.Errorf("link: %w", ErrCardType)
		}
		if c.State != StateOrdered {
			return c, fmt.Errorf("link: %w: %s", ErrCardState, c.State)
		}
		c.State = StateInactive
	case ActActivate:
		if c.Type != Physical {
			return c, fmt.Errorf("activate: %w", ErrCardType)
		}
		if c.State != StateInactive {
			return c, fmt.Errorf("activate: %w: %s", ErrCardState, c.State)
		}
		c.State = StateActive
	case ActResetCVV:
		if c.Type != Virtual && c.Type != DigitalFirst {
			return c, fmt.Errorf("reset cvv: %w", ErrCardType)
		}
		c.CVCGeneration++
	case ActSetPIN:
		if c.Type != Physical && c.Type != DigitalFirst {
			return c, fmt.Errorf("set pin: %w", ErrCardType)
		}
		c.PINTries = 0 // the new PVV is set by the caller
	case ActPrintVirtual:
		if c.Type != Virtual {
			return c, fmt.Errorf("print virtual: %w", ErrCardType)
		}
		if !digitalFirst {
			return c, ErrNotDigitalFirst
		}
		c.Type = DigitalFirst
	default:
		return c, fmt.Errorf("%w: action %q", ErrInvalidInput, a)
	}
	return c, nil
}
