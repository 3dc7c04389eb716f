package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// Partner, program and partner balance administration, and the balance
// summary. Partner balances are the partner credit/deposit balances of its
// programs and its partner (FX) balances; a partner reads its own on
// /secure, our admins create, reload and set thresholds on /admin.

func (s *Server) createPartner(q *request) (int, any, error) {
	var in struct {
		Name        string `json:"name"`
		NotifyEmail string `json:"notifyEmail"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if err := checkText("name", strings.TrimSpace(in.Name), 1, 200); err != nil {
		return 0, nil, err
	}
	if in.NotifyEmail != "" && !validEmail(in.NotifyEmail) {
		return 0, nil, validation("notifyEmail is not an e-mail address")
	}
	p, err := s.host.CreatePartner(q.Context(), strings.TrimSpace(in.Name), in.NotifyEmail)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("partner created", "partner_id", p.ID, "by", q.principal.scope())
	return http.StatusCreated, partnerView{ID: p.ID, Name: p.Name, NotifyEmail: p.NotifyEmail, CreatedAt: p.CreatedAt}, nil
}

func (s *Server) listPartners(q *request) (int, any, error) {
	ps, err := s.host.Partners(q.Context())
	if err != nil {
		return 0, nil, err
	}
	out := make([]partnerView, 0, len(ps))
	for _, p := range ps {
		out = append(out, partnerView{ID: p.ID, Name: p.Name, NotifyEmail: p.NotifyEmail, CreatedAt: p.CreatedAt})
	}
	return http.StatusOK, map[string]any{"partners": out}, nil
}

func (s *Server) createProgram(q *request) (int, any, error) {
	var in struct {
		PartnerID       int64      `json:"partnerId"`
		Name            string     `json:"name"`
		BINLow          string     `json:"binLow"`
		BINHigh         string     `json:"binHigh"`
		Currency        string     `json:"currency"`
		CardTypes       []string   `json:"cardTypes"`
		DigitalFirst    bool       `json:"digitalFirst"`
		Funding         string     `json:"funding"`
		RemoteURL       string     `json:"remoteUrl"`
		RemoteTimeoutMS int64      `json:"remoteTimeoutMs"`
		StandInApprove  bool       `json:"standInApprove"`
		LowThreshold    amountText `json:"lowThreshold"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.PartnerID <= 0 {
		return 0, nil, validation("partnerId is required")
	}
	if len(in.Currency) != 3 {
		return 0, nil, validation("currency must be an ISO 4217 alphabetic code")
	}
	if in.RemoteTimeoutMS < 0 || in.RemoteTimeoutMS > 30_000 {
		return 0, nil, validation("remoteTimeoutMs must be 0 (default 1500) to 30000")
	}
	if in.RemoteURL != "" {
		if err := s.cfg.Partner.CheckURL(in.RemoteURL); err != nil {
			return 0, nil, validation("remoteUrl: %v", err)
		}
	}
	if _, err := s.host.Partner(q.Context(), in.PartnerID); err != nil {
		return 0, nil, err
	}
	spec := cardhost.ProgramSpec{PartnerID: in.PartnerID, Name: strings.TrimSpace(in.Name), BINLow: in.BINLow, BINHigh: in.BINHigh,
		Currency: strings.ToUpper(in.Currency), DigitalFirst: in.DigitalFirst, Funding: cardhost.FundingModel(in.Funding),
		RemoteURL: in.RemoteURL, RemoteTimeout: time.Duration(in.RemoteTimeoutMS) * time.Millisecond, StandInApprove: in.StandInApprove}
	for _, t := range in.CardTypes {
		spec.CardTypes = append(spec.CardTypes, cardhost.CardType(t))
	}
	if in.LowThreshold != "" {
		exp, err := s.exponent(q.Context(), spec.Currency)
		if err != nil {
			return 0, nil, err
		}
		t, err := parseAmount(in.LowThreshold, exp)
		if err != nil {
			return 0, nil, err
		}
		spec.LowThreshold = &t
	}
	p, err := s.host.CreateProgram(q.Context(), spec)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("program created", "program_id", p.ID, "partner_id", p.PartnerID, "by", q.principal.scope())
	v := programOf(p)
	v.RemoteSecret = p.RemoteSecret // shown once
	return http.StatusCreated, v, nil
}

// listPrograms lists programs: a partner's own on /secure; on /admin all,
// or one partner's with ?partnerId=.
func (s *Server) listPrograms(q *request) (int, any, error) {
	var partnerID int64
	if q.principal.Channel == ChannelSecure {
		partnerID = q.principal.PartnerID
	} else {
		var err error
		if partnerID, err = queryID(q, "partnerId"); err != nil {
			return 0, nil, err
		}
	}
	ps, err := s.host.Programs(q.Context(), partnerID)
	if err != nil {
		return 0, nil, err
	}
	out := make([]programView, 0, len(ps))
	for _, p := range ps {
		out = append(out, programOf(p))
	}
	return http.StatusOK, map[string]any{"programs": out}, nil
}

// partnerOfRequest is the partner a partner-balance operation is about:
// the certificate's on /secure, the path's on /admin.
func (s *Server) partnerOfRequest(q *request) (int64, error) {
	if q.principal.Channel == ChannelSecure {
		return q.principal.PartnerID, nil
	}
	id, err := pathID(q.Request, "partnerId")
	if err != nil {
		return 0, err
	}
	if _, err := s.host.Partner(q.Context(), id); err != nil {
		return 0, err
	}
	return id, nil
}

func (s *Server) listPartnerBalances(q *request) (int, any, error) {
	partnerID, err := s.partnerOfRequest(q)
	if err != nil {
		return 0, nil, err
	}
	as, err := s.host.PartnerBalances(q.Context(), partnerID)
	if err != nil {
		return 0, nil, err
	}
	out := make([]balanceView, 0, len(as))
	for _, a := range as {
		v, err := s.balanceOf(q.Context(), a, nil)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, v)
	}
	return http.StatusOK, map[string]any{"partnerId": partnerID, "balances": out}, nil
}

// partnerBalance returns the path's partner balance; on /secure it must be
// the certificate's partner's (404 otherwise); user balances are never
// partner balances.
func (s *Server) partnerBalance(q *request) (ledger.Account, error) {
	id, err := pathID(q.Request, "balanceId")
	if err != nil {
		return ledger.Account{}, err
	}
	a, err := s.host.Account(q.Context(), id)
	if err != nil {
		return ledger.Account{}, err
	}
	switch {
	case a.Kind != ledger.KindPartnerCredit && a.Kind != ledger.KindPartnerDeposit && a.Kind != ledger.KindPartner:
		return ledger.Account{}, notFound()
	case q.principal.Channel == ChannelSecure && a.PartnerID != q.principal.PartnerID:
		return ledger.Account{}, notFound()
	}
	return a, nil
}

func (s *Server) getPartnerBalance(q *request) (int, any, error) {
	a, err := s.partnerBalance(q)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.balanceOf(q.Context(), a, nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}

func (s *Server) createPartnerBalance(q *request) (int, any, error) {
	partnerID, err := s.partnerOfRequest(q)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Kind         string     `json:"kind"`
		Currency     string     `json:"currency"`
		ProgramID    int64      `json:"programId"`
		LowThreshold amountText `json:"lowThreshold"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if q.principal.Channel == ChannelSecure && in.Kind != ledger.KindPartnerCredit && in.Kind != ledger.KindPartnerDeposit {
		// A partner opens the balance of one of its programs; it starts at
		// zero and only an Admin's reload puts money in.
		return 0, nil, validation("kind must be partner_credit or partner_deposit")
	}
	if len(in.Currency) != 3 {
		return 0, nil, validation("currency must be an ISO 4217 alphabetic code")
	}
	cur := strings.ToUpper(in.Currency)
	var threshold *int64
	if in.LowThreshold != "" {
		exp, err := s.exponent(q.Context(), cur)
		if err != nil {
			return 0, nil, err
		}
		t, err := parseAmount(in.LowThreshold, exp)
		if err != nil {
			return 0, nil, err
		}
		threshold = &t
	}
	a, err := s.host.OpenPartnerBalance(q.Context(), partnerID, in.Kind, cur, in.ProgramID, threshold)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("partner balance created", "balance_id", a.ID, "kind", a.Kind, "partner_id", partnerID, "by", q.principal.scope())
	v, err := s.balanceOf(q.Context(), a, nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, v, nil
}

func (s *Server) reloadPartnerBalance(q *request) (int, any, error) {
	a, err := s.partnerBalance(q)
	if err != nil {
		return 0, nil, err
	}
	status, out, err := s.reload(q, a.ID, a.Currency)
	if err != nil {
		return 0, nil, err
	}
	if a, err = s.host.Account(q.Context(), a.ID); err != nil {
		return 0, nil, err
	}
	v, err := s.balanceOf(q.Context(), a, nil)
	if err != nil {
		return 0, nil, err
	}
	out["balance"] = v
	return status, out, nil
}

// setPartnerThreshold sets the low-level threshold below which the partner
// is notified once by e-mail; null removes it.
func (s *Server) setPartnerThreshold(q *request) (int, any, error) {
	a, err := s.partnerBalance(q)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		LowThreshold *amountText `json:"lowThreshold"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	var threshold *int64
	if in.LowThreshold != nil && *in.LowThreshold != "" {
		exp, err := s.exponent(q.Context(), a.Currency)
		if err != nil {
			return 0, nil, err
		}
		t, err := parseAmount(*in.LowThreshold, exp)
		if err != nil {
			return 0, nil, err
		}
		threshold = &t
	}
	if err := s.host.SetThreshold(q.Context(), a.ID, threshold); err != nil {
		return 0, nil, err
	}
	if a, err = s.host.Account(q.Context(), a.ID); err != nil {
		return 0, nil, err
	}
	v, err := s.balanceOf(q.Context(), a, nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}

// summary is the balance summary per currency: Users is the sum of all user
// balances, Wallet adds every partner balance.
func (s *Server) summary(q *request) (int, any, error) {
	sums, err := s.host.Summary(q.Context())
	if err != nil {
		return 0, nil, err
	}
	out := make([]summaryView, 0, len(sums))
	for _, c := range sums {
		f := func(v int64) string { return formatAmount(v, c.Exponent) }
		out = append(out, summaryView{Currency: c.Currency, Users: f(c.Users), Wallet: f(c.Wallet), PartnerCredit: f(c.PartnerCredit),
			PartnerDeposit: f(c.PartnerDeposit), Partner: f(c.Partner), UsersHeld: f(c.Held)})
	}
	return http.StatusOK, map[string]any{"currencies": out}, nil
}
