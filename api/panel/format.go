package panel

import (
	"html/template"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// formatAmount writes minor units in major units with the currency's
// decimals, exactly as the API's JSON does, so the panel's figures equal
// /admin/summary's.
func formatAmount(minor int64, exp int) string {
	return decimal.New(minor, int32(-exp)).StringFixed(int32(exp))
}

var amountRe = regexp.MustCompile(`^[0-9]{1,13}(\.[0-9]{1,4})?$`)

// parseAmount reads a positive amount in major units.
func parseAmount(v string, exp int) (int64, error) {
	v = strings.TrimSpace(v)
	if !amountRe.MatchString(v) {
		return 0, badInput("The amount is a positive number in major units, like 12.34.")
	}
	m := decimal.RequireFromString(v).Shift(int32(exp))
	if !m.IsInteger() {
		return 0, badInput("The amount has more than %d decimals.", exp)
	}
	if m.Sign() <= 0 {
		return 0, badInput("The amount must be positive.")
	}
	return m.IntPart(), nil
}

var lockTexts = map[cardhost.LockCode]string{
	cardhost.LockLost: "lost", cardhost.LockStolen: "stolen", cardhost.LockPendingQuery: "pending query",
	cardhost.LockCardConsolidation: "card consolidation", cardhost.LockCardInactive: "card inactive",
	cardhost.LockPINTriesExceeded: "PIN tries exceeded", cardhost.LockSuspectedFraud: "suspected fraud",
	cardhost.LockCardReplaced: "card replaced",
}

func lockText(c cardhost.LockCode) string {
	if t, ok := lockTexts[c]; ok {
		return t
	}
	return ""
}

// expiryText shows YYMM as MM/YY.
func expiryText(yymm string) string {
	if len(yymm) != 4 {
		return yymm
	}
	return yymm[2:] + "/" + yymm[:2]
}

var funcs = template.FuncMap{
	"certs": func(certs []ledger.Certificate, csrf string, partner int64) map[string]any {
		return map[string]any{"Certs": certs, "CSRF": csrf, "Partner": partner}
	},
	"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"lockText": func(c cardhost.LockCode) string { return lockText(c) },
	"roleIs": func(s *Session, roles ...string) bool {
		if s == nil {
			return false
		}
		for _, r := range roles {
			if string(s.Role) == r {
				return true
			}
		}
		return false
	},
}
