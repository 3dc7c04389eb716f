package ledger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/internal/periodic"
)

// Mailer is where outbox notifications go: a plain SMTP relay (no TLS, no
// authentication, as a local relay or a test listener speaks it).
type Mailer struct {
	Addr string // host:port of the SMTP server
	From string // envelope and header sender
	// Hello is the name sent in EHLO/HELO. Default "localhost".
	Hello string
	// Timeout bounds one delivery (dial to QUIT). Default 10s.
	Timeout time.Duration
	// Backoff is the delay before the first retry of a failed row; it
	// doubles with each attempt up to MaxBackoff. Defaults 30s and 1h.
	Backoff    time.Duration
	MaxBackoff time.Duration
}

func (m Mailer) withDefaults() Mailer {
	if m.Hello == "" {
		m.Hello = "localhost"
	}
	if m.Timeout <= 0 {
		m.Timeout = 10 * time.Second
	}
	if m.Backoff <= 0 {
		m.Backoff = 30 * time.Second
	}
	if m.MaxBackoff <= 0 {
		m.MaxBackoff = time.Hour
	}
	return m
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
func (l *Ledger) DeliverOutbox(ctx context.Context, m Mailer) (sent int, err error) {
	m = m.withDefaults()
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
			if sendErr = m.send(ctx, o); sendErr != nil {
				delay := m.Backoff << min(o.Attempts, 20)
				if delay > m.MaxBackoff || delay <= 0 {
					delay = m.MaxBackoff
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
func (l *Ledger) RunOutbox(ctx context.Context, m Mailer, every time.Duration) {
	periodic.Run(ctx, every, func(ctx context.Context) {
		n, err := l.DeliverOutbox(ctx, m)
		if n > 0 {
			l.log.Info("outbox delivered", "sent", n)
		}
		if err != nil && ctx.Err() == nil {
			l.log.Warn("outbox delivery", "err", err, "sent", n)
		}
	})
}

// send delivers one message over SMTP within m.Timeout.
func (m Mailer) send(ctx context.Context, o OutboxMessage) error {
	if strings.ContainsAny(o.Recipient+m.From, "\r\n") {
		return fmt.Errorf("message %d: address with a line break", o.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("message %d: %w", o.ID, err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	host, _, _ := net.SplitHostPort(m.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("message %d: %w", o.ID, err)
	}
	defer c.Close()
	if err := c.Hello(m.Hello); err != nil {
		return fmt.Errorf("message %d: hello: %w", o.ID, err)
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("message %d: mail from: %w", o.ID, err)
	}
	if err := c.Rcpt(o.Recipient); err != nil {
		return fmt.Errorf("message %d: rcpt to: %w", o.ID, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("message %d: data: %w", o.ID, err)
	}
	subject := strings.NewReplacer("\r", " ", "\n", " ").Replace(o.Subject)
	body := strings.ReplaceAll(strings.ReplaceAll(o.Body, "\r\n", "\n"), "\n", "\r\n")
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <outbox-%d@antaca>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s",
		m.From, o.Recipient, subject, time.Now().UTC().Format(time.RFC1123Z), o.ID, body)
	if _, err := w.Write([]byte(msg)); err != nil {
		return fmt.Errorf("message %d: write: %w", o.ID, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("message %d: end of data: %w", o.ID, err)
	}
	// The server has accepted the message: a failing QUIT must not make
	// it send again.
	_ = c.Quit()
	return nil
}
