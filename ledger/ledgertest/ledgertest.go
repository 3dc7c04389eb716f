// Package ledgertest gives each test its own migrated PostgreSQL database.
// The database server is DATABASE_URL when set; otherwise a throwaway
// cluster started once per test binary from the system's PostgreSQL
// binaries. Each test gets a fresh CREATE DATABASE … TEMPLATE copy of one
// migrated template, so tests are isolated and fast.
//
// Call Main from TestMain so the cluster stops when the binary ends.
package ledgertest

import (
	"context"
	"fmt"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/pgcluster"
)

var (
	once     sync.Once
	setupErr error
	cluster  *pgcluster.Cluster
	adminURL string // connection string of the server's postgres database
	template string
	counter  atomic.Int64
)

// Main runs the tests and stops the throwaway cluster, if one was started.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain that has more to stop: it
// runs the tests, stops the cluster and returns the exit code.
func Run(m *testing.M) int {
	code := m.Run()
	if cluster != nil {
		cluster.Stop()
		os.RemoveAll(clusterDir)
	}
	return code
}

var clusterDir string

func setup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if url := os.Getenv("DATABASE_URL"); url != "" {
		adminURL = url
	} else {
		dir, err := pgcluster.TempDir()
		if err != nil {
			setupErr = err
			return
		}
		clusterDir = dir
		cluster, err = pgcluster.Start(ctx, pgcluster.Config{Dir: dir})
		if err != nil {
			setupErr = err
			return
		}
		adminURL = cluster.URL("postgres")
	}
	template = fmt.Sprintf("antaca_tpl_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if err := exec(ctx, adminURL, "CREATE DATABASE "+template); err != nil {
		setupErr = err
		return
	}
	pool, err := pgxpool.New(ctx, withDB(adminURL, template))
	if err != nil {
		setupErr = err
		return
	}
	defer pool.Close()
	if _, err := ledger.Migrate(ctx, pool); err != nil {
		setupErr = err
	}
}

// Cluster returns the throwaway cluster, or nil when DATABASE_URL is used.
// Fault tests use it to stop and start the server.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		t.Fatalf("postgres: %v", setupErr)
	}
	return cluster
}

// URL creates a fresh migrated database for the test, drops it when the test
// ends, and returns its connection string. Under -short it skips the test;
// otherwise a missing PostgreSQL fails it.
func URL(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped with -short")
	}
	Cluster(t)
	ctx := context.Background()
	name := fmt.Sprintf("%s_t%d", template, counter.Add(1))
	if err := exec(ctx, adminURL, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		exec(context.Background(), adminURL, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
	})
	return withDB(adminURL, name)
}

// Pool returns a pool on a fresh migrated database, closed when the test
// ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), URL(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func exec(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDB replaces the database name of a connection string.
func withDB(url, db string) string {
	if u, err := neturl.Parse(url); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + db
		return u.String()
	}
	return url + " dbname=" + db // keyword/value form: the last value wins
}

// PlanTx returns a transaction on a fresh database whose tables were
// analysed empty (as autovacuum does), with ledger.GenericPlans set: the
// state in which a cost-chosen generic plan goes wrong and stays cached.
// It rolls back when the test ends.
func PlanTx(t testing.TB) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := Pool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	for _, q := range []string{`ANALYZE`, ledger.GenericPlans} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return tx
}

// GenericPlan returns the plan Postgres makes of sql (its parameters of the
// given types, comma-separated) as a generic plan inside tx, where the
// caller has set what the plan depends on (see ledger.GenericPlans).
func GenericPlan(t testing.TB, tx pgx.Tx, name, sql, types string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := tx.Exec(ctx, "PREPARE "+name+" ("+types+") AS "+sql); err != nil {
		t.Fatalf("prepare %s: %v", name, err)
	}
	nulls := strings.TrimSuffix(strings.Repeat("NULL, ", strings.Count(types, ",")+1), ", ")
	rows, err := tx.Query(ctx, "EXPLAIN EXECUTE "+name+"("+nulls+")", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("explain %s: %v", name, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("explain %s: %v", name, err)
	}
	return strings.Join(lines, "\n")
}

// CheckProbes fails t unless plan reaches its rows by index probes only:
// no sequential scan, no hash or merge join, nothing materialised, no
// index read whole and filtered by a join (Join Filter), and every want
// present.
func CheckProbes(t testing.TB, name, plan string, want ...string) {
	t.Helper()
	for _, bad := range []string{"Seq Scan", "Materialize", "Hash Join", "Merge Join", "Join Filter"} {
		if strings.Contains(plan, bad) {
			t.Errorf("%s: plan has %q:\n%s", name, bad, plan)
		}
	}
	for _, w := range want {
		if !strings.Contains(plan, w) {
			t.Errorf("%s: plan lacks %q:\n%s", name, w, plan)
		}
	}
}
