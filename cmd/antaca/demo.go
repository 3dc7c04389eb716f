package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/api"
	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
)

// Demo is what `antaca demo -json` prints: development data only.
type Demo struct {
	Partner     string `json:"partner"`
	PartnerID   int64  `json:"partner_id"`
	ProgramID   int64  `json:"program_id"`
	CustomerID  int64  `json:"customer_id"`
	BalanceID   int64  `json:"balance_id"`
	CardID      int64  `json:"card_id"`
	PAN         string `json:"pan"`
	Expiry      string `json:"expiry"`
	CVC2        string `json:"cvc2"`
	PIN         string `json:"pin"`
	Currency    string `json:"currency"` // ISO 4217 numeric
	Available   int64  `json:"available"`
	ZPK         string `json:"zpk"` // zone PIN key of the iso2003 connection, hex
	ZPK87       string `json:"zpk_iso87"`
	ISO2003Addr string `json:"iso2003_addr"`
	ISO87Addr   string `json:"iso87_addr"`

	APIURL        string `json:"api_url"`
	CACert        string `json:"ca_cert"`
	PartnerCert   string `json:"partner_cert"`
	PartnerKey    string `json:"partner_key"`
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
	AdminRole     string `json:"admin_role"`
}

const (
	demoPartner = "Demo Partner"
	demoPIN     = "1234"
)

// demo creates the demo data once and prints it.
func demo(ctx context.Context, args []string, stdout io.Writer) error {
	var f serveFlags
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	f.register(fs, "demo")
	asJSON := fs.Bool("json", os.Getenv("ANTACA_DEMO_JSON") == "true", "print one JSON object (env ANTACA_DEMO_JSON=true)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := f.logger()
	pool, closeFn, err := f.open(ctx, log)
	if err != nil {
		return err
	}
	defer closeFn()
	if _, err := ledger.Migrate(ctx, pool); err != nil {
		return err
	}
	keys, err := loadKeys(f.keys, f.dataDir)
	if err != nil {
		return err
	}
	host := cardhost.NewHost(pool, ledger.New(pool, ledger.Config{}), keys, cardhost.Config{Logger: log})
	srv, err := api.New(api.Config{CA: keys.CACert, CAKey: keys.CAKey, JWEKey: keys.JWEKey, Logger: log}, pool, host)
	if err != nil {
		return err
	}
	d, err := ensureFullDemo(ctx, host, srv, &f, keys)
	if err != nil {
		return err
	}
	// The addresses of a running `antaca all`, not this command's defaults.
	if m := readAddresses(filepath.Join(f.dataDir, "addresses.json")); m != nil {
		applyAddresses(&d, m, fs)
	}
	return printDemo(stdout, d, *asJSON)
}

const (
	demoAdmin         = "demo-admin"
	demoAdminPassword = "demo-admin-password"
)

// ensureFullDemo creates the demo data when missing, the development
// certificates of the demo partner and the demo admin.
func ensureFullDemo(ctx context.Context, host *cardhost.Host, srv *api.Server, f *serveFlags, keys *hsm.Keys) (Demo, error) {
	d, err := ensureDemo(ctx, host, keys)
	if err != nil {
		return Demo{}, err
	}
	certDir, err := filepath.Abs(filepath.Join(f.dataDir, "certs"))
	if err != nil {
		return Demo{}, err
	}
	files, err := api.IssueDevCertificates(ctx, host.Pool(), keys.CACert, keys.CAKey, d.PartnerID, certDir)
	if err != nil {
		return Demo{}, fmt.Errorf("demo certificates: %w", err)
	}
	if _, err := srv.CreateAdmin(ctx, demoAdmin, demoAdminPassword, api.RoleAdmin, 0); err != nil && !errors.Is(err, api.ErrAdminExists) {
		return Demo{}, fmt.Errorf("demo admin: %w", err)
	}
	d.ISO2003Addr, d.ISO87Addr = hostPort(f.iso2003), hostPort(f.iso87)
	d.APIURL = "https://" + hostPort(f.apiAddr)
	d.CACert, d.PartnerCert, d.PartnerKey = files.CACert, files.PartnerCert, files.PartnerKey
	d.AdminUser, d.AdminPassword, d.AdminRole = demoAdmin, demoAdminPassword, string(api.RoleAdmin)
	return d, nil
}

// hostPort turns a listen address such as ":8583" into one to dial.
func hostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func loadKeys(path, dataDir string) (*hsm.Keys, error) {
	if path == "" {
		path = filepath.Join(dataDir, "keys.json")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	k, _, err := hsm.LoadOrCreateKeys(path)
	if err != nil {
		return nil, fmt.Errorf("keys %s: %w", path, err)
	}
	return k, nil
}

// ensureDemo creates a demo partner, program, verified user, funded balance
// and an active physical card with PIN 1234, unless they exist already.
func ensureDemo(ctx context.Context, host *cardhost.Host, keys *hsm.Keys) (Demo, error) {
	d := Demo{Partner: demoPartner, PIN: demoPIN}
	const find = `SELECT p.id, pr.id, u.id, c.account_id, c.id FROM partners p
		JOIN programs pr ON pr.partner_id = p.id JOIN users u ON u.program_id = pr.id
		JOIN cards c ON c.user_id = u.id WHERE p.name = $1 AND c.state <> 'removed' ORDER BY c.id LIMIT 1`
	err := host.Pool().QueryRow(ctx, find, demoPartner).Scan(&d.PartnerID, &d.ProgramID, &d.CustomerID, &d.BalanceID, &d.CardID)
	if errors.Is(err, pgx.ErrNoRows) {
		err = createDemo(ctx, host, &d)
	}
	if err != nil {
		return Demo{}, fmt.Errorf("demo: %w", err)
	}
	card, data, err := host.FullData(ctx, d.CardID)
	if err != nil {
		return Demo{}, fmt.Errorf("demo: %w", err)
	}
	prog, err := host.Program(ctx, card.ProgramID)
	if err != nil {
		return Demo{}, err
	}
	acc, err := host.Ledger().Account(ctx, d.BalanceID)
	if err != nil {
		return Demo{}, err
	}
	d.PAN, d.Expiry, d.CVC2 = data.PAN, data.Expiry, data.CVC2
	d.Currency, d.Available = prog.CurrencyNumeric, acc.Balance-acc.Held
	d.ZPK = hex.EncodeToString(keys.ZonePINKeys[hsm.ZoneISO2003])
	d.ZPK87 = hex.EncodeToString(keys.ZonePINKeys[hsm.ZoneISO87])
	return d, nil
}

func createDemo(ctx context.Context, host *cardhost.Host, d *Demo) error {
	l := host.Ledger()
	admin := cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "demo"}
	partner, err := l.CreatePartner(ctx, demoPartner, "ops@demo.example")
	if err != nil {
		return err
	}
	threshold := int64(100_000_00)
	prog, err := host.CreateProgram(ctx, cardhost.ProgramSpec{
		PartnerID: partner.ID, Name: "Demo Program", BINLow: "53999900", BINHigh: "53999999", Currency: "EUR",
		CardTypes: []cardhost.CardType{cardhost.Virtual, cardhost.Physical, cardhost.DigitalFirst}, DigitalFirst: true,
		Funding: cardhost.FundingPartnerCredit, LowThreshold: &threshold, Sandbox: true,
	})
	if err != nil {
		return err
	}
	// The demo's money is the operator's seed (source bootstrap, actor
	// demo, docs/ledger.md "Where money comes from"), not an API reload.
	seed := func(accountID, amount int64, ref string) error {
		_, err := l.ReloadFrom(ctx, accountID, amount, ref, ledger.Source{Kind: ledger.SourceBootstrap, Actor: "demo", Reference: ref})
		return err
	}
	if err := seed(prog.PartnerAccountID, 1_000_000_00, "demo-partner-credit"); err != nil {
		return err
	}
	user, err := host.RegisterUser(ctx, prog.ID, "demo-user-1", "Demo User", "demo.user@demo.example")
	if err != nil {
		return err
	}
	if _, err := host.SetKYC(ctx, user.ID, cardhost.KYCVerified, "antaca"); err != nil {
		return err
	}
	acc, err := host.CreateBalance(ctx, user.ID, "EUR")
	if err != nil {
		return err
	}
	if err := seed(acc.ID, 1_000_00, "demo-user-balance"); err != nil {
		return err
	}
	card, err := host.OrderPhysicalCard(ctx, user.ID, acc.ID, admin)
	if err != nil {
		return err
	}
	for _, step := range []func(context.Context, int64, cardhost.Actor) (cardhost.Card, error){host.LinkCard, host.Activate} {
		if _, err := step(ctx, card.ID, admin); err != nil {
			return err
		}
	}
	if _, err := host.SetPIN(ctx, card.ID, demoPIN, cardhost.Actor{Kind: cardhost.ActorUser, ID: fmt.Sprint(user.ID)}); err != nil {
		return err
	}
	d.PartnerID, d.ProgramID, d.CustomerID, d.BalanceID, d.CardID = partner.ID, prog.ID, user.ID, acc.ID, card.ID
	return nil
}

func printDemo(w io.Writer, d Demo, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	fmt.Fprintf(w, `Demo data (development only):
  partner      %s (id %d), program %d
  customer     %d, balance %d (currency %s), available %d minor units
  card         %d: PAN %s, expiry %s (YYMM), CVC2 %s, PIN %s
  zone PIN key iso2003 %s
  switch       iso2003 on %s, iso87 on %s
  api          %s (CA %s)
  admin        %s / %s (role %s)
  panel        %s/panel/ (sign in with the admin above; trust the CA or accept the certificate)

Send the card an authorisation of 10.00:
  go run ./cmd/loadtest -addr %s -profile iso2003 -pan %s -expiry %s -cvc2 %s -currency %s -amount 1000 -n 1

The three API channels:
  curl --cacert %s %s/public-key
  curl --cacert %s --cert %s --key %s -X POST %s/secure/customers/%d/sessions
  curl --cacert %s -H 'Authorization: Bearer <token from the line above>' %s/customers/me/session
  curl --cacert %s -H 'Content-Type: application/json' -d '{"name":"%s","password":"%s"}' %s/admin/login
`, d.Partner, d.PartnerID, d.ProgramID, d.CustomerID, d.BalanceID, d.Currency, d.Available,
		d.CardID, d.PAN, d.Expiry, d.CVC2, d.PIN, d.ZPK, d.ISO2003Addr, d.ISO87Addr, d.APIURL, d.CACert,
		d.AdminUser, d.AdminPassword, d.AdminRole, d.APIURL,
		d.ISO2003Addr, d.PAN, d.Expiry, d.CVC2, d.Currency,
		d.CACert, d.APIURL,
		d.CACert, d.PartnerCert, d.PartnerKey, d.APIURL, d.CustomerID,
		d.CACert, d.APIURL,
		d.CACert, d.AdminUser, d.AdminPassword, d.APIURL)
	return nil
}
