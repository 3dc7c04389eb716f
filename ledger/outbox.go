package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/internal/periodic"
)

// MailSender sends one outbox notification (partner.Mailer over SMTP):
// every call out lives in the outbound package, the ledger keeps the
// outbox, its locks and its retries.
type MailSender interface {
	SendMail(ctx context.Context, o OutboxMessage) error
}

// OutboxRetry is when a failed outbox row is tried again: Backoff before
// the first retry, doubling with each attempt up to MaxBackoff. Defaults
// 30s and 1h.
type OutboxRetry struct {
	Backoff    time.Duration
	MaxBackoff time.Duration
}

func (r OutboxRetry) withDefaults() OutboxRetry {
	if r.Backoff <= 0 {
		r.Backoff = 30 * time.Second
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = time.Hour
	}
	return r
}

// OutboxMessage is a notification waiting in (or delivered from) the
// outbox.
type OutboxMessage struct {
	ID        int64
	Kind      string
	Recipient string
	Subject   string
	Body      string
	Attempts  int
	LastError string
	CreatedAt time.Time
	NextAt    time.Time
	SentAt    *time.Time
}

// Outbox returns the most recent outbox rows, newest first, at most limit
// (default 100).
func (l *Ledger) Outbox(ctx context.Context, limit int) ([]OutboxMessage, error) {
	if limit <= 0 {
		limit = 100
	}
	const q = `SELECT id, kind, recipient, subject, body, attempts, coalesce(last_error, ''), created_at, next_at, sent_at
		FROM outbox ORDER BY id DESC LIMIT $1`
	rows, err := l.pool.Query(ctx, q, limit)
	if err != nil {
		return nil, dbErr("outbox", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (OutboxMessage, error) {
		var o OutboxMessage
		err := row.Scan(&o.ID, &o.Kind, &o.Recipient, &o.Subject, &o.Body, &o.Attempts, &o.LastError, &o.CreatedAt, &o.NextAt, &o.SentAt)
		return o, err
	})
	if err != nil {
		return nil, dbErr("outbox", err)
	}
	return out, nil
}

// DeliverOutbox sends the pending outbox rows that are due, oldest first,
// each in its own transaction that keeps the row locked while it is sent (so
// two workers never send the same row) and marks it sent. When a send fails
// the row records the attempt, the error and the time of its next try
// (exponential backoff), and the run stops there: while the server is down
// one probe per run is enough, and the rows wait in the outbox. It returns
// how many rows it sent and the delivery error, if any. Delivery is at least
// once: a crash between the SMTP "." and the commit sends the row again.
func (l *Ledger) DeliverOutbox(ctx context.Context, m MailSender, r OutboxRetry) (sent int, err error) {
	r = r.withDefaults()
	for {
		var sendErr error
		found := false
		err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
			const sel = `SELECT id, recipient, subject, body, attempts FROM outbox
				WHERE sent_at IS NULL AND next_at <= greatest(now(), $1) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`
			var o OutboxMessage
			err := tx.QueryRow(ctx, sel, l.now()).Scan(&o.ID, &o.Recipient, &o.Subject, &o.Body, &o.Attempts)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			found = true
			if sendErr = m.SendMail(ctx, o); sendErr != nil {
				delay := r.Backoff << min(o.Attempts, 20)
				if delay > r.MaxBackoff || delay <= 0 {
					delay = r.MaxBackoff
				}
				const fail = `UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_at = $3 WHERE id = $1`
				_, err := tx.Exec(ctx, fail, o.ID, sendErr.Error(), l.now().Add(delay))
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1`, o.ID)
			return err
		})
		if err != nil {
			return sent, dbErr("deliver outbox", err)
		}
		if !found {
			return sent, nil
		}
		if sendErr != nil {
			return sent, fmt.Errorf("deliver outbox: %w", sendErr)
		}
		sent++
	}
}

// RunOutbox delivers the outbox every interval until ctx ends, logging
// delivery failures (the rows stay in the outbox and are retried).
func (l *Ledger) RunOutbox(ctx context.Context, m MailSender, r OutboxRetry, every time.Duration) {
	periodic.Run(ctx, every, func(ctx context.Context) {
		n, err := l.DeliverOutbox(ctx, m, r)
		if n > 0 {
			l.log.Info("outbox delivered", "sent", n)
		}
		if err != nil && ctx.Err() == nil {
			l.log.Warn("outbox delivery", "err", err, "sent", n)
		}
	})
}
