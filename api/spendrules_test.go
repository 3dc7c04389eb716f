package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/antaca/antaca/cardhost"
)

// Spend rules over both channels: a partner on its own programs, balances
// and cards only; Admins and Managers on any, Employees reading; every
// change a version with who set it and when.
func TestSpendRulesAPI(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	mgrTok := e.admin("mgr", RoleManager)
	empTok := e.admin("emp", RoleEmployee)
	partnerA, progA, pa := e.onboard(adminTok, "Alpha", "411111", false)
	_, progB, pb := e.onboard(adminTok, "Beta", "422222", false)
	custA, balA := e.customerWithBalance(pa, progA, "a1")
	cardA := e.virtualCard(pa, custA, balA)

	// A partner sets a rule on its card.
	var r cardhost.SpendRule
	e.expect(e.do(pa, "POST", "/secure/spend-rules", map[string]any{"scope": "card", "targetId": cardA.ID, "kind": "mcc", "mode": "block",
		"values": []string{"7995"}}, nil), http.StatusCreated, &r)
	if r.ID == 0 || r.Version != 1 || !r.Active || r.ProgramID != progA || r.UpdatedBy != "secure:partner:"+itoa(partnerA) {
		t.Fatalf("created %+v", r)
	}
	// ... and on its balance and program; not on another partner's.
	e.expect(e.do(pa, "POST", "/secure/spend-rules", map[string]any{"scope": "balance", "targetId": balA, "kind": "country", "mode": "allow",
		"values": []string{"fra", "DEU"}}, nil), http.StatusCreated, nil)
	e.expectCode(e.do(pa, "POST", "/secure/spend-rules", map[string]any{"scope": "program", "targetId": progB, "kind": "channel", "mode": "block",
		"values": []string{"atm"}}, nil), http.StatusNotFound, CodeNotFound)

	// Bad rules are 400s.
	for _, body := range []map[string]any{
		{"scope": "card", "targetId": cardA.ID, "kind": "velocity", "mode": "block", "values": []string{"1"}},
		{"scope": "card", "targetId": cardA.ID, "kind": "velocity", "period": "day"},
		{"scope": "card", "targetId": cardA.ID, "kind": "velocity", "period": "fortnight", "maxCount": 3},
		{"scope": "card", "targetId": cardA.ID, "kind": "velocity", "period": "transaction", "maxCount": 3},
		{"scope": "card", "targetId": cardA.ID, "kind": "mcc", "mode": "block", "values": []string{"7995"}, "maxCount": 3},
		{"scope": "card", "targetId": cardA.ID, "kind": "mcc", "mode": "block", "values": []string{"79"}},
		{"scope": "card", "targetId": cardA.ID, "kind": "channel", "mode": "allow", "values": []string{"atm"}},
		{"scope": "user", "targetId": cardA.ID, "kind": "mcc", "mode": "block", "values": []string{"7995"}},
		{"scope": "card", "targetId": cardA.ID, "kind": "mcc", "mode": "block", "values": []string{}},
		{"scope": "card", "targetId": cardA.ID, "kind": "mcc", "mode": "block", "values": []string{"7995"}, "extra": 1},
	} {
		e.expectCode(e.do(pa, "POST", "/secure/spend-rules", body, nil), http.StatusBadRequest, CodeValidation)
	}

	// A velocity limit on the card.
	var vr, vr0 cardhost.SpendRule
	e.expect(e.do(pa, "POST", "/secure/spend-rules", map[string]any{"scope": "card", "targetId": cardA.ID, "kind": "velocity", "period": "day",
		"maxAmountMinor": 500_00, "maxCount": 3}, nil), http.StatusCreated, &vr)
	vr0 = vr
	if vr.Mode != "limit" || vr.Period != "day" || vr.MaxAmount == nil || *vr.MaxAmount != 500_00 || vr.MaxCount == nil || *vr.MaxCount != 3 {
		t.Fatalf("velocity rule %+v", vr)
	}
	vr = cardhost.SpendRule{}
	e.expect(e.do(pa, "PUT", "/secure/spend-rules/"+itoa(vr0.ID), map[string]any{"maxCount": 5, "active": true}, nil), http.StatusOK, &vr)
	if vr.Version != 2 || vr.Period != "day" || vr.MaxAmount != nil || *vr.MaxCount != 5 {
		t.Fatalf("velocity rule's version 2 %+v", vr)
	}

	// Another partner neither sees nor changes them.
	var list struct{ Rules []cardhost.SpendRule }
	e.expect(e.do(pb, "GET", "/secure/spend-rules", nil, nil), http.StatusOK, &list)
	if len(list.Rules) != 0 {
		t.Fatalf("partner B sees %d rules of A's", len(list.Rules))
	}
	rulePath := "/spend-rules/" + itoa(r.ID)
	e.expectCode(e.do(pb, "PUT", "/secure"+rulePath, map[string]any{"mode": "block", "values": []string{"1234"}, "active": true}, nil), http.StatusNotFound, CodeNotFound)
	e.expectCode(e.do(pb, "GET", "/secure"+rulePath+"/history", nil, nil), http.StatusNotFound, CodeNotFound)

	// The owner changes it: a new version.
	e.expect(e.do(pa, "PUT", "/secure"+rulePath, map[string]any{"mode": "block", "values": []string{"7995", "7800-7802"}, "active": true}, nil), http.StatusOK, &r)
	if r.Version != 2 || len(r.Values) != 2 || r.Scope != "card" || r.TargetID != cardA.ID {
		t.Fatalf("updated %+v", r)
	}
	e.expectCode(e.do(pa, "PUT", "/secure"+rulePath, map[string]any{"mode": "block", "values": []string{"7995"}}, nil), http.StatusBadRequest, CodeValidation)

	// Admin channel: Managers and Admins set, Employees read.
	e.expect(e.do(e.client(nil), "POST", "/admin/spend-rules", map[string]any{"scope": "program", "targetId": progB, "kind": "channel", "mode": "block",
		"values": []string{"atm", "contactless"}}, bearerHdr(mgrTok)), http.StatusCreated, nil)
	e.expectCode(e.do(e.client(nil), "POST", "/admin/spend-rules", map[string]any{"scope": "program", "targetId": progB, "kind": "channel", "mode": "block",
		"values": []string{"atm"}}, bearerHdr(empTok)), http.StatusForbidden, CodeForbidden)
	e.expectCode(e.do(e.client(nil), "PUT", "/admin"+rulePath, map[string]any{"mode": "block", "values": []string{"7995"}, "active": false}, bearerHdr(empTok)),
		http.StatusForbidden, CodeForbidden)
	e.expect(e.do(e.client(nil), "PUT", "/admin"+rulePath, map[string]any{"mode": "block", "values": []string{"7995"}, "active": false}, bearerHdr(adminTok)),
		http.StatusOK, &r)
	if r.Version != 3 || r.Active || r.UpdatedBy != "admin:root" {
		t.Fatalf("admin's version %+v", r)
	}
	list.Rules = nil
	e.expect(e.do(e.client(nil), "GET", "/admin/spend-rules", nil, bearerHdr(empTok)), http.StatusOK, &list)
	if len(list.Rules) != 4 {
		t.Fatalf("admin list: %d rules, want 4", len(list.Rules))
	}
	list.Rules = nil
	e.expect(e.do(e.client(nil), "GET", "/admin/spend-rules?scope=card&targetId="+itoa(cardA.ID), nil, bearerHdr(empTok)), http.StatusOK, &list)
	if len(list.Rules) != 2 || list.Rules[0].ID != vr.ID || list.Rules[1].ID != r.ID || list.Rules[1].Period != "" {
		t.Fatalf("admin list of the card: %+v", list.Rules)
	}
	e.expectCode(e.do(e.client(nil), "GET", "/admin/spend-rules?scope=user", nil, bearerHdr(empTok)), http.StatusBadRequest, CodeValidation)

	// History over both channels: every version, who and when.
	for _, q := range []struct {
		c   *http.Client
		p   string
		hdr map[string]string
	}{{pa, "/secure", nil}, {e.client(nil), "/admin", bearerHdr(empTok)}} {
		var h struct{ Versions []cardhost.SpendRule }
		e.expect(e.do(q.c, "GET", q.p+rulePath+"/history", nil, q.hdr), http.StatusOK, &h)
		if len(h.Versions) != 3 {
			t.Fatalf("%s history: %d versions, want 3", q.p, len(h.Versions))
		}
		who := []string{"secure:partner:", "secure:partner:", "admin:root"}
		for i, v := range h.Versions {
			if v.Version != i+1 || !strings.HasPrefix(v.UpdatedBy, who[i]) || v.UpdatedAt.IsZero() {
				t.Errorf("%s version %d: %+v", q.p, i+1, v)
			}
		}
		if len(h.Versions[1].Values) != 2 || h.Versions[2].Active {
			t.Errorf("%s history values: %+v", q.p, h.Versions)
		}
	}
}

// GET /admin/spend-rules?partnerId= lists that partner's rules only (a
// non-numeric one is a 400); on /secure another partner's id lists
// nothing. A country rule naming no ISO 3166-1 country is a 422.
func TestSpendRulesAPIPartnerFilterAndCountries(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	partnerA, progA, pa := e.onboard(adminTok, "Alpha", "411111", false)
	partnerB, progB, pb := e.onboard(adminTok, "Beta", "422222", false)
	for _, p := range []struct {
		c    *http.Client
		prog int64
	}{{pa, progA}, {pb, progB}} {
		e.expect(e.do(p.c, "POST", "/secure/spend-rules", map[string]any{"scope": "program", "targetId": p.prog, "kind": "country", "mode": "block",
			"values": []string{"PRK", "408", "kp"}}, nil), http.StatusCreated, nil)
	}
	list := func(c *http.Client, path string, hdr map[string]string) []cardhost.SpendRule {
		t.Helper()
		var out struct{ Rules []cardhost.SpendRule }
		e.expect(e.do(c, "GET", path, nil, hdr), http.StatusOK, &out)
		return out.Rules
	}
	admin := bearerHdr(adminTok)
	if rs := list(e.client(nil), "/admin/spend-rules", admin); len(rs) != 2 {
		t.Fatalf("admin list: %d rules, want 2", len(rs))
	}
	for partner, prog := range map[int64]int64{partnerA: progA, partnerB: progB} {
		rs := list(e.client(nil), "/admin/spend-rules?partnerId="+itoa(partner), admin)
		if len(rs) != 1 || rs[0].ProgramID != prog {
			t.Errorf("partnerId=%d: %+v, want the rule of program %d", partner, rs, prog)
		}
	}
	if rs := list(e.client(nil), "/admin/spend-rules?partnerId="+itoa(partnerB+1000), admin); len(rs) != 0 {
		t.Errorf("unknown partner: %d rules", len(rs))
	}
	for _, bad := range []string{"abc", "0", "-1", "1.5"} {
		e.expectCode(e.do(e.client(nil), "GET", "/admin/spend-rules?partnerId="+bad, nil, admin), http.StatusBadRequest, CodeValidation)
	}
	if rs := list(pa, "/secure/spend-rules?partnerId="+itoa(partnerB), nil); len(rs) != 0 {
		t.Errorf("partner A asking for B's rules: %+v", rs)
	}
	if rs := list(pa, "/secure/spend-rules?partnerId="+itoa(partnerA), nil); len(rs) != 1 || rs[0].ProgramID != progA {
		t.Errorf("partner A's own: %+v", rs)
	}

	for _, v := range []string{"ZZ", "XYZ", "999"} {
		e.expectCode(e.do(pa, "POST", "/secure/spend-rules", map[string]any{"scope": "program", "targetId": progA, "kind": "country", "mode": "allow",
			"values": []string{"FRA", v}}, nil), http.StatusUnprocessableEntity, CodeUnknownCountry)
	}
}
