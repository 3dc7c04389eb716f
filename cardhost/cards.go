package cardhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/antaca/antaca/internal/periodic"
	"github.com/antaca/antaca/ledger"
)

// CardData is the sensitive data of a card: shown only to the cardholder's
// channels, encrypted (JWE). Never log it.
type CardData struct {
	PAN    string
	Expiry string // YYMM
	CVC2   string
}

// CardEvent is one entry of a card's history.
type CardEvent struct {
	ID       int64
	At       time.Time
	Actor    Actor
	Action   string
	LockCode LockCode
	Detail   string
}

// Card returns the card with the given id, removed or not.
func (h *Host) Card(ctx context.Context, id int64) (Card, error) {
	r, err := h.store.Card(ctx, id)
	if err != nil {
		return Card{}, storeErr(fmt.Sprintf("card %d", id), err)
	}
	return cardOf(r), nil
}

// CardByPAN finds a card by its PAN through the lookup HMAC.
func (h *Host) CardByPAN(ctx context.Context, pan string) (Card, error) {
	r, err := h.store.CardByLookup(ctx, h.keys.PANLookup(pan))
	if err != nil {
		return Card{}, storeErr("card by pan", err)
	}
	return cardOf(r), nil
}

// CardsOfAccount returns the cards of a user balance that the user sees:
// not removed, and physical cards only once personalisation is confirmed
// (linked); an ordered card is reached by its id until then.
func (h *Host) CardsOfAccount(ctx context.Context, accountID int64) ([]Card, error) {
	rows, err := h.store.CardsOfAccount(ctx, accountID)
	if err != nil {
		return nil, storeErr("cards", err)
	}
	return cardsOf(rows), nil
}

// issue creates a card of the given type and state on a user balance,
// after checking that the balance is the user's and active, the user's KYC
// verified and the program allows the type.
func (h *Host) issue(ctx context.Context, userID, accountID int64, typ CardType, state CardState, actor Actor) (Card, CardData, error) {
	return h.issueWith(ctx, userID, accountID, typ, state, actor, 0)
}

// issueWith is issue for the card job jobID when not 0: the job is marked
// done in the transaction that inserts the card, and the card rolled back
// (errJobTaken) when another runner finished the job first.
func (h *Host) issueWith(ctx context.Context, userID, accountID int64, typ CardType, state CardState, actor Actor, jobID int64) (Card, CardData, error) {
	u, err := h.User(ctx, userID)
	if err != nil {
		return Card{}, CardData{}, err
	}
	if u.KYC != KYCVerified {
		return Card{}, CardData{}, fmt.Errorf("issue card: %w", ErrKYCNotVerified)
	}
	acc, err := h.ledger.Account(ctx, accountID)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return Card{}, CardData{}, fmt.Errorf("issue card: balance %d: %w", accountID, err)
	}
	if err != nil || acc.UserID != userID {
		return Card{}, CardData{}, fmt.Errorf("issue card: balance %d: %w", accountID, ErrNotFound)
	}
	if acc.State != "active" {
		return Card{}, CardData{}, fmt.Errorf("issue card: balance %d is %s: %w", accountID, acc.State, ErrInvalidInput)
	}
	prog, err := h.Program(ctx, u.ProgramID)
	if err != nil {
		return Card{}, CardData{}, err
	}
	if !prog.Allows(typ) {
		return Card{}, CardData{}, fmt.Errorf("issue card: program does not issue %s cards: %w", typ, ErrCardType)
	}
	if acc.Currency != prog.Currency {
		return Card{}, CardData{}, fmt.Errorf("issue card: balance currency %s is not the program's %s: %w", acc.Currency, prog.Currency, ErrInvalidInput)
	}
	expiry := ExpiryFrom(h.cfg.Now(), h.cfg.CardYears)
	for attempt := 0; attempt < 10; attempt++ {
		pan, err := GeneratePAN(prog.BINLow, prog.BINHigh, h.cfg.Rand)
		if err != nil {
			return Card{}, CardData{}, fmt.Errorf("issue card: %w", err)
		}
		enc, err := h.keys.EncryptPAN(pan)
		if err != nil {
			return Card{}, CardData{}, fmt.Errorf("issue card: %w", err)
		}
		nc := ledger.NewCard{ProgramID: prog.ID, UserID: userID, AccountID: accountID, Type: string(typ), State: string(state),
			Expiry: expiry, PANEnc: enc, PANLookup: h.keys.PANLookup(pan), PANFirst6: pan[:6], PANLast4: pan[len(pan)-4:]}
		id, taken, err := h.store.IssueCard(ctx, nc, h.quotaCheck(userID, prog.PartnerID, false, jobID != 0), jobID,
			eventOf(actor, "issue_"+string(typ), 0, ""))
		if taken {
			continue // PAN taken: draw another
		}
		if errors.Is(err, ErrCardLimit) {
			return Card{}, CardData{}, fmt.Errorf("issue card: %w", err)
		}
		if errors.Is(err, ledger.ErrCardJobTaken) {
			return Card{}, CardData{}, fmt.Errorf("issue card: %w", errJobTaken)
		}
		if err != nil {
			return Card{}, CardData{}, storeErr("issue card", err)
		}
		c, err := h.Card(ctx, id)
		if err != nil {
			return Card{}, CardData{}, err
		}
		h.log.Info("card issued", "card_id", id, "pan", MaskPAN(pan), "type", typ, "actor", actor.Kind)
		return c, CardData{PAN: pan, Expiry: expiry, CVC2: h.keys.CVC2(pan, expiry, 0)}, nil
	}
	return Card{}, CardData{}, fmt.Errorf("issue card: no free PAN in BIN range after 10 draws: %w", ErrConflict)
}

// CreateVirtualCard issues an active virtual card on a user balance and
// returns it with its data.
func (h *Host) CreateVirtualCard(ctx context.Context, userID, accountID int64, actor Actor) (Card, CardData, error) {
	return h.issue(ctx, userID, accountID, Virtual, StateActive, actor)
}

// OrderPhysicalCard orders a physical card on a user balance: it waits for
// personalisation (LinkCard), then activation.
func (h *Host) OrderPhysicalCard(ctx context.Context, userID, accountID int64, actor Actor) (Card, error) {
	c, _, err := h.issue(ctx, userID, accountID, Physical, StateOrdered, actor)
	return c, err
}

// CardJob is an asynchronous virtual card creation.
type CardJob struct {
	ID     int64
	Status string // pending, done, failed
	CardID int64
	Error  string
}

// Asynchronous card jobs. The job row is the request. A job's card and its
// "done" commit in one transaction, and only while the job is pending, so a
// job makes at most one card however many runners take it. The goroutine
// started by CreateVirtualCardAsync runs it at once; RetryCardJobs (every
// API process runs it, RunCardJobs) runs again the jobs still pending after
// jobRetryAfter: a process that stopped between its 202 and the card, or a
// database that failed meanwhile. A job still pending after jobGiveUp
// fails.
const (
	jobRetryAfter = 30 * time.Second
	jobGiveUp     = 10 * time.Minute
)

// errJobTaken rolls a job's card back when another runner finished the job
// first.
var errJobTaken = errors.New("card job already finished")

// CreateVirtualCardAsync records a card creation job and runs it in the
// background; poll it with CardJob.
func (h *Host) CreateVirtualCardAsync(ctx context.Context, userID, accountID int64, actor Actor) (CardJob, error) {
	if _, err := h.UserBalance(ctx, userID, accountID); err != nil {
		return CardJob{}, err
	}
	partnerID, err := h.partnerOf(ctx, userID)
	if err != nil {
		return CardJob{}, err
	}
	id, err := h.store.CreateCardJob(ctx, accountID, string(actor.Kind), actor.ID, h.quotaCheck(userID, partnerID, true, false))
	if errors.Is(err, ErrCardLimit) || errors.Is(err, ErrCardJobLimit) {
		return CardJob{}, err
	}
	if err != nil {
		return CardJob{}, storeErr("card job", err)
	}
	go func() {
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		h.runCardJob(bg, id, userID, accountID, actor)
	}()
	return CardJob{ID: id, Status: "pending"}, nil
}

// jobRefusals are the card host's refusals that fail a card job, with the
// reason the job shows (fixed texts: the error's own text may name
// internal ids or constraints). Any other error leaves the job pending.
var jobRefusals = []struct {
	err    error
	reason string
}{
	{ErrKYCNotVerified, "KYC not verified"},
	{ErrNotFound, "balance not found"},
	{ErrCardType, "the program does not issue virtual cards"},
	{ErrInvalidInput, "balance not active or not in the program's currency"},
	{ErrConflict, "no free PAN in the program's BIN range"},
	{ErrCardLimit, "card creation limit reached"},
}

// runCardJob makes the job's card and marks the job done in the same
// transaction. A refusal of the card host (jobRefusals) fails the job
// with its reason; any other error leaves the job pending for
// RetryCardJobs.
func (h *Host) runCardJob(ctx context.Context, id, userID, accountID int64, actor Actor) {
	_, _, err := h.issueWith(ctx, userID, accountID, Virtual, StateActive, actor, id)
	if err == nil || errors.Is(err, errJobTaken) {
		return
	}
	for _, r := range jobRefusals {
		if errors.Is(err, r.err) {
			h.log.Info("card job refused", "job", id, "err", err)
			if err := h.store.FailCardJob(ctx, id, r.reason); err != nil {
				h.log.Warn("card job: record failure", "job", id, "err", err)
			}
			return
		}
	}
	if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		h.log.Warn("card job left pending for a retry", "job", id, "err", err)
	}
}

// RetryCardJobs fails the jobs pending for longer than jobGiveUp and runs
// the others pending for longer than jobRetryAfter (at most 100 per call,
// oldest first). It returns how many it ran. Runners in several processes
// at once are safe: a job makes one card.
func (h *Host) RetryCardJobs(ctx context.Context) (int, error) {
	jobs, err := h.store.StaleCardJobs(ctx, jobRetryAfter, jobGiveUp)
	if err != nil {
		return 0, storeErr("card jobs", err)
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		// A database that stops answering must not stall the round.
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		h.runCardJob(jctx, j.ID, j.UserID, j.AccountID, Actor{Kind: ActorKind(j.ActorKind), ID: j.ActorID})
		cancel()
	}
	return len(jobs), nil
}

// RunCardJobs calls RetryCardJobs at once, then every interval, until ctx
// ends.
func (h *Host) RunCardJobs(ctx context.Context, every time.Duration) {
	periodic.Run(ctx, every, func(ctx context.Context) {
		if _, err := h.RetryCardJobs(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("card jobs", "err", err)
		}
	})
}

// CardJob returns an asynchronous creation job of a user's balance.
func (h *Host) CardJob(ctx context.Context, userID, jobID int64) (CardJob, error) {
	j, err := h.store.CardJob(ctx, userID, jobID)
	if err != nil {
		return CardJob{}, storeErr(fmt.Sprintf("card job %d", jobID), err)
	}
	return CardJob{ID: j.ID, Status: j.Status, CardID: j.CardID, Error: j.Error}, nil
}

// change applies an action to a card in one transaction: it locks the row,
// checks the rules (Transition), lets set adjust the update (PVV), persists
// the card with a new version and records who did it and why.
func (h *Host) change(ctx context.Context, cardID int64, a Action, code LockCode, actor Actor, detail string, set func(*Card) error) (Card, error) {
	var ruleErr error // the rules' refusal, returned as it is
	row, err := h.store.ChangeCard(ctx, cardID, func(cur ledger.CardRow, tx ledger.CardChangeTx) (ledger.CardChange, error) {
		ch, err := h.applyChange(ctx, cardOf(cur), tx, a, code, actor, detail, set)
		ruleErr = err
		return ch, err
	})
	if ruleErr != nil {
		return Card{}, ruleErr
	}
	if err != nil {
		return Card{}, storeErr(fmt.Sprintf("card %d", cardID), err)
	}
	out := cardOf(row)
	h.log.Info("card changed", "card_id", cardID, "action", a, "lock_code", int(out.LockCode), "actor", actor.Kind)
	return out, nil
}

// applyChange is change's decision on the locked card c: the rules
// (Transition, the system lock), set's adjustment, and the history entry.
func (h *Host) applyChange(ctx context.Context, c Card, tx ledger.CardChangeTx, a Action, code LockCode, actor Actor, detail string,
	set func(*Card) error) (ledger.CardChange, error) {
	cardID := c.ID
	if a == ActUnlock && actor.Kind == ActorUser && c.LockCode == LockSuspectedFraud {
		// A lock the system made after a brute force of the card's
		// secrets is not the cardholder's to lift.
		if sys, err := tx.SystemLocked(ctx, cardID); err != nil {
			return ledger.CardChange{}, storeErr("card events", err)
		} else if sys {
			return ledger.CardChange{}, fmt.Errorf("card %d: %w", cardID, ErrSystemLock)
		}
	}
	var digitalFirst bool
	if a == ActPrintVirtual {
		var err error
		if digitalFirst, err = tx.DigitalFirst(ctx, c.ProgramID); err != nil {
			return ledger.CardChange{}, storeErr("program", err)
		}
	}
	next, err := Transition(c, a, code, digitalFirst)
	if err != nil {
		return ledger.CardChange{}, fmt.Errorf("card %d: %w", cardID, err)
	}
	if set != nil {
		if err := set(&next); err != nil {
			return ledger.CardChange{}, err
		}
	}
	var lc LockCode
	if a == ActLock || a == ActLockOutside {
		lc = code
	}
	return ledger.CardChange{Card: cardRowOf(next), Printed: a == ActPrintVirtual, Event: eventOf(actor, string(a), lc, detail)}, nil
}

// Lock locks a card with a reason code (1-8). why is kept in the history.
func (h *Host) Lock(ctx context.Context, cardID int64, code LockCode, actor Actor, why string) (Card, error) {
	return h.change(ctx, cardID, ActLock, code, actor, why, nil)
}

// LockOutside locks a card named by PAN at the request of a scheme or an
// acquirer (for example after three wrong PINs).
func (h *Host) LockOutside(ctx context.Context, pan string, code LockCode, actor Actor, why string) (Card, error) {
	c, err := h.CardByPAN(ctx, pan)
	if err != nil {
		return Card{}, err
	}
	return h.change(ctx, c.ID, ActLockOutside, code, actor, why, nil)
}

// Unlock removes a reversible lock. A cardholder's session (actor user)
// may not lift a code-7 lock the system made: ErrSystemLock.
func (h *Host) Unlock(ctx context.Context, cardID int64, actor Actor) (Card, error) {
	return h.change(ctx, cardID, ActUnlock, 0, actor, "", nil)
}

// Remove removes a card for good: it then answers as unknown.
func (h *Host) Remove(ctx context.Context, cardID int64, actor Actor) (Card, error) {
	return h.change(ctx, cardID, ActRemove, 0, actor, "", nil)
}

// LinkCard records that personalisation of an ordered physical card is
// confirmed: it becomes visible to the user, inactive until activated.
func (h *Host) LinkCard(ctx context.Context, cardID int64, actor Actor) (Card, error) {
	return h.change(ctx, cardID, ActLink, 0, actor, "", nil)
}

// Activate activates a linked physical card.
func (h *Host) Activate(ctx context.Context, cardID int64, actor Actor) (Card, error) {
	return h.change(ctx, cardID, ActActivate, 0, actor, "", nil)
}

// PrintVirtual orders the plastic copy of a virtual card (Digital First
// programs only): the card becomes digital-first, same PAN, no activation.
func (h *Host) PrintVirtual(ctx context.Context, cardID int64, actor Actor) (Card, error) {
	return h.change(ctx, cardID, ActPrintVirtual, 0, actor, "", nil)
}

// ResetCVV gives a virtual or digital-first card a new CVC2 and returns the
// card's data with it.
func (h *Host) ResetCVV(ctx context.Context, cardID int64, actor Actor) (Card, CardData, error) {
	c, err := h.change(ctx, cardID, ActResetCVV, 0, actor, "", nil)
	if err != nil {
		return Card{}, CardData{}, err
	}
	d, err := h.cardData(ctx, c)
	return c, d, err
}

// SetPIN sets the PIN of a physical or digital-first card; only its PVV is
// stored.
func (h *Host) SetPIN(ctx context.Context, cardID int64, pin string, actor Actor) (Card, error) {
	if !ValidPIN(pin) {
		return Card{}, fmt.Errorf("set pin: %w: a PIN has 4 to 12 digits", ErrInvalidInput)
	}
	return h.change(ctx, cardID, ActSetPIN, 0, actor, "", func(c *Card) error {
		pan, err := h.pan(ctx, c.ID)
		if err != nil {
			return err
		}
		pvv, err := h.keys.PVV(pan, pin)
		if err != nil {
			return fmt.Errorf("set pin: %w", err)
		}
		c.PVV = pvv
		return nil
	})
}

// FullData returns a card's PAN, expiry and current CVC2. Removed cards
// have none.
func (h *Host) FullData(ctx context.Context, cardID int64) (Card, CardData, error) {
	c, err := h.Card(ctx, cardID)
	if err != nil {
		return Card{}, CardData{}, err
	}
	if c.State == StateRemoved {
		return Card{}, CardData{}, fmt.Errorf("card %d: %w", cardID, ErrCardRemoved)
	}
	d, err := h.cardData(ctx, c)
	return c, d, err
}

func (h *Host) cardData(ctx context.Context, c Card) (CardData, error) {
	pan, err := h.pan(ctx, c.ID)
	if err != nil {
		return CardData{}, err
	}
	return CardData{PAN: pan, Expiry: c.Expiry, CVC2: h.keys.CVC2(pan, c.Expiry, c.CVCGeneration)}, nil
}

func (h *Host) pan(ctx context.Context, cardID int64) (string, error) {
	enc, err := h.store.CardPAN(ctx, cardID)
	if err != nil {
		return "", storeErr("card pan", err)
	}
	pan, err := h.keys.DecryptPAN(enc)
	if err != nil {
		return "", fmt.Errorf("card %d: decrypt pan: %w", cardID, err)
	}
	return pan, nil
}

// History returns a card's changes, oldest first.
func (h *Host) History(ctx context.Context, cardID int64) ([]CardEvent, error) {
	rows, err := h.store.CardEvents(ctx, cardID)
	if err != nil {
		return nil, storeErr("history", err)
	}
	var out []CardEvent
	for _, e := range rows {
		out = append(out, CardEvent{ID: e.ID, At: e.At, Actor: Actor{Kind: ActorKind(e.ActorKind), ID: e.ActorID},
			Action: e.Action, LockCode: LockCode(e.LockCode), Detail: e.Detail})
	}
	return out, nil
}
