package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestWebhookEndpointsAPI: a partner registers an https endpoint (http://
// and unknown event types refused), sees its secret once, rotates it with
// an overlap, sees its own deliveries only; admins list every partner's,
// and only an Admin replays.
func TestWebhookEndpointsAPI(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	empTok := e.admin("emp", RoleEmployee)
	_, progID, pc := e.onboard(adminTok, "Hooks", "539001", false)
	_, _, other := e.onboard(adminTok, "Other", "539002", false)

	e.expectCode(e.do(pc, "POST", "/secure/webhooks/endpoints", map[string]any{"url": "http://hooks.example.com/in", "eventTypes": []string{"*"}}, nil), 400, CodeValidation)
	e.expectCode(e.do(pc, "POST", "/secure/webhooks/endpoints", map[string]any{"url": "https://hooks.example.com/in", "eventTypes": []string{"card.exploded"}}, nil), 400, CodeValidation)
	e.expectCode(e.do(pc, "POST", "/secure/webhooks/endpoints", map[string]any{"url": "https://hooks.example.com/in"}, nil), 400, CodeValidation)
	var ep endpointView
	e.expect(e.do(pc, "POST", "/secure/webhooks/endpoints", map[string]any{"url": "https://hooks.example.com/in", "eventTypes": []string{"card.created", "card.locked"}}, nil), 201, &ep)
	if len(ep.Secret) < 40 || ep.Status != "enabled" {
		t.Fatalf("created endpoint %+v: want a secret shown and status enabled", ep)
	}
	var list struct{ Endpoints []endpointView }
	e.expect(e.do(pc, "GET", "/secure/webhooks/endpoints", nil, nil), 200, &list)
	if len(list.Endpoints) != 1 || list.Endpoints[0].Secret != "" {
		t.Fatalf("listed endpoints %+v: want one, without its secret", list.Endpoints)
	}
	path := "/secure/webhooks/endpoints/" + itoa(ep.ID)
	e.expectCode(e.do(other, "POST", path+"/rotate", nil, nil), 404, CodeNotFound)
	var rot endpointView
	e.expect(e.do(pc, "POST", path+"/rotate", map[string]any{"overlapSeconds": 3600}, nil), 200, &rot)
	if rot.Secret == "" || rot.Secret == ep.Secret || rot.PreviousUntil == nil {
		t.Fatalf("rotated %+v: want a new secret and the old one's end", rot)
	}

	// A card's creation queues a delivery to the endpoint.
	cust, bal := e.customerWithBalance(pc, progID, "c1")
	e.virtualCard(pc, cust, bal)
	var ds struct{ Deliveries []deliveryView }
	e.expect(e.do(pc, "GET", "/secure/webhooks/deliveries", nil, nil), 200, &ds)
	if len(ds.Deliveries) != 1 || ds.Deliveries[0].EventType != "card.created" || ds.Deliveries[0].Status != "pending" {
		t.Fatalf("deliveries %+v: want one pending card.created", ds.Deliveries)
	}
	d := ds.Deliveries[0]
	var none struct{ Deliveries []deliveryView }
	e.expect(e.do(other, "GET", "/secure/webhooks/deliveries", nil, nil), 200, &none)
	if len(none.Deliveries) != 0 {
		t.Fatalf("another partner sees %d deliveries, want 0", len(none.Deliveries))
	}
	e.expectCode(e.do(other, "GET", "/secure/webhooks/deliveries/"+itoa(d.ID), nil, nil), 404, CodeNotFound)
	var evs struct{ Events []partnerEventView }
	e.expect(e.do(pc, "GET", "/secure/events?type=card.created", nil, nil), 200, &evs)
	if len(evs.Events) != 1 || evs.Events[0].ID != d.EventID {
		t.Fatalf("events %+v: want the delivery's event", evs.Events)
	}

	e.expect(e.do(e.client(nil), "GET", "/admin/webhooks/deliveries", nil, bearerHdr(empTok)), 200, &ds)
	if len(ds.Deliveries) != 1 {
		t.Fatalf("admin deliveries: %d, want 1", len(ds.Deliveries))
	}
	replay := "/admin/webhooks/deliveries/" + itoa(d.ID) + "/replay"
	if r := e.do(e.client(nil), "POST", replay, nil, bearerHdr(empTok)); r.status != http.StatusForbidden {
		t.Fatalf("employee replay: got %d, want 403", r.status)
	}
	e.expect(e.do(e.client(nil), "POST", replay, nil, bearerHdr(adminTok)), 200, nil)
	// Replay by event id (the only way for a journal event delivered on
	// its first try, which has no delivery id): the partner's own
	// endpoint only, an Admin's on /admin.
	byEvent := "/webhooks/endpoints/" + itoa(ep.ID) + "/replay"
	var rd deliveryView
	e.expect(e.do(pc, "POST", "/secure"+byEvent, map[string]any{"eventId": d.EventID}, nil), 200, &rd)
	if rd.ID != d.ID || rd.Status != "pending" || rd.EventID != d.EventID {
		t.Fatalf("replayed by event: %+v; want delivery %d pending again", rd, d.ID)
	}
	e.expectCode(e.do(pc, "POST", "/secure"+byEvent, map[string]any{}, nil), 400, CodeValidation)
	e.expectCode(e.do(pc, "POST", "/secure"+byEvent, map[string]any{"eventId": "evt_auth_999999"}, nil), 404, CodeNotFound)
	e.expectCode(e.do(other, "POST", "/secure"+byEvent, map[string]any{"eventId": d.EventID}, nil), 404, CodeNotFound)
	if r := e.do(e.client(nil), "POST", "/admin"+byEvent, map[string]any{"eventId": d.EventID}, bearerHdr(empTok)); r.status != http.StatusForbidden {
		t.Fatalf("employee replay by event: got %d, want 403", r.status)
	}
	e.expect(e.do(e.client(nil), "POST", "/admin"+byEvent, map[string]any{"eventId": d.EventID}, bearerHdr(adminTok)), 200, nil)
	// The program's remote-decision secret: rotated by its partner only.
	var rs struct {
		RemoteSecret string `json:"remoteSecret"`
	}
	e.expectCode(e.do(other, "POST", "/secure/programs/"+itoa(progID)+"/remote-secret", nil, nil), 404, CodeNotFound)
	e.expect(e.do(pc, "POST", "/secure/programs/"+itoa(progID)+"/remote-secret", nil, nil), 200, &rs)
	if !strings.HasPrefix(rs.RemoteSecret, "rdsec_") {
		t.Fatalf("rotated remote secret %q", rs.RemoteSecret)
	}
	e.expect(e.do(pc, "DELETE", path, nil, nil), 200, &ep)
	if ep.Status != "disabled" {
		t.Fatalf("deleted endpoint status %s, want disabled", ep.Status)
	}
}

// TestPartnerCreatesOwnPartnerBalance: over /secure a partner opens a
// partner credit or deposit balance for its own program, at zero; another
// partner's program, the FX partner kind, and reloading it are refused.
func TestPartnerCreatesOwnPartnerBalance(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	_, progID, pc := e.onboard(adminTok, "Own", "539003", false)
	_, otherProg, _ := e.onboard(adminTok, "Other", "539004", false)
	var b struct {
		ID        int64  `json:"id"`
		Kind      string `json:"kind"`
		Balance   string `json:"balance"`
		Currency  string `json:"currency"`
		ProgramID int64  `json:"programId"`
	}
	e.expect(e.do(pc, "POST", "/secure/partner-balances", map[string]any{"kind": "partner_deposit", "currency": "USD", "programId": progID}, nil), 201, &b)
	if b.Kind != "partner_deposit" || b.Currency != "USD" || (b.Balance != "0.00" && b.Balance != "0") {
		t.Fatalf("created %+v: want a USD partner deposit balance at zero", b)
	}
	e.expect(e.do(pc, "GET", "/secure/partner-balances/"+itoa(b.ID), nil, nil), 200, nil)
	e.expectCode(e.do(pc, "POST", "/secure/partner-balances", map[string]any{"kind": "partner_credit", "currency": "GBP", "programId": otherProg}, nil), 404, CodeNotFound)
	e.expectCode(e.do(pc, "POST", "/secure/partner-balances", map[string]any{"kind": "partner", "currency": "GBP"}, nil), 400, CodeValidation)
	e.expectCode(e.do(pc, "POST", "/secure/partner-balances", map[string]any{"kind": "partner_deposit", "currency": "USD", "programId": progID}, nil), 409, CodeBalanceExists)
	if r := e.do(pc, "POST", "/secure/partner-balances/"+itoa(b.ID)+"/reload", map[string]any{"amount": "10.00", "reference": "x"}, nil); r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
		t.Fatalf("partner reload of its partner balance: got %d, want 404/405", r.status)
	}
}
