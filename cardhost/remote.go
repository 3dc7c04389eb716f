package cardhost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// RemoteRequest is what the card host tells a partner's back-end about an
// authorisation it is asked to decide: the partner's objects' ids, the
// masked PAN only, the amount in minor units of the program's currency.
type RemoteRequest struct {
	CardID, UserID, ProgramID int64
	MaskedPAN                 string
	Amount                    int64
	Currency                  string // ISO 4217 alphabetic
	ProcessingCode            string
	MCC, Merchant             string
	STAN, RRN                 string
}

// RemoteDecider asks a partner's back-end whether to approve (programs with
// a remote URL). Package partner implements it: a signed HTTPS POST to url
// with secret, whose answer must be signed with the same secret and echo
// the request's id. It returns the partner's decision and the request's id
// (kept in the journal). An error wrapping ErrRemoteUnavailable means the
// partner timed out or refused the connection, the only cases where the
// program's stand-in applies; any other error (a bad or missing signature,
// a redirect, a non-2xx answer, a wrong echoed id, a refused address) is a
// decline. Implementations must be safe for concurrent use.
type RemoteDecider interface {
	Decide(ctx context.Context, url, secret string, r RemoteRequest) (approve bool, requestID string, err error)
}

// ErrRemoteUnavailable is the partner not answering in time or refusing the
// connection.
var ErrRemoteUnavailable = errors.New("partner unavailable")

// NewRemoteSecret returns a fresh signing secret for a program's remote
// decision.
func NewRemoteSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("remote secret: %w", err)
	}
	return "rdsec_" + hex.EncodeToString(b[:]), nil
}

// remoteSecret reads a program's signing secret: only remote decisions
// need it, so it is not in the cached Program.
func (h *Host) remoteSecret(ctx context.Context, programID int64) (string, error) {
	s, err := h.store.RemoteSecret(ctx, programID)
	return s, storeErr("program secret", err)
}

// RotateRemoteSecret gives a program a new remote-decision secret and
// returns it (shown once). Calls made before it returns are signed with the
// old one.
func (h *Host) RotateRemoteSecret(ctx context.Context, programID int64) (string, error) {
	s, err := NewRemoteSecret()
	if err != nil {
		return "", err
	}
	found, err := h.store.SetRemoteSecret(ctx, programID, s)
	if err != nil {
		return "", storeErr("rotate remote secret", err)
	}
	if !found {
		return "", fmt.Errorf("rotate remote secret: program %d: %w", programID, ErrNotFound)
	}
	return s, nil
}

// remoteDecision asks a partner-deposit program's remote URL whether to
// approve, within the program's timeout. The stand-in applies only when the
// partner times out or refuses the connection; anything else that is not
// a signed approval bound to this request declines (DESIGN section 5).
func (h *Host) remoteDecision(ctx context.Context, card *Card, prog *Program, r *AuthRequest, out Outcome) (Reason, string) {
	if h.cfg.Remote == nil {
		return DoNotHonour, "no remote decider configured"
	}
	secret, err := h.remoteSecret(ctx, prog.ID)
	if err != nil {
		return IssuerUnavailable, "remote secret: " + err.Error()
	}
	if secret == "" {
		return DoNotHonour, "program has no remote secret"
	}
	ctx, cancel := context.WithTimeout(ctx, prog.RemoteTimeout)
	defer cancel()
	masked := ""
	if r.PAN != "" {
		masked = MaskPAN(r.PAN)
	}
	approve, id, err := h.cfg.Remote.Decide(ctx, prog.RemoteURL, secret, RemoteRequest{
		CardID: card.ID, UserID: card.UserID, ProgramID: prog.ID, MaskedPAN: masked, Amount: out.HoldAmount, Currency: prog.Currency,
		ProcessingCode: r.ProcessingCode, MCC: r.MCC, Merchant: r.MerchantName, STAN: r.STAN, RRN: r.RRN,
	})
	switch {
	case errors.Is(err, ErrRemoteUnavailable):
		return h.standIn(prog, "remote "+id+": "+err.Error())
	case err != nil:
		return DoNotHonour, "remote " + id + " refused: " + err.Error()
	case !approve:
		return DoNotHonour, "declined by partner " + id
	}
	return Approved, "approved by partner " + id
}

func (h *Host) standIn(prog *Program, why string) (Reason, string) {
	if prog.StandInApprove {
		return Approved, "stand-in approve: " + why
	}
	return IssuerUnavailable, "stand-in decline: " + why
}
