package panel

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// ---- Partners and programs ----

func (p *Panel) partners(c *call) error {
	ps, err := p.cfg.Host.Partners(c.ctx())
	if err != nil {
		return err
	}
	certs, err := p.cfg.Reader.EntityCertificates(c.ctx())
	if err != nil {
		return err
	}
	return c.page("partners", "Partners", map[string]any{"Partners": ps, "Certificates": certs})
}

// signEntityCSR signs a scheme's or acquirer's CSR: external entities lock
// cards from outside with it.
func (p *Panel) signEntityCSR(c *call) error {
	req := CSR{Kind: c.r.PostFormValue("kind"), Entity: strings.TrimSpace(c.r.PostFormValue("entity")), PEM: c.r.PostFormValue("csr")}
	if req.Kind != "scheme" && req.Kind != "acquirer" {
		return badInput("The kind is scheme or acquirer.")
	}
	serial, certPEM, err := p.cfg.Auth.SignCSR(c.ctx(), req, c.s.AdminID)
	if err != nil {
		return err
	}
	p.log.Info("panel: certificate signed", "serial", serial, "kind", req.Kind, "entity", req.Entity, "admin", c.s.AdminID)
	return c.page("message", "Certificate signed", map[string]any{"Message": "Signed certificate " + serial + ".",
		"PEM": certPEM, "Back": "/panel/partners"})
}

func (p *Panel) createPartner(c *call) error {
	name := strings.TrimSpace(c.r.PostFormValue("name"))
	email := strings.TrimSpace(c.r.PostFormValue("email"))
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "\r\n\x00") {
		return badInput("The partner name is 1 to 200 characters on one line.")
	}
	if email != "" && (!strings.Contains(email, "@") || len(email) > 254 || strings.ContainsAny(email, " \r\n\x00")) {
		return badInput("The notification e-mail is not an e-mail address.")
	}
	pt, err := p.cfg.Host.CreatePartner(c.ctx(), name, email)
	if err != nil {
		return err
	}
	return c.done(fmt.Sprintf("/panel/partners/%d", pt.ID), "created")
}

// partnerOf is the path's partner: any for an Admin, the own one for a
// viewer, nothing for the other roles (the API lists partners to Admins).
func (p *Panel) partnerOf(c *call) (ledger.Partner, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return ledger.Partner{}, err
	}
	switch {
	case c.s.Role == RolePartner && id != c.s.PartnerID:
		return ledger.Partner{}, errNotFound
	case c.s.Role == RoleManager || c.s.Role == RoleEmployee:
		return ledger.Partner{}, &InputError{Status: http.StatusForbidden, Message: "Your role may not do this."}
	}
	return p.cfg.Host.Partner(c.ctx(), id)
}

type programRow struct {
	cardhost.Program
	Types string
}

func (p *Panel) partner(c *call) error {
	pt, err := p.partnerOf(c)
	if err != nil {
		return err
	}
	progs, err := p.cfg.Host.Programs(c.ctx(), pt.ID)
	if err != nil {
		return err
	}
	var prows []programRow
	for _, pr := range progs {
		var ts []string
		for _, t := range pr.CardTypes {
			ts = append(ts, string(t))
		}
		prows = append(prows, programRow{Program: pr, Types: strings.Join(ts, ", ")})
	}
	gauges, err := p.gauges(c, pt)
	if err != nil {
		return err
	}
	data := map[string]any{"Partner": pt, "Programs": prows, "Gauges": gauges, "Admin": c.is(adminOnly...)}
	if c.is(adminOnly...) {
		certs, err := p.cfg.Reader.PartnerCertificates(c.ctx(), pt.ID)
		if err != nil {
			return err
		}
		viewers, err := p.cfg.Reader.PartnerViewers(c.ctx(), pt.ID)
		if err != nil {
			return err
		}
		data["Certificates"], data["Viewers"] = certs, viewers
	}
	return c.page("partner", pt.Name, data)
}

func (p *Panel) createProgram(c *call) error {
	pt, err := p.partnerOf(c)
	if err != nil {
		return err
	}
	f := c.r.PostForm
	spec := cardhost.ProgramSpec{PartnerID: pt.ID, Name: strings.TrimSpace(f.Get("name")), BINLow: f.Get("binLow"), BINHigh: f.Get("binHigh"),
		Currency: strings.ToUpper(strings.TrimSpace(f.Get("currency"))), DigitalFirst: f.Get("digitalFirst") == "on",
		Funding: cardhost.FundingModel(f.Get("funding")), RemoteURL: strings.TrimSpace(f.Get("remoteUrl")), StandInApprove: f.Get("standIn") == "on"}
	if spec.BINHigh == "" {
		spec.BINHigh = spec.BINLow
	}
	for _, t := range f["cardTypes"] {
		spec.CardTypes = append(spec.CardTypes, cardhost.CardType(t))
	}
	if len(spec.Currency) != 3 {
		return badInput("The currency is an ISO 4217 code such as EUR.")
	}
	if spec.RemoteURL != "" && !strings.HasPrefix(spec.RemoteURL, "https://") && !strings.HasPrefix(spec.RemoteURL, "http://") {
		return badInput("The remote decision URL must be an http(s) URL.")
	}
	if t := f.Get("lowThreshold"); t != "" {
		exp, err := p.cfg.Host.CurrencyExponent(c.ctx(), spec.Currency)
		if err != nil {
			return err
		}
		v, err := parseAmount(t, exp)
		if err != nil {
			return err
		}
		spec.LowThreshold = &v
	}
	if _, err := p.cfg.Host.CreateProgram(c.ctx(), spec); err != nil {
		return err
	}
	return c.done(fmt.Sprintf("/panel/partners/%d", pt.ID), "created")
}

func (p *Panel) openPartnerBalance(c *call) error {
	pt, err := p.partnerOf(c)
	if err != nil {
		return err
	}
	progID, _ := strconv.ParseInt(c.r.PostFormValue("programId"), 10, 64)
	cur := strings.ToUpper(strings.TrimSpace(c.r.PostFormValue("currency")))
	if len(cur) != 3 {
		return badInput("The currency is an ISO 4217 code such as EUR.")
	}
	if _, err := p.cfg.Host.OpenPartnerBalance(c.ctx(), pt.ID, c.r.PostFormValue("kind"), cur, progID, nil); err != nil {
		return err
	}
	return c.done(fmt.Sprintf("/panel/partners/%d", pt.ID), "created")
}

// partnerBalance is the path's partner balance.
func (p *Panel) partnerBalance(c *call) (ledger.Account, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return ledger.Account{}, err
	}
	a, err := p.cfg.Host.Account(c.ctx(), id)
	if err != nil {
		return ledger.Account{}, err
	}
	if a.Kind != ledger.KindPartnerCredit && a.Kind != ledger.KindPartnerDeposit && a.Kind != ledger.KindPartner {
		return ledger.Account{}, errNotFound
	}
	return a, nil
}

func (p *Panel) reloadPartner(c *call) error {
	a, err := p.partnerBalance(c)
	if err != nil {
		return err
	}
	what, err := p.reload(c, a)
	if err != nil {
		return err
	}
	return c.done(fmt.Sprintf("/panel/partners/%d", a.PartnerID), what)
}

func (p *Panel) setThreshold(c *call) error {
	a, err := p.partnerBalance(c)
	if err != nil {
		return err
	}
	var t *int64
	if v := strings.TrimSpace(c.r.PostFormValue("threshold")); v != "" {
		exp, err := p.cfg.Host.CurrencyExponent(c.ctx(), a.Currency)
		if err != nil {
			return err
		}
		n, err := parseAmount(v, exp)
		if err != nil {
			return err
		}
		t = &n
	}
	if err := p.cfg.Host.SetThreshold(c.ctx(), a.ID, t); err != nil {
		return err
	}
	return c.done(fmt.Sprintf("/panel/partners/%d", a.PartnerID), "threshold")
}

func (p *Panel) signCSR(c *call) error {
	pt, err := p.partnerOf(c)
	if err != nil {
		return err
	}
	serial, certPEM, err := p.cfg.Auth.SignCSR(c.ctx(), CSR{Kind: "partner", PartnerID: pt.ID, PEM: c.r.PostFormValue("csr")}, c.s.AdminID)
	if err != nil {
		return err
	}
	p.log.Info("panel: certificate signed", "serial", serial, "partner_id", pt.ID, "admin", c.s.AdminID)
	return c.page("message", "Certificate signed", map[string]any{"Message": "Signed certificate " + serial + ".",
		"PEM": certPEM, "Back": fmt.Sprintf("/panel/partners/%d", pt.ID)})
}

var serialRe = regexp.MustCompile(`^[0-9a-f]{1,40}$`)

func (p *Panel) revoke(c *call) error {
	serial := strings.ToLower(c.r.PathValue("serial"))
	if !serialRe.MatchString(serial) {
		return errNotFound
	}
	if err := p.cfg.Auth.Revoke(c.ctx(), serial); err != nil {
		return err
	}
	back := "/panel/partners"
	if id, err := strconv.ParseInt(c.r.PostFormValue("partner"), 10, 64); err == nil && id > 0 {
		back = fmt.Sprintf("/panel/partners/%d", id)
	}
	return c.done(back, "revoked")
}

func (p *Panel) createViewer(c *call) error {
	pt, err := p.partnerOf(c)
	if err != nil {
		return err
	}
	if err := p.cfg.Auth.CreateViewer(c.ctx(), c.r.PostFormValue("name"), c.r.PostFormValue("password"), pt.ID, c.s.AdminID); err != nil {
		return err
	}
	return c.done(fmt.Sprintf("/panel/partners/%d", pt.ID), "viewer")
}
