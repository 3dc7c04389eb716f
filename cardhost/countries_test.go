package cardhost

import (
	"errors"
	"testing"
)

func TestCountryAlpha2(t *testing.T) {
	for code, want := range map[string]string{"FR": "FR", "fra": "FR", "250": "FR", "DEU": "DE", "276": "DE", "840": "US",
		"PRK": "KP", "408": "KP", "AX": "AX", "ALA": "AX", "ZW": "ZW", "716": "ZW"} {
		if got, ok := CountryAlpha2(code); !ok || got != want {
			t.Errorf("%q: %q %v, want %q", code, got, ok, want)
		}
	}
	for _, code := range []string{"", "ZZ", "ZZZ", "999", "25", "0250", "F"} {
		if got, ok := CountryAlpha2(code); ok {
			t.Errorf("%q: %q, want unknown", code, got)
		}
	}
	if n := len(countryAlpha2); n != 3*249 {
		t.Errorf("%d codes, want 3 for each of the 249 countries", n)
	}
}

// A country rule written in any ISO 3166-1 form matches a merchant
// country sent in any form (iso2003 DE43.7, iso87 DE43 positions 38-40).
func TestCheckSpendRulesCountryForms(t *testing.T) {
	var cases []pipelineCase
	for _, rule := range []string{"FR", "FRA", "250", "fra"} {
		for _, sent := range []string{"FR", "FRA", "250"} {
			block := SpendRule{Scope: ScopeProgram, Kind: RuleCountry, Mode: ModeBlock, Values: []string{rule}}
			allow := SpendRule{Scope: ScopeProgram, Kind: RuleCountry, Mode: ModeAllow, Values: []string{"DEU", rule}}
			cases = append(cases,
				pipelineCase{name: "block " + rule + " sent " + sent, setup: func(d *decision) {
					d.in.Program.SpendRules, d.in.Req.MerchantCountry = newSpendRuleSet([]SpendRule{block}), sent
				}, want: CountryNotPermitted, stop: true},
				pipelineCase{name: "allow " + rule + " sent " + sent, setup: func(d *decision) {
					d.in.Program.SpendRules, d.in.Req.MerchantCountry = newSpendRuleSet([]SpendRule{allow}), sent
				}},
				pipelineCase{name: "allow " + rule + " sent US", setup: func(d *decision) {
					d.in.Program.SpendRules, d.in.Req.MerchantCountry = newSpendRuleSet([]SpendRule{allow}), "840"
				}, want: CountryNotPermitted, stop: true},
			)
		}
	}
	runCheckCases(t, "spend rules", cases)
}

func TestValidSpendRuleCountries(t *testing.T) {
	r := SpendRule{Scope: ScopeCard, TargetID: 1, Kind: RuleCountry, Mode: ModeBlock, Values: []string{"fr", "FRA", "250"}}
	if err := validSpendRule(&r); err != nil {
		t.Fatal(err)
	}
	if r.Values[0] != "FR" || r.Values[2] != "250" {
		t.Errorf("values %q: want upper case, as written", r.Values)
	}
	for _, v := range []string{"ZZ", "XYZ", "999", "F"} {
		r := SpendRule{Scope: ScopeCard, TargetID: 1, Kind: RuleCountry, Mode: ModeBlock, Values: []string{"FR", v}}
		if err := validSpendRule(&r); !errors.Is(err, ErrUnknownCountry) {
			t.Errorf("%q: %v, want ErrUnknownCountry", v, err)
		}
	}
}
