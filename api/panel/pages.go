package panel

import (
	"errors"
	"io/fs"
	"net/http"
	"strconv"
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
