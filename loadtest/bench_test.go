package loadtest

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/hsm"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
	"github.com/antaca/antaca/specs"
)

func TestMain(m *testing.M) { ledgertest.Main(m) }

// TestBenchDataAgainstCardHost creates a small bench card set in bulk,
// checks the ledger is clean, then runs a mixed load through the real
// switch and card host and checks the answers and the ledger again.
func TestBenchDataAgainstCardHost(t *testing.T) {
	pool := ledgertest.Pool(t)
	keys, err := hsm.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	led := ledger.New(pool, ledger.Config{Logger: quiet})
	reg := prometheus.NewRegistry()
	host := cardhost.NewHost(pool, led, keys, cardhost.Config{Logger: quiet, Registerer: reg})
	cfg := BenchConfig{Cards: 60, PoorCards: 5, LockedCards: 5}
	cfg.setDefaults()
	cards, err := createCards(t.Context(), pool, host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(cards) != 60 {
		t.Fatalf("got %d cards, want 60", len(cards))
	}
	for _, c := range cards {
		if !cardhost.LuhnValid(c.PAN) {
			t.Fatalf("PAN %s not Luhn-valid", cardhost.MaskPAN(c.PAN))
		}
	}
	if vs, err := led.Verify(t.Context()); err != nil || len(vs) > 0 {
		t.Fatalf("verify after bulk creation: %v %v", vs, err)
	}
	// Balances are written with the accounts (issue 18): the poor cards'
	// are empty, every other one funded, and no update moved the rows.
	for _, c := range []Card{cards[0], cards[59]} {
		hc, err := host.CardByPAN(t.Context(), c.PAN)
		if err != nil {
			t.Fatal(err)
		}
		var balance int64
		if err := pool.QueryRow(t.Context(), `SELECT balance FROM accounts WHERE id = $1`, hc.AccountID).Scan(&balance); err != nil {
			t.Fatal(err)
		}
		if want := map[string]int64{KindPoor: 0, KindOK: benchFunded}[c.Kind]; balance != want {
			t.Errorf("%s card's balance %d, want %d", c.Kind, balance, want)
		}
	}
	// Balance updates stay HOT on a large card base (migration 035).
	var opts []string
	if err := pool.QueryRow(t.Context(), `SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = 'accounts'::regclass`).Scan(&opts); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(opts, "fillfactor=75") {
		t.Errorf("accounts options %v, want fillfactor=75", opts)
	}
	sizes0, err := tableSizes(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	c, err := host.CardByPAN(t.Context(), cards[59].PAN)
	if err != nil || c.LockCode != 0 || c.State != cardhost.StateActive {
		t.Fatalf("card by PAN: %+v %v", c, err)
	}

	for _, profile := range []string{ProfileISO87, ProfileISO2003} {
		t.Run(profile, func(t *testing.T) {
			addr := startSwitch(t, profile, host)
			before, err := batchStats(reg)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(t.Context(), Config{Addr: addr, Profile: profile, Conns: 2, InFlight: 4, Count: 300, Cards: cards,
				Currency: "978", Mix: Mix{Approve: 6, Funds: 1, Locked: 1, CVC2: 1, Reversal: 2, Echo: 1}})
			if err != nil {
				t.Fatal(err)
			}
			rep.WriteText(t.Output())
			if rep.Answered != 300 || rep.Timeouts != 0 || rep.Errors != 0 {
				t.Fatalf("answered %d timeouts %d errors %d, want 300 0 0", rep.Answered, rep.Timeouts, rep.Errors)
			}
			code := func(r cardhost.Reason) string {
				c, _ := specs.ActionCode(profile, string(r))
				return c
			}
			k := rep.SentByKind
			// Every authorisation and reversal is decided in a write batch
			// (echoes are not; reversals since issue 18). A batch is counted
			// just after its answers leave, so the last one may be counted a
			// moment later.
			want := float64(rep.Answered - k["echo"])
			var b BatchStats
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				after, err := batchStats(reg)
				if err != nil {
					t.Fatal(err)
				}
				if b = after.sub(before); b.Requests >= want || time.Now().After(deadline) {
					break
				}
			}
			if b.Batches == 0 || b.Requests != want || b.Seconds <= 0 {
				t.Errorf("write batches %+v, want %v requests in them", b, want)
			}
			if rep.Approved != k["approve"] {
				t.Errorf("approved %d, want %d", rep.Approved, k["approve"])
			}
			if got := rep.Codes[code(cardhost.SuspectedFraud)]; got != k["locked"] {
				t.Errorf("locked declines %d, want %d", got, k["locked"])
			}
			if got := rep.Codes[code(cardhost.CVC2Failed)]; got != k["cvc2"] {
				t.Errorf("cvc2 declines %d, want %d", got, k["cvc2"])
			}
			if got := rep.Codes[code(cardhost.InsufficientFunds)]; got != k["funds"] {
				t.Errorf("funds declines %d, want %d", got, k["funds"])
			}
			var released int64
			if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM auth_journal WHERE profile = $1 AND mti LIKE '_400' AND detail LIKE 'released%'`, profile).Scan(&released); err != nil {
				t.Fatal(err)
			}
			t.Logf("reversals sent %d, released a hold %d", k["reversal"], released)
			if released != k["reversal"] {
				t.Errorf("reversals that released their hold: %d, want %d", released, k["reversal"])
			}
			if vs, err := led.Verify(t.Context()); err != nil || len(vs) > 0 {
				t.Fatalf("verify after load: %v %v", vs, err)
			}
		})
	}
	// The journal's growth per approval (docs/operations.md, "Journal
	// growth") is measured from these sizes.
	sizes1, err := tableSizes(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	g := sizes1.Growth(sizes0)
	if len(g) != 4 || g["auth_journal"] <= 0 || g["holds"] <= 0 {
		t.Errorf("journal growth %v, want auth_journal and holds grown", g)
	}
}

// TestBenchRefusesToBeNotDurable: a setting that would turn durability off
// is refused however it is spelled, before any cluster starts.
func TestBenchRefusesToBeNotDurable(t *testing.T) {
	for _, k := range []string{"fsync", "FSYNC", " Synchronous_Commit", "full-page-writes"} {
		_, err := Bench(t.Context(), BenchConfig{Settings: map[string]string{k: "off"}, Dir: t.TempDir(),
			Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), "the bench is durable") {
			t.Errorf("setting %q=off: got %v, want a refusal", k, err)
		}
	}
}
