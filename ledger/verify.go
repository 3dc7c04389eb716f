package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Violation is one broken invariant found by Verify.
type Violation struct {
	Check     string // posting_unbalanced, balance_mismatch, held_mismatch, ...
	AccountID int64  // 0 when not about an account
	PostingID int64  // 0 when not about a posting
	HoldID    int64  // 0 when not about a hold
	Detail    string
}

func (v Violation) String() string {
	s := v.Check
	if v.AccountID != 0 {
		s += fmt.Sprintf(" account=%d", v.AccountID)
	}
	if v.PostingID != 0 {
		s += fmt.Sprintf(" posting=%d", v.PostingID)
	}
	if v.HoldID != 0 {
		s += fmt.Sprintf(" hold=%d", v.HoldID)
	}
	return s + ": " + v.Detail
}

// verifyChecks are the invariants, one query each; every row a query
// returns is a violation: (account_id, posting_id, hold_id, detail).
var verifyChecks = []struct{ name, sql string }{
	{"posting_unbalanced", `SELECT 0::bigint, posting_id, 0::bigint,
		format('entries in %s sum to %s, want 0', currency, sum(amount))
		FROM entries GROUP BY posting_id, currency HAVING sum(amount) <> 0`},
	{"posting_empty", `SELECT 0::bigint, p.id, 0::bigint, 'posting has no entries'
		FROM postings p WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.posting_id = p.id)`},
	{"entry_currency", `SELECT e.account_id, e.posting_id, 0::bigint,
		format('entry %s in %s on an account in %s', e.id, e.currency, a.currency)
		FROM entries e JOIN accounts a ON a.id = e.account_id WHERE e.currency <> a.currency`},
	{"balance_mismatch", `SELECT a.id, 0::bigint, 0::bigint,
		format('balance %s, entries sum to %s', a.balance, coalesce(s.total, 0))
		FROM accounts a LEFT JOIN (SELECT account_id, sum(amount) AS total FROM entries GROUP BY account_id) s
		ON s.account_id = a.id WHERE a.balance <> coalesce(s.total, 0)`},
	{"held_mismatch", `SELECT a.id, 0::bigint, 0::bigint,
		format('held %s, open holds sum to %s', a.held, coalesce(s.total, 0))
		FROM accounts a LEFT JOIN (
			SELECT account_id, sum(amount) AS total FROM (
				SELECT user_account_id AS account_id, amount FROM holds WHERE status = 'open' AND user_account_id IS NOT NULL
				UNION ALL
				SELECT partner_account_id, amount FROM holds WHERE status = 'open' AND partner_account_id IS NOT NULL) h
			GROUP BY account_id) s
		ON s.account_id = a.id WHERE a.held <> coalesce(s.total, 0)`},
	{"available_unflagged", `SELECT id, 0::bigint, 0::bigint,
		format('available %s (balance %s - held %s) below zero without negative_flag', balance - held, balance, held)
		FROM accounts WHERE kind IN ('user', 'partner_credit', 'partner_deposit') AND balance - held < 0 AND NOT negative_flag`},
	{"threshold_state", `SELECT id, 0::bigint, 0::bigint,
		format('below_threshold %s but available %s, threshold %s', below_threshold, balance - held, low_threshold)
		FROM accounts WHERE low_threshold IS NOT NULL AND below_threshold <> (balance - held < low_threshold)`},
	{"hold_open_resolved", `SELECT 0::bigint, 0::bigint, id, format('status %s, resolved_at %s', status, resolved_at)
		FROM holds WHERE (status = 'open') <> (resolved_at IS NULL)`},
	{"hold_amount", `SELECT 0::bigint, 0::bigint, id, format('amount %s outside 0..%s', amount, original_amount)
		FROM holds WHERE amount < 0 OR amount > original_amount`},
	{"hold_currency", `SELECT a.id, 0::bigint, h.id, format('hold in %s on an account in %s', h.currency, a.currency)
		FROM holds h JOIN accounts a ON a.id IN (h.user_account_id, h.partner_account_id) WHERE a.currency <> h.currency`},
	// entries carry no foreign keys (027_entries_keys.sql).
	{"entry_account_missing", `SELECT e.account_id, e.posting_id, 0::bigint, format('entry %s on an account that does not exist', e.id)
		FROM entries e WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = e.account_id)`},
	{"entry_posting_missing", `SELECT e.account_id, e.posting_id, 0::bigint, format('entry %s of a posting that does not exist', e.id)
		FROM entries e WHERE NOT EXISTS (SELECT 1 FROM postings p WHERE p.id = e.posting_id)`},
	// holds carry no foreign keys to accounts (006_hotpath.sql).
	{"hold_account_missing", `SELECT x.id, 0::bigint, h.id, 'hold on an account that does not exist'
		FROM holds h CROSS JOIN LATERAL (VALUES (h.user_account_id), (h.partner_account_id)) AS x (id)
		WHERE x.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = x.id)`},
	{"hold_capture_without_posting", `SELECT 0::bigint, 0::bigint, h.id, 'captured without its posting'
		FROM holds h WHERE h.status = 'captured' AND (h.capture_posting_id IS NULL
			OR NOT EXISTS (SELECT 1 FROM postings p WHERE p.id = h.capture_posting_id AND p.hold_id = h.id))`},
	{"hold_resolved_twice", `SELECT 0::bigint, p.id, p.hold_id, format('capture posting of a hold with status %s', h.status)
		FROM postings p JOIN holds h ON h.id = p.hold_id
		WHERE h.status <> 'captured' OR h.capture_posting_id <> p.id`},
	{"hold_refunds", `SELECT 0::bigint, 0::bigint, h.id,
		format('refunded %s, refund postings give back %s, captured %s', h.refunded, coalesce(r.total, 0), coalesce(h.captured_amount, 0))
		FROM holds h LEFT JOIN (
			SELECT p.refunds_hold AS hold_id, -sum(e.amount) AS total
			FROM postings p JOIN entries e ON e.posting_id = p.id JOIN accounts a ON a.id = e.account_id AND a.kind = 'settlement'
			WHERE p.kind = 'refund' GROUP BY p.refunds_hold) r ON r.hold_id = h.id
		WHERE h.refunded <> coalesce(r.total, 0) OR h.refunded > coalesce(h.captured_amount, 0)
			OR (h.refunded > 0 AND h.status <> 'captured')`},
	{"credit_uncredits", `SELECT 0::bigint, coalesce(u.reverses, 0), 0::bigint,
		format('uncredits take back %s of a credit of %s', u.total, coalesce(c.credited::text, 'no credit'))
		FROM (SELECT p.reverses, sum(e.amount) AS total FROM postings p JOIN entries e ON e.posting_id = p.id
			JOIN accounts a ON a.id = e.account_id AND a.kind = 'settlement' WHERE p.kind = 'uncredit' GROUP BY p.reverses) u
		LEFT JOIN (SELECT p.id, -e.amount AS credited FROM postings p JOIN entries e ON e.posting_id = p.id
			JOIN accounts a ON a.id = e.account_id AND a.kind = 'settlement' WHERE p.kind = 'credit') c ON c.id = u.reverses
		WHERE c.id IS NULL OR u.total > c.credited`},
	// The authorisation journal has no foreign keys (it is written on the
	// hot path); these two checks stand in for them, over the journal and
	// its archive (036_journal_archive.sql). A hold older than the archive
	// days detached (journal_archive_horizon) has its row exported.
	{"journal_hold_missing", `SELECT 0::bigint, 0::bigint, j.hold_id, format('journal row %s names a hold that does not exist', j.id)
		FROM (SELECT id, hold_id FROM auth_journal UNION ALL SELECT id, hold_id FROM auth_journal_archive) j
		WHERE j.hold_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = j.hold_id)`},
	{"hold_without_journal", `SELECT coalesce(h.user_account_id, h.partner_account_id), 0::bigint, h.id, 'authorisation hold without its journal row'
		FROM holds h WHERE h.ref ~ '^[^/]*/[^/]*/[^/]*/[^/]*/[^/]*$'
		AND h.created_at >= coalesce((SELECT dropped_before FROM journal_archive_horizon), '-infinity')
		AND NOT EXISTS (SELECT 1 FROM auth_journal j WHERE j.hold_id = h.id)
		AND NOT EXISTS (SELECT 1 FROM auth_journal_archive j WHERE j.hold_id = h.id)`},
	// The archival moves a row once, and never one whose hold is open (the
	// batches' probe reads the journal alone).
	{"journal_archived_twice", `SELECT 0::bigint, 0::bigint, coalesce(a.hold_id, 0), format('journal row %s both in auth_journal and its archive', a.id)
		FROM auth_journal_archive a JOIN auth_journal j ON j.id = a.id`},
	{"journal_archived_open_hold", `SELECT 0::bigint, 0::bigint, h.id, format('archived journal row %s names an open hold', a.id)
		FROM auth_journal_archive a JOIN holds h ON h.id = a.hold_id WHERE h.status = 'open'`},
}

// Verify checks every invariant of the ledger and returns each violation,
// not just the first: entries of each posting sum to zero per currency;
// entries are in their account's currency; each balance equals the sum of
// its entries; each held equals the sum of its open holds (user and partner
// side); available below zero only where flagged; below_threshold matches
// available and threshold; each hold resolved at most once, open exactly
// when unresolved, captured only with its own posting, on accounts that
// exist; refunds of a captured hold as its refund postings say and never
// above its capture; uncredits of a credit never above it; every journaled
// hold exists and every authorisation hold (ref acquirer/STAN/time/RRN/MTI)
// has its journal row. It reads a
// consistent snapshot (one repeatable-read transaction).
func (l *Ledger) Verify(ctx context.Context) ([]Violation, error) {
	tx, err := l.pool.BeginTx(ctx, pgxTxRepeatableReadRO)
	if err != nil {
		return nil, dbErr("verify", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var out []Violation
	for _, c := range append(append(verifyChecks[:len(verifyChecks):len(verifyChecks)], exceptionChecks...), partChecks...) {
		rows, err := tx.Query(ctx, c.sql)
		if err != nil {
			return nil, dbErr("verify "+c.name, err)
		}
		for rows.Next() {
			v := Violation{Check: c.name}
			if err := rows.Scan(&v.AccountID, &v.PostingID, &v.HoldID, &v.Detail); err != nil {
				rows.Close()
				return nil, dbErr("verify "+c.name, err)
			}
			out = append(out, v)
		}
		if err := rows.Err(); err != nil {
			return nil, dbErr("verify "+c.name, err)
		}
	}
	sims, err := l.VerifySimulations(ctx)
	return append(out, sims...), err
}

// simulationChecks find simulated money (acquirer SimulationAcquirer, the
// simulation endpoints' DE32) on anything but a sandbox program: journal
// rows of its cards, holds and postings on its balances.
var simulationChecks = []struct{ name, sql string }{
	{"simulation_journal_outside_sandbox", `SELECT 0::bigint, 0::bigint, coalesce(j.hold_id, 0),
		format('simulated message %s (journal %s) on card %s of program %s, not a sandbox', j.mti, j.id, j.card_id, g.id)
		FROM auth_journal j JOIN cards k ON k.id = j.card_id JOIN programs g ON g.id = k.program_id
		WHERE j.acquirer_id = '` + SimulationAcquirer + `' AND NOT g.sandbox`},
	{"simulation_hold_outside_sandbox", `SELECT a.id, 0::bigint, h.id, format('simulated hold on a balance of program %s, not a sandbox', g.id)
		FROM holds h JOIN accounts a ON a.id IN (h.user_account_id, h.partner_account_id) LEFT JOIN users u ON u.id = a.user_id
		JOIN programs g ON g.id = coalesce(a.program_id, u.program_id)
		WHERE h.ref LIKE '` + SimulationAcquirer + `/%' AND NOT g.sandbox`},
	{"simulation_posting_outside_sandbox", `SELECT a.id, p.id, 0::bigint, format('simulated %s posting on a balance of program %s, not a sandbox', p.kind, g.id)
		FROM postings p JOIN entries e ON e.posting_id = p.id JOIN accounts a ON a.id = e.account_id LEFT JOIN users u ON u.id = a.user_id
		JOIN programs g ON g.id = coalesce(a.program_id, u.program_id)
		WHERE p.ref LIKE '%` + SimulationAcquirer + `/%' AND NOT g.sandbox`},
}

// VerifySimulations returns a violation for every simulated journal row,
// hold or posting outside a sandbox program (DESIGN section 6: simulated
// money exists only in sandboxes). Verify runs it too.
func (l *Ledger) VerifySimulations(ctx context.Context) ([]Violation, error) {
	var out []Violation
	for _, c := range simulationChecks {
		rows, err := l.pool.Query(ctx, c.sql)
		if err != nil {
			return nil, dbErr("verify "+c.name, err)
		}
		vs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Violation, error) {
			v := Violation{Check: c.name}
			err := row.Scan(&v.AccountID, &v.PostingID, &v.HoldID, &v.Detail)
			return v, err
		})
		if err != nil {
			return nil, dbErr("verify "+c.name, err)
		}
		out = append(out, vs...)
	}
	return out, nil
}
