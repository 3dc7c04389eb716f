package panel

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/internal/decimal"
	"github.com/antaca/antaca/ledger"
)

// ---- Customers ----

var (
	digitsRe = regexp.MustCompile(`^[0-9]+$`)
	binRe    = regexp.MustCompile(`^[0-9]{6}$`)
	last4Re  = regexp.MustCompile(`^[0-9]{4}$`)
)

func (p *Panel) customers(c *call) error {
	qv := c.r.URL.Query()
	text, bin, last4 := strings.TrimSpace(qv.Get("q")), strings.TrimSpace(qv.Get("bin")), strings.TrimSpace(qv.Get("last4"))
	data := map[string]any{}
	cq := ledger.CustomerQuery{PartnerID: c.s.PartnerID}
	switch {
	case digitsRe.MatchString(text) && len(text) >= 12:
		// Looks like a card number: never searched for, never shown back.
		data["Error"] = "Search a card by its BIN (first six digits) and last four digits, never by the full card number."
		return c.page("customers", "Customers", data)
	case bin != "" || last4 != "":
		if !binRe.MatchString(bin) || !last4Re.MatchString(last4) {
			data["Error"] = "A card search needs the BIN (six digits) and the last four digits."
			data["Q"] = text
			return c.page("customers", "Customers", data)
		}
		cq.First6, cq.Last4 = bin, last4
	case digitsRe.MatchString(text):
		id, _ := strconv.ParseInt(text, 10, 64)
		cq.ID = id
	case text != "":
		if len(text) > 200 {
			return badInput("The search text is too long.")
		}
		cq.Text = text
	default:
		return c.page("customers", "Customers", data)
	}
	data["Q"], data["BIN"], data["Last4"], data["Searched"] = text, bin, last4, true
	hits, err := p.cfg.Reader.SearchCustomers(c.ctx(), cq)
	if err != nil {
		return err
	}
	data["Hits"] = hits
	return c.page("customers", "Customers", data)
}

func pathID(c *call, name string) (int64, error) {
	id, ok := decimal.ID(c.r.PathValue(name))
	if !ok {
		return 0, errNotFound
	}
	return id, nil
}

// customerOf loads the path's customer; a viewer sees only their partner's.
func (p *Panel) customerOf(c *call) (cardhost.User, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return cardhost.User{}, err
	}
	u, err := p.cfg.Host.User(c.ctx(), id)
	if err != nil {
		return cardhost.User{}, err
	}
	if c.s.Role == RolePartner && u.PartnerID != c.s.PartnerID {
		return cardhost.User{}, errNotFound
	}
	return u, nil
}

type balanceRow struct {
	ID                       int64
	Currency, State          string
	Balance, Held, Available string
	Cards                    []cardRow
	Selected                 bool
	Entries                  []entryRow
	NextBefore               int64
	FirstPage                bool
}

type cardRow struct {
	ID                          int64
	Masked, Type, State, Expiry string
	Lock                        string
}

type entryRow struct {
	ID               int64
	At, Kind, Ref    string
	Amount, Currency string
}

func cardRowOf(cd cardhost.Card) cardRow {
	r := cardRow{ID: cd.ID, Masked: cd.MaskedPAN(), Type: string(cd.Type), State: string(cd.State), Expiry: expiryText(cd.Expiry)}
	if cd.LockCode != cardhost.LockNone {
		r.Lock = lockText(cd.LockCode)
	}
	return r
}

func (p *Panel) customer(c *call) error {
	u, err := p.customerOf(c)
	if err != nil {
		return err
	}
	bs, err := p.cfg.Host.Balances(c.ctx(), u.ID)
	if err != nil {
		return err
	}
	sel, _ := strconv.ParseInt(c.r.URL.Query().Get("balance"), 10, 64)
	before, _ := strconv.ParseInt(c.r.URL.Query().Get("before"), 10, 64)
	if sel == 0 && len(bs) > 0 {
		sel = bs[0].Account.ID
	}
	var rows []balanceRow
	for _, b := range bs {
		a := b.Account
		exp, err := p.cfg.Host.CurrencyExponent(c.ctx(), a.Currency)
		if err != nil {
			return err
		}
		r := balanceRow{ID: a.ID, Currency: a.Currency, State: a.State, Balance: formatAmount(a.Balance, exp),
			Held: formatAmount(a.Held, exp), Available: formatAmount(a.Available(), exp)}
		for _, cd := range b.Cards {
			r.Cards = append(r.Cards, cardRowOf(cd))
		}
		if a.ID == sel {
			const pageSize = 20
			es, err := p.cfg.Reader.EntriesBefore(c.ctx(), a.ID, max(before, 0), pageSize+1)
			if err != nil {
				return err
			}
			r.Selected, r.FirstPage = true, before <= 0
			if len(es) > pageSize {
				es = es[:pageSize]
				r.NextBefore = es[len(es)-1].ID
			}
			for _, e := range es {
				r.Entries = append(r.Entries, entryRow{ID: e.ID, At: e.CreatedAt.UTC().Format("2006-01-02 15:04:05"), Kind: e.Kind,
					Ref: e.Ref, Amount: formatAmount(e.Amount, exp), Currency: e.Currency})
			}
		}
		rows = append(rows, r)
	}
	return c.page("customer", fmt.Sprintf("Customer %d", u.ID), map[string]any{"User": u, "Balances": rows,
		"CanKYC": c.is(adminManager...), "CanReload": c.is(adminOnly...), "CanIssue": c.is(adminManager...)})
}

func (p *Panel) setKYC(c *call) error {
	u, err := p.customerOf(c)
	if err != nil {
		return err
	}
	st := cardhost.KYCStatus(c.r.PostFormValue("status"))
	if st != cardhost.KYCVerified && st != cardhost.KYCRejected && st != cardhost.KYCPending {
		return badInput("The KYC status must be verified, rejected or pending.")
	}
	if _, err := p.cfg.Host.SetKYC(c.ctx(), u.ID, st, "admin"); err != nil {
		return err
	}
	p.log.Info("panel: kyc set", "customer_id", u.ID, "status", st, "admin", c.s.AdminID)
	return c.done(fmt.Sprintf("/panel/customers/%d", u.ID), "kyc")
}

// userBalance is the path's balance of the path's customer.
func (p *Panel) userBalance(c *call) (cardhost.User, ledger.Account, error) {
	u, err := p.customerOf(c)
	if err != nil {
		return u, ledger.Account{}, err
	}
	bid, err := pathID(c, "bid")
	if err != nil {
		return u, ledger.Account{}, err
	}
	a, err := p.cfg.Host.Account(c.ctx(), bid)
	if err != nil {
		return u, ledger.Account{}, err
	}
	if a.Kind != ledger.KindUser || a.UserID != u.ID {
		return u, ledger.Account{}, errNotFound
	}
	return u, a, nil
}

func (p *Panel) reloadUser(c *call) error {
	u, a, err := p.userBalance(c)
	if err != nil {
		return err
	}
	what, err := p.reload(c, a)
	if err != nil {
		return err
	}
	return c.done(fmt.Sprintf("/panel/customers/%d", u.ID), what)
}

// reload is an Admin's reload of a balance with the form's amount, reason
// and bank reference, through the same four-eyes rule as the API's
// (ledger.AdminReload): it answers which of "reloaded" or "reload_pending"
// happened.
func (p *Panel) reload(c *call, a ledger.Account) (string, error) {
	exp, err := p.cfg.Host.CurrencyExponent(c.ctx(), a.Currency)
	if err != nil {
		return "", err
	}
	amount, err := parseAmount(c.r.PostFormValue("amount"), exp)
	if err != nil {
		return "", err
	}
	ref := strings.TrimSpace(c.r.PostFormValue("reference"))
	reason := strings.TrimSpace(c.r.PostFormValue("reason"))
	for _, v := range []string{ref, reason} {
		if v == "" || len(v) > 64 || strings.ContainsAny(v, "\r\n\x00") {
			return "", badInput("A reload needs a reason and a bank reference, each at most 64 characters on one line.")
		}
	}
	ap, err := p.cfg.Host.AdminReload(c.ctx(), a.ID, amount, c.admin(), reason, ref)
	if err != nil {
		return "", err
	}
	p.log.Info("panel: balance reload", "balance_id", a.ID, "amount", amount, "currency", a.Currency, "approval_id", ap.ID, "status", ap.Status, "admin", c.s.AdminID)
	if ap.Status == ledger.ApprovalPending {
		return "reload_pending", nil
	}
	return "reloaded", nil
}

func (p *Panel) issueVirtual(c *call) error {
	u, a, err := p.userBalance(c)
	if err != nil {
		return err
	}
	cd, _, err := p.cfg.Host.CreateVirtualCard(c.ctx(), u.ID, a.ID, c.actor())
	if err != nil {
		return err
	}
	return c.done(fmt.Sprintf("/panel/cards/%d", cd.ID), "card")
}
