package cardhost

import (
	"context"
	"fmt"

	"github.com/antaca/antaca/ledger"
)

// Money in and the exceptions queue (DESIGN section 6): the API's reloads,
// four-eyes approvals and exception resolutions, delegated to the ledger.

// PartnerReload credits amount to a user balance as partnerID's reload,
// vouched for by the partner's reference, which is unique per partner: the
// same reference for the same balance and amount returns the first posting;
// for anything else it is ledger.ErrDuplicateRef.
func (h *Host) PartnerReload(ctx context.Context, partnerID, accountID, amount int64, reference string) (ledger.Posting, error) {
	if reference == "" {
		return ledger.Posting{}, fmt.Errorf("partner reload: %w: reference is required", ErrInvalidInput)
	}
	actor := fmt.Sprintf("partner:%d", partnerID)
	return h.ledger.ReloadFrom(ctx, accountID, amount, actor+":"+reference,
		ledger.Source{Kind: ledger.SourcePartnerReload, Actor: actor, Reference: reference})
}

// AdminReload is an Admin's reload with reason and bank reference, posted
// at once or waiting for a second Admin (see ledger.AdminReload).
func (h *Host) AdminReload(ctx context.Context, accountID, amount int64, admin, reason, reference string) (ledger.Approval, error) {
	return h.ledger.AdminReload(ctx, accountID, amount, admin, reason, reference)
}

// Approvals lists four-eyes approvals with status ("" for all).
func (h *Host) Approvals(ctx context.Context, status string) ([]ledger.Approval, error) {
	return h.ledger.Approvals(ctx, status, 0)
}

// Approval returns one four-eyes approval.
func (h *Host) Approval(ctx context.Context, id int64) (ledger.Approval, error) {
	return h.ledger.Approval(ctx, id)
}

// Decide approves (by another Admin) or rejects a pending approval.
func (h *Host) Decide(ctx context.Context, id int64, admin string, approve bool) (ledger.Approval, error) {
	return h.ledger.Decide(ctx, id, admin, approve)
}

// Exceptions lists the exceptions queue: state open, closed or "" for all.
func (h *Host) Exceptions(ctx context.Context, state string) ([]ledger.Exception, error) {
	return h.ledger.Exceptions(ctx, state, 0)
}

// ResolveException resolves an exception, or asks a second Admin for it
// (recovered, released).
func (h *Host) ResolveException(ctx context.Context, id int64, resolution, admin, reference string) (ledger.Exception, ledger.Approval, error) {
	return h.ledger.ResolveException(ctx, id, resolution, admin, reference)
}
