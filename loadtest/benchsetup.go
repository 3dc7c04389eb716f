package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/pgcluster"
)

// createCards makes the partner, the program (funded partner credit) and
// one verified user, user balance and active virtual card per card, in a
// few statements: users and accounts (funded balances included) by
// INSERT … SELECT, one reload posting per funded balance written by one
// statement, the cards by COPY, foreign keys and row triggers skipped
// (bulkLoad).
func createCards(ctx context.Context, pool *pgxpool.Pool, host *cardhost.Host, cfg BenchConfig) ([]Card, error) {
	l := host.Ledger()
	partner, err := l.CreatePartner(ctx, "Bench Partner", "")
	if err != nil {
		return nil, err
	}
	prog, err := host.CreateProgram(ctx, cardhost.ProgramSpec{PartnerID: partner.ID, Name: "Bench Program",
		BINLow: benchBIN, BINHigh: benchBIN, Currency: benchCurrency, CardTypes: []cardhost.CardType{cardhost.Virtual},
		Funding: cardhost.FundingPartnerCredit})
	if err != nil {
		return nil, err
	}
	// The bench's partner credit carries every card's spending: its
	// program takes the system-wide bounds instead of the defaults. Its
	// cvc2 cards get wrong CVC2 on purpose, again and again: the
	// brute-force lock (DESIGN section 5) is set to its highest count
	// (100 in a row), so that they stay cvc2 cards rather than turning into
	// locked ones part-way through a run.
	const bounds = `UPDATE programs SET max_partner_reload = $2, max_partner_balance = $3, verify_max_tries = 100 WHERE id = $1`
	if _, err := pool.Exec(ctx, bounds, prog.ID, ledger.MaxAmount, ledger.MaxBalance); err != nil {
		return nil, fmt.Errorf("program bounds: %w", err)
	}
	if _, err := l.Reload(ctx, prog.PartnerAccountID, ledger.MaxAmount, "bench-partner-credit"); err != nil {
		return nil, err
	}
	n := cfg.Cards
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	t0 := time.Now()
	step := func(what string) {
		log.Info("create cards", "step", what, "took", time.Since(t0).Round(time.Millisecond))
		t0 = time.Now()
	}
	var accIDs, userIDs []int64
	var fundingID int64
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := bulkLoad(ctx, tx); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT id FROM accounts WHERE kind = 'funding' AND currency = $1`, benchCurrency).Scan(&fundingID); err != nil {
			return fmt.Errorf("funding account: %w", err)
		}
		const users = `INSERT INTO users (partner_id, program_id, external_ref, name, kyc_status, kyc_by)
			SELECT $1, $2, 'bench-' || g, 'Bench User ' || g, 'verified', 'antaca' FROM generate_series(1, $3) g`
		if _, err := tx.Exec(ctx, users, partner.ID, prog.ID, n); err != nil {
			return fmt.Errorf("users: %w", err)
		}
		// Funded balances are written here rather than by an UPDATE of
		// every account after the reloads: that UPDATE moved each row to
		// a new page, left the table twice its size and the live rows on
		// full pages, so that the load's first updates were not HOT.
		// Card i owns the i-th account by id; the first PoorCards are
		// unfunded.
		const accounts = `INSERT INTO accounts (kind, currency, partner_id, program_id, user_id, balance)
			SELECT 'user', $2, partner_id, program_id, id, CASE WHEN row_number() OVER (ORDER BY id) > $3 THEN $4::bigint ELSE 0 END
			FROM users WHERE program_id = $1 ORDER BY id
			RETURNING id, user_id`
		rows, err := tx.Query(ctx, accounts, prog.ID, benchCurrency, cfg.PoorCards, int64(benchFunded))
		if err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		var a, u int64
		if _, err := pgx.ForEachRow(rows, []any{&a, &u}, func() error {
			accIDs, userIDs = append(accIDs, a), append(userIDs, u)
			return nil
		}); err != nil {
			return fmt.Errorf("accounts: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	step("users and accounts")
	// Sort by account id so card i owns account i whatever RETURNING's order.
	sortPairs(accIDs, userIDs)

	// Kinds: the first are poor, the next locked, then expired, the rest ok.
	kind := func(i int) string {
		switch {
		case i < cfg.PoorCards:
			return KindPoor
		case i < cfg.PoorCards+cfg.LockedCards:
			return KindLocked
		case i < cfg.PoorCards+cfg.LockedCards+max(cfg.ExpiredCards, 0):
			return KindExpired
		}
		return KindOK
	}
	keys := host.Keys()
	valid, expired := cardhost.ExpiryFrom(time.Now(), 4), cardhost.ExpiryFrom(time.Now(), -1)
	cards := make([]Card, n)
	rows := make([][]any, n)
	var funded []int64
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("%s%07d", benchBIN, i)
		pan := body + string('0'+cardhost.LuhnCheckDigit(body))
		enc, err := keys.EncryptPAN(pan)
		if err != nil {
			return nil, err
		}
		k := kind(i)
		expiry := valid
		if k == KindExpired {
			expiry = expired
		}
		lock := int16(0)
		if k == KindLocked {
			lock = int16(cardhost.LockCode(7)) // suspected fraud: reversible
		}
		if k != KindPoor {
			funded = append(funded, accIDs[i])
		}
		cards[i] = Card{PAN: pan, Expiry: expiry, CVC2: keys.CVC2(pan, expiry, 0), Kind: k}
		rows[i] = []any{prog.ID, userIDs[i], accIDs[i], string(cardhost.Virtual), string(cardhost.StateActive), lock, expiry,
			enc, keys.PANLookup(pan), pan[:6], pan[len(pan)-4:]}
	}
	step("keys")
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := bulkLoad(ctx, tx); err != nil {
			return err
		}
		cols := []string{"program_id", "user_id", "account_id", "type", "state", "lock_code", "expiry", "pan_enc", "pan_lookup", "pan_first6", "pan_last4"}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cards"}, cols, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy cards: %w", err)
		}
		step("copy cards")
		const events = `INSERT INTO card_events (card_id, actor_kind, actor_id, action)
			SELECT id, 'system', 'bench', 'issue_virtual' FROM cards WHERE program_id = $1`
		if _, err := tx.Exec(ctx, events, prog.ID); err != nil {
			return fmt.Errorf("card events: %w", err)
		}
		step("card events")
		const reloads = `WITH p AS (
				INSERT INTO postings (kind, ref, source, actor, source_ref)
				SELECT 'reload', 'bench-' || a, 'bootstrap', 'loadtest', 'bench-' || a FROM unnest($1::bigint[]) a RETURNING id, ref)
			INSERT INTO entries (posting_id, account_id, currency, amount)
			SELECT id, substr(ref, 7)::bigint, $2, $3::bigint FROM p
			UNION ALL SELECT id, $4::bigint, $2, -$3::bigint FROM p`
		if _, err := tx.Exec(ctx, reloads, funded, benchCurrency, int64(benchFunded), fundingID); err != nil {
			return fmt.Errorf("reloads: %w", err)
		}
		step("reload postings")
		_, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance - $2 WHERE id = $1`, fundingID, int64(benchFunded)*int64(len(funded)))
		return err
	})
	if err != nil {
		return nil, err
	}
	step("funding balance and commit")
	// Vacuum now rather than let autovacuum do it during the load.
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return nil, fmt.Errorf("vacuum: %w", err)
	}
	step("vacuum analyze")
	return cards, nil
}

// bulkLoad makes tx skip the foreign-key checks and the row triggers of
// the card set's rows (session_replication_role replica, the way
// pg_restore loads data): the rows name only the partner, program, users
// and accounts made just before, so every check would pass, and they cost
// two thirds of a million-card setup (users and accounts 44 s, cards 31 s
// with them). The triggers it skips do nothing the bench needs: the
// postings name their source, no account has a low threshold, and the
// webhook trigger would record a card.created event per card with no
// endpoint yet to deliver it to (-webhook adds its endpoint after the
// setup, so it never saw them). `ledger verify` after the load checks the
// ledger whole, these rows included. The bench cluster's superuser may set
// it; it ends with the transaction.
func bulkLoad(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		return fmt.Errorf("bulk load: %w", err)
	}
	return nil
}

func sortPairs(a, b []int64) {
	// Insertion into order by a; RETURNING comes back nearly sorted.
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
}

var tpsRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// runPgbench initialises pgbench's tables in database pgbench and runs the
// simple-update transaction (-N), returning its tps.
func runPgbench(ctx context.Context, cluster *pgcluster.Cluster, dir string, cfg BenchConfig) (float64, error) {
	pgbench, err := findPgbench(cluster)
	if err != nil {
		return 0, err
	}
	base := []string{"-h", dir, "-U", "postgres"}
	init := append(append([]string{"-i", "-q", "-s", strconv.Itoa(cfg.PgbenchScale)}, base...), "pgbench")
	if out, err := exec.CommandContext(ctx, pgbench, init...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("pgbench -i: %w: %s", err, lastLines(out))
	}
	secs := int(cfg.PgbenchTime.Round(time.Second) / time.Second)
	run := append(append([]string{"-N", "-c", strconv.Itoa(cfg.PgbenchClients), "-j", strconv.Itoa(cfg.PgbenchJobs),
		"-T", strconv.Itoa(max(secs, 1))}, base...), "pgbench")
	out, err := exec.CommandContext(ctx, pgbench, run...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w: %s", err, lastLines(out))
	}
	// Vacuum pgbench's tables now rather than let autovacuum do it
	// during the load.
	vac := append(append([]string{"-c", "VACUUM ANALYZE"}, base...), "pgbench")
	if out, err := exec.CommandContext(ctx, filepath.Join(filepath.Dir(pgbench), "psql"), vac...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("vacuum pgbench: %w: %s", err, lastLines(out))
	}
	m := tpsRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in its output: %s", lastLines(out))
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// findPgbench looks for pgbench beside the cluster's binaries, beside the
// real initdb when that is a symbolic link, on PATH, then under
// /usr/lib/postgresql/*/bin.
func findPgbench(cluster *pgcluster.Cluster) (string, error) {
	cands := []string{cluster.Bin("pgbench")}
	if real, err := filepath.EvalSymlinks(cluster.Bin("initdb")); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(real), "pgbench"))
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		cands = append(cands, p)
	}
	globbed, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	for _, c := range append(cands, globbed...) {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", errors.New("pgbench not found (install postgresql-contrib or the postgresql client)")
}

func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// processCPU is the user+system CPU time of this process, in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// postgresCPU sums the user+system CPU seconds of the postmaster and its
// children as /proc shows them (clock ticks of 1/100 s). Backends that
// exited in between are missed; the pool keeps its connections.
func postgresCPU(postmaster int) float64 {
	if postmaster <= 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != postmaster && ppid != postmaster {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return float64(ticks) / 100
}

// ErrLedgerNotClean is returned by callers when Verify finds violations.
var ErrLedgerNotClean = errors.New("ledger verify found violations")
