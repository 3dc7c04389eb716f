package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/antaca/antaca/api"
	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
)

// TestCallWalksACard: `antaca call` with a demo.json creates a customer,
// verifies it, opens a balance, creates a virtual card over JWE (required
// by the route: encrypted to the server's key, answer decrypted) and reads
// its full data back; the same route sent plain is refused; an admin call
// logs in first.
func TestCallWalksACard(t *testing.T) {
	ctx := context.Background()
	pool := ledgertest.Pool(t)
	keys, err := hsm.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(pool, ledger.Config{})
	host := cardhost.NewHost(pool, led, keys, cardhost.Config{})
	t.Cleanup(host.Close)
	p, err := led.CreatePartner(ctx, "Call Partner", "")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := host.CreateProgram(ctx, cardhost.ProgramSpec{PartnerID: p.ID, Name: "P", BINLow: "539998", BINHigh: "539998", Currency: "EUR", Funding: cardhost.FundingPartnerCredit})
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := api.IssueServerCertificate(keys.CACert, keys.CAKey, []string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{TLSCert: srvCert, CA: keys.CACert, CAKey: keys.CAKey, JWEKey: keys.JWEKey, PasswordIterations: 1000}, pool, host)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.CreateAdmin(ctx, "root", "root-password-123", api.RoleAdmin, 0); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	dir := t.TempDir()
	files, err := api.IssueDevCertificates(ctx, pool, keys.CACert, keys.CAKey, p.ID, filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	d := Demo{APIURL: "https://" + ln.Addr().String(), CACert: files.CACert, PartnerCert: files.PartnerCert, PartnerKey: files.PartnerKey,
		AdminUser: "root", AdminPassword: "root-password-123"}
	b, _ := json.Marshal(d)
	if err := os.WriteFile(filepath.Join(dir, "demo.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	callJSON := func(v any, args ...string) {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, append([]string{"call", "-data", dir}, args...), &out); err != nil {
			t.Fatalf("antaca call %v: %v\n%s", args, err, out.String())
		}
		if v != nil {
			if err := json.Unmarshal(out.Bytes(), v); err != nil {
				t.Fatalf("antaca call %v: %v in %s", args, err, out.String())
			}
		}
	}
	var c, bal struct{ ID int64 }
	callJSON(&c, "POST", "/secure/customers", `{"programId": `+itoa64(prog.ID)+`, "externalRef": "c1", "name": "Ada", "email": "ada@example.com"}`)
	callJSON(nil, "PUT", "/secure/customers/"+itoa64(c.ID)+"/kyc", `{"status": "verified"}`)
	callJSON(&bal, "POST", "/secure/customers/"+itoa64(c.ID)+"/balances", `{"currency": "EUR"}`)
	var card struct {
		ID  int64
		PAN string
	}
	callJSON(&card, "POST", "/secure/customers/"+itoa64(c.ID)+"/cards/virtual", `{"balanceId": `+itoa64(bal.ID)+`}`)
	if len(card.PAN) != 16 || !strings.HasPrefix(card.PAN, "539998") {
		t.Fatalf("created card: %+v; want its decrypted PAN", card)
	}
	var full struct{ PAN string }
	callJSON(&full, "GET", "/secure/customers/"+itoa64(c.ID)+"/cards/"+itoa64(card.ID))
	if full.PAN != card.PAN {
		t.Fatal("full data read back over JWE differs from the created card's")
	}
	var out bytes.Buffer
	err = run(ctx, []string{"call", "-data", dir, "-encrypt", "never", "GET", "/secure/customers/" + itoa64(c.ID) + "/cards/" + itoa64(card.ID)}, &out)
	if err == nil || !strings.Contains(out.String(), "ENCRYPTION_REQUIRED") {
		t.Fatalf("plain call of a JWE route: %v %s; want ENCRYPTION_REQUIRED", err, out.String())
	}
	var sess struct{ Role string }
	callJSON(&sess, "-admin", "demo", "GET", "/admin/session")
	if sess.Role != "Admin" {
		t.Fatalf("admin session: %+v", sess)
	}
}

func itoa64(n int64) string { b, _ := json.Marshal(n); return string(b) }
