package panel

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/specs"
)

func (p *Panel) routes() {
	static, _ := fs.Sub(staticFiles, "static")
	files := http.StripPrefix("/panel/static/", http.FileServerFS(static))
	p.mux.Handle("GET /panel/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secureHeaders(w)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	}))
	p.mux.HandleFunc("GET /panel/login", p.loginPage)
	p.mux.HandleFunc("POST /panel/login", p.login)
	p.handle("POST /panel/logout", everyone, p.logout)
	p.handle("GET /panel/{$}", everyone, func(c *call) error {
		http.Redirect(c.w, c.r, "/panel/summary", http.StatusSeeOther)
		return nil
	})
	p.handle("GET /panel/summary", everyone, p.summary)
	p.handle("GET /panel/customers", everyone, p.customers)
	p.handle("GET /panel/customers/{id}", everyone, p.customer)
	p.handle("POST /panel/customers/{id}/kyc", adminManager, p.setKYC)
	p.handle("POST /panel/customers/{id}/balances/{bid}/reload", adminOnly, p.reloadUser)
	p.handle("POST /panel/customers/{id}/balances/{bid}/cards", adminManager, p.issueVirtual)
	p.handle("GET /panel/cards/{id}", everyone, p.card)
	p.handle("POST /panel/cards/{id}/{action}", staff, p.cardAction)
	p.handle("GET /panel/live", staff, p.live)
	p.handle("GET /panel/live/rows", staff, p.liveRows)
	p.handle("GET /panel/partners", adminOnly, p.partners)
	p.handle("POST /panel/partners", adminOnly, p.createPartner)
	p.handle("GET /panel/partners/{id}", everyone, p.partner)
	p.handle("POST /panel/partners/{id}/programs", adminOnly, p.createProgram)
	p.handle("POST /panel/partners/{id}/balances", adminOnly, p.openPartnerBalance)
	p.handle("POST /panel/partners/{id}/certificates", adminOnly, p.signCSR)
	p.handle("POST /panel/partners/{id}/viewers", adminOnly, p.createViewer)
	p.handle("POST /panel/certificates/{serial}/revoke", adminOnly, p.revoke)
	p.handle("POST /panel/entities/certificates", adminOnly, p.signEntityCSR)
	p.handle("POST /panel/balances/{id}/reload", adminOnly, p.reloadPartner)
	p.handle("POST /panel/balances/{id}/threshold", adminOnly, p.setThreshold)
	p.handle("GET /panel/exceptions", staff, p.exceptions)
	p.handle("POST /panel/exceptions/{id}/resolve", adminOnly, p.resolveException)
	p.handle("GET /panel/approvals", staff, p.approvals)
	p.handle("POST /panel/approvals/{id}/{decision}", adminOnly, p.decide)
	p.handle("/panel/", everyone, func(c *call) error { return errNotFound })
}

// ---- Sign-in ----

func (p *Panel) loginPage(w http.ResponseWriter, r *http.Request) {
	secureHeaders(w)
	tok := ""
	if ck, err := r.Cookie(loginCookie); err == nil && len(ck.Value) == 43 {
		tok = ck.Value
	} else {
		tok = randomToken()
		setCookie(w, loginCookie, tok, 3600)
	}
	p.render(w, nil, http.StatusOK, "login", "Sign in", map[string]any{"LoginCSRF": tok})
}

// login checks the login form. Its CSRF token is a double-submit value: the
// form's hidden field must equal the SameSite=Strict login cookie.
func (p *Panel) login(w http.ResponseWriter, r *http.Request) {
	secureHeaders(w)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ck, err := r.Cookie(loginCookie)
	if err != nil || r.ParseForm() != nil || ck.Value == "" || r.PostFormValue("csrf") != ck.Value {
		p.render(w, nil, http.StatusForbidden, "message", "Refused", map[string]any{"Message": "The form was refused: its security token is missing or wrong. Reload the sign-in page and try again."})
		return
	}
	s, err := p.cfg.Auth.Login(r.Context(), r.PostFormValue("name"), r.PostFormValue("password"))
	var le *LimitError
	switch {
	case errors.As(err, &le):
		w.Header().Set("Retry-After", strconv.Itoa(le.RetryAfter))
		p.render(w, nil, http.StatusTooManyRequests, "login", "Sign in", map[string]any{"LoginCSRF": ck.Value, "Error": le.Error()})
		return
	case errors.Is(err, ErrBadLogin):
		p.render(w, nil, http.StatusUnauthorized, "login", "Sign in", map[string]any{"LoginCSRF": ck.Value, "Error": "Name or password is wrong."})
		return
	case err != nil:
		p.fail(w, r, nil, err)
		return
	}
	clearCookie(w, loginCookie)
	setCookie(w, sessionCookie, s.Token, 0)
	http.Redirect(w, r, "/panel/summary", http.StatusSeeOther)
}

func (p *Panel) logout(c *call) error {
	if err := p.cfg.Auth.Logout(c.ctx(), c.s.Token); err != nil {
		return err
	}
	clearCookie(c.w, sessionCookie)
	http.Redirect(c.w, c.r, "/panel/login", http.StatusSeeOther)
	return nil
}

// ---- Summary ----

type summaryRow struct {
	Currency, Users, Wallet, PartnerCredit, PartnerDeposit, Partner, UsersHeld string
}

type gauge struct {
	PartnerID    int64
	PartnerName  string
	AccountID    int64
	Kind         string
	Currency     string
	Available    string
	Threshold    string
	HasThreshold bool
	Value, Max   int64
	Low          int64
	Below        bool
}

func (p *Panel) summary(c *call) error {
	data := map[string]any{}
	partners, err := p.visiblePartners(c)
	if err != nil {
		return err
	}
	var gauges []gauge
	for _, pt := range partners {
		gs, err := p.gauges(c, pt)
		if err != nil {
			return err
		}
		gauges = append(gauges, gs...)
	}
	data["Gauges"] = gauges
	if c.s.Role != RolePartner {
		sums, err := p.cfg.Host.Summary(c.ctx())
		if err != nil {
			return err
		}
		var rows []summaryRow
		for _, s := range sums {
			f := func(v int64) string { return formatAmount(v, s.Exponent) }
			rows = append(rows, summaryRow{Currency: s.Currency, Users: f(s.Users), Wallet: f(s.Wallet), PartnerCredit: f(s.PartnerCredit),
				PartnerDeposit: f(s.PartnerDeposit), Partner: f(s.Partner), UsersHeld: f(s.Held)})
		}
		data["Currencies"] = rows
		now := p.cfg.Now()
		stats, err := p.cfg.Reader.AuthsPerMinute(c.ctx(), now.Add(-time.Hour).Truncate(time.Minute))
		if err != nil {
			return err
		}
		data["Chart"] = chartOf(stats, now)
	}
	return c.page("summary", "Summary", data)
}

// visiblePartners is every partner for staff, the own one for a viewer.
func (p *Panel) visiblePartners(c *call) ([]ledger.Partner, error) {
	if c.s.Role == RolePartner {
		pt, err := p.cfg.Host.Partner(c.ctx(), c.s.PartnerID)
		if err != nil {
			return nil, err
		}
		return []ledger.Partner{pt}, nil
	}
	return p.cfg.Host.Partners(c.ctx())
}

// gauges are a partner's balances against their thresholds.
func (p *Panel) gauges(c *call, pt ledger.Partner) ([]gauge, error) {
	as, err := p.cfg.Host.PartnerBalances(c.ctx(), pt.ID)
	if err != nil {
		return nil, err
	}
	out := make([]gauge, 0, len(as))
	for _, a := range as {
		g, err := p.gaugeOf(c, pt, a)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

func (p *Panel) gaugeOf(c *call, pt ledger.Partner, a ledger.Account) (gauge, error) {
	exp, err := p.cfg.Host.CurrencyExponent(c.ctx(), a.Currency)
	if err != nil {
		return gauge{}, err
	}
	g := gauge{PartnerID: pt.ID, PartnerName: pt.Name, AccountID: a.ID, Kind: a.Kind, Currency: a.Currency,
		Available: formatAmount(a.Available(), exp), Value: max(a.Available(), 0)}
	g.Max = max(g.Value, 1)
	if a.LowThreshold != nil {
		g.HasThreshold, g.Threshold, g.Low = true, formatAmount(*a.LowThreshold, exp), *a.LowThreshold
		g.Max = max(g.Max, 4**a.LowThreshold)
		g.Below = a.Available() < *a.LowThreshold
	}
	return g, nil
}

// chart is the last hour per minute as SVG shapes: bars of requests
// (approved part darker) and the p99 answer time as a line.
type chart struct {
	W, H              int
	Bars              []bar
	P99               string // polyline points
	MaxCount          int
	MaxP99            string
	Total, Approved   int
	ApprovalRate      string
	P99Hour           string
	XLabels           []label
	HasData, HasP99MS bool
}

type bar struct {
	X, Y, W, H   int
	AY, AH       int
	PX, PY       int // the p99 point, when HasP99
	HasP99       bool
	Minute       string
	Count, Appr  int
	Rate, P99txt string
}

type label struct {
	X    int
	Text string
}

func chartOf(stats []ledger.MinuteStat, now time.Time) chart {
	const w, h, top, bottom = 720, 200, 10, 180
	ch := chart{W: w, H: h}
	start := now.Add(-time.Hour).Truncate(time.Minute)
	byMin := map[int64]ledger.MinuteStat{}
	var maxP99 time.Duration
	for _, s := range stats {
		byMin[s.Minute.Unix()] = s
		ch.MaxCount = max(ch.MaxCount, s.Total)
		ch.Total += s.Total
		ch.Approved += s.Approved
		if s.HasP99 {
			maxP99 = max(maxP99, s.P99)
		}
	}
	ch.HasData = ch.Total > 0
	if ch.Total > 0 {
		ch.ApprovalRate = fmt.Sprintf("%.1f %%", 100*float64(ch.Approved)/float64(ch.Total))
	}
	ch.MaxP99 = fmtDuration(maxP99)
	ch.HasP99MS = maxP99 > 0
	bw := w / 61
	var pts []string
	for i := 0; i <= 60; i++ {
		m := start.Add(time.Duration(i) * time.Minute)
		s := byMin[m.Unix()]
		x := i * bw
		if i%10 == 0 {
			ch.XLabels = append(ch.XLabels, label{X: x, Text: m.UTC().Format("15:04")})
		}
		if s.Total == 0 {
			continue
		}
		bh := (bottom - top) * s.Total / max(ch.MaxCount, 1)
		ah := (bottom - top) * s.Approved / max(ch.MaxCount, 1)
		b := bar{X: x, Y: bottom - bh, W: bw - 1, H: bh, AY: bottom - ah, AH: ah, Minute: m.UTC().Format("15:04"),
			Count: s.Total, Appr: s.Approved, Rate: fmt.Sprintf("%.1f %%", 100*float64(s.Approved)/float64(s.Total))}
		b.P99txt = "—"
		if s.HasP99 {
			b.P99txt = fmtDuration(s.P99)
			b.PX, b.PY, b.HasP99 = x+bw/2, bottom-int(float64(bottom-top)*float64(s.P99)/float64(max(maxP99, 1))), true
			pts = append(pts, fmt.Sprintf("%d,%d", b.PX, b.PY))
		}
		ch.Bars = append(ch.Bars, b)
	}
	ch.P99 = strings.Join(pts, " ")
	return ch
}

func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

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
	v := c.r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
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

// ---- Cards ----

// cardOf loads the path's card and its program; a viewer sees only their
// partner's cards.
func (p *Panel) cardOf(c *call) (cardhost.Card, cardhost.Program, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return cardhost.Card{}, cardhost.Program{}, err
	}
	cd, err := p.cfg.Host.Card(c.ctx(), id)
	if err != nil {
		return cardhost.Card{}, cardhost.Program{}, err
	}
	prog, err := p.cfg.Host.Program(c.ctx(), cd.ProgramID)
	if err != nil {
		return cardhost.Card{}, cardhost.Program{}, err
	}
	if c.s.Role == RolePartner && prog.PartnerID != c.s.PartnerID {
		return cardhost.Card{}, cardhost.Program{}, errNotFound
	}
	return cd, prog, nil
}

type lockOption struct {
	Code         int
	Text         string
	Irreversible bool
}

func lockOptions() []lockOption {
	var out []lockOption
	for code := cardhost.LockLost; code <= cardhost.LockCardReplaced; code++ {
		out = append(out, lockOption{Code: int(code), Text: lockText(code), Irreversible: code.Irreversible()})
	}
	return out
}

func (p *Panel) card(c *call) error {
	cd, prog, err := p.cardOf(c)
	if err != nil {
		return err
	}
	evs, err := p.cfg.Host.History(c.ctx(), cd.ID)
	if err != nil {
		return err
	}
	staffer := c.is(staff...)
	data := map[string]any{
		"Card": cardRowOf(cd), "C": cd, "Program": prog, "Events": evs, "LockOptions": lockOptions(),
		"Removed":   cd.State == cardhost.StateRemoved,
		"CanLock":   staffer && cd.State != cardhost.StateRemoved,
		"CanUnlock": staffer && cd.LockCode != cardhost.LockNone && !cd.LockCode.Irreversible() && (cd.LockCode != cardhost.LockSuspectedFraud || c.is(adminManager...)),
		"Locked":    cd.LockCode != cardhost.LockNone, "Irreversible": cd.LockCode.Irreversible(),
		"CanActivate": staffer && cd.State == cardhost.StateInactive,
		"CanLink":     staffer && cd.State == cardhost.StateOrdered,
		"CanPrint":    staffer && prog.DigitalFirst && cd.Type == cardhost.Virtual && cd.State == cardhost.StateActive,
		"CanCVV":      staffer && cd.State != cardhost.StateRemoved,
		"CanRemove":   c.is(adminOnly...) && cd.State != cardhost.StateRemoved,
		"Staff":       staffer,
	}
	return c.page("card", fmt.Sprintf("Card %d", cd.ID), data)
}

func (p *Panel) cardAction(c *call) error {
	cd, _, err := p.cardOf(c)
	if err != nil {
		return err
	}
	ctx, a := c.ctx(), c.actor()
	var done string
	switch c.r.PathValue("action") {
	case "lock":
		code, _ := strconv.Atoi(c.r.PostFormValue("code"))
		if !cardhost.LockCode(code).Valid() {
			return badInput("Choose a lock reason code from 1 to 8.")
		}
		why := strings.TrimSpace(c.r.PostFormValue("reason"))
		if len(why) > 500 || strings.ContainsAny(why, "\r\n\x00") {
			return badInput("The reason must be at most 500 characters on one line.")
		}
		_, err = p.cfg.Host.Lock(ctx, cd.ID, cardhost.LockCode(code), a, why)
		done = "locked"
	case "unlock":
		// DESIGN 8: a code-7 lock is lifted by the partner or an Admin or
		// Manager only.
		if cd.LockCode == cardhost.LockSuspectedFraud && !c.is(adminManager...) {
			c.status(http.StatusForbidden, "A suspected-fraud lock (code 7) is lifted by an Admin or Manager.")
			return nil
		}
		_, err = p.cfg.Host.Unlock(ctx, cd.ID, a)
		done = "unlocked"
	case "activate":
		_, err = p.cfg.Host.Activate(ctx, cd.ID, a)
		done = "activated"
	case "link":
		_, err = p.cfg.Host.LinkCard(ctx, cd.ID, a)
		done = "linked"
	case "print":
		_, err = p.cfg.Host.PrintVirtual(ctx, cd.ID, a)
		done = "printed"
	case "cvv":
		// The new CVC2 goes to the cardholder's channels, never to a page.
		_, _, err = p.cfg.Host.ResetCVV(ctx, cd.ID, a)
		done = "cvv"
	case "remove":
		if !c.is(adminOnly...) {
			c.status(http.StatusForbidden, "Your role may not do this.")
			return nil
		}
		_, err = p.cfg.Host.Remove(ctx, cd.ID, a)
		done = "removed"
	default:
		return errNotFound
	}
	if err != nil {
		return err
	}
	p.log.Info("panel: card action", "card_id", cd.ID, "action", done, "admin", c.s.AdminID)
	return c.done(fmt.Sprintf("/panel/cards/%d", cd.ID), done)
}

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
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return f, form, badInput("The card filter is a card id.")
		}
		f.CardID, form["card"] = id, v
	}
	if v := strings.TrimSpace(q.Get("journal")); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
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
