package cardhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/antaca/antaca/ledger"
)

// KYCStatus is where a user is in know-your-customer verification.
type KYCStatus string

const (
	KYCPending  KYCStatus = "pending"
	KYCVerified KYCStatus = "verified"
	KYCRejected KYCStatus = "rejected"
)

// User is a partner's customer: the cardholder.
type User struct {
	ID          int64
	PartnerID   int64
	ProgramID   int64
	ExternalRef string
	Name        string
	Email       string
	KYC         KYCStatus
	KYCBy       string // antaca, partner or admin
	CreatedAt   time.Time
}

// RegisterUser creates a user of a program with KYC pending. The partner's
// own id for the user (externalRef) is unique per partner.
func (h *Host) RegisterUser(ctx context.Context, programID int64, externalRef, name, email string) (User, error) {
	if externalRef == "" {
		return User{}, fmt.Errorf("register user: %w: externalRef is required", ErrInvalidInput)
	}
	id, err := h.store.InsertUser(ctx, programID, externalRef, name, email)
	if err != nil {
		return User{}, storeErr("register user", err)
	}
	return h.User(ctx, id)
}

// User returns the user with the given id.
func (h *Host) User(ctx context.Context, id int64) (User, error) {
	r, err := h.store.User(ctx, id)
	if err != nil {
		return User{}, storeErr(fmt.Sprintf("user %d", id), err)
	}
	return userOf(r), nil
}

// CustomerPartner returns the partner a user belongs to.
func (h *Host) CustomerPartner(ctx context.Context, userID int64) (int64, error) {
	u, err := h.User(ctx, userID)
	return u.PartnerID, err
}

// SetKYC records a KYC result for a user: by our KYC flow ("antaca"), by the
// partner's own KYC ("partner") or by an admin.
func (h *Host) SetKYC(ctx context.Context, userID int64, status KYCStatus, by string) (User, error) {
	if status != KYCPending && status != KYCVerified && status != KYCRejected {
		return User{}, fmt.Errorf("set kyc: %w: status %q", ErrInvalidInput, status)
	}
	found, err := h.store.SetUserKYC(ctx, userID, string(status), by)
	if err != nil {
		return User{}, storeErr("set kyc", err)
	}
	if !found {
		return User{}, fmt.Errorf("set kyc: user %d: %w", userID, ErrNotFound)
	}
	return h.User(ctx, userID)
}

// Balance is a user balance with its cards.
type Balance struct {
	Account ledger.Account
	Cards   []Card
}

// CreateBalance opens a user balance in a currency. The user's KYC must be
// verified.
func (h *Host) CreateBalance(ctx context.Context, userID int64, currency string) (ledger.Account, error) {
	u, err := h.User(ctx, userID)
	if err != nil {
		return ledger.Account{}, err
	}
	if u.KYC != KYCVerified {
		return ledger.Account{}, fmt.Errorf("create balance: user %d: %w", userID, ErrKYCNotVerified)
	}
	acc, err := h.ledger.OpenAccount(ctx, ledger.AccountSpec{Kind: "user", Currency: currency, PartnerID: u.PartnerID, ProgramID: u.ProgramID, UserID: userID})
	if err != nil {
		return ledger.Account{}, fmt.Errorf("create balance: %w", err)
	}
	return acc, nil
}

// Balances returns a user's balances, each with its cards.
func (h *Host) Balances(ctx context.Context, userID int64) ([]Balance, error) {
	accs, err := h.ledger.UserAccounts(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("balances of user %d: %w", userID, err)
	}
	out := make([]Balance, 0, len(accs))
	for _, a := range accs {
		cards, err := h.CardsOfAccount(ctx, a.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, Balance{Account: a, Cards: cards})
	}
	return out, nil
}

// UserBalance returns one balance of a user with its cards; ErrNotFound when
// the account is not that user's.
func (h *Host) UserBalance(ctx context.Context, userID, accountID int64) (Balance, error) {
	a, err := h.ledger.Account(ctx, accountID)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return Balance{}, fmt.Errorf("balance %d: %w", accountID, err)
	}
	if err != nil || a.UserID != userID {
		return Balance{}, fmt.Errorf("balance %d of user %d: %w", accountID, userID, ErrNotFound)
	}
	cards, err := h.CardsOfAccount(ctx, a.ID)
	return Balance{Account: a, Cards: cards}, err
}
