package panel_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/antaca/antaca/cardhost"
)

// TestPanelSummaryMatchesAPI signs in as an Admin and checks that the
// summary's Users and Wallet per currency are /admin/summary's, and that the
// partner balance is drawn against its threshold.
func TestPanelSummaryMatchesAPI(t *testing.T) {
	e := newEnv(t)
	// A second currency, so the comparison covers more than one row.
	u2, err := e.host.RegisterUser(e.ctx, e.prog.ID, "cust-usd", "Bob", "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.host.SetKYC(e.ctx, u2.ID, cardhost.KYCVerified, "admin"); err != nil {
		t.Fatal(err)
	}
	acc, err := e.host.CreateBalance(e.ctx, u2.ID, "USD")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.led.Reload(e.ctx, acc.ID, 1234, "usd-seed"); err != nil {
		t.Fatal(err)
	}

	var login struct{ Token string }
	if st := e.apiJSON("POST", "/admin/login", "", map[string]string{"name": "admin", "password": password}, &login); st != http.StatusOK {
		t.Fatalf("api login: status %d", st)
	}
	var sum struct {
		Currencies []struct{ Currency, Users, Wallet string }
	}
	if st := e.apiJSON("GET", "/admin/summary", login.Token, nil, &sum); st != http.StatusOK {
		t.Fatalf("api summary: status %d", st)
	}
	if len(sum.Currencies) < 2 {
		t.Fatalf("api summary: got %d currencies, want at least 2", len(sum.Currencies))
	}

	ctx := tab(t)
	e.signIn(ctx, "admin")
	e.open(ctx, "/panel/summary")
	for _, c := range sum.Currencies {
		row := fmt.Sprintf(`#summary tr[data-currency=%q]`, c.Currency)
		if got := text(t, ctx, row+` td[data-field="users"]`); got != c.Users {
			t.Errorf("%s Users: panel %q, API %q", c.Currency, got, c.Users)
		}
		if got := text(t, ctx, row+` td[data-field="wallet"]`); got != c.Wallet {
			t.Errorf("%s Wallet: panel %q, API %q", c.Currency, got, c.Wallet)
		}
	}
	// The program's partner credit balance: 2000.00 available, threshold 500.00.
	g := text(t, ctx, "ul.gauges li")
	if !strings.Contains(g, "available 2000.00 EUR") || !strings.Contains(g, "threshold 500.00") {
		t.Errorf("partner gauge: got %q, want available 2000.00 EUR against threshold 500.00", g)
	}
	if !exists(t, ctx, `ul.gauges meter[low="50000"][value="200000"]`) {
		t.Errorf("partner gauge: no meter with the threshold as its low mark and the available amount as its value")
	}
	if !exists(t, ctx, "svg.chart") {
		t.Errorf("summary: no authorisation chart")
	}
}

// TestPanelRoles signs in as each role and checks what each may see and
// do: an Employee gets no reload (neither the form nor a forged post), a
// Manager no partner administration, a partner viewer only their partner.
func TestPanelRoles(t *testing.T) {
	e := newEnv(t)
	for _, role := range []string{"admin", "manager", "employee"} {
		t.Run(role, func(t *testing.T) {
			ctx := tab(t)
			e.signIn(ctx, role)
			if got, want := text(t, ctx, ".who small"), "("+strings.ToUpper(role[:1])+role[1:]+")"; got != want {
				t.Errorf("signed in role: got %s, want %s", got, want)
			}
			e.open(ctx, fmt.Sprintf("/panel/customers/%d", e.user.ID))
			reload := exists(t, ctx, "form.reload")
			if want := role == "admin"; reload != want {
				t.Errorf("reload form shown: got %v, want %v", reload, want)
			}
			e.open(ctx, "/panel/partners")
			partners := exists(t, ctx, `a[href="/panel/partners/`+fmt.Sprint(e.partner.ID)+`"]`)
			if want := role == "admin"; partners != want {
				t.Errorf("partners list shown: got %v, want %v", partners, want)
			}
		})
	}

	// An Employee posting the reload form anyway (with a valid CSRF token
	// from one of their pages) is refused, and no money moves.
	ctx := tab(t)
	e.signIn(ctx, "employee")
	e.open(ctx, fmt.Sprintf("/panel/cards/%d", e.card.ID))
	before, err := e.host.Account(e.ctx, e.balance)
	if err != nil {
		t.Fatal(err)
	}
	status := submitForm(t, ctx, fmt.Sprintf("/panel/customers/%d/balances/%d/reload", e.user.ID, e.balance),
		map[string]string{"amount": "100.00"}, true)
	if status != http.StatusForbidden {
		t.Errorf("employee reload: got status %d, want 403", status)
	}
	after, err := e.host.Account(e.ctx, e.balance)
	if err != nil {
		t.Fatal(err)
	}
	if after.Balance != before.Balance {
		t.Errorf("employee reload moved money: balance %d, was %d", after.Balance, before.Balance)
	}

	// A partner viewer, created by an Admin in the panel, sees their own
	// partner's programs and customers, read only, and nothing of another.
	other, err := e.host.CreatePartner(e.ctx, "Other Bank", "")
	if err != nil {
		t.Fatal(err)
	}
	actx := tab(t)
	e.signIn(actx, "admin")
	e.open(actx, fmt.Sprintf("/panel/partners/%d", e.partner.ID))
	if err := chromedp.Do(actx, clearDone(),
		chromedp.SendKeys(chromedp.CSS("#vname"), "acme-viewer"),
		chromedp.SendKeys(chromedp.CSS("#vpass"), password),
		chromedp.Submit(chromedp.CSS("#vpass")),
		chromedp.WaitVisible(chromedp.CSS("p.done")),
	); err != nil {
		t.Fatal(err)
	}
	vctx := tab(t)
	e.signIn(vctx, "acme-viewer")
	html := e.open(vctx, "/panel/summary")
	if !strings.Contains(html, "Acme Pay") || exists(t, vctx, "#summary") {
		t.Errorf("viewer summary: want their partner's balances and no system-wide summary")
	}
	e.open(vctx, fmt.Sprintf("/panel/partners/%d", e.partner.ID))
	if got := text(t, vctx, "#programs tbody"); !strings.Contains(got, "Acme Green") {
		t.Errorf("viewer programs: got %q, want Acme Green", got)
	}
	if exists(t, vctx, "form.reload") || exists(t, vctx, "#csr") {
		t.Errorf("viewer partner page: shows a reload or CSR form")
	}
	e.open(vctx, fmt.Sprintf("/panel/cards/%d", e.card.ID))
	if exists(t, vctx, "#lockform") {
		t.Errorf("viewer card page: shows the lock form")
	}
	e.open(vctx, fmt.Sprintf("/panel/partners/%d", other.ID))
	if exists(t, vctx, "#programs") {
		t.Errorf("viewer sees another partner's page")
	}
	otherProg, err := e.host.CreateProgram(e.ctx, cardhost.ProgramSpec{PartnerID: other.ID, Name: "Other", BINLow: "461234", BINHigh: "461234",
		Currency: "EUR", CardTypes: []cardhost.CardType{cardhost.Virtual}, Funding: cardhost.FundingPartnerCredit})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := e.host.RegisterUser(e.ctx, otherProg.ID, "other-1", "Ada Other", "ada@other.example")
	if err != nil {
		t.Fatal(err)
	}
	e.open(vctx, "/panel/customers?q=ada")
	if got := text(t, vctx, "#hits tbody"); !strings.Contains(got, "Ada Lovelace") || strings.Contains(got, "Ada Other") {
		t.Errorf("viewer search: got %q, want only their partner's customer", got)
	}
	e.open(vctx, fmt.Sprintf("/panel/customers/%d", stranger.ID))
	if exists(t, vctx, "dl.facts") {
		t.Errorf("viewer sees another partner's customer")
	}
	if status := submitForm(t, vctx, fmt.Sprintf("/panel/cards/%d/lock", e.card.ID), map[string]string{"code": "3"}, true); status != http.StatusForbidden {
		t.Errorf("viewer lock: got status %d, want 403", status)
	}
	if c, _ := e.host.Card(e.ctx, e.card.ID); c.LockCode != cardhost.LockNone {
		t.Errorf("viewer lock: card locked with code %d", c.LockCode)
	}
	// The JSON API refuses the viewer's session everywhere.
	var vlogin struct{ Token string }
	if st := e.apiJSON("POST", "/admin/login", "", map[string]string{"name": "acme-viewer", "password": password}, &vlogin); st != http.StatusOK {
		t.Fatalf("viewer api login: status %d", st)
	}
	if st := e.apiJSON("GET", "/admin/summary", vlogin.Token, nil, nil); st != http.StatusForbidden {
		t.Errorf("viewer GET /admin/summary: got %d, want 403", st)
	}
}

// submitForm builds a form in the current page (same origin, so the
// session cookie goes with it) posting fields to action, with the page's
// CSRF token when withCSRF, submits it and returns the answer's status.
func submitForm(t *testing.T, ctx context.Context, action string, fields map[string]string, withCSRF bool) int {
	t.Helper()
	var js strings.Builder
	fmt.Fprintf(&js, `(function(){var f=document.createElement('form');f.method='post';f.action=%q;`, action)
	add := func(k, v string) {
		fmt.Fprintf(&js, `var i=document.createElement('input');i.type='hidden';i.name=%q;i.value=%s;f.appendChild(i);`, k, v)
	}
	for k, v := range fields {
		add(k, fmt.Sprintf("%q", v))
	}
	if withCSRF {
		add("csrf", `document.querySelector('input[name=csrf]').value`)
	}
	js.WriteString(`document.body.appendChild(f);f.submit();return true;})()`)
	resp, err := chromedp.RunResponse(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](js.String())(ctx, tg)
		return chromedp.Void{}, err
	})
	if err != nil {
		t.Fatalf("submit %s: %v", action, err)
	}
	return int(resp.Status)
}

// TestPanelCSRF checks that a form without the session's CSRF token, or
// with a wrong one, is refused, in the browser and from a plain client
// holding the session cookie.
func TestPanelCSRF(t *testing.T) {
	e := newEnv(t)
	ctx := tab(t)
	e.signIn(ctx, "admin")
	e.open(ctx, fmt.Sprintf("/panel/cards/%d", e.card.ID))
	if st := submitForm(t, ctx, fmt.Sprintf("/panel/cards/%d/lock", e.card.ID), map[string]string{"code": "3"}, false); st != http.StatusForbidden {
		t.Errorf("lock without CSRF token: got %d, want 403", st)
	}
	if got := text(t, ctx, "p.error"); !strings.Contains(got, "security token") {
		t.Errorf("refusal page: got %q", got)
	}
	e.open(ctx, fmt.Sprintf("/panel/cards/%d", e.card.ID))
	if st := submitForm(t, ctx, fmt.Sprintf("/panel/cards/%d/lock", e.card.ID), map[string]string{"code": "3", "csrf": "forged"}, false); st != http.StatusForbidden {
		t.Errorf("lock with a forged CSRF token: got %d, want 403", st)
	}
	if c, _ := e.host.Card(e.ctx, e.card.ID); c.LockCode != cardhost.LockNone {
		t.Fatalf("a refused form locked the card (code %d)", c.LockCode)
	}

	// A plain client: sign in through the form (cookie attributes), then a
	// post without the token.
	c := e.client()
	resp, err := c.Get(e.url + "/panel/summary")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy: got %q", csp)
	}
	tok := e.loginToken(c)
	if r := formPost(e, c, "/panel/login", url.Values{"name": {"admin"}, "password": {password}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("login without CSRF token: got %d, want 403", r.StatusCode)
	}
	r := formPost(e, c, "/panel/login", url.Values{"name": {"admin"}, "password": {password}, "csrf": {tok}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: got %d, want 303", r.StatusCode)
	}
	var session string
	for _, sc := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "__Host-antaca-panel=") {
			session = sc
		}
	}
	for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(session, attr) {
			t.Errorf("session cookie %q lacks %s", session, attr)
		}
	}
	if r := formPost(e, c, fmt.Sprintf("/panel/cards/%d/lock", e.card.ID), url.Values{"code": {"3"}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("client lock without CSRF token: got %d, want 403", r.StatusCode)
	}
	if c, _ := e.host.Card(e.ctx, e.card.ID); c.LockCode != cardhost.LockNone {
		t.Errorf("a refused form locked the card (code %d)", c.LockCode)
	}

	// Idle expiry: each page moves the end of the session to 10 minutes
	// later; the live view's polling does not; past 10 idle minutes the
	// panel asks to sign in again.
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := c.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	e.advance(6 * time.Minute)
	if r := get("/panel/summary"); r.StatusCode != http.StatusOK {
		t.Fatalf("after 6 minutes: got %d, want 200", r.StatusCode)
	}
	e.advance(6 * time.Minute)
	if r := get("/panel/live/rows"); r.StatusCode != http.StatusOK {
		t.Fatalf("12 minutes after sign-in, 6 after the last page: got %d, want 200 (the session was extended)", r.StatusCode)
	}
	e.advance(5 * time.Minute)
	if r := get("/panel/summary"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/panel/login" {
		t.Errorf("11 minutes after the last page (polling between): got %d to %q, want 303 to /panel/login", r.StatusCode, r.Header.Get("Location"))
	}
}

// TestPanelLoginLimit checks that the API's login limits apply to the
// panel's sign-in form: past the free guesses (three per source and per
// name, api/login.go) the next attempt waits its progressive delay and is
// refused, even with the right password.
func TestPanelLoginLimit(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	tok := e.loginToken(c)
	for i := range 3 {
		if r := formPost(e, c, "/panel/login", url.Values{"name": {"manager"}, "password": {"wrong password!"}, "csrf": {tok}}); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: got %d, want 401", i+1, r.StatusCode)
		}
	}
	r := formPost(e, c, "/panel/login", url.Values{"name": {"manager"}, "password": {password}, "csrf": {tok}})
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Errorf("fourth attempt: got %d (Retry-After %q), want 429 with Retry-After", r.StatusCode, r.Header.Get("Retry-After"))
	}
}

// TestPanelLockDeclinesLive locks the card in the panel and sees the next
// ISO authorisation of the card, sent on the switch's socket, declined with
// the lock's action code in the live view, which updates by itself.
func TestPanelLockDeclinesLive(t *testing.T) {
	e := newEnv(t)
	if code := e.authorise(1500); code != "00" {
		t.Fatalf("authorisation before the lock: DE39 %s, want 00", code)
	}
	ctx := tab(t)
	e.signIn(ctx, "employee")
	e.open(ctx, fmt.Sprintf("/panel/cards/%d", e.card.ID))
	if err := chromedp.Do(ctx, clearDone(),
		chromedp.SetValue(chromedp.CSS("#code"), "2"),
		chromedp.SendKeys(chromedp.CSS("#reason"), "cardholder called: stolen"),
		chromedp.Submit(chromedp.CSS("#reason")),
		chromedp.WaitVisible(chromedp.CSS("p.done")),
	); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#lock"); !strings.Contains(got, "code 2") {
		t.Errorf("card page after lock: lock %q, want code 2", got)
	}
	if got := text(t, ctx, "#history tbody"); !strings.Contains(got, "cardholder called: stolen") {
		t.Errorf("history: got %q, want the lock's reason", got)
	}
	if exists(t, ctx, `form[action$="/unlock"]`) {
		t.Errorf("an irreversible lock (code 2) offers Unlock")
	}

	// The live view of the card, open before the authorisation arrives.
	e.open(ctx, fmt.Sprintf("/panel/live?card=%d", e.card.ID))
	if got := text(t, ctx, "#liverows tr:first-child td.code"); got != "00" {
		t.Fatalf("live view before: first code %q, want 00", got)
	}
	if code := e.authorise(1500); code != "43" {
		t.Fatalf("authorisation after the lock: DE39 %s, want 43 (card stolen, iso87)", code)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(waitCtx, chromedp.WaitVisible(chromedp.CSS("#liverows tr.declined td.code"))); err != nil {
		t.Fatalf("live view did not show the decline: %v", err)
	}
	row := text(t, ctx, "#liverows tr:first-child")
	for _, want := range []string{"43", "card_stolen", "0100", "15.00 EUR", e.card.PANFirst6, e.card.PANLast4} {
		if !strings.Contains(row, want) {
			t.Errorf("live row %q lacks %q", row, want)
		}
	}
	if lat := text(t, ctx, "#liverows tr:first-child td:last-child"); !strings.HasSuffix(lat, "ms") && !strings.HasSuffix(lat, "µs") {
		t.Errorf("live row latency: got %q, want an answer time", lat)
	}
	e.html(ctx, "live view")

	// The summary's last hour: two requests, one approved.
	e.open(ctx, "/panel/summary")
	if got := text(t, ctx, "#auth + p"); !strings.HasPrefix(got, "2 requests, approval rate 50.0 %") {
		t.Errorf("summary chart text: got %q", got)
	}
	if n := count(t, ctx, "svg.chart rect.total"); n < 1 || n > 2 { // two minutes when the test crosses one
		t.Errorf("summary chart: %d minute bars, want 1", n)
	}

	// The filter by action code keeps only the declines.
	e.open(ctx, fmt.Sprintf("/panel/live?card=%d&code=00", e.card.ID))
	// (By reason, not by "43": the masked PAN's last four may hold it.)
	if got := text(t, ctx, "#liverows"); strings.Contains(got, "card_stolen") || !strings.Contains(got, "approved") {
		t.Errorf("live view filtered by 00: got %q", got)
	}
}

// TestPanelNoFullPAN visits every page as an Admin, including a search by
// BIN and last four, and checks that no page holds a full PAN; a full PAN
// typed into the search is neither searched nor shown back.
func TestPanelNoFullPAN(t *testing.T) {
	e := newEnv(t)
	e.authorise(700)
	ctx := tab(t)
	e.signIn(ctx, "admin")
	pages := []string{"/panel/summary", "/panel/customers", fmt.Sprintf("/panel/customers/%d", e.user.ID),
		fmt.Sprintf("/panel/cards/%d", e.card.ID), "/panel/live", "/panel/partners",
		fmt.Sprintf("/panel/partners/%d", e.partner.ID), "/panel/exceptions"}
	for _, p := range pages {
		e.open(ctx, p)
	}
	e.open(ctx, "/panel/customers?bin="+e.card.PANFirst6+"&last4="+e.card.PANLast4)
	if got := text(t, ctx, "#hits tbody"); !strings.Contains(got, "Ada Lovelace") {
		t.Errorf("search by BIN and last four: got %q, want the card's customer", got)
	}
	e.open(ctx, "/panel/customers?q="+e.data.PAN)
	if got := text(t, ctx, "p.error"); !strings.Contains(got, "never by the full card number") {
		t.Errorf("search by full PAN: got %q", got)
	}
	e.open(ctx, "/panel/customers?q=lovelace")
	if got := text(t, ctx, "#hits tbody"); !strings.Contains(got, "Ada Lovelace") {
		t.Errorf("search by name: got %q", got)
	}
	// Reset CVV says it was done and shows no value.
	e.open(ctx, fmt.Sprintf("/panel/cards/%d", e.card.ID))
	before, _ := e.host.Card(e.ctx, e.card.ID)
	if err := chromedp.Do(ctx, clearDone(), eval("window.confirm=function(){return true}"),
		chromedp.Click(chromedp.CSS(`form[action$="/cvv"] button`)), chromedp.WaitVisible(chromedp.CSS("p.done"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "p.done"); !strings.Contains(got, "reads it in their app") {
		t.Errorf("after reset CVV: got %q", got)
	}
	if after, _ := e.host.Card(e.ctx, e.card.ID); after.CVCGeneration != before.CVCGeneration+1 {
		t.Errorf("reset CVV: generation %d, want %d", after.CVCGeneration, before.CVCGeneration+1)
	}
	e.html(ctx, "after reset CVV")
}

// eval runs JavaScript for its effect.
func eval(js string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[any](js+";null")(ctx, tg)
		return chromedp.Void{}, err
	}
}

// TestPanelCardRules checks the card rules as the panel applies them: an
// irreversible lock offers no unlock and a forged unlock is refused by the
// card host; a code-7 lock is lifted by a Manager, not an Employee.
func TestPanelCardRules(t *testing.T) {
	e := newEnv(t)
	ctx := tab(t)
	e.signIn(ctx, "employee")
	cardPath := fmt.Sprintf("/panel/cards/%d", e.card.ID)

	if _, err := e.host.Lock(e.ctx, e.card.ID, cardhost.LockSuspectedFraud, actorAdmin, "system"); err != nil {
		t.Fatal(err)
	}
	e.open(ctx, cardPath)
	if exists(t, ctx, `form[action$="/unlock"]`) {
		t.Errorf("employee is offered Unlock of a code-7 lock")
	}
	if st := submitForm(t, ctx, cardPath+"/unlock", nil, true); st != http.StatusForbidden {
		t.Errorf("employee unlock of a code-7 lock: got %d, want 403", st)
	}
	if c, _ := e.host.Card(e.ctx, e.card.ID); c.LockCode != cardhost.LockSuspectedFraud {
		t.Fatalf("code-7 lock lifted by an employee: lock %d", c.LockCode)
	}
	mctx := tab(t)
	e.signIn(mctx, "manager")
	e.open(mctx, cardPath)
	if err := chromedp.Do(mctx, clearDone(), chromedp.Click(chromedp.CSS(`form[action$="/unlock"] button`)), chromedp.WaitVisible(chromedp.CSS("p.done"))); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.host.Card(e.ctx, e.card.ID); c.LockCode != cardhost.LockNone {
		t.Errorf("manager unlock: lock %d, want none", c.LockCode)
	}

	if _, err := e.host.Lock(e.ctx, e.card.ID, cardhost.LockLost, actorAdmin, "lost"); err != nil {
		t.Fatal(err)
	}
	e.open(mctx, cardPath)
	if exists(t, mctx, `form[action$="/unlock"]`) || !strings.Contains(text(t, mctx, "#lock"), "irreversible") {
		t.Errorf("an irreversible lock: want no Unlock and the lock marked irreversible")
	}
	if st := submitForm(t, mctx, cardPath+"/unlock", nil, true); st != http.StatusConflict {
		t.Errorf("forged unlock of a lost card: got %d, want 409", st)
	}
	if c, _ := e.host.Card(e.ctx, e.card.ID); c.LockCode != cardhost.LockLost {
		t.Errorf("lost card unlocked: lock %d", c.LockCode)
	}
	// Remove is an Admin's: not offered to a Manager, refused when forged.
	if exists(t, mctx, `form[action$="/remove"]`) {
		t.Errorf("manager is offered Remove")
	}
	if st := submitForm(t, mctx, cardPath+"/remove", nil, true); st != http.StatusForbidden {
		t.Errorf("manager remove: got %d, want 403", st)
	}
}

// TestPanelPartnerAdmin runs an Admin's partner work in the panel: create a
// partner and a program, reload a partner balance and set its threshold,
// sign a CSR and revoke the certificate; the customer page pages its
// transactions.
func TestPanelPartnerAdmin(t *testing.T) {
	e := newEnv(t)
	ctx := tab(t)
	e.signIn(ctx, "admin")
	e.open(ctx, "/panel/partners")
	if err := chromedp.Do(ctx, clearDone(),
		chromedp.SendKeys(chromedp.CSS("#pname"), "Beta Cards"),
		chromedp.SendKeys(chromedp.CSS("#pemail"), "ops@beta.example"),
		chromedp.Submit(chromedp.CSS("#pemail")),
		chromedp.WaitVisible(chromedp.CSS("p.done")),
	); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "h1"); got != "Beta Cards" {
		t.Fatalf("after creating a partner: page %q", got)
	}
	if err := chromedp.Do(ctx, clearDone(),
		eval(`document.querySelectorAll("details").forEach(function(d){d.open=true})`),
		chromedp.SendKeys(chromedp.CSS("#gname"), "Beta Blue"),
		chromedp.SendKeys(chromedp.CSS("#binlow"), "471234"),
		chromedp.SendKeys(chromedp.CSS("#gcur"), "EUR"),
		chromedp.SendKeys(chromedp.CSS("#gthr"), "100.00"),
		chromedp.Submit(chromedp.CSS("#gthr")),
		chromedp.WaitVisible(chromedp.CSS("p.done")),
	); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#programs tbody"); !strings.Contains(got, "Beta Blue") || !strings.Contains(got, "471234") {
		t.Fatalf("programs after create: %q", got)
	}
	progs, err := e.host.Programs(e.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var acc int64
	for _, p := range progs {
		if p.Name == "Beta Blue" {
			acc = p.PartnerAccountID
		}
	}
	if err := chromedp.Do(ctx, clearDone(),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf("#pamount%d", acc)), "750.25"),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf("#pref%d", acc)), "BANK-PT-1"),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf("#prefreason%d", acc)), "partner prefunding"),
		chromedp.Submit(chromedp.CSS(fmt.Sprintf("#pamount%d", acc))),
		chromedp.WaitVisible(chromedp.CSS("p.done")),
	); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.host.Account(e.ctx, acc); a.Balance != 75_025 {
		t.Errorf("partner balance after reload: %d, want 75025", a.Balance)
	}
	if err := chromedp.Do(ctx, clearDone(),
		chromedp.SetValue(chromedp.CSS(fmt.Sprintf("#thr%d", acc)), "1000.00"),
		chromedp.Submit(chromedp.CSS(fmt.Sprintf("#thr%d", acc))),
		chromedp.WaitVisible(chromedp.CSS("p.done")),
	); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "ul.gauges"); !strings.Contains(got, "threshold 1000.00 — below") {
		t.Errorf("gauge after threshold above the balance: %q", got)
	}

	// Sign a CSR, see the certificate, revoke it.
	csr := testCSR(t)
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#csr"), csr),
		chromedp.Submit(chromedp.CSS("#csr")),
		chromedp.WaitVisible(chromedp.CSS("#pem")),
	); err != nil {
		t.Fatal(err)
	}
	pem, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#pem").value`))
	if err != nil || !strings.HasPrefix(pem, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("signed certificate: %q, %v", pem, err)
	}
	e.open(ctx, e.pathOfPartnerNamed("Beta Cards"))
	if err := chromedp.Do(ctx, clearDone(), eval("window.confirm=function(){return true}"),
		chromedp.Click(chromedp.CSS(`#certs form button`)), chromedp.WaitVisible(chromedp.CSS("p.done"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#certs tbody"); !strings.Contains(got, "revoked") {
		t.Errorf("certificates after revoke: %q", got)
	}

	// An acquirer's CSR, signed on the partners page.
	e.open(ctx, "/panel/partners")
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#ekind"), "acquirer"),
		chromedp.SendKeys(chromedp.CSS("#entity"), "ACQ-1"),
		chromedp.SetValue(chromedp.CSS("#ecsr"), testCSR(t)),
		chromedp.Submit(chromedp.CSS("#ecsr")),
		chromedp.WaitVisible(chromedp.CSS("#pem")),
	); err != nil {
		t.Fatal(err)
	}
	e.open(ctx, "/panel/partners")
	if got := text(t, ctx, "#certs tbody"); !strings.Contains(got, "ACQ-1") || !strings.Contains(got, "valid") {
		t.Errorf("entity certificates: %q", got)
	}
	var kind string
	if err := e.pool.QueryRow(e.ctx, `SELECT kind FROM partner_certificates WHERE entity = 'ACQ-1'`).Scan(&kind); err != nil || kind != "acquirer" {
		t.Errorf("entity certificate recorded: kind %q, %v", kind, err)
	}

	// Transactions, paged by 20: 25 reloads make two pages.
	for i := range 25 {
		if _, err := e.led.Reload(e.ctx, e.balance, int64(100+i), fmt.Sprintf("page-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	e.open(ctx, fmt.Sprintf("/panel/customers/%d", e.user.ID))
	if n := count(t, ctx, "#transactions tbody tr"); n != 20 {
		t.Errorf("first page: %d rows, want 20", n)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(".pager a:last-child")), chromedp.WaitVisible(chromedp.CSS("#transactions"))); err != nil {
		t.Fatal(err)
	}
	if n := count(t, ctx, "#transactions tbody tr"); n != 6 { // the seed reload and 25 more: 26 entries
		t.Errorf("second page: %d rows, want 6", n)
	}
}

// TestPanelExceptionsQueue shows the exceptions table's open rows to the
// staff, and not to a partner viewer.
func TestPanelExceptionsQueue(t *testing.T) {
	e := newEnv(t)
	const insert = `INSERT INTO exceptions (kind, currency, amount, receivable, card_id, account_id, program_id, detail)
		VALUES ('over_capture', 'EUR', 1234, 1234, $1, $2, $3, 'completion above the hold')`
	if _, err := e.pool.Exec(e.ctx, insert, e.card.ID, e.balance, e.prog.ID); err != nil {
		t.Fatal(err)
	}
	ctx := tab(t)
	e.signIn(ctx, "employee")
	e.open(ctx, "/panel/exceptions?status=open")
	row := text(t, ctx, "#exceptions tbody tr")
	for _, want := range []string{"over_capture", "open", "12.34 EUR", "completion above the hold"} {
		if !strings.Contains(row, want) {
			t.Errorf("exception row %q lacks %q", row, want)
		}
	}
	e.open(ctx, "/panel/exceptions?status=closed")
	if got := text(t, ctx, "#exceptions tbody"); got != "No exceptions." {
		t.Errorf("closed exceptions: got %q", got)
	}
}

// TestPanelPhoneWidth opens every page at a phone's width and checks that
// none is wider than the screen (wide tables scroll inside their box).
func TestPanelPhoneWidth(t *testing.T) {
	e := newEnv(t)
	e.authorise(300)
	ctx := tab(t)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	e.signIn(ctx, "admin")
	for _, p := range []string{"/panel/summary", "/panel/customers?q=ada", fmt.Sprintf("/panel/customers/%d", e.user.ID),
		fmt.Sprintf("/panel/cards/%d", e.card.ID), "/panel/live", "/panel/partners", fmt.Sprintf("/panel/partners/%d", e.partner.ID),
		"/panel/exceptions"} {
		e.open(ctx, p)
		over, err := chromedp.Run(ctx, chromedp.Evaluate[int]("document.documentElement.scrollWidth - window.innerWidth"))
		if err != nil {
			t.Fatal(err)
		}
		if over > 0 {
			t.Errorf("%s at 390 px: %d px wider than the screen", p, over)
		}
	}
}

// TestPanelKeyboard signs in with the keyboard alone (the name field has
// the focus, Tab moves to the password, Enter submits) and checks that the
// first Tab of a page reaches the skip link.
func TestPanelKeyboard(t *testing.T) {
	e := newEnv(t)
	ctx := tab(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/panel/login"),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.KeyEvent("manager\t"+password+"\r"),
		chromedp.WaitVisible(chromedp.CSS(".who")),
	); err != nil {
		t.Fatalf("keyboard sign-in: %v", err)
	}
	if got := text(t, ctx, ".who small"); got != "(Manager)" {
		t.Errorf("signed in as %s, want (Manager)", got)
	}
	e.open(ctx, fmt.Sprintf("/panel/cards/%d", e.card.ID))
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.activeElement.className"))
	if err != nil || focused != "skip" {
		t.Errorf("first Tab focuses %q (%v), want the skip link", focused, err)
	}
	for _, id := range []string{"code", "reason"} {
		if !exists(t, ctx, fmt.Sprintf(`label[for=%q]`, id)) {
			t.Errorf("field #%s has no label", id)
		}
	}
}

// TestPanelBadInput sends hostile addresses and forms with a valid session
// and token: each is answered 4xx, never 5xx, and changes nothing.
func TestPanelBadInput(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	tok := e.loginToken(c)
	if r := formPost(e, c, "/panel/login", url.Values{"name": {"admin"}, "password": {password}, "csrf": {tok}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", r.StatusCode)
	}
	// The session's CSRF token, from a page.
	resp, err := c.Get(e.url + fmt.Sprintf("/panel/cards/%d", e.card.ID))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := string(regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)[1])
	gets := []string{"/panel/customers?q=%ff%fe", "/panel/customers?q=a%00b", "/panel/customers/abc", "/panel/customers/99999999",
		"/panel/cards/-1", "/panel/cards/99999999", "/panel/live?card=x", "/panel/live?code=%27%3B", "/panel/exceptions?status=bogus",
		"/panel/partners/0", "/panel/nothing", "/panel/customers?bin=12&last4=1", "/panel/approvals?status=bogus"}
	for _, p := range gets {
		resp, err := c.Get(e.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 && resp.StatusCode != http.StatusOK || resp.StatusCode >= 500 {
			t.Errorf("GET %s: %d, want 4xx or a page", p, resp.StatusCode)
		}
	}
	card := fmt.Sprintf("/panel/cards/%d", e.card.ID)
	posts := []struct {
		path string
		form url.Values
	}{
		{card + "/lock", url.Values{"code": {"9"}}},
		{card + "/lock", url.Values{"code": {"3"}, "reason": {"bad\xffutf8"}}},
		{card + "/lock", url.Values{"code": {"3"}, "reason": {strings.Repeat("x", 600)}}},
		{card + "/explode", nil},
		{card + "/unlock", nil},
		{fmt.Sprintf("/panel/customers/%d/balances/%d/reload", e.user.ID, e.balance), url.Values{"amount": {"-5"}}},
		{fmt.Sprintf("/panel/customers/%d/balances/%d/reload", e.user.ID, e.balance), url.Values{"amount": {"1.234"}}},
		{fmt.Sprintf("/panel/customers/%d/balances/%d/reload", e.user.ID, e.prog.PartnerAccountID), url.Values{"amount": {"1.00"}}},
		{fmt.Sprintf("/panel/customers/%d/kyc", e.user.ID), url.Values{"status": {"maybe"}}},
		{"/panel/partners", url.Values{"name": {""}}},
		{fmt.Sprintf("/panel/partners/%d/programs", e.partner.ID), url.Values{"name": {"x"}, "binLow": {"12"}, "currency": {"EUR"}}},
		{fmt.Sprintf("/panel/partners/%d/certificates", e.partner.ID), url.Values{"csr": {"not a csr"}}},
		{"/panel/certificates/zz/revoke", nil},
		{"/panel/certificates/abcdef/revoke", nil},
		{fmt.Sprintf("/panel/partners/%d/viewers", e.partner.ID), url.Values{"name": {"v"}, "password": {"short"}}},
		{fmt.Sprintf("/panel/balances/%d/threshold", e.balance), url.Values{"threshold": {"1"}}},
		{"/panel/exceptions/abc/resolve", url.Values{"resolution": {"written_off"}}},
		{"/panel/exceptions/99999/resolve", url.Values{"resolution": {"written_off"}}},
		{"/panel/exceptions/99999/resolve", url.Values{"resolution": {"vanished"}}},
		{"/panel/exceptions/99999/resolve", url.Values{"resolution": {"recovered"}}},
		{"/panel/exceptions/99999/resolve", url.Values{"resolution": {"charged_back"}, "reference": {strings.Repeat("r", 65)}}},
		{"/panel/approvals/99999/approve", nil},
		{"/panel/approvals/99999/reject", nil},
		{"/panel/approvals/1/explode", nil},
		{"/panel/approvals/x/approve", nil},
	}
	before, _ := e.host.Account(e.ctx, e.balance)
	for _, p := range posts {
		f := url.Values{"csrf": {csrf}}
		for k, v := range p.form {
			f[k] = v
		}
		r := formPost(e, c, p.path, f)
		if r.StatusCode < 400 || r.StatusCode >= 500 {
			t.Errorf("POST %s %v: %d, want 4xx", p.path, p.form, r.StatusCode)
		}
	}
	after, _ := e.host.Account(e.ctx, e.balance)
	if cd, _ := e.host.Card(e.ctx, e.card.ID); cd.LockCode != cardhost.LockNone || after.Balance != before.Balance {
		t.Errorf("refused forms changed something: lock %d, balance %d (was %d)", cd.LockCode, after.Balance, before.Balance)
	}
}

// TestPanelPhysicalCard links and activates an ordered physical card as an
// Employee, each action offered only in the state it applies to.
func TestPanelPhysicalCard(t *testing.T) {
	e := newEnv(t)
	pc, err := e.host.OrderPhysicalCard(e.ctx, e.user.ID, e.balance, actorAdmin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := tab(t)
	e.signIn(ctx, "employee")
	e.open(ctx, fmt.Sprintf("/panel/cards/%d", pc.ID))
	if got := text(t, ctx, "#state"); got != "ordered" {
		t.Fatalf("state %q, want ordered", got)
	}
	if exists(t, ctx, `form[action$="/activate"]`) {
		t.Errorf("an ordered card offers Activate")
	}
	for _, step := range []struct{ action, state string }{{"link", "inactive"}, {"activate", "active"}} {
		if err := chromedp.Do(ctx, clearDone(), chromedp.Click(chromedp.CSS(fmt.Sprintf(`form[action$="/%s"] button`, step.action))),
			chromedp.WaitVisible(chromedp.CSS("p.done"))); err != nil {
			t.Fatalf("%s: %v", step.action, err)
		}
		if got := text(t, ctx, "#state"); got != step.state {
			t.Errorf("after %s: state %q, want %s", step.action, got, step.state)
		}
	}
	if c, _ := e.host.Card(e.ctx, pc.ID); c.State != cardhost.StateActive {
		t.Errorf("card state %s, want active", c.State)
	}
	if got := text(t, ctx, "#history tbody"); !strings.Contains(got, "link") || !strings.Contains(got, "activate") {
		t.Errorf("history: %q", got)
	}
}
