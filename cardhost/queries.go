package cardhost

import (
	"context"
	"fmt"

	"github.com/antaca/antaca/ledger"
)

// This file holds small read-only queries and ledger pass-throughs that the
// REST API needs, so that the API depends on the Host alone.

// CurrencyExponent returns the number of minor-unit digits of an ISO 4217
// alphabetic currency code (2 for EUR, 0 for JPY).
func (h *Host) CurrencyExponent(ctx context.Context, code string) (int, error) {
	exp, err := h.store.CurrencyExponent(ctx, code)
	return exp, storeErr(fmt.Sprintf("currency %q", code), err)
}

// SetUserContact replaces a user's name and e-mail (our KYC flow collects
// them again). Empty values keep the stored ones.
func (h *Host) SetUserContact(ctx context.Context, userID int64, name, email string) (User, error) {
	found, err := h.store.SetUserContact(ctx, userID, name, email)
	if err != nil {
		return User{}, storeErr("set user contact", err)
	}
	if !found {
		return User{}, fmt.Errorf("set user contact: user %d: %w", userID, ErrNotFound)
	}
	return h.User(ctx, userID)
}

// Partners returns every partner in id order.
func (h *Host) Partners(ctx context.Context) ([]ledger.Partner, error) {
	out, err := h.store.Partners(ctx)
	if err != nil {
		return nil, storeErr("partners", err)
	}
	return out, nil
}

// CreatePartner creates a partner; low-balance notifications go to
// notifyEmail.
func (h *Host) CreatePartner(ctx context.Context, name, notifyEmail string) (ledger.Partner, error) {
	return h.ledger.CreatePartner(ctx, name, notifyEmail)
}

// Partner returns the partner with the given id.
func (h *Host) Partner(ctx context.Context, id int64) (ledger.Partner, error) {
	return h.ledger.Partner(ctx, id)
}

// Account returns any ledger account (user or partner balance) by id.
func (h *Host) Account(ctx context.Context, id int64) (ledger.Account, error) {
	return h.ledger.Account(ctx, id)
}

// PartnerBalances returns a partner's credit, deposit and partner (FX)
// balances.
func (h *Host) PartnerBalances(ctx context.Context, partnerID int64) ([]ledger.Account, error) {
	return h.ledger.PartnerAccounts(ctx, partnerID)
}

// OpenPartnerBalance opens a partner (FX) balance, or a partner credit or
// deposit balance of one of the partner's programs (kind partner_credit or
// partner_deposit, programID required and the program must be the
// partner's).
func (h *Host) OpenPartnerBalance(ctx context.Context, partnerID int64, kind, currency string, programID int64, threshold *int64) (ledger.Account, error) {
	switch kind {
	case ledger.KindPartner:
		programID = 0
	case ledger.KindPartnerCredit, ledger.KindPartnerDeposit:
		p, err := h.Program(ctx, programID)
		if err != nil {
			return ledger.Account{}, err
		}
		if p.PartnerID != partnerID {
			return ledger.Account{}, fmt.Errorf("open partner balance: program %d: %w", programID, ErrNotFound)
		}
	default:
		return ledger.Account{}, fmt.Errorf("open partner balance: %w: kind %q", ErrInvalidInput, kind)
	}
	return h.ledger.OpenAccount(ctx, ledger.AccountSpec{Kind: kind, Currency: currency, PartnerID: partnerID, ProgramID: programID, LowThreshold: threshold})
}

// Reload credits amount (minor units) to a user or partner balance; ref
// makes it idempotent (see ledger.Reload).
func (h *Host) Reload(ctx context.Context, accountID, amount int64, ref string) (ledger.Posting, error) {
	return h.ledger.Reload(ctx, accountID, amount, ref)
}

// SetThreshold sets (nil: removes) a balance's low-level threshold.
func (h *Host) SetThreshold(ctx context.Context, accountID int64, threshold *int64) error {
	return h.ledger.SetThreshold(ctx, accountID, threshold)
}

// Transactions returns a balance's entries, newest first, at most limit.
func (h *Host) Transactions(ctx context.Context, accountID int64, limit int) ([]ledger.Entry, error) {
	return h.ledger.Postings(ctx, accountID, limit)
}

// Summary returns the balance summary per currency (Users, Wallet).
func (h *Host) Summary(ctx context.Context) ([]ledger.CurrencySummary, error) {
	return h.ledger.Summary(ctx)
}
