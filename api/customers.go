package api

import (
	"errors"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"

	"github.com/antaca/antaca/cardhost"
)

func (s *Server) createCustomer(q *request) (int, any, error) {
	var in struct {
		ProgramID   int64  `json:"programId"`
		ExternalRef string `json:"externalRef"`
		Name        string `json:"name"`
		Email       string `json:"email"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if err := checkText("externalRef", in.ExternalRef, 1, 128); err != nil {
		return 0, nil, err
	}
	if err := checkText("name", in.Name, 0, 200); err != nil {
		return 0, nil, err
	}
	if in.Email != "" && !validEmail(in.Email) {
		return 0, nil, validation("email is not an e-mail address")
	}
	if in.ProgramID <= 0 {
		return 0, nil, validation("programId is required")
	}
	prog, err := s.host.Program(q.Context(), in.ProgramID)
	if err != nil {
		return 0, nil, err
	}
	if prog.PartnerID != q.principal.PartnerID {
		return 0, nil, notFound()
	}
	u, err := s.host.RegisterUser(q.Context(), in.ProgramID, in.ExternalRef, in.Name, in.Email)
	if errors.Is(err, cardhost.ErrConflict) {
		return 0, nil, errorf(http.StatusConflict, CodeConflict, "a customer with this externalRef exists")
	}
	if err != nil {
		return 0, nil, err
	}
	q.header.Set("Location", "/secure/customers/"+strconv.FormatInt(u.ID, 10))
	return http.StatusCreated, customerOf(u), nil
}

func (s *Server) getCustomer(q *request) (int, any, error) {
	id, err := s.customerID(q)
	if err != nil {
		return 0, nil, err
	}
	u, err := s.host.User(q.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, customerOf(u), nil
}

var documentRe = regexp.MustCompile(`^[A-Za-z0-9-]{5,32}$`)

func validEmail(v string) bool {
	a, err := mail.ParseAddress(v)
	return err == nil && a.Address == v && len(v) <= 254 && strings.Contains(v[strings.LastIndex(v, "@"):], ".")
}

// registerKYC is our KYC flow (the user from the app, or the partner
// server to server): for now it verifies a user who gives a name, an e-mail
// address and an identity document number of 5-32 letters, digits or
// dashes. The document number is checked, not stored.
func (s *Server) registerKYC(q *request) (int, any, error) {
	id, err := s.customerID(q)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Name           string `json:"name"`
		Email          string `json:"email"`
		DocumentNumber string `json:"documentNumber"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	in.Name = strings.TrimSpace(in.Name)
	if err := checkText("name", in.Name, 1, 200); err != nil {
		return 0, nil, err
	}
	if !validEmail(in.Email) {
		return 0, nil, validation("email is not an e-mail address")
	}
	if !documentRe.MatchString(in.DocumentNumber) {
		return 0, nil, validation("documentNumber must be 5 to 32 letters, digits or dashes")
	}
	if _, err := s.host.SetUserContact(q.Context(), id, in.Name, in.Email); err != nil {
		return 0, nil, err
	}
	u, err := s.host.SetKYC(q.Context(), id, cardhost.KYCVerified, "antaca")
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("kyc verified", "customer_id", id, "by", q.principal.scope())
	return http.StatusOK, customerOf(u), nil
}

// setKYC records the result of a KYC run elsewhere: the partner's own
// (secure channel) or an admin's decision.
func (s *Server) setKYC(q *request) (int, any, error) {
	id, err := s.customerID(q)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Status string `json:"status"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	st := cardhost.KYCStatus(in.Status)
	if st != cardhost.KYCVerified && st != cardhost.KYCRejected && st != cardhost.KYCPending {
		return 0, nil, validation("status must be verified, rejected or pending")
	}
	by := "partner"
	if q.principal.Channel == ChannelAdmin {
		by = "admin"
	}
	u, err := s.host.SetKYC(q.Context(), id, st, by)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("kyc set", "customer_id", id, "status", st, "by", q.principal.scope())
	return http.StatusOK, customerOf(u), nil
}

// ---- User balances ----

func (s *Server) createBalance(q *request) (int, any, error) {
	id, err := s.customerID(q)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Currency string `json:"currency"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if len(in.Currency) != 3 {
		return 0, nil, validation("currency must be an ISO 4217 alphabetic code")
	}
	a, err := s.host.CreateBalance(q.Context(), id, strings.ToUpper(in.Currency))
	if err != nil {
		return 0, nil, err
	}
	v, err := s.balanceOf(q.Context(), a, nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, v, nil
}

func (s *Server) listBalances(q *request) (int, any, error) {
	id, err := s.customerID(q)
	if err != nil {
		return 0, nil, err
	}
	bs, err := s.host.Balances(q.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	out := make([]balanceView, 0, len(bs))
	for _, b := range bs {
		v, err := s.balanceOf(q.Context(), b.Account, b.Cards)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, v)
	}
	return http.StatusOK, map[string]any{"balances": out}, nil
}

func (s *Server) getBalance(q *request) (int, any, error) {
	b, err := s.balance(q)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.balanceOf(q.Context(), b.Account, b.Cards)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}

func (s *Server) reloadBalance(q *request) (int, any, error) {
	b, err := s.balance(q)
	if err != nil {
		return 0, nil, err
	}
	status, out, err := s.reload(q, b.Account.ID, b.Account.Currency)
	if err != nil {
		return 0, nil, err
	}
	b, err = s.balance(q)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.balanceOf(q.Context(), b.Account, b.Cards)
	if err != nil {
		return 0, nil, err
	}
	out["balance"] = v
	return status, out, nil
}

func (s *Server) balanceTransactions(q *request) (int, any, error) {
	b, err := s.balance(q)
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryLimit(q, 100, 1000)
	if err != nil {
		return 0, nil, err
	}
	es, err := s.host.Transactions(q.Context(), b.Account.ID, limit)
	if err != nil {
		return 0, nil, err
	}
	exp, err := s.exponent(q.Context(), b.Account.Currency)
	if err != nil {
		return 0, nil, err
	}
	out := make([]transactionView, 0, len(es))
	for _, e := range es {
		out = append(out, transactionView{ID: e.ID, PostingID: e.PostingID, Kind: e.Kind, Reference: e.Ref,
			Amount: formatAmount(e.Amount, exp), Currency: e.Currency, At: e.CreatedAt})
	}
	// Authorisations with their holds (pending, captured, released,
	// expired) next to the postings (simulate.go).
	auths, err := s.balanceAuthorizations(q.Context(), b.Account.ID, limit)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"balanceId": b.Account.ID, "transactions": out, "authorizations": auths}, nil
}

func (s *Server) balanceCards(q *request) (int, any, error) {
	b, err := s.balance(q)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"balanceId": b.Account.ID, "cards": cardsOf(b.Cards)}, nil
}

// ---- Card creation ----

type balanceInput struct {
	BalanceID int64 `json:"balanceId"`
}
