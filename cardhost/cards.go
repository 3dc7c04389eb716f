package cardhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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

const cardColumns = `id, program_id, user_id, account_id, type, state, lock_code, expiry, pan_first6, pan_last4,
	cvc_generation, pvv, pin_tries, version, created_at, verify_tries`

func scanCard(row pgx.Row) (Card, error) {
	var c Card
	var typ, state string
	var lock int16
	err := row.Scan(&c.ID, &c.ProgramID, &c.UserID, &c.AccountID, &typ, &state, &lock, &c.Expiry, &c.PANFirst6, &c.PANLast4,
		&c.CVCGeneration, &c.PVV, &c.PINTries, &c.Version, &c.CreatedAt, &c.VerifyTries)
	c.Type, c.State, c.LockCode = CardType(typ), CardState(state), LockCode(lock)
	return c, err
}

// Card returns the card with the given id, removed or not.
func (h *Host) Card(ctx context.Context, id int64) (Card, error) {
	c, err := scanCard(h.pool.QueryRow(ctx, `SELECT `+cardColumns+` FROM cards WHERE id = $1`, id))
	return c, dbErr(fmt.Sprintf("card %d", id), err)
}

// CardByPAN finds a card by its PAN through the lookup HMAC.
func (h *Host) CardByPAN(ctx context.Context, pan string) (Card, error) {
	c, err := scanCard(h.pool.QueryRow(ctx, `SELECT `+cardColumns+` FROM cards WHERE pan_lookup = $1`, h.keys.PANLookup(pan)))
	return c, dbErr("card by pan", err)
}

// CardsOfAccount returns the cards of a user balance that the user sees:
// not removed, and physical cards only once personalisation is confirmed
// (linked); an ordered card is reached by its id until then.
func (h *Host) CardsOfAccount(ctx context.Context, accountID int64) ([]Card, error) {
	rows, err := h.pool.Query(ctx, `SELECT `+cardColumns+` FROM cards WHERE account_id = $1 AND state NOT IN ('removed', 'ordered') ORDER BY id`, accountID)
	if err != nil {
		return nil, dbErr("cards", err)
	}
	defer rows.Close()
	var out []Card
	for rows.Next() {
		c, err := scanCard(rows)
		if err != nil {
			return nil, dbErr("cards", err)
		}
		out = append(out, c)
	}
	return out, dbErr("cards", rows.Err())
}

// issue creates a card of the given type and state on a user balance,
// after checking that the balance is the user's and active, the user's KYC
// verified and the program allows the type.
func (h *Host) issue(ctx context.Context, userID, accountID int64, typ CardType, state CardState, actor Actor) (Card, CardData, error) {
	return h.issueWith(ctx, userID, accountID, typ, state, actor, nil)
}

// issueWith is issue with inTx, when not nil, run in the transaction that
// inserts the card: its error rolls the card back.
func (h *Host) issueWith(ctx context.Context, userID, accountID int64, typ CardType, state CardState, actor Actor,
	inTx func(ctx context.Context, tx pgx.Tx, cardID int64) error) (Card, CardData, error) {
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
		var id int64
		err = pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
			if err := h.checkQuota(ctx, tx, userID, prog.PartnerID, false, inTx != nil); err != nil {
				return err
			}
			const insert = `INSERT INTO cards (program_id, user_id, account_id, type, state, expiry, pan_enc, pan_lookup, pan_first6, pan_last4)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (pan_lookup) DO NOTHING RETURNING id`
			if err := tx.QueryRow(ctx, insert, prog.ID, userID, accountID, string(typ), string(state), expiry, enc,
				h.keys.PANLookup(pan), pan[:6], pan[len(pan)-4:]).Scan(&id); err != nil {
				return err
			}
			if inTx != nil {
				if err := inTx(ctx, tx, id); err != nil {
					return err
				}
			}
			return recordEvent(ctx, tx, id, actor, "issue_"+string(typ), 0, "")
		})
		if errors.Is(err, pgx.ErrNoRows) {
			continue // PAN taken: draw another
		}
		if errors.Is(err, ErrCardLimit) {
			return Card{}, CardData{}, fmt.Errorf("issue card: %w", err)
		}
		if err != nil {
			return Card{}, CardData{}, dbErr("issue card", err)
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
	var id int64
	err = pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		if err := h.checkQuota(ctx, tx, userID, partnerID, true, false); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO card_jobs (account_id, actor_kind, actor_id) VALUES ($1, $2, $3) RETURNING id`,
			accountID, string(actor.Kind), actor.ID).Scan(&id)
	})
	if errors.Is(err, ErrCardLimit) || errors.Is(err, ErrCardJobLimit) {
		return CardJob{}, err
	}
	if err != nil {
		return CardJob{}, dbErr("card job", err)
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
	_, _, err := h.issueWith(ctx, userID, accountID, Virtual, StateActive, actor, func(ctx context.Context, tx pgx.Tx, cardID int64) error {
		tag, err := tx.Exec(ctx, `UPDATE card_jobs SET status = 'done', card_id = $2, done_at = now() WHERE id = $1 AND status = 'pending'`, id, cardID)
		if err == nil && tag.RowsAffected() == 0 {
			err = errJobTaken
		}
		return err
	})
	if err == nil || errors.Is(err, errJobTaken) {
		return
	}
	for _, r := range jobRefusals {
		if errors.Is(err, r.err) {
			h.log.Info("card job refused", "job", id, "err", err)
			if _, err := h.pool.Exec(ctx, `UPDATE card_jobs SET status = 'failed', error = $2, done_at = now() WHERE id = $1 AND status = 'pending'`,
				id, r.reason); err != nil {
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
	if _, err := h.pool.Exec(ctx, `UPDATE card_jobs SET status = 'failed', error = 'not completed in time', done_at = now()
		WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)`, jobGiveUp.Seconds()); err != nil {
		return 0, dbErr("card jobs", err)
	}
	type job struct {
		id, user, account int64
		actor             Actor
	}
	rows, err := h.pool.Query(ctx, `SELECT j.id, a.user_id, j.account_id, j.actor_kind, j.actor_id
		FROM card_jobs j JOIN accounts a ON a.id = j.account_id
		WHERE j.status = 'pending' AND j.created_at < now() - make_interval(secs => $1) ORDER BY j.created_at LIMIT 100`, jobRetryAfter.Seconds())
	if err != nil {
		return 0, dbErr("card jobs", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (job, error) {
		var j job
		var kind string
		err := r.Scan(&j.id, &j.user, &j.account, &kind, &j.actor.ID)
		j.actor.Kind = ActorKind(kind)
		return j, err
	})
	if err != nil {
		return 0, dbErr("card jobs", err)
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		// A database that stops answering must not stall the round.
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		h.runCardJob(jctx, j.id, j.user, j.account, j.actor)
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
	var j CardJob
	var cardID *int64
	err := h.pool.QueryRow(ctx, `SELECT j.id, j.status, j.card_id, j.error FROM card_jobs j JOIN accounts a ON a.id = j.account_id
		WHERE j.id = $1 AND a.user_id = $2`, jobID, userID).Scan(&j.ID, &j.Status, &cardID, &j.Error)
	if cardID != nil {
		j.CardID = *cardID
	}
	return j, dbErr(fmt.Sprintf("card job %d", jobID), err)
}

// change applies an action to a card in one transaction: it locks the row,
// checks the rules (Transition), lets set adjust the update (PVV), persists
// the card with a new version and records who did it and why.
func (h *Host) change(ctx context.Context, cardID int64, a Action, code LockCode, actor Actor, detail string, set func(*Card) error) (Card, error) {
	var out Card
	err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		c, err := scanCard(tx.QueryRow(ctx, `SELECT `+cardColumns+` FROM cards WHERE id = $1 FOR UPDATE`, cardID))
		if err != nil {
			return dbErr(fmt.Sprintf("card %d", cardID), err)
		}
		if a == ActUnlock && actor.Kind == ActorUser && c.LockCode == LockSuspectedFraud {
			// A lock the system made after a brute force of the card's
			// secrets is not the cardholder's to lift.
			if sys, err := systemLocked(ctx, tx, cardID); err != nil {
				return dbErr("card events", err)
			} else if sys {
				return fmt.Errorf("card %d: %w", cardID, ErrSystemLock)
			}
		}
		var digitalFirst bool
		if a == ActPrintVirtual {
			if err := tx.QueryRow(ctx, `SELECT digital_first FROM programs WHERE id = $1`, c.ProgramID).Scan(&digitalFirst); err != nil {
				return dbErr("program", err)
			}
		}
		next, err := Transition(c, a, code, digitalFirst)
		if err != nil {
			return fmt.Errorf("card %d: %w", cardID, err)
		}
		if set != nil {
			if err := set(&next); err != nil {
				return err
			}
		}
		const update = `UPDATE cards SET type = $2, state = $3, lock_code = $4, cvc_generation = $5, pvv = $6, pin_tries = $7,
			printed_at = CASE WHEN $8 THEN now() ELSE printed_at END, verify_tries = $9, version = version + 1, updated_at = now()
			WHERE id = $1 RETURNING version`
		if err := tx.QueryRow(ctx, update, cardID, string(next.Type), string(next.State), int16(next.LockCode), next.CVCGeneration,
			next.PVV, next.PINTries, a == ActPrintVirtual, next.VerifyTries).Scan(&next.Version); err != nil {
			return dbErr("update card", err)
		}
		var lc LockCode
		if a == ActLock || a == ActLockOutside {
			lc = code
		}
		if err := recordEvent(ctx, tx, cardID, actor, string(a), lc, detail); err != nil {
			return dbErr("card event", err)
		}
		out = next
		return nil
	})
	if err != nil {
		return Card{}, err
	}
	h.log.Info("card changed", "card_id", cardID, "action", a, "lock_code", int(out.LockCode), "actor", actor.Kind)
	return out, nil
}

func recordEvent(ctx context.Context, tx pgx.Tx, cardID int64, actor Actor, action string, code LockCode, detail string) error {
	var lc *int16
	if code != LockNone {
		v := int16(code)
		lc = &v
	}
	_, err := tx.Exec(ctx, `INSERT INTO card_events (card_id, actor_kind, actor_id, action, lock_code, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		cardID, string(actor.Kind), actor.ID, action, lc, detail)
	return err
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
	var enc []byte
	if err := h.pool.QueryRow(ctx, `SELECT pan_enc FROM cards WHERE id = $1`, cardID).Scan(&enc); err != nil {
		return "", dbErr("card pan", err)
	}
	pan, err := h.keys.DecryptPAN(enc)
	if err != nil {
		return "", fmt.Errorf("card %d: decrypt pan: %w", cardID, err)
	}
	return pan, nil
}

// History returns a card's changes, oldest first.
func (h *Host) History(ctx context.Context, cardID int64) ([]CardEvent, error) {
	rows, err := h.pool.Query(ctx, `SELECT id, at, actor_kind, actor_id, action, coalesce(lock_code, 0), detail
		FROM card_events WHERE card_id = $1 ORDER BY id`, cardID)
	if err != nil {
		return nil, dbErr("history", err)
	}
	defer rows.Close()
	var out []CardEvent
	for rows.Next() {
		var e CardEvent
		var kind string
		var lc int16
		if err := rows.Scan(&e.ID, &e.At, &kind, &e.Actor.ID, &e.Action, &lc, &e.Detail); err != nil {
			return nil, dbErr("history", err)
		}
		e.Actor.Kind, e.LockCode = ActorKind(kind), LockCode(lc)
		out = append(out, e)
	}
	return out, dbErr("history", rows.Err())
}
