package panel

import (
	"regexp"
	"strings"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/internal/decimal"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/specs"
)

// ---- Live authorisations ----

type answerRow struct {
	Time, Link, Masked, Amount, Currency, MTI, Code, Reason, Latency string
	CardID                                                           int64
	Approved                                                         bool
}

var actionCodeRe = regexp.MustCompile(`^[0-9A-Z]{2,4}$`)

// liveFilter reads ?card= and ?code= (a DE39 action code of either profile).
func liveFilter(c *call) (ledger.AnswerFilter, map[string]string, error) {
	f := ledger.AnswerFilter{Limit: 50}
	form := map[string]string{}
	q := c.r.URL.Query()
	if v := strings.TrimSpace(q.Get("card")); v != "" {
		id, ok := decimal.ID(v)
		if !ok {
			return f, form, badInput("The card filter is a card id.")
		}
		f.CardID, form["card"] = id, v
	}
	if v := strings.TrimSpace(q.Get("journal")); v != "" {
		id, ok := decimal.ID(v)
		if !ok {
			return f, form, badInput("The journal filter is a journal row id.")
		}
		f.ID, form["journal"] = id, v
	}
	if v := strings.TrimSpace(q.Get("code")); v != "" {
		if !actionCodeRe.MatchString(v) {
			return f, form, badInput("The action code filter is 2 or 4 characters.")
		}
		f.Reasons = map[string][]string{}
		for _, r := range specs.ActionCodes() {
			if r.ISO87 == v {
				f.Reasons["iso87"] = append(f.Reasons["iso87"], r.Reason)
			}
			if r.ISO2003 == v {
				f.Reasons["iso2003"] = append(f.Reasons["iso2003"], r.Reason)
			}
		}
		form["code"] = v
	}
	return f, form, nil
}

func (p *Panel) answers(c *call) ([]answerRow, map[string]string, error) {
	f, form, err := liveFilter(c)
	if err != nil {
		return nil, form, err
	}
	as, err := p.cfg.Reader.RecentAnswers(c.ctx(), f)
	if err != nil {
		return nil, form, err
	}
	rows := make([]answerRow, 0, len(as))
	for _, a := range as {
		code, err := specs.ActionCode(a.Profile, a.Reason)
		if err != nil {
			code = "?"
		}
		r := answerRow{Time: a.At.UTC().Format("15:04:05.000"), Link: a.Profile, Masked: maskedText(a.MaskedPAN),
			Amount: formatAmount(a.Amount, a.Exponent), Currency: a.Currency, MTI: a.MTI, Code: code, Reason: a.Reason,
			CardID: a.CardID, Approved: cardhost.Reason(a.Reason).Approval(), Latency: "—"}
		if a.AcquirerID != "" {
			r.Link += " · " + a.AcquirerID
		}
		if a.HasLatency {
			r.Latency = fmtDuration(a.Latency)
		}
		rows = append(rows, r)
	}
	return rows, form, nil
}

func (p *Panel) live(c *call) error {
	rows, form, err := p.answers(c)
	if err != nil {
		return err
	}
	return c.page("live", "Live authorisations", map[string]any{"Rows": rows, "Form": form})
}

func (p *Panel) liveRows(c *call) error {
	rows, _, err := p.answers(c)
	if err != nil {
		return err
	}
	return c.fragment("live", "rows", rows)
}

// maskedText makes sure a masked PAN from the journal shows at most the
// first six and last four digits.
func maskedText(m string) string {
	digits := 0
	for _, r := range m {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if digits > 10 {
		return "…"
	}
	return m
}
