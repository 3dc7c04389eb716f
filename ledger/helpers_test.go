package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/ledger/ledgertest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     testing.TB
	ctx   context.Context
	pool  *pgxpool.Pool
	l     *ledger.Ledger
	clock *clock
	ids   atomic.Int64
}

// newEnv returns a ledger on a fresh migrated database. Accounts here name
// programs and users by id only: the card host's foreign keys from accounts
// to programs and users are dropped in this test database, so the ledger is
// tested on its own.
func newEnv(t testing.TB, maxConns int) *env {
	t.Helper()
	url := ledgertest.URL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ctx := context.Background()
	const drop = `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT conname FROM pg_constraint
			WHERE conrelid = 'accounts'::regclass AND contype = 'f'
			AND confrelid NOT IN ('currencies'::regclass, 'partners'::regclass) LOOP
			EXECUTE format('ALTER TABLE accounts DROP CONSTRAINT %I', r.conname);
		END LOOP; END $$`
	if _, err := pool.Exec(ctx, drop); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	l := ledger.New(pool, ledger.Config{Now: c.Now, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	return &env{t: t, ctx: ctx, pool: pool, l: l, clock: c}
}

func (e *env) next() int64 { return e.ids.Add(1) }

func (e *env) partner(email string) ledger.Partner {
	e.t.Helper()
	p, err := e.l.CreatePartner(e.ctx, fmt.Sprintf("partner %d", e.next()), email)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// credit opens a partner credit account for a new program with funds.
func (e *env) credit(p ledger.Partner, cur string, funds int64, threshold *int64) ledger.Account {
	e.t.Helper()
	a, err := e.l.OpenAccount(e.ctx, ledger.AccountSpec{Kind: ledger.KindPartnerCredit, Currency: cur,
		PartnerID: p.ID, ProgramID: e.next(), LowThreshold: threshold})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.reload(a, funds)
}

// user opens a user account with funds.
func (e *env) user(p ledger.Partner, cur string, funds int64) ledger.Account {
	e.t.Helper()
	a, err := e.l.OpenAccount(e.ctx, ledger.AccountSpec{Kind: ledger.KindUser, Currency: cur,
		PartnerID: p.ID, ProgramID: 1, UserID: e.next()})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.reload(a, funds)
}

func (e *env) reload(a ledger.Account, funds int64) ledger.Account {
	e.t.Helper()
	if funds > 0 {
		if _, err := e.l.Reload(e.ctx, a.ID, funds, fmt.Sprintf("seed-%d", e.next())); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.account(a.ID)
}

func (e *env) account(id int64) ledger.Account {
	e.t.Helper()
	a, err := e.l.Account(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// want checks an account's balance and held.
func (e *env) want(id, balance, held int64) {
	e.t.Helper()
	a := e.account(id)
	if a.Balance != balance || a.Held != held {
		e.t.Fatalf("account %d (%s): balance %d held %d, want balance %d held %d", id, a.Kind, a.Balance, a.Held, balance, held)
	}
}

// clean fails the test when Verify finds any violation.
func (e *env) clean() {
	e.t.Helper()
	vs, err := e.l.Verify(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, v := range vs {
		e.t.Errorf("violation: %s", v)
	}
	if len(vs) > 0 {
		e.t.FailNow()
	}
}

func (e *env) internal(kind, cur string) ledger.Account {
	e.t.Helper()
	a, err := e.l.InternalAccount(e.ctx, kind, cur)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func ptr(v int64) *int64 { return &v }
