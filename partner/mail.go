package partner

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"time"

	"github.com/antaca/antaca/ledger"
)

// Mailer sends the outbox's notifications (ledger.MailSender): a plain SMTP
// relay (no TLS, no authentication, as a local relay or a test listener
// speaks it).
type Mailer struct {
	Addr string // host:port of the SMTP server
	From string // envelope and header sender
	// Hello is the name sent in EHLO/HELO. Default "localhost".
	Hello string
	// Timeout bounds one delivery (dial to QUIT). Default 10s.
	Timeout time.Duration
}

func (m Mailer) withDefaults() Mailer {
	if m.Hello == "" {
		m.Hello = "localhost"
	}
	if m.Timeout <= 0 {
		m.Timeout = 10 * time.Second
	}
	return m
}

// SendMail delivers one outbox message over SMTP within m.Timeout.
func (m Mailer) SendMail(ctx context.Context, o ledger.OutboxMessage) error {
	m = m.withDefaults()
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
