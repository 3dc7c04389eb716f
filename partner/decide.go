package partner

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/antaca/antaca/cardhost"
)

// Decider is the card host's RemoteDecider over the outbound client. It is
// safe for concurrent use.
type Decider struct {
	c *Client
	// Now is the clock of signatures (default time.Now).
	Now func() time.Time
	// Tolerance is how far the answer's signature time may be from ours
	// (default 5 minutes).
	Tolerance time.Duration
}

// NewDecider returns a Decider calling out through c.
func NewDecider(c *Client) *Decider {
	return &Decider{c: c, Now: time.Now, Tolerance: 5 * time.Minute}
}

// decisionRequest is the body POSTed to a program's remote URL.
type decisionRequest struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	Created        int64  `json:"created"`
	CardID         int64  `json:"cardId"`
	CustomerID     int64  `json:"customerId"`
	ProgramID      int64  `json:"programId"`
	MaskedPAN      string `json:"maskedPan,omitempty"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	ProcessingCode string `json:"processingCode"`
	MCC            string `json:"mcc,omitempty"`
	Merchant       string `json:"merchant,omitempty"`
	STAN           string `json:"stan,omitempty"`
	RRN            string `json:"rrn,omitempty"`
}

// decisionAnswer is the partner's answer: signed, echoing the id.
type decisionAnswer struct {
	ID      string `json:"id"`
	Approve *bool  `json:"approve"`
}

// errDecline is the prefix of every answer that declines rather than
// stands in.
var errDecline = errors.New("decline")

// newID returns prefix followed by 16 random bytes in hex.
func newID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Decide POSTs the signed request and returns the partner's signed answer.
// Timeouts and refused connections wrap cardhost.ErrRemoteUnavailable (the
// stand-in); every other failure is a decline error.
func (d *Decider) Decide(ctx context.Context, url, secret string, r cardhost.RemoteRequest) (bool, string, error) {
	now := d.Now()
	in := decisionRequest{ID: newID("dec_"), Type: "authorization.request", Created: now.Unix(), CardID: r.CardID, CustomerID: r.UserID,
		ProgramID: r.ProgramID, MaskedPAN: r.MaskedPAN, Amount: r.Amount, Currency: r.Currency, ProcessingCode: r.ProcessingCode,
		MCC: r.MCC, Merchant: r.Merchant, STAN: r.STAN, RRN: r.RRN}
	body, err := json.Marshal(in)
	if err != nil {
		return false, in.ID, fmt.Errorf("%w: %v", errDecline, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, in.ID, fmt.Errorf("%w: bad url", errDecline)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Antaca-Request-Id", in.ID)
	req.Header.Set(SignatureHeader, Signature(now, body, secret))
	resp, err := d.c.Do(req)
	if err != nil {
		if unreachable(ctx, err) {
			return false, in.ID, fmt.Errorf("%s: %w", hostOf(url), cardhost.ErrRemoteUnavailable)
		}
		return false, in.ID, fmt.Errorf("%w: %s: %v", errDecline, hostOf(url), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, in.ID, fmt.Errorf("%w: answered %d", errDecline, resp.StatusCode)
	}
	ans, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		if unreachable(ctx, err) {
			return false, in.ID, fmt.Errorf("%s: answer cut: %w", hostOf(url), cardhost.ErrRemoteUnavailable)
		}
		return false, in.ID, fmt.Errorf("%w: answer unreadable", errDecline)
	}
	if err := Verify(resp.Header.Get(SignatureHeader), ans, secret, d.Now(), d.Tolerance); err != nil {
		return false, in.ID, fmt.Errorf("%w: answer signature: %v", errDecline, err)
	}
	var a decisionAnswer
	if err := json.Unmarshal(ans, &a); err != nil || a.Approve == nil {
		return false, in.ID, fmt.Errorf("%w: answer is not {\"id\", \"approve\"}", errDecline)
	}
	if a.ID != in.ID {
		return false, in.ID, fmt.Errorf("%w: answer echoes another request id", errDecline)
	}
	return *a.Approve, in.ID, nil
}

// ReadDecision is a partner back-end's side of the remote decision, in Go:
// it checks the request's signature with secret and returns the request's
// id and body. Tests and examples use it; a partner may copy it.
func ReadDecision(r *http.Request, secret string) (id string, body []byte, err error) {
	body, err = io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		return "", nil, err
	}
	if err := Verify(r.Header.Get(SignatureHeader), body, secret, time.Now(), 5*time.Minute); err != nil {
		return "", body, err
	}
	var in struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.ID == "" {
		return "", body, errors.New("no request id")
	}
	return in.ID, body, nil
}

// WriteDecision writes a partner back-end's answer: {"id", "approve"}
// signed with secret.
func WriteDecision(w http.ResponseWriter, secret, id string, approve bool) {
	body, _ := json.Marshal(decisionAnswer{ID: id, Approve: &approve})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(SignatureHeader, Signature(time.Now(), body, secret))
	w.Write(body)
}
