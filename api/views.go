package api

import (
	"context"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// The JSON shapes of the card operations. Amounts are major-unit decimal
// strings (money.go); ids are integers; times RFC 3339.

type customerView struct {
	ID          int64     `json:"id"`
	PartnerID   int64     `json:"partnerId"`
	ProgramID   int64     `json:"programId"`
	ExternalRef string    `json:"externalRef"`
	Name        string    `json:"name"`
	Email       string    `json:"email"`
	KYCStatus   string    `json:"kycStatus"`
	KYCBy       string    `json:"kycBy,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}

func customerOf(u cardhost.User) customerView {
	return customerView{ID: u.ID, PartnerID: u.PartnerID, ProgramID: u.ProgramID, ExternalRef: u.ExternalRef,
		Name: u.Name, Email: u.Email, KYCStatus: string(u.KYC), KYCBy: u.KYCBy, CreatedAt: u.CreatedAt}
}

// cardView is a card without its sensitive data: what every channel, the
// admin one included, may see.
type cardView struct {
	ID         int64     `json:"id"`
	CustomerID int64     `json:"customerId"`
	BalanceID  int64     `json:"balanceId"`
	ProgramID  int64     `json:"programId"`
	Type       string    `json:"type"`
	State      string    `json:"state"`
	Locked     bool      `json:"locked"`
	LockCode   int       `json:"lockCode,omitempty"`
	MaskedPAN  string    `json:"maskedPan"`
	PINSet     bool      `json:"pinSet"`
	CreatedAt  time.Time `json:"createdAt"`
}

func cardOf(c cardhost.Card) cardView {
	return cardView{ID: c.ID, CustomerID: c.UserID, BalanceID: c.AccountID, ProgramID: c.ProgramID, Type: string(c.Type),
		State: string(c.State), Locked: c.LockCode != cardhost.LockNone, LockCode: int(c.LockCode), MaskedPAN: c.MaskedPAN(),
		PINSet: c.PVV != "", CreatedAt: c.CreatedAt}
}

// cardDataView is a card with its PAN, expiry and CVC2: only ever sent
// JWE-encrypted to the cardholder's channels.
type cardDataView struct {
	cardView
	PAN    string `json:"pan"`
	Expiry string `json:"expiry"` // YYYY-MM
	CVC2   string `json:"cvc2"`
}

func cardDataOf(c cardhost.Card, d cardhost.CardData) cardDataView {
	exp := d.Expiry
	if len(exp) == 4 {
		exp = "20" + exp[:2] + "-" + exp[2:]
	}
	return cardDataView{cardView: cardOf(c), PAN: d.PAN, Expiry: exp, CVC2: d.CVC2}
}

func cardsOf(cs []cardhost.Card) []cardView {
	out := make([]cardView, 0, len(cs))
	for _, c := range cs {
		out = append(out, cardOf(c))
	}
	return out
}

type eventView struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	ActorKind string    `json:"actorKind"`
	ActorID   string    `json:"actorId,omitempty"`
	Action    string    `json:"action"`
	LockCode  int       `json:"lockCode,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

type balanceView struct {
	ID             int64      `json:"id"`
	Kind           string     `json:"kind"`
	CustomerID     int64      `json:"customerId,omitempty"`
	PartnerID      int64      `json:"partnerId,omitempty"`
	ProgramID      int64      `json:"programId,omitempty"`
	Currency       string     `json:"currency"`
	Balance        string     `json:"balance"`
	Held           string     `json:"held"`
	Available      string     `json:"available"`
	State          string     `json:"state"`
	LowThreshold   *string    `json:"lowThreshold,omitempty"`
	BelowThreshold bool       `json:"belowThreshold,omitempty"`
	Negative       bool       `json:"negative,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
	Cards          []cardView `json:"cards,omitempty"`
}

func (s *Server) balanceOf(ctx context.Context, a ledger.Account, cards []cardhost.Card) (balanceView, error) {
	exp, err := s.exponent(ctx, a.Currency)
	if err != nil {
		return balanceView{}, err
	}
	v := balanceView{ID: a.ID, Kind: a.Kind, CustomerID: a.UserID, PartnerID: a.PartnerID, ProgramID: a.ProgramID,
		Currency: a.Currency, Balance: formatAmount(a.Balance, exp), Held: formatAmount(a.Held, exp),
		Available: formatAmount(a.Available(), exp), State: a.State, BelowThreshold: a.BelowThreshold,
		Negative: a.NegativeFlag, CreatedAt: a.CreatedAt}
	if a.Kind == ledger.KindUser {
		v.PartnerID, v.ProgramID = 0, 0 // a user sees its balance, not the program's plumbing
		v.Cards = cardsOf(cards)
		if v.Cards == nil {
			v.Cards = []cardView{}
		}
	}
	if a.LowThreshold != nil {
		t := formatAmount(*a.LowThreshold, exp)
		v.LowThreshold = &t
	}
	return v, nil
}

type transactionView struct {
	ID        int64     `json:"id"`
	PostingID int64     `json:"postingId"`
	Kind      string    `json:"kind"`
	Reference string    `json:"reference,omitempty"`
	Amount    string    `json:"amount"` // signed: positive credits the balance
	Currency  string    `json:"currency"`
	At        time.Time `json:"at"`
}

type jobView struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
	CardID int64  `json:"cardId,omitempty"`
	Error  string `json:"error,omitempty"`
}

type programView struct {
	ID               int64     `json:"id"`
	PartnerID        int64     `json:"partnerId"`
	Name             string    `json:"name"`
	BINLow           string    `json:"binLow"`
	BINHigh          string    `json:"binHigh"`
	Currency         string    `json:"currency"`
	CardTypes        []string  `json:"cardTypes"`
	DigitalFirst     bool      `json:"digitalFirst"`
	Funding          string    `json:"funding"`
	RemoteURL        string    `json:"remoteUrl,omitempty"`
	RemoteTimeoutMS  int64     `json:"remoteTimeoutMs"`
	RemoteSecret     string    `json:"remoteSecret,omitempty"` // at creation only
	StandInApprove   bool      `json:"standInApprove"`
	PartnerBalanceID int64     `json:"partnerBalanceId"`
	CreatedAt        time.Time `json:"createdAt"`
}

func programOf(p cardhost.Program) programView {
	v := programView{ID: p.ID, PartnerID: p.PartnerID, Name: p.Name, BINLow: p.BINLow, BINHigh: p.BINHigh, Currency: p.Currency,
		DigitalFirst: p.DigitalFirst, Funding: string(p.Funding), RemoteURL: p.RemoteURL,
		RemoteTimeoutMS: p.RemoteTimeout.Milliseconds(), StandInApprove: p.StandInApprove, PartnerBalanceID: p.PartnerAccountID,
		CreatedAt: p.CreatedAt, CardTypes: []string{}}
	for _, t := range p.CardTypes {
		v.CardTypes = append(v.CardTypes, string(t))
	}
	return v
}

type partnerView struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	NotifyEmail string    `json:"notifyEmail,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}

type summaryView struct {
	Currency       string `json:"currency"`
	Users          string `json:"users"`
	Wallet         string `json:"wallet"`
	PartnerCredit  string `json:"partnerCredit"`
	PartnerDeposit string `json:"partnerDeposit"`
	Partner        string `json:"partner"`
	UsersHeld      string `json:"usersHeld"`
}
