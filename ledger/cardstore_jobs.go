package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// CardQuota is what the card creation limits count, read under the
// quota's advisory locks: cards created in the last day by the user and in
// the last hour under the partner, and card jobs pending of each.
type CardQuota struct {
	UserCards, UserJobs, PartnerCards, PartnerJobs int
}

// The advisory lock keys are 64-bit hashes of these names and the id.
const (
	quotaLock = `SELECT pg_advisory_xact_lock(hashtextextended('card-quota-user-' || $1::bigint, 0)),
		pg_advisory_xact_lock(hashtextextended('card-quota-partner-' || $2::bigint, 0))`
	// cards created in the window and card jobs pending, of the user and
	// of the partner.
	quotaCount = `SELECT
		(SELECT count(*) FROM cards WHERE user_id = $1 AND created_at > now() - make_interval(secs => $3)),
		(SELECT count(*) FROM card_jobs j JOIN accounts a ON a.id = j.account_id WHERE j.status = 'pending' AND a.user_id = $1),
		(SELECT count(*) FROM cards c JOIN programs p ON p.id = c.program_id WHERE p.partner_id = $2 AND c.created_at > now() - make_interval(secs => $4)),
		(SELECT count(*) FROM card_jobs j JOIN accounts a ON a.id = j.account_id JOIN users u ON u.id = a.user_id
			JOIN programs p ON p.id = u.program_id WHERE j.status = 'pending' AND p.partner_id = $2)`
)

// QuotaCheck decides from the counts whether one more card or card job
// may be made; its error refuses it.
type QuotaCheck struct {
	UserID, PartnerID int64
	Check             func(CardQuota) error
}

// run takes the quota locks in tx, counts and asks the check.
func (c QuotaCheck) run(ctx context.Context, tx pgx.Tx) (refusal, err error) {
	if _, err := tx.Exec(ctx, quotaLock, c.UserID, c.PartnerID); err != nil {
		return nil, err
	}
	var q CardQuota
	if err := tx.QueryRow(ctx, quotaCount, c.UserID, c.PartnerID, (24*time.Hour).Seconds(), time.Hour.Seconds()).
		Scan(&q.UserCards, &q.UserJobs, &q.PartnerCards, &q.PartnerJobs); err != nil {
		return nil, err
	}
	return c.Check(q), nil
}

// NewCard is a card to insert: its PAN encrypted and as its lookup hash.
type NewCard struct {
	ProgramID, UserID, AccountID int64
	Type, State, Expiry          string
	PANEnc, PANLookup            []byte
	PANFirst6, PANLast4          string
}

// IssueCard inserts a card in one transaction with the quota check and
// the card's first history entry; when jobID is set, the card job is
// marked done in the same transaction (ErrCardJobTaken when it is not
// pending any more: the card is rolled back). taken reports a PAN already
// in use (nothing inserted: draw another). A refusal of the quota check is
// returned as it is.
func (s CardStore) IssueCard(ctx context.Context, c NewCard, quota QuotaCheck, jobID int64, event CardEvent) (id int64, taken bool, err error) {
	var refusal error
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if refusal, err = quota.run(ctx, tx); err != nil || refusal != nil {
			return errors.Join(refusal, err)
		}
		const insert = `INSERT INTO cards (program_id, user_id, account_id, type, state, expiry, pan_enc, pan_lookup, pan_first6, pan_last4)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (pan_lookup) DO NOTHING RETURNING id`
		if err := tx.QueryRow(ctx, insert, c.ProgramID, c.UserID, c.AccountID, c.Type, c.State, c.Expiry, c.PANEnc,
			c.PANLookup, c.PANFirst6, c.PANLast4).Scan(&id); err != nil {
			return err
		}
		if jobID != 0 {
			tag, err := tx.Exec(ctx, `UPDATE card_jobs SET status = 'done', card_id = $2, done_at = now() WHERE id = $1 AND status = 'pending'`, jobID, id)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return ErrCardJobTaken
			}
		}
		event.CardID = id
		return InsertCardEvent(ctx, tx, event)
	})
	switch {
	case refusal != nil:
		return 0, false, refusal
	case errors.Is(err, pgx.ErrNoRows):
		return 0, true, nil
	case errors.Is(err, ErrCardJobTaken):
		return 0, false, ErrCardJobTaken
	}
	return id, false, storeErr("issue card", err)
}

// CreateCardJob records a pending card job on a balance, after the quota
// check (whose refusal is returned as it is), and returns its id.
func (s CardStore) CreateCardJob(ctx context.Context, accountID int64, actorKind, actorID string, quota QuotaCheck) (int64, error) {
	var (
		id      int64
		refusal error
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if refusal, err = quota.run(ctx, tx); err != nil || refusal != nil {
			return errors.Join(refusal, err)
		}
		return tx.QueryRow(ctx, `INSERT INTO card_jobs (account_id, actor_kind, actor_id) VALUES ($1, $2, $3) RETURNING id`,
			accountID, actorKind, actorID).Scan(&id)
	})
	if refusal != nil {
		return 0, refusal
	}
	return id, storeErr("card job", err)
}

// FailCardJob marks a pending card job failed with reason.
func (s CardStore) FailCardJob(ctx context.Context, id int64, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE card_jobs SET status = 'failed', error = $2, done_at = now() WHERE id = $1 AND status = 'pending'`,
		id, reason)
	return storeErr("fail card job", err)
}

// PendingCardJob is a card job to run again.
type PendingCardJob struct {
	ID, UserID, AccountID int64
	ActorKind, ActorID    string
}

// StaleCardJobs fails the jobs pending for longer than giveUp and returns
// the others pending for longer than retryAfter, oldest first, at most 100.
func (s CardStore) StaleCardJobs(ctx context.Context, retryAfter, giveUp time.Duration) ([]PendingCardJob, error) {
	if _, err := s.pool.Exec(ctx, `UPDATE card_jobs SET status = 'failed', error = 'not completed in time', done_at = now()
		WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)`, giveUp.Seconds()); err != nil {
		return nil, storeErr("card jobs", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT j.id, a.user_id, j.account_id, j.actor_kind, j.actor_id
		FROM card_jobs j JOIN accounts a ON a.id = j.account_id
		WHERE j.status = 'pending' AND j.created_at < now() - make_interval(secs => $1) ORDER BY j.created_at LIMIT 100`, retryAfter.Seconds())
	if err != nil {
		return nil, storeErr("card jobs", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PendingCardJob, error) {
		var j PendingCardJob
		err := r.Scan(&j.ID, &j.UserID, &j.AccountID, &j.ActorKind, &j.ActorID)
		return j, err
	})
	return jobs, storeErr("card jobs", err)
}

// CardJob is a card job as its poller sees it.
type CardJob struct {
	ID     int64
	Status string
	CardID int64 // 0 until done
	Error  string
}

// CardJob returns the job jobID of one of the user's balances, or
// ErrNotFound.
func (s CardStore) CardJob(ctx context.Context, userID, jobID int64) (CardJob, error) {
	var j CardJob
	var cardID *int64
	err := s.pool.QueryRow(ctx, `SELECT j.id, j.status, j.card_id, j.error FROM card_jobs j JOIN accounts a ON a.id = j.account_id
		WHERE j.id = $1 AND a.user_id = $2`, jobID, userID).Scan(&j.ID, &j.Status, &cardID, &j.Error)
	if cardID != nil {
		j.CardID = *cardID
	}
	return j, storeErr("card job", err)
}
