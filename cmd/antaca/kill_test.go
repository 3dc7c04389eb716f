package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/internal/faulttest"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
	"github.com/antaca/antaca/specs"
	authswitch "github.com/antaca/antaca/switch"
)

// buildAntaca builds this command into a temporary directory.
func buildAntaca(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "antaca")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort returns a port that was free a moment ago: the flags take no
// ":0", so the test listens, notes the port and closes.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a running `antaca switch`.
type process struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
}

// startSwitch runs `antaca switch` with only an iso2003 listener on addr
// and waits until it accepts connections.
func startSwitch(t *testing.T, bin, dbURL, keys, addr string) *process {
	t.Helper()
	cmd := exec.Command(bin, "switch", "-iso2003", addr, "-iso87", "", "-switch-metrics", "", "-keys", keys, "-log-level", "warn")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	p := &process{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("antaca switch exited at start: %s", p.stderr)
		default:
		}
		if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			nc.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("antaca switch not listening on %s after 30s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killTestData creates a partner credit program and n funded virtual
// cards; it returns their PANs and expiries.
func killTestData(t *testing.T, pool *pgxpool.Pool, keys *hsm.Keys, n int) (pans, expiries []string) {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	led := ledger.New(pool, ledger.Config{Logger: log})
	host := cardhost.NewHost(pool, led, keys, cardhost.Config{Logger: log})
	defer host.Close()
	partner, err := led.CreatePartner(ctx, "Partner kill", "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := host.CreateProgram(ctx, cardhost.ProgramSpec{PartnerID: partner.ID, Name: "kill", BINLow: "499999", BINHigh: "499999",
		Currency: "EUR", Funding: cardhost.FundingPartnerCredit, CardTypes: []cardhost.CardType{cardhost.Virtual}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := led.Reload(ctx, prog.PartnerAccountID, 1_000_000_000, "fund-kill"); err != nil {
		t.Fatal(err)
	}
	admin := cardhost.Actor{Kind: cardhost.ActorAdmin, ID: "kill-test"}
	for i := range n {
		ref := fmt.Sprintf("kill-user-%d", i)
		u, err := host.RegisterUser(ctx, prog.ID, ref, "Kill Test", ref+"@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := host.SetKYC(ctx, u.ID, cardhost.KYCVerified, "admin"); err != nil {
			t.Fatal(err)
		}
		acc, err := host.CreateBalance(ctx, u.ID, "EUR")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := led.Reload(ctx, acc.ID, 100_000_000, "fund-"+ref); err != nil {
			t.Fatal(err)
		}
		_, d, err := host.CreateVirtualCard(ctx, u.ID, acc.ID, admin)
		if err != nil {
			t.Fatal(err)
		}
		pans, expiries = append(pans, d.PAN), append(expiries, d.Expiry)
	}
	return pans, expiries
}

// authRequest is an iso2003 authorisation of 1.00 EUR.
func authRequest(t *testing.T, spec *iso8583.MessageSpec, stan int, pan, expiry string) *iso8583.Message {
	m := iso8583.NewMessage(spec)
	m.MTI("2100")
	// jPOS CMF: DE4 carries the currency (978) and its minor unit (2).
	for k, v := range map[int]string{2: pan, 3: "000000", 4: "9782000000000100", 7: "0601120000", 11: fmt.Sprintf("%012d", stan),
		12: "20260601140000", 14: expiry, 24: "100", 26: "5411", 32: "123456", 37: fmt.Sprintf("RRN%09d", stan),
		41: "TERM000000000001", 42: "MERCHANT0000001"} {
		if err := m.Field(k, v); err != nil {
			t.Fatalf("DE%d: %v", k, err)
		}
	}
	return m
}

// TestFaultSwitchKilled runs `antaca switch` (the real binary) under load
// from 4 connections, kills it with SIGKILL mid-load and starts it again.
// Requests unanswered at the kill are sent again (the acquirer's repeat):
// each gets an answer, and no request has two holds. `antaca ledger
// verify` is clean, every hold has its journal row and every approved
// purchase its hold: no batch was half applied.
func TestFaultSwitchKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := buildAntaca(t)
	dbURL := ledgertest.URL(t)
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	keys, _, err := hsm.LoadOrCreateKeys(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	const clients = 4
	pans, expiries := killTestData(t, pool, keys, clients)
	spec, err := specs.ISOSpec("iso2003")
	if err != nil {
		t.Fatal(err)
	}
	approved, _ := specs.ActionCode("iso2003", string(cardhost.Approved))

	addr := freePort(t)
	p := startSwitch(t, bin, dbURL, keyFile, addr)

	var stan atomic.Int64
	type sent struct {
		stan     int
		client   int
		answered bool
		code     string
	}
	var mu sync.Mutex
	var all []*sent
	var wg sync.WaitGroup
	killed := make(chan struct{})
	for i := range clients {
		c, err := connection.New(addr, spec, authswitch.ReadLengthHeader, authswitch.WriteLengthHeader, connection.SendTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Several requests in flight per connection, so that
			// batches of many requests are in the database at the kill.
			var inner sync.WaitGroup
			for range 8 {
				inner.Add(1)
				go func() {
					defer inner.Done()
					for {
						select {
						case <-killed:
							return
						default:
						}
						s := &sent{stan: int(stan.Add(1)), client: i}
						mu.Lock()
						all = append(all, s)
						mu.Unlock()
						resp, err := c.Send(authRequest(t, spec, s.stan, pans[i], expiries[i]))
						if err != nil {
							return
						}
						code, _ := resp.GetString(39)
						mu.Lock()
						s.answered, s.code = true, code
						mu.Unlock()
					}
				}()
			}
			inner.Wait()
		}()
	}
	time.Sleep(time.Second)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	close(killed)
	wg.Wait()

	mu.Lock()
	var answered, lost []*sent
	for _, s := range all {
		if s.answered {
			answered = append(answered, s)
			if s.code != approved {
				t.Errorf("before the kill: stan %d got %s, want %s", s.stan, s.code, approved)
			}
		} else {
			lost = append(lost, s)
		}
	}
	mu.Unlock()
	if len(answered) == 0 {
		t.Fatal("no request answered before the kill")
	}
	var journaledLost int
	for _, s := range lost {
		var n int
		pool.QueryRow(ctx, `SELECT count(*) FROM auth_journal WHERE stan = $1`, fmt.Sprintf("%012d", s.stan)).Scan(&n)
		journaledLost += n
	}

	// Restart; the acquirer repeats every request it got no answer to.
	p2 := startSwitch(t, bin, dbURL, keyFile, addr)
	c, err := connection.New(addr, spec, authswitch.ReadLengthHeader, authswitch.WriteLengthHeader, connection.SendTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, s := range lost {
		resp, err := c.Send(authRequest(t, spec, s.stan, pans[s.client], expiries[s.client]))
		if err != nil {
			t.Fatalf("repeat of stan %d after restart: %v", s.stan, err)
		}
		if code, _ := resp.GetString(39); code != approved {
			t.Errorf("repeat of stan %d after restart: got %s, want %s", s.stan, code, approved)
		}
	}
	c.Close()
	p2.cmd.Process.Signal(syscall.SIGTERM)
	<-p2.done

	// Every request once: as many journal rows and holds as requests.
	var journal, holds, holdsNoJournal, approvedNoHold int
	var held, journaled int64
	for _, q := range []struct {
		sql string
		v   any
	}{
		{`SELECT count(*) FROM auth_journal`, &journal},
		{`SELECT count(*) FROM holds`, &holds},
		{`SELECT count(*) FROM holds h LEFT JOIN auth_journal j ON j.hold_id = h.id WHERE j.id IS NULL`, &holdsNoJournal},
		{`SELECT count(*) FROM auth_journal WHERE reason = 'approved' AND hold_id IS NULL`, &approvedNoHold},
		{`SELECT coalesce(sum(amount), 0) FROM holds`, &held},
		{`SELECT coalesce(sum(amount), 0) FROM auth_journal WHERE reason = 'approved'`, &journaled},
	} {
		if err := pool.QueryRow(ctx, q.sql).Scan(q.v); err != nil {
			t.Fatal(err)
		}
	}
	if journal != len(all) || holds != len(all) {
		t.Errorf("after the repeats: %d journal rows and %d holds, want %d of each (one per request)", journal, holds, len(all))
	}
	if holdsNoJournal != 0 || approvedNoHold != 0 || held != journaled {
		t.Errorf("half-applied batches: %d holds without journal, %d approvals without hold, held %d vs journaled %d", holdsNoJournal, approvedNoHold, held, journaled)
	}

	var out bytes.Buffer
	v := exec.Command(bin, "ledger", "verify", "-database-url", dbURL, "-log-level", "error")
	v.Stdout, v.Stderr = &out, &out
	if err := v.Run(); err != nil {
		t.Fatalf("antaca ledger verify: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "no violations") {
		t.Errorf("antaca ledger verify: %s", out.String())
	}
	faulttest.Record(t, faulttest.Row{Area: "process", Fault: "`antaca switch` killed with SIGKILL under load (4 connections × 8 in flight), restarted, unanswered requests repeated",
		Behaviour: fmt.Sprintf("%d answered before the kill, %d unanswered (%d of them had committed); after the restart each repeat answered %s (the committed ones from the journal), %d requests = %d journal rows = %d holds, every hold journaled, every approval held",
			len(answered), len(lost), journaledLost, approved, len(all), journal, holds),
		Verify: "`antaca ledger verify` clean"})
}
