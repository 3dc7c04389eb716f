package api

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/antaca/antaca/cardhost"
)

// Path prefixes of the three channels for the operations on a customer.
const (
	customerPrefix = "/customers/me"
	securePrefix   = "/secure/customers/{customerId}"
	adminPrefix    = "/admin/customers/{customerId}"
)

var (
	rolesAll          = AllRoles
	rolesAdmin        = []Role{RoleAdmin}
	rolesAdminManager = []Role{RoleAdmin, RoleManager}
)

// registerCardRoutes registers the customer, balance and card operations of
// DESIGN.md section 8 on the channels its table gives, and the partner,
// program and partner balance administration.
func (s *Server) registerCardRoutes() {
	opt, req := EncryptionOptional, EncryptionRequired
	cust := func(method, path string, enc Encryption, h handlerFunc) {
		s.route(Route{Method: method, Pattern: customerPrefix + path, Channel: ChannelCustomer, Encryption: enc}, h)
	}
	sec := func(method, path string, enc Encryption, h handlerFunc) {
		s.route(Route{Method: method, Pattern: securePrefix + path, Channel: ChannelSecure, Encryption: enc}, h)
	}
	adm := func(method, path string, roles []Role, enc Encryption, h handlerFunc) {
		s.route(Route{Method: method, Pattern: "/admin" + path, Channel: ChannelAdmin, Roles: roles, Encryption: enc}, h)
	}

	// Customers and KYC.
	s.route(Route{Method: "POST", Pattern: "/secure/customers", Channel: ChannelSecure, Encryption: opt}, s.createCustomer)
	cust("GET", "", opt, s.getCustomer)
	sec("GET", "", opt, s.getCustomer)
	adm("GET", "/customers/{customerId}", rolesAll, opt, s.getCustomer)
	cust("POST", "/register", opt, s.registerKYC)
	sec("POST", "/register", opt, s.registerKYC)
	sec("PUT", "/kyc", opt, s.setKYC)
	adm("PUT", "/customers/{customerId}/kyc", rolesAdminManager, opt, s.setKYC)

	// User balances.
	for _, b := range []struct {
		method, path string
		h            handlerFunc
	}{
		{"POST", "/balances", s.createBalance},
		{"GET", "/balances", s.listBalances},
		{"GET", "/balances/{balanceId}", s.getBalance},
		{"GET", "/balances/{balanceId}/transactions", s.balanceTransactions},
		{"GET", "/balances/{balanceId}/cards", s.balanceCards},
	} {
		cust(b.method, b.path, opt, b.h)
		sec(b.method, b.path, opt, b.h)
		adm(b.method, "/customers/{customerId}"+b.path, rolesAll, opt, b.h)
	}
	// Reloads: DESIGN section 6, reloads.go. The customer channel has none.
	cust("POST", "/balances/{balanceId}/reload", opt, s.refuseCustomerReload)
	sec("POST", "/balances/{balanceId}/reload", opt, s.reloadBalance)
	adm("POST", "/customers/{customerId}/balances/{balanceId}/reload", rolesAdmin, opt, s.reloadBalance)

	// Card creation.
	cust("POST", "/cards/virtual", req, s.createVirtual)
	sec("POST", "/cards/virtual", req, s.createVirtual)
	adm("POST", "/customers/{customerId}/cards/virtual", rolesAdminManager, req, s.createVirtual)
	cust("POST", "/cards/virtual/async", opt, s.createVirtualAsync)
	sec("POST", "/cards/virtual/async", opt, s.createVirtualAsync)
	cust("GET", "/card-jobs/{jobId}", opt, s.getCardJob)
	sec("GET", "/card-jobs/{jobId}", opt, s.getCardJob)
	cust("POST", "/cards/physical", req, s.orderPhysical)
	sec("POST", "/cards/physical", req, s.orderPhysical)
	adm("POST", "/customers/{customerId}/cards/physical", rolesAll, req, s.orderPhysical)

	// One card.
	cust("GET", "/cards/{cardId}", req, s.getCardData)
	sec("GET", "/cards/{cardId}", req, s.getCardData)
	adm("GET", "/cards/{cardId}", rolesAll, opt, s.getCard)
	for _, c := range []struct {
		method, path string
		enc          Encryption
		h            handlerFunc
		cust, sec    bool
		roles        []Role // admin channel; nil: not on it
	}{
		{"GET", "/history", opt, s.cardHistory, true, true, rolesAll},
		{"POST", "/lock", opt, s.lockCard, true, true, rolesAll},
		{"POST", "/unlock", opt, s.unlockCard, true, true, rolesAll},
		{"DELETE", "", opt, s.removeCard, true, false, rolesAll},
		{"POST", "/cvv", req, s.resetCVV, true, false, rolesAll},
		{"POST", "/print", req, s.printVirtual, true, true, rolesAll},
		{"POST", "/pin", req, s.setPIN, true, false, nil},
		{"POST", "/activate", opt, s.activateCard, true, true, rolesAll},
		{"POST", "/link", opt, s.linkCard, false, true, rolesAll},
	} {
		if c.cust {
			cust(c.method, "/cards/{cardId}"+c.path, c.enc, c.h)
		}
		if c.sec {
			sec(c.method, "/cards/{cardId}"+c.path, c.enc, c.h)
		}
		if c.roles != nil {
			adm(c.method, "/cards/{cardId}"+c.path, c.roles, c.enc, c.h)
		}
	}
	s.route(Route{Method: "POST", Pattern: "/secure/cards/lock-outside", Channel: ChannelSecure,
		Kinds: []string{KindScheme, KindAcquirer}, Encryption: req}, s.lockOutside)

	// Partner balances, programs, partners, summary.
	s.route(Route{Method: "GET", Pattern: "/secure/programs", Channel: ChannelSecure, Encryption: opt}, s.listPrograms)
	s.route(Route{Method: "GET", Pattern: "/secure/partner-balances", Channel: ChannelSecure, Encryption: opt}, s.listPartnerBalances)
	s.route(Route{Method: "GET", Pattern: "/secure/partner-balances/{balanceId}", Channel: ChannelSecure, Encryption: opt}, s.getPartnerBalance)
	s.route(Route{Method: "POST", Pattern: "/secure/partner-balances", Channel: ChannelSecure, Encryption: opt}, s.createPartnerBalance)
	adm("POST", "/partners", rolesAdmin, opt, s.createPartner)
	adm("GET", "/partners", rolesAdmin, opt, s.listPartners)
	adm("GET", "/partners/{partnerId}/balances", rolesAll, opt, s.listPartnerBalances)
	adm("POST", "/partners/{partnerId}/balances", rolesAdmin, opt, s.createPartnerBalance)
	adm("GET", "/partner-balances/{balanceId}", rolesAll, opt, s.getPartnerBalance)
	adm("POST", "/partner-balances/{balanceId}/reload", rolesAdmin, opt, s.reloadPartnerBalance)
	adm("PUT", "/partner-balances/{balanceId}/threshold", rolesAdmin, opt, s.setPartnerThreshold)
	adm("POST", "/programs", rolesAdmin, opt, s.createProgram)
	adm("GET", "/programs", rolesAdmin, opt, s.listPrograms)
	adm("GET", "/summary", rolesAll, opt, s.summary)
}

// actor is who the principal is, as the card host records it.
func actor(p *Principal) cardhost.Actor {
	switch {
	case p.Channel == ChannelCustomer:
		return cardhost.Actor{Kind: cardhost.ActorUser, ID: strconv.FormatInt(p.CustomerID, 10)}
	case p.Channel == ChannelAdmin:
		return cardhost.Actor{Kind: cardhost.ActorAdmin, ID: strconv.FormatInt(p.AdminID, 10)}
	case p.Kind == KindScheme:
		return cardhost.Actor{Kind: cardhost.ActorScheme, ID: p.Entity}
	case p.Kind == KindAcquirer:
		return cardhost.Actor{Kind: cardhost.ActorAcquirer, ID: p.Entity}
	case p.Kind == KindPartner:
		return cardhost.Actor{Kind: cardhost.ActorPartner, ID: strconv.FormatInt(p.PartnerID, 10)}
	}
	return cardhost.Actor{Kind: cardhost.ActorSystem}
}

// customerID returns the customer the request is about and checks the
// caller may see it: the session's user on /customers/me; on /secure the
// path's customer, which must be the certificate's partner's; on /admin the
// path's customer. Another partner's customer is 404, like a missing one.
func (s *Server) customerID(q *request) (int64, error) {
	p := q.principal
	if p.Channel == ChannelCustomer {
		return p.CustomerID, nil
	}
	id, err := pathID(q.Request, "customerId")
	if err != nil {
		return 0, err
	}
	partnerID, err := s.host.CustomerPartner(q.Context(), id)
	if err != nil {
		return 0, fmt.Errorf("customer %d: %w", id, err)
	}
	if p.Channel == ChannelSecure && partnerID != p.PartnerID {
		return 0, notFound()
	}
	return id, nil
}

// card returns the path's card after the same ownership checks: the
// card's customer must be the request's (admin: any card). Removed cards
// are 404 everywhere.
func (s *Server) card(q *request) (cardhost.Card, error) {
	cardID, err := pathID(q.Request, "cardId")
	if err != nil {
		return cardhost.Card{}, err
	}
	owner := int64(0)
	if q.principal.Channel != ChannelAdmin {
		if owner, err = s.customerID(q); err != nil {
			return cardhost.Card{}, err
		}
	}
	c, err := s.host.Card(q.Context(), cardID)
	if err != nil {
		return cardhost.Card{}, err
	}
	if c.State == cardhost.StateRemoved || (owner != 0 && c.UserID != owner) {
		return cardhost.Card{}, notFound()
	}
	return c, nil
}

// balance returns the path's user balance of the request's customer.
func (s *Server) balance(q *request) (cardhost.Balance, error) {
	customer, err := s.customerID(q)
	if err != nil {
		return cardhost.Balance{}, err
	}
	id, err := pathID(q.Request, "balanceId")
	if err != nil {
		return cardhost.Balance{}, err
	}
	return s.host.UserBalance(q.Context(), customer, id)
}

func validation(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, CodeValidation, format, args...)
}

func checkText(field, v string, min, max int) error {
	n := utf8.RuneCountInString(v)
	if !utf8.ValidString(v) || n < min || n > max || strings.ContainsAny(v, "\x00\r\n") {
		return validation("%s must be %d to %d characters on one line", field, min, max)
	}
	return nil
}

// ---- Customers and KYC ----

func (s *Server) cardTarget(q *request) (customer, balance int64, err error) {
	if customer, err = s.customerID(q); err != nil {
		return 0, 0, err
	}
	var in balanceInput
	if err := q.decode(&in); err != nil {
		return 0, 0, err
	}
	if in.BalanceID <= 0 {
		return 0, 0, validation("balanceId is required")
	}
	return customer, in.BalanceID, nil
}

// createVirtual issues a virtual card. The cardholder's channels get its
// data (encrypted, the route requires JWE); the admin channel only the
// masked card, since admins never see full card data.
func (s *Server) createVirtual(q *request) (int, any, error) {
	customer, balance, err := s.cardTarget(q)
	if err != nil {
		return 0, nil, err
	}
	c, d, err := s.host.CreateVirtualCard(q.Context(), customer, balance, actor(q.principal))
	if err != nil {
		return 0, nil, err
	}
	if q.principal.Channel == ChannelAdmin {
		return http.StatusCreated, cardOf(c), nil
	}
	return http.StatusCreated, cardDataOf(c, d), nil
}

// createVirtualAsync starts a card creation and answers 202 with the job
// to poll in Location.
func (s *Server) createVirtualAsync(q *request) (int, any, error) {
	customer, balance, err := s.cardTarget(q)
	if err != nil {
		return 0, nil, err
	}
	j, err := s.host.CreateVirtualCardAsync(q.Context(), customer, balance, actor(q.principal))
	if err != nil {
		return 0, nil, err
	}
	prefix := customerPrefix
	if q.principal.Channel == ChannelSecure {
		prefix = "/secure/customers/" + strconv.FormatInt(customer, 10)
	}
	q.header.Set("Location", prefix+"/card-jobs/"+strconv.FormatInt(j.ID, 10))
	return http.StatusAccepted, jobView{ID: j.ID, Status: j.Status}, nil
}

func (s *Server) getCardJob(q *request) (int, any, error) {
	customer, err := s.customerID(q)
	if err != nil {
		return 0, nil, err
	}
	id, err := pathID(q.Request, "jobId")
	if err != nil {
		return 0, nil, err
	}
	j, err := s.host.CardJob(q.Context(), customer, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, jobView{ID: j.ID, Status: j.Status, CardID: j.CardID, Error: j.Error}, nil
}

func (s *Server) orderPhysical(q *request) (int, any, error) {
	customer, balance, err := s.cardTarget(q)
	if err != nil {
		return 0, nil, err
	}
	c, err := s.host.OrderPhysicalCard(q.Context(), customer, balance, actor(q.principal))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, cardOf(c), nil
}

// ---- One card ----

func (s *Server) getCard(q *request) (int, any, error) {
	c, err := s.card(q)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, cardOf(c), nil
}

func (s *Server) getCardData(q *request) (int, any, error) {
	c, err := s.card(q)
	if err != nil {
		return 0, nil, err
	}
	c, d, err := s.host.FullData(q.Context(), c.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, cardDataOf(c, d), nil
}

func (s *Server) cardHistory(q *request) (int, any, error) {
	c, err := s.card(q)
	if err != nil {
		return 0, nil, err
	}
	evs, err := s.host.History(q.Context(), c.ID)
	if err != nil {
		return 0, nil, err
	}
	out := make([]eventView, 0, len(evs))
	for _, e := range evs {
		out = append(out, eventView{ID: e.ID, At: e.At, ActorKind: string(e.Actor.Kind), ActorID: e.Actor.ID,
			Action: e.Action, LockCode: int(e.LockCode), Reason: e.Detail})
	}
	return http.StatusOK, map[string]any{"cardId": c.ID, "events": out}, nil
}

type lockInput struct {
	ReasonCode int    `json:"reasonCode"`
	Reason     string `json:"reason"`
}

func (in lockInput) check() error {
	if !cardhost.LockCode(in.ReasonCode).Valid() {
		return validation("reasonCode must be 1 to 8")
	}
	return checkText("reason", in.Reason, 0, 500)
}

func (s *Server) lockCard(q *request) (int, any, error) {
	c, err := s.card(q)
	if err != nil {
		return 0, nil, err
	}
	var in lockInput
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if err := in.check(); err != nil {
		return 0, nil, err
	}
	c, err = s.host.Lock(q.Context(), c.ID, cardhost.LockCode(in.ReasonCode), actor(q.principal), in.Reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, cardOf(c), nil
}

// cardAction runs a body-less card action and answers the masked card.
func (s *Server) cardAction(q *request, do func(cardID int64, a cardhost.Actor) (cardhost.Card, error)) (int, any, error) {
	c, err := s.card(q)
	if err != nil {
		return 0, nil, err
	}
	if len(q.body) > 0 {
		var in struct{}
		if err := q.decode(&in); err != nil {
			return 0, nil, err
		}
	}
	c, err = do(c.ID, actor(q.principal))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, cardOf(c), nil
}

func (s *Server) unlockCard(q *request) (int, any, error) {
	return s.cardAction(q, func(id int64, a cardhost.Actor) (cardhost.Card, error) { return s.host.Unlock(q.Context(), id, a) })
}

func (s *Server) activateCard(q *request) (int, any, error) {
	return s.cardAction(q, func(id int64, a cardhost.Actor) (cardhost.Card, error) { return s.host.Activate(q.Context(), id, a) })
}

func (s *Server) linkCard(q *request) (int, any, error) {
	return s.cardAction(q, func(id int64, a cardhost.Actor) (cardhost.Card, error) { return s.host.LinkCard(q.Context(), id, a) })
}

func (s *Server) printVirtual(q *request) (int, any, error) {
	return s.cardAction(q, func(id int64, a cardhost.Actor) (cardhost.Card, error) {
		return s.host.PrintVirtual(q.Context(), id, a)
	})
}

func (s *Server) removeCard(q *request) (int, any, error) {
	c, err := s.card(q)
	if err != nil {
		return 0, nil, err
	}
	if _, err := s.host.Remove(q.Context(), c.ID, actor(q.principal)); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// resetCVV gives the card a new CVC2: the cardholder gets it (encrypted);
// an admin only the masked card.
func (s *Server) resetCVV(q *request) (int, any, error) {
	c, err := s.card(q)
	if err != nil {
		return 0, nil, err
	}
	if len(q.body) > 0 {
		var in struct{}
		if err := q.decode(&in); err != nil {
			return 0, nil, err
		}
	}
	c, d, err := s.host.ResetCVV(q.Context(), c.ID, actor(q.principal))
	if err != nil {
		return 0, nil, err
	}
	if q.principal.Channel == ChannelAdmin {
		return http.StatusOK, cardOf(c), nil
	}
	return http.StatusOK, cardDataOf(c, d), nil
}

func (s *Server) setPIN(q *request) (int, any, error) {
	c, err := s.card(q)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		PIN string `json:"pin"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if !cardhost.ValidPIN(in.PIN) {
		return 0, nil, validation("pin must be 4 to 12 digits")
	}
	if _, err := s.host.SetPIN(q.Context(), c.ID, in.PIN, actor(q.principal)); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

var panRe = regexp.MustCompile(`^[0-9]{12,19}$`)

// lockOutside locks a card named by PAN at a scheme's or acquirer's
// request. The PAN comes in the JWE body and is never logged or echoed.
func (s *Server) lockOutside(q *request) (int, any, error) {
	var in struct {
		PAN string `json:"pan"`
		lockInput
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if !panRe.MatchString(in.PAN) {
		return 0, nil, validation("pan must be 12 to 19 digits")
	}
	if err := in.check(); err != nil {
		return 0, nil, err
	}
	c, err := s.host.LockOutside(q.Context(), in.PAN, cardhost.LockCode(in.ReasonCode), actor(q.principal), in.Reason)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("card locked from outside", "card_id", c.ID, "pan", c.MaskedPAN(), "code", in.ReasonCode, "by", q.principal.scope())
	return http.StatusOK, map[string]any{"cardId": c.ID, "maskedPan": c.MaskedPAN(), "lockCode": int(c.LockCode), "state": c.State}, nil
}
