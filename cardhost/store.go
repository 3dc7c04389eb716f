package cardhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/antaca/antaca/ledger"
)

// Store is the storage the card host needs outside the authorisation hot
// path: cards and their history, card jobs and quotas, users, programs and
// their rules. ledger.CardStore implements it on PostgreSQL (the SQL and its
// plans live there); the card host keeps the rules and its own types. Its
// errors match ledger.ErrNotFound, ledger.ErrDuplicateRef and
// ledger.ErrInvalid (a *ledger.ConstraintError), which storeErr turns into
// the card host's. Implementations must be safe for concurrent use.
type Store interface {
	Card(ctx context.Context, id int64) (ledger.CardRow, error)
	CardByLookup(ctx context.Context, lookup []byte) (ledger.CardRow, error)
	CardsOfAccount(ctx context.Context, accountID int64) ([]ledger.CardRow, error)
	CardPAN(ctx context.Context, id int64) ([]byte, error)
	CardEvents(ctx context.Context, cardID int64) ([]ledger.CardEvent, error)
	IssueCard(ctx context.Context, c ledger.NewCard, quota ledger.QuotaCheck, jobID int64, event ledger.CardEvent) (id int64, taken bool, err error)
	ChangeCard(ctx context.Context, cardID int64, apply func(cur ledger.CardRow, tx ledger.CardChangeTx) (ledger.CardChange, error)) (ledger.CardRow, error)

	CreateCardJob(ctx context.Context, accountID int64, actorKind, actorID string, quota ledger.QuotaCheck) (int64, error)
	FailCardJob(ctx context.Context, id int64, reason string) error
	StaleCardJobs(ctx context.Context, retryAfter, giveUp time.Duration) ([]ledger.PendingCardJob, error)
	CardJob(ctx context.Context, userID, jobID int64) (ledger.CardJob, error)

	InsertUser(ctx context.Context, programID int64, externalRef, name, email string) (int64, error)
	User(ctx context.Context, id int64) (ledger.UserRow, error)
	SetUserKYC(ctx context.Context, id int64, status, by string) (found bool, err error)
	SetUserContact(ctx context.Context, id int64, name, email string) (found bool, err error)

	Program(ctx context.Context, id int64) (ledger.ProgramRow, error)
	Programs(ctx context.Context, partnerID int64) ([]ledger.ProgramRow, error)
	InsertProgram(ctx context.Context, p ledger.ProgramRow) (int64, error)
	DeleteProgram(ctx context.Context, id int64)
	SetProgramAccount(ctx context.Context, id, accountID int64, remoteSecret string, sandbox bool) error
	SetProgramLimits(ctx context.Context, id, blindRefundLimit, standInLimit int64, verifyMaxTries int, pendingReversalS int64) error
	SetMCCRule(ctx context.Context, programID int64, low, high string, toleranceBP *int64, holdDays *int) error
	ProgramSandbox(ctx context.Context, id int64) (bool, error)
	RemoteSecret(ctx context.Context, id int64) (string, error)
	SetRemoteSecret(ctx context.Context, id int64, secret string) (found bool, err error)

	CurrencyExponent(ctx context.Context, code string) (int, error)
	Partners(ctx context.Context) ([]ledger.Partner, error)
}

var _ Store = ledger.CardStore{}

// storeErr translates a Store error into the card host's sentinels, as
// dbErr does for the SQL the hot path still runs: not found, conflict,
// invalid input (naming the constraint); anything else keeps its chain.
func storeErr(what string, err error) error {
	var ce *ledger.ConstraintError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	case errors.Is(err, ledger.ErrDuplicateRef):
		return fmt.Errorf("%s: %w", what, ErrConflict)
	case errors.As(err, &ce):
		return fmt.Errorf("%s: %w: %s", what, ErrInvalidInput, ce.Constraint)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func cardOf(r ledger.CardRow) Card {
	return Card{ID: r.ID, ProgramID: r.ProgramID, UserID: r.UserID, AccountID: r.AccountID, Type: CardType(r.Type),
		State: CardState(r.State), LockCode: LockCode(r.LockCode), Expiry: r.Expiry, PANFirst6: r.PANFirst6, PANLast4: r.PANLast4,
		CVCGeneration: r.CVCGeneration, PVV: r.PVV, PINTries: r.PINTries, Version: r.Version, CreatedAt: r.CreatedAt, VerifyTries: r.VerifyTries}
}

func cardRowOf(c Card) ledger.CardRow {
	return ledger.CardRow{ID: c.ID, ProgramID: c.ProgramID, UserID: c.UserID, AccountID: c.AccountID, Type: string(c.Type),
		State: string(c.State), LockCode: int16(c.LockCode), Expiry: c.Expiry, PANFirst6: c.PANFirst6, PANLast4: c.PANLast4,
		CVCGeneration: c.CVCGeneration, PVV: c.PVV, PINTries: c.PINTries, Version: c.Version, CreatedAt: c.CreatedAt, VerifyTries: c.VerifyTries}
}

func cardsOf(rows []ledger.CardRow) []Card {
	var out []Card
	for _, r := range rows {
		out = append(out, cardOf(r))
	}
	return out
}

func eventOf(actor Actor, action string, code LockCode, detail string) ledger.CardEvent {
	return ledger.CardEvent{ActorKind: string(actor.Kind), ActorID: actor.ID, Action: action, LockCode: int16(code), Detail: detail}
}

func userOf(r ledger.UserRow) User {
	return User{ID: r.ID, PartnerID: r.PartnerID, ProgramID: r.ProgramID, ExternalRef: r.ExternalRef, Name: r.Name, Email: r.Email,
		KYC: KYCStatus(r.KYCStatus), KYCBy: r.KYCBy, CreatedAt: r.CreatedAt}
}

func programOf(r ledger.ProgramRow) Program {
	p := Program{ID: r.ID, PartnerID: r.PartnerID, Name: r.Name, BINLow: r.BINLow, BINHigh: r.BINHigh, Currency: r.Currency,
		CurrencyNumeric: r.CurrencyNumeric, DigitalFirst: r.DigitalFirst, Funding: FundingModel(r.Funding), RemoteURL: r.RemoteURL,
		RemoteTimeout: time.Duration(r.RemoteTimeoutMS) * time.Millisecond, StandInApprove: r.StandInApprove,
		PartnerAccountID: r.PartnerAccountID, CreatedAt: r.CreatedAt, MCCRules: parseMCCRules(r.MCCRules)}
	p.BlindRefundLimit, p.StandInLimit, p.VerifyMaxTries = r.BlindRefundLimit, r.StandInLimit, r.VerifyMaxTries
	p.PendingReversalWindow = time.Duration(r.PendingReversalS) * time.Second
	for _, t := range r.CardTypes {
		p.CardTypes = append(p.CardTypes, CardType(t))
	}
	return p
}
