package api

import (
	"net/http"
	"net/url"
	"testing"
)

// TestQueryIDsCanonical: every id and limit read from a query is written
// canonically (decimal digits, no sign, no leading zero, no exponent, at
// most 2^63-1) or answered 400 VALIDATION_ERROR in JSON, never taken as
// another number and never a 5xx; a path id spelt otherwise is 404.
func TestQueryIDsCanonical(t *testing.T) {
	e := newCardEnv(t)
	adminTok := e.admin("root", RoleAdmin)
	partnerID, programID, pc := e.onboard(adminTok, "Ids", "455555", false)
	custID, balID := e.customerWithBalance(pc, programID, "ids")
	adm := e.client(nil)
	hdr := bearerHdr(adminTok)
	good := itoa(partnerID)

	for _, c := range []struct {
		c     *http.Client
		path  string // the query parameter's value is appended
		h     map[string]string
		valid string
	}{
		{adm, "/admin/programs?partnerId=", hdr, good},
		{adm, "/admin/spend-rules?scope=program&targetId=", hdr, itoa(programID)},
		{adm, "/admin/webhooks/deliveries?partnerId=", hdr, good},
		{adm, "/admin/webhooks/endpoints?partnerId=", hdr, good},
		{pc, "/secure/webhooks/deliveries?endpointId=", nil, "1"},
		{pc, "/secure/webhooks/deliveries?limit=", nil, "10"},
		{pc, "/secure/customers/" + itoa(custID) + "/balances/" + itoa(balID) + "/transactions?limit=", nil, "10"},
	} {
		e.expect(e.do(c.c, "GET", c.path+c.valid, nil, c.h), http.StatusOK, nil)
		for _, bad := range []string{"+" + c.valid, "-1", "1e3", "", "0", "0" + c.valid, " " + c.valid, "99999999999999999999", "9223372036854775808"} {
			r := e.do(c.c, "GET", c.path+url.QueryEscape(bad), nil, c.h)
			if r.status != http.StatusBadRequest {
				t.Errorf("GET %s%q: %d %s, want 400", c.path, bad, r.status, r.body)
				continue
			}
			e.expectCode(r, http.StatusBadRequest, CodeValidation)
		}
	}
	// Twice the same parameter is not one id either.
	e.expectCode(e.do(adm, "GET", "/admin/programs?partnerId="+good+"&partnerId=2", nil, hdr), http.StatusBadRequest, CodeValidation)

	// Path ids: only the canonical spelling names the resource.
	path := "/secure/customers/"
	e.expect(e.do(pc, "GET", path+itoa(custID), nil, nil), http.StatusOK, nil)
	for _, bad := range []string{"+" + itoa(custID), "0" + itoa(custID), "-1", "1e3", "99999999999999999999"} {
		e.expectCode(e.do(pc, "GET", path+url.PathEscape(bad), nil, nil), http.StatusNotFound, CodeNotFound)
	}
}
