package ledger_test

import (
	"context"
	"testing"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
)

func TestMain(m *testing.M) { ledgertest.Main(m) }

func TestMigrateIsIdempotentAndComplete(t *testing.T) {
	pool := ledgertest.Pool(t)
	ctx := context.Background()
	// The template is migrated already: a second run applies nothing.
	applied, err := ledger.Migrate(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migrate applied %v, want nothing", applied)
	}
	ms, err := ledger.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	var exp int
	if err := pool.QueryRow(ctx, `SELECT exponent FROM currencies WHERE numeric = '392'`).Scan(&exp); err != nil {
		t.Fatal(err)
	}
	if exp != 0 {
		t.Fatalf("JPY exponent = %d, want 0", exp)
	}
}

func TestConcurrentMigrateTakesTurns(t *testing.T) {
	ctx := context.Background()
	pool := ledgertest.Pool(t)
	if _, err := pool.Exec(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := ledger.Migrate(ctx, pool); errs <- err }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
	ms, _ := ledger.Migrations()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("after 4 concurrent migrations schema_migrations has %d rows, want %d", n, len(ms))
	}
}
