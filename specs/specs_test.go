package specs

import "testing"

// The lock codes of the reference document's table and DESIGN.md section 5,
// restated here so a change to the data file is caught.
func TestActionCodesMatchDesign(t *testing.T) {
	want := []struct{ reason, iso2003, iso87 string }{
		{"approved", "0000", "00"},
		{"invalid_card", "1011", "14"},
		{"card_lost", "2008", "41"},
		{"card_stolen", "2009", "43"},
		{"pending_query", "1000", "05"},
		{"card_consolidation", "1016", "05"},
		{"card_inactive", "1018", "62"},
		{"pin_tries_exceeded", "1006", "75"},
		{"suspected_fraud", "1002", "59"},
		{"card_replaced", "1011", "14"},
		{"card_removed", "1011", "14"},
		{"card_not_active", "1025", "62"},
		{"expired_card", "1001", "54"},
		{"cvc2_failed", "1045", "N7"},
		{"incorrect_pin", "1017", "55"},
		{"not_permitted", "1019", "57"},
		{"mcc_not_permitted", "1019", "57"},
		{"country_not_permitted", "1019", "57"},
		{"channel_not_permitted", "1019", "57"},
		{"exceeds_amount_limit", "1021", "61"},
		{"exceeds_count_limit", "1023", "65"},
		{"insufficient_funds", "1016", "51"},
		{"insufficient_partner_funds", "1016", "51"},
		{"do_not_honour", "1000", "05"},
		{"issuer_unavailable", "9112", "91"},
		{"format_error", "9100", "30"},
	}
	for _, w := range want {
		t.Run(w.reason, func(t *testing.T) {
			for _, p := range []struct{ profile, code string }{{"iso2003", w.iso2003}, {"iso87", w.iso87}} {
				got, err := ActionCode(p.profile, w.reason)
				if err != nil || got != p.code {
					t.Errorf("ActionCode(%s, %s) = %q, %v; want %q", p.profile, w.reason, got, err, p.code)
				}
			}
		})
	}
	if _, err := ActionCode("iso2003", "nonsense"); err == nil {
		t.Error("unknown reason: got no error")
	}
	if _, err := ActionCode("iso93", "approved"); err == nil {
		t.Error("unknown profile: got no error")
	}
}
