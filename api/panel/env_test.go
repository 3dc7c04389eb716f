package panel_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/api"
	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
	"github.com/antaca/antaca/specs"
	authswitch "github.com/antaca/antaca/switch"
)

// browser is the one headless Chromium of this test binary; each test
// opens its own browser contexts (separate cookies) in it.
var (
	browserCtx context.Context
	browserErr error
)

func TestMain(m *testing.M) {
	stop := startBrowser()
	code := ledgertest.Run(m)
	stop()
	os.Exit(code)
}

// chromiumPath finds Chromium: ANTACA_CHROMIUM, else the Debian package's.
func chromiumPath() string {
	if p := os.Getenv("ANTACA_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

func startBrowser() context.CancelFunc {
	path := chromiumPath()
	if path == "" {
		browserErr = errors.New("no Chromium found: run scripts/ensure-chromium.sh (make test does) or set ANTACA_CHROMIUM")
		return func() {}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("ignore-certificate-errors", true), // the test CA is not in the browser's store
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	if err := chromedp.Do(ctx); err != nil {
		browserErr = fmt.Errorf("start chromium: %w", err)
	}
	browserCtx = ctx
	return func() { cancelCtx(); cancelAlloc() }
}

// tab opens a page in a fresh browser context (its own cookies), closed at
// the end of the test.
func tab(t *testing.T) context.Context {
	t.Helper()
	if browserErr != nil {
		t.Fatal(browserErr)
	}
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelT(); cancel() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	return ctx
}

var (
	keysOnce sync.Once
	hostKeys *hsm.Keys
	jweKey   *rsa.PrivateKey
)

const password = "panel-test-password"

// env is the API with its panel over real TLS, the card host and ledger on
// a fresh database, and an iso87 switch on a real socket deciding with the
// same card host.
type env struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	host    *cardhost.Host
	led     *ledger.Ledger
	srv     *api.Server
	url     string
	roots   *x509.CertPool
	now     atomic.Pointer[time.Time]
	iso     *connection.Connection
	stan    atomic.Int64
	partner ledger.Partner
	prog    cardhost.Program
	user    cardhost.User
	balance int64
	card    cardhost.Card
	data    cardhost.CardData
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ctx: t.Context(), pool: ledgertest.Pool(t)}
	start := time.Now()
	e.now.Store(&start)
	keysOnce.Do(func() {
		var err error
		if hostKeys, err = hsm.GenerateKeys(); err != nil {
			panic(err)
		}
		if jweKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.led = ledger.New(e.pool, ledger.Config{Logger: log})
	e.host = cardhost.NewHost(e.pool, e.led, hostKeys, cardhost.Config{Logger: log})
	ca, caKey, err := api.NewCA("Antaca panel test CA", start)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := api.IssueServerCertificate(ca, caKey, []string{"127.0.0.1", "localhost"}, start, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AddCert(ca)
	e.srv, err = api.New(api.Config{TLSCert: cert, CA: ca, CAKey: caKey, JWEKey: jweKey, PasswordIterations: 1000, Logger: log,
		Now: func() time.Time { return *e.now.Load() }}, e.pool, e.host)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "https://" + ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("api serve: %v", err)
		}
	})
	for _, r := range []api.Role{api.RoleAdmin, api.RoleManager, api.RoleEmployee} {
		if _, err := e.srv.CreateAdmin(e.ctx, strings.ToLower(string(r)), password, r, 0); err != nil {
			t.Fatal(err)
		}
	}
	e.seed()
	e.startSwitch(log)
	return e
}

// advance moves the API's clock.
func (e *env) advance(d time.Duration) {
	n := e.now.Load().Add(d)
	e.now.Store(&n)
}

// seed creates a partner with a credit program, a verified customer with a
// funded EUR balance and an active virtual card.
func (e *env) seed() {
	t := e.t
	var err error
	if e.partner, err = e.host.CreatePartner(e.ctx, "Acme Pay", "ops@acme.example"); err != nil {
		t.Fatal(err)
	}
	low := int64(50_000)
	e.prog, err = e.host.CreateProgram(e.ctx, cardhost.ProgramSpec{PartnerID: e.partner.ID, Name: "Acme Green", BINLow: "451234", BINHigh: "451234",
		Currency: "EUR", CardTypes: []cardhost.CardType{cardhost.Virtual, cardhost.Physical}, Funding: cardhost.FundingPartnerCredit, LowThreshold: &low})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.led.Reload(e.ctx, e.prog.PartnerAccountID, 200_000, "seed-partner"); err != nil {
		t.Fatal(err)
	}
	if e.user, err = e.host.RegisterUser(e.ctx, e.prog.ID, "cust-1", "Ada Lovelace", "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.host.SetKYC(e.ctx, e.user.ID, cardhost.KYCVerified, "admin"); err != nil {
		t.Fatal(err)
	}
	acc, err := e.host.CreateBalance(e.ctx, e.user.ID, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	e.balance = acc.ID
	if _, err := e.led.Reload(e.ctx, acc.ID, 25_000, "seed-user"); err != nil {
		t.Fatal(err)
	}
	e.card, e.data, err = e.host.CreateVirtualCard(e.ctx, e.user.ID, acc.ID, cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "seed"})
	if err != nil {
		t.Fatal(err)
	}
}

// startSwitch serves iso87 on 127.0.0.1:0 with the env's card host and
// connects an acquirer to it.
func (e *env) startSwitch(log *slog.Logger) {
	t := e.t
	sw, err := authswitch.New(authswitch.Config{Profile: authswitch.ProfileISO87, ZoneKey: "zpk-test", Logger: log, Registerer: prometheus.NewRegistry()}, e.host)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- sw.Serve(ln) }()
	spec, err := specs.ISOSpec(authswitch.ProfileISO87)
	if err != nil {
		t.Fatal(err)
	}
	e.iso, err = connection.New(ln.Addr().String(), spec, authswitch.ReadLengthHeader, authswitch.WriteLengthHeader, connection.SendTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.iso.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.iso.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sw.Shutdown(ctx)
		if err := <-served; !errors.Is(err, authswitch.ErrServerClosed) {
			t.Errorf("switch serve: %v", err)
		}
	})
}

// authorise sends an iso87 authorisation (0100) of amount euro cents for
// the env's card and returns DE39 of the answer.
func (e *env) authorise(amount int64) string {
	e.t.Helper()
	stan := int(e.stan.Add(1))
	spec, err := specs.ISOSpec(authswitch.ProfileISO87)
	if err != nil {
		e.t.Fatal(err)
	}
	m := iso8583.NewMessage(spec)
	m.MTI("0100")
	for k, v := range map[int]string{2: e.data.PAN, 3: "000000", 4: fmt.Sprintf("%012d", amount), 7: "0601120000",
		11: fmt.Sprintf("%06d", stan), 12: "140000", 13: "0601", 14: e.data.Expiry, 18: "5411", 22: "012", 32: "123456",
		37: fmt.Sprintf("RRN%09d", stan), 41: "TERM0001", 42: "MERCHANT0000001", 43: "ACME STORE               PARIS        FR", 49: "978"} {
		if err := m.Field(k, v); err != nil {
			e.t.Fatal(err)
		}
	}
	resp, err := e.iso.Send(m)
	if err != nil {
		e.t.Fatalf("send: %v", err)
	}
	code, err := resp.GetString(39)
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// client is an HTTPS client trusting the test CA, with a cookie jar.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// apiJSON calls the JSON API with an admin bearer token.
func (e *env) apiJSON(method, path, token string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			e.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// signIn signs in through the browser's sign-in form.
func (e *env) signIn(ctx context.Context, name string) {
	e.t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/panel/"),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), name),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(".who")),
	)
	if err != nil {
		e.t.Fatalf("sign in as %s: %v", name, err)
	}
}

// open navigates and returns the page's HTML, checked for full PANs.
func (e *env) open(ctx context.Context, path string) string {
	e.t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+path), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		e.t.Fatalf("open %s: %v", path, err)
	}
	return e.html(ctx, path)
}

// html returns the current page's HTML, checked for full PANs.
func (e *env) html(ctx context.Context, where string) string {
	e.t.Helper()
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		e.t.Fatalf("html of %s: %v", where, err)
	}
	e.noFullPAN(where, html)
	return html
}

var digitRun = regexp.MustCompile(`[0-9]{12,19}`)

// noFullPAN fails when a page holds the test card's PAN or any run of
// 12-19 digits that passes the Luhn check.
func (e *env) noFullPAN(where, html string) {
	e.t.Helper()
	if strings.Contains(html, e.data.PAN) {
		e.t.Errorf("%s: the page contains the card's full PAN", where)
	}
	for _, run := range digitRun.FindAllString(html, -1) {
		if cardhost.LuhnValid(run) {
			e.t.Errorf("%s: the page contains a Luhn-valid number of %d digits", where, len(run))
		}
	}
}

// text reads an element's text.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// exists reports whether a selector matches now.
func exists(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	return count(t, ctx, sel) > 0
}

// loginToken opens the sign-in page with c and returns its CSRF token.
func (e *env) loginToken(c *http.Client) string {
	e.t.Helper()
	resp, err := c.Get(e.url + "/panel/login")
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		e.t.Fatal("login page has no CSRF field")
	}
	return string(m[1])
}

// formPost posts a form with an HTTP client.
func formPost(e *env, c *http.Client, path string, v url.Values) *http.Response {
	e.t.Helper()
	resp, err := c.PostForm(e.url+path, v)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

var actorAdmin = cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "test"}

// count is the number of elements a selector matches.
func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// pathOfPartnerNamed is the panel page of the partner with this name.
func (e *env) pathOfPartnerNamed(name string) string {
	e.t.Helper()
	ps, err := e.host.Partners(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range ps {
		if p.Name == name {
			return fmt.Sprintf("/panel/partners/%d", p.ID)
		}
	}
	e.t.Fatalf("no partner %q", name)
	return ""
}

// testCSR is a PEM certificate signing request of a new P-256 key.
func testCSR(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "beta-cards"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// clearDone removes the page's "done" notes, so that waiting for one after
// a submit waits for the next page, not this one.
func clearDone() chromedp.Action[chromedp.Void] {
	return eval(`document.querySelectorAll("p.done").forEach(function(p){p.remove()})`)
}
