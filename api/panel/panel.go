// Package panel is the administration panel: HTML pages at /panel/ served
// by the API process for admin users (Admin, Manager, Employee, with the
// role per action of DESIGN.md section 8, enforced here on the server) and
// for partner viewers (read only, one partner). Pages are html/template
// with embedded assets; the only script is static/panel.js (the
// Content-Security-Policy allows no inline script). Sign-in, sessions and
// login limits are the API's, reached through Auth; card and money
// operations go through the card host (Host); reads through Reader.
package panel

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// Role is a panel user's role: the admin roles and the partner viewer.
type Role string

const (
	RoleAdmin    Role = "Admin"
	RoleManager  Role = "Manager"
	RoleEmployee Role = "Employee"
	RolePartner  Role = "Partner" // partner viewer: read only, one partner
)

// Roles per action (DESIGN.md section 8).
var (
	staff        = []Role{RoleAdmin, RoleManager, RoleEmployee}
	everyone     = []Role{RoleAdmin, RoleManager, RoleEmployee, RolePartner}
	adminOnly    = []Role{RoleAdmin}
	adminManager = []Role{RoleAdmin, RoleManager}
)

// Session is a signed-in panel user.
type Session struct {
	Token     string
	AdminID   int64
	Name      string
	Role      Role
	PartnerID int64 // RolePartner: the partner they may see
	ExpiresAt time.Time
}

// CSR is a certificate signing request to sign.
type CSR struct {
	Kind      string // partner, scheme or acquirer
	PartnerID int64  // kind partner
	Entity    string // kind scheme or acquirer
	PEM       string
}

// Errors of Auth.
var (
	ErrBadLogin  = errors.New("name or password is wrong")
	ErrNoSession = errors.New("no session or session expired")
)

// LimitError is Auth.Login's answer past the login limit.
type LimitError struct{ RetryAfter int }

func (e *LimitError) Error() string {
	return fmt.Sprintf("too many login attempts; try again in %d s", e.RetryAfter)
}

// Auth is what the panel needs from the API's admin accounts.
type Auth interface {
	// Login checks a name and password under the API's login limits and
	// opens a session: ErrBadLogin, *LimitError or another error.
	Login(ctx context.Context, name, password string) (Session, error)
	// Session returns the session of token, extended to a full idle
	// period when extend (idle expiry); ErrNoSession when unknown or
	// expired.
	Session(ctx context.Context, token string, extend bool) (Session, error)
	Logout(ctx context.Context, token string) error
	// CreateViewer creates a partner viewer login.
	CreateViewer(ctx context.Context, name, password string, partnerID, by int64) error
	// SignCSR signs a CSR: a partner's (kind "partner", partnerID) or an
	// external entity's (kind "scheme" or "acquirer", entity). It returns
	// the serial and the PEM.
	SignCSR(ctx context.Context, req CSR, by int64) (serial, certPEM string, err error)
	Revoke(ctx context.Context, serial string) error
}

// Host is what the panel needs from the card host (*cardhost.Host).
type Host interface {
	CustomerPartner(ctx context.Context, customerID int64) (int64, error)
	User(ctx context.Context, id int64) (cardhost.User, error)
	SetKYC(ctx context.Context, userID int64, status cardhost.KYCStatus, by string) (cardhost.User, error)
	Balances(ctx context.Context, userID int64) ([]cardhost.Balance, error)
	AdminReload(ctx context.Context, accountID, amount int64, admin, reason, reference string) (ledger.Approval, error)
	CurrencyExponent(ctx context.Context, code string) (int, error)
	Card(ctx context.Context, id int64) (cardhost.Card, error)
	CreateVirtualCard(ctx context.Context, userID, accountID int64, actor cardhost.Actor) (cardhost.Card, cardhost.CardData, error)
	Lock(ctx context.Context, cardID int64, code cardhost.LockCode, actor cardhost.Actor, why string) (cardhost.Card, error)
	Unlock(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	Remove(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	LinkCard(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	Activate(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	PrintVirtual(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, error)
	ResetCVV(ctx context.Context, cardID int64, actor cardhost.Actor) (cardhost.Card, cardhost.CardData, error)
	History(ctx context.Context, cardID int64) ([]cardhost.CardEvent, error)
	CreatePartner(ctx context.Context, name, notifyEmail string) (ledger.Partner, error)
	Partner(ctx context.Context, id int64) (ledger.Partner, error)
	Partners(ctx context.Context) ([]ledger.Partner, error)
	CreateProgram(ctx context.Context, spec cardhost.ProgramSpec) (cardhost.Program, error)
	Program(ctx context.Context, id int64) (cardhost.Program, error)
	Programs(ctx context.Context, partnerID int64) ([]cardhost.Program, error)
	Account(ctx context.Context, id int64) (ledger.Account, error)
	PartnerBalances(ctx context.Context, partnerID int64) ([]ledger.Account, error)
	OpenPartnerBalance(ctx context.Context, partnerID int64, kind, currency string, programID int64, threshold *int64) (ledger.Account, error)
	SetThreshold(ctx context.Context, accountID int64, threshold *int64) error
	Summary(ctx context.Context) ([]ledger.CurrencySummary, error)
	// The exceptions queue and the four-eyes approvals, as the API's
	// /admin/exceptions and /admin/approvals read and decide them.
	Exceptions(ctx context.Context, state string) ([]ledger.Exception, error)
	ResolveException(ctx context.Context, id int64, resolution, admin, reference string) (ledger.Exception, ledger.Approval, error)
	Approvals(ctx context.Context, status string) ([]ledger.Approval, error)
	Decide(ctx context.Context, id int64, admin string, approve bool) (ledger.Approval, error)
}

// Reader is the panel's read queries (*ledger.PanelReader).
type Reader interface {
	AuthsPerMinute(ctx context.Context, since time.Time) ([]ledger.MinuteStat, error)
	RecentAnswers(ctx context.Context, f ledger.AnswerFilter) ([]ledger.Answer, error)
	SearchCustomers(ctx context.Context, q ledger.CustomerQuery) ([]ledger.CustomerHit, error)
	EntriesBefore(ctx context.Context, accountID, beforeID int64, limit int) ([]ledger.Entry, error)
	PartnerCertificates(ctx context.Context, partnerID int64) ([]ledger.Certificate, error)
	EntityCertificates(ctx context.Context) ([]ledger.Certificate, error)
	PartnerViewers(ctx context.Context, partnerID int64) ([]ledger.Viewer, error)
	AdminNames(ctx context.Context) (map[int64]string, error)
}

// Config configures a Panel.
type Config struct {
	Auth   Auth
	Host   Host
	Reader Reader
	// Logger receives errors. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Explain turns a refusal of the card host, the ledger or Auth into a
	// status and a message for the user (ok false: an internal error,
	// logged and not shown). Default: every error is internal.
	Explain func(err error) (status int, message string, ok bool)
}

// Panel serves the pages. It is safe for concurrent use.
type Panel struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Cookie names: __Host- cookies are Secure, Path=/ and bound to the host.
const (
	sessionCookie = "__Host-antaca-panel"
	loginCookie   = "__Host-antaca-login"
)

// New builds the panel.
func New(cfg Config) (*Panel, error) {
	if cfg.Auth == nil || cfg.Host == nil || cfg.Reader == nil {
		return nil, errors.New("panel: Auth, Host and Reader are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Explain == nil {
		cfg.Explain = func(error) (int, string, bool) { return 0, "", false }
	}
	p := &Panel{cfg: cfg, log: cfg.Logger, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("panel templates: %w", err)
	}
	names, _ := fs.Glob(templateFiles, "templates/*.html")
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFiles, n)
		if err != nil {
			return nil, fmt.Errorf("panel template %s: %w", name, err)
		}
		p.pages[name] = t
	}
	p.routes()
	return p, nil
}

// Handler serves every /panel/ path.
func (p *Panel) Handler() http.Handler { return p.mux }

// call is one request to a page.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	s    Session
	csrf string
	p    *Panel
}

func (c *call) ctx() context.Context { return c.r.Context() }

// handle registers h behind the session and the roles; a POST must carry
// the session's CSRF token.
func (p *Panel) handle(pattern string, roles []Role, h func(*call) error) {
	p.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		secureHeaders(w)
		ck, err := r.Cookie(sessionCookie)
		if err != nil || ck.Value == "" {
			p.toLogin(w, r)
			return
		}
		// The live view's polling is not a person's activity: it does not
		// keep an unattended session open.
		s, err := p.cfg.Auth.Session(r.Context(), ck.Value, !strings.HasSuffix(r.URL.Path, "/rows"))
		if errors.Is(err, ErrNoSession) {
			clearCookie(w, sessionCookie)
			p.toLogin(w, r)
			return
		}
		if err != nil {
			p.fail(w, r, nil, err)
			return
		}
		c := &call{w: w, r: r, s: s, csrf: csrfOf(s.Token), p: p}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		}
		if err := r.ParseForm(); err != nil || !cleanForm(r.Form) {
			c.status(http.StatusBadRequest, "The form or the address could not be read.")
			return
		}
		if r.Method == http.MethodPost {
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(c.csrf)) != 1 {
				c.status(http.StatusForbidden, "The form was refused: its security token is missing or wrong. Reload the page and try again.")
				return
			}
		}
		if !slices.Contains(roles, s.Role) {
			c.status(http.StatusForbidden, "Your role may not do this.")
			return
		}
		if err := h(c); err != nil {
			p.fail(w, r, c, err)
		}
	})
}

// cleanForm reports whether every value is valid UTF-8 without NUL, as
// PostgreSQL text must be.
func cleanForm(f map[string][]string) bool {
	for k, vs := range f {
		if !utf8.ValidString(k) {
			return false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				return false
			}
		}
	}
	return true
}

// csrfOf derives the session's CSRF token from its (secret, HttpOnly)
// session token: a page can carry it, a forged form elsewhere cannot know it.
func csrfOf(token string) string {
	h := sha256.Sum256([]byte("antaca-panel-csrf\x00" + token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func secureHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

func clearCookie(w http.ResponseWriter, name string) { setCookie(w, name, "", -1) }

func (p *Panel) toLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/rows") {
		http.Redirect(w, r, "/panel/login", http.StatusSeeOther)
		return
	}
	p.render(w, nil, http.StatusUnauthorized, "message", "Signed out", map[string]any{"Message": "Your session ended. Sign in again."})
}

// InputError is an error whose message is for the user; Status is the
// answer's status.
type InputError struct {
	Status  int
	Message string
}

func (e *InputError) Error() string { return e.Message }

func badInput(format string, args ...any) error {
	return &InputError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

var errNotFound = &InputError{Status: http.StatusNotFound, Message: "Not found."}

// fail answers an error page: a user's mistake or a refusal with its
// message, anything else as an internal error (logged, not shown).
func (p *Panel) fail(w http.ResponseWriter, r *http.Request, c *call, err error) {
	var ue *InputError
	if errors.As(err, &ue) {
		p.renderErr(w, c, ue.Status, ue.Message)
		return
	}
	if status, msg, ok := p.cfg.Explain(err); ok && status < 500 {
		p.renderErr(w, c, status, msg)
		return
	}
	p.log.Error("panel error", "path", r.URL.Path, "err", err)
	p.renderErr(w, c, http.StatusInternalServerError, "Internal error; it was logged.")
}

func (p *Panel) renderErr(w http.ResponseWriter, c *call, status int, msg string) {
	var s *Session
	csrf := ""
	if c != nil {
		s, csrf = &c.s, c.csrf
	}
	p.renderPage(w, s, csrf, status, "message", "Refused", map[string]any{"Message": msg})
}

func (c *call) status(code int, msg string) { c.p.renderErr(c.w, c, code, msg) }

// view is what every page template gets.
type view struct {
	Title string
	S     *Session
	CSRF  string
	Done  string
	Data  any
}

func (p *Panel) render(w http.ResponseWriter, s *Session, status int, page, title string, data any) {
	p.renderPage(w, s, "", status, page, title, data)
}

func (p *Panel) renderPage(w http.ResponseWriter, s *Session, csrf string, status int, page, title string, data any) {
	t := p.pages[page]
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, "layout.html", view{Title: title, S: s, CSRF: csrf, Data: data}); err != nil {
		p.log.Error("panel render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, buf.String())
}

// page renders a page of the signed-in user; ?done= names the action just
// done (a fixed text, never echoed input).
func (c *call) page(name, title string, data any) error {
	t := c.p.pages[name]
	if t == nil {
		return fmt.Errorf("no page %s", name)
	}
	v := view{Title: title, S: &c.s, CSRF: c.csrf, Data: data, Done: doneText[c.r.URL.Query().Get("done")]}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(c.w, buf.String())
	return nil
}

// fragment renders a template without the layout (the live view's rows).
func (c *call) fragment(page, name string, data any) error {
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return c.p.pages[page].ExecuteTemplate(c.w, name, data)
}

var doneText = map[string]string{
	"locked": "Card locked.", "unlocked": "Card unlocked.", "activated": "Card activated.", "linked": "Card linked.",
	"printed": "Plastic copy ordered.", "cvv": "A new CVV was generated; the cardholder reads it in their app.",
	"removed": "Card removed.", "reloaded": "Balance reloaded.", "reload_pending": "Reload waiting for a second Admin's approval (four eyes).", "threshold": "Threshold saved.", "created": "Created.",
	"kyc": "KYC status saved.", "signed": "Certificate signed.", "revoked": "Certificate revoked.", "viewer": "Partner viewer created.",
	"card":     "Virtual card issued.",
	"resolved": "Exception resolved.", "resolve_pending": "Resolution waiting for a second Admin's approval (four eyes).",
	"approved": "Approved and posted.", "rejected": "Rejected; nothing was posted.",
}

// done redirects after a successful POST (303: the reload does not post
// again).
func (c *call) done(path, what string) error {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	http.Redirect(c.w, c.r, path+sep+"done="+what, http.StatusSeeOther)
	return nil
}

// admin is the signed-in Admin as the ledger records actors (the API's
// principal scope): admin:<id>.
func (c *call) admin() string { return fmt.Sprintf("admin:%d", c.s.AdminID) }

func (c *call) actor() cardhost.Actor {
	return cardhost.Actor{Kind: cardhost.ActorAdmin, ID: fmt.Sprint(c.s.AdminID)}
}

func (c *call) is(roles ...Role) bool { return slices.Contains(roles, c.s.Role) }

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
