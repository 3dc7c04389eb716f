package api

import (
	"context"
	"net/http"

	"github.com/antaca/antaca/cardhost"
)

// SpendRuleStore is what the spend-rule routes need (the card host).
type SpendRuleStore interface {
	SetSpendRule(ctx context.Context, partnerID int64, r cardhost.SpendRule, actor string) (cardhost.SpendRule, error)
	SpendRules(ctx context.Context, f cardhost.SpendRuleFilter) ([]cardhost.SpendRule, error)
	SpendRuleHistory(ctx context.Context, partnerID, id int64) ([]cardhost.SpendRule, error)
}

// registerSpendRuleRoutes: a partner sets rules on its own programs,
// balances and cards over /secure; Admins and Managers on any over /admin,
// where Employees read them. Every change is a new version, kept with who
// set it and when.
func (s *Server) registerSpendRuleRoutes() {
	opt := EncryptionOptional
	store := s.spendRuleStore()
	guard := func(h func(SpendRuleStore, *request) (int, any, error)) handlerFunc {
		return func(q *request) (int, any, error) {
			if store == nil {
				return 0, nil, errorf(http.StatusServiceUnavailable, CodeUnavailable, "spend rules are not configured")
			}
			return h(store, q)
		}
	}
	writers := []Role{RoleAdmin, RoleManager}
	for _, ch := range []struct {
		prefix      string
		channel     Channel
		read, write []Role
	}{{"/secure", ChannelSecure, nil, nil}, {"/admin", ChannelAdmin, AllRoles, writers}} {
		s.route(Route{Method: "POST", Pattern: ch.prefix + "/spend-rules", Channel: ch.channel, Roles: ch.write, Encryption: opt}, guard(createSpendRule))
		s.route(Route{Method: "GET", Pattern: ch.prefix + "/spend-rules", Channel: ch.channel, Roles: ch.read, Encryption: opt}, guard(listSpendRules))
		s.route(Route{Method: "PUT", Pattern: ch.prefix + "/spend-rules/{ruleId}", Channel: ch.channel, Roles: ch.write, Encryption: opt}, guard(updateSpendRule))
		s.route(Route{Method: "GET", Pattern: ch.prefix + "/spend-rules/{ruleId}/history", Channel: ch.channel, Roles: ch.read, Encryption: opt}, guard(spendRuleHistory))
	}
}

// spendRuleStore is Config.SpendRules, else the card host when it keeps them.
func (s *Server) spendRuleStore() SpendRuleStore {
	if s.cfg.SpendRules != nil {
		return s.cfg.SpendRules
	}
	if st, ok := s.host.(SpendRuleStore); ok {
		return st
	}
	return nil
}

// rulePartner is whose rules a request sees: the certificate's partner on
// /secure, every partner's (0) on /admin.
func rulePartner(q *request) int64 {
	if q.principal.Channel == ChannelSecure {
		return q.principal.PartnerID
	}
	return 0
}

// ruleActor is who set a version, as the history shows it.
func ruleActor(q *request) string {
	if q.principal.Channel == ChannelAdmin {
		return "admin:" + q.principal.AdminName
	}
	return q.principal.scope()
}

type spendRuleBody struct {
	Scope     string   `json:"scope"`
	TargetID  int64    `json:"targetId"`
	Kind      string   `json:"kind"`
	Mode      string   `json:"mode"`
	Values    []string `json:"values"`
	Period    string   `json:"period"`
	MaxAmount *int64   `json:"maxAmountMinor"`
	MaxCount  *int     `json:"maxCount"`
}

func createSpendRule(st SpendRuleStore, q *request) (int, any, error) {
	var in spendRuleBody
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	r, err := st.SetSpendRule(q.Context(), rulePartner(q),
		cardhost.SpendRule{Scope: in.Scope, TargetID: in.TargetID, Kind: in.Kind, Mode: in.Mode, Values: in.Values, Active: true,
			Period: in.Period, MaxAmount: in.MaxAmount, MaxCount: in.MaxCount}, ruleActor(q))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, r, nil
}

func updateSpendRule(st SpendRuleStore, q *request) (int, any, error) {
	id, err := pathID(q.Request, "ruleId")
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Mode      string   `json:"mode"`
		Values    []string `json:"values"`
		MaxAmount *int64   `json:"maxAmountMinor"`
		MaxCount  *int     `json:"maxCount"`
		Active    *bool    `json:"active"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.Active == nil {
		return 0, nil, validation("active is required: true, or false to switch the rule off")
	}
	r, err := st.SetSpendRule(q.Context(), rulePartner(q),
		cardhost.SpendRule{ID: id, Mode: in.Mode, Values: in.Values, MaxAmount: in.MaxAmount, MaxCount: in.MaxCount, Active: *in.Active}, ruleActor(q))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, r, nil
}

func listSpendRules(st SpendRuleStore, q *request) (int, any, error) {
	f := cardhost.SpendRuleFilter{PartnerID: rulePartner(q), Scope: q.URL.Query().Get("scope")}
	pid, err := queryID(q, "partnerId")
	if err != nil {
		return 0, nil, err
	}
	if pid != 0 {
		if f.PartnerID != 0 && f.PartnerID != pid {
			// /secure: another partner's rules are none of the caller's.
			return http.StatusOK, map[string]any{"rules": []cardhost.SpendRule{}}, nil
		}
		f.PartnerID = pid
	}
	if f.TargetID, err = queryID(q, "targetId"); err != nil {
		return 0, nil, err
	}
	switch f.Scope {
	case "", cardhost.ScopeProgram, cardhost.ScopeBalance, cardhost.ScopeCard:
	default:
		return 0, nil, validation("scope must be program, balance or card")
	}
	rules, err := st.SpendRules(q.Context(), f)
	if err != nil {
		return 0, nil, err
	}
	if rules == nil {
		rules = []cardhost.SpendRule{}
	}
	return http.StatusOK, map[string]any{"rules": rules}, nil
}

func spendRuleHistory(st SpendRuleStore, q *request) (int, any, error) {
	id, err := pathID(q.Request, "ruleId")
	if err != nil {
		return 0, nil, err
	}
	vs, err := st.SpendRuleHistory(q.Context(), rulePartner(q), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"versions": vs}, nil
}
