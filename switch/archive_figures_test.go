package authswitch

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// TestJournalArchiveFigures measures what docs/operations.md "Journal
// archival" quotes: the bytes of a journal row and of each of its indexes,
// and the archival's rows per second. It runs only when ARCHIVE_FIGURES
// is the number of rows to measure with:
//
//	ARCHIVE_FIGURES=1000000 go test -count=1 -run TestJournalArchiveFigures -v ./switch/
//
// The rows are copies of one approval the switch journaled (with its
// encrypted PAN), keys varied, spread over two days 50 days ago; all
// name the same (released) hold.
func TestJournalArchiveFigures(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ARCHIVE_FIGURES"))
	if n <= 0 {
		t.Skip("ARCHIVE_FIGURES not set")
	}
	e := newE2E(t, ProfileISO87, nil)
	card := e.virtualCard(e.prog, 10_000)
	auth, resp := e.auth(card, 1_000, map[int]string{43: fmt.Sprintf("%-38sFR", "SOME MERCHANT NAME      SOME CITY")})
	e.expect(resp, cardhost.Approved)
	e.expect(e.send(e.follow("400", auth, card, 1_000, nil)), cardhost.Approved)
	tmpl := e.journalID(auth)
	// Ids grow with time: the rows so far are older than the copies.
	if _, err := e.pool.Exec(e.ctx, `UPDATE auth_journal SET created_at = now() - interval '51 days'`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := e.pool.Exec(e.ctx, `INSERT INTO auth_journal (created_at, profile, mti, class, acquirer_id, stan, transmission_time, local_time, rrn,
			card_id, pan_enc, pan_masked, processing_code, amount, currency, billing_amount, billing_currency, merchant, reason, approval_code,
			hold_id, available, available_currency, original_id, detail, received_at, decided_at, approved_amount)
		SELECT now() - interval '50 days' + g * (interval '2 days' / $1), t.profile, t.mti, t.class, t.acquirer_id,
			lpad((g % 999999 + 1)::text, 6, '0'), t.transmission_time, t.local_time, lpad(g::text, 12, '0'),
			t.card_id + g % 1000000, t.pan_enc, t.pan_masked, t.processing_code, t.amount + g % 1000, t.currency, t.billing_amount,
			t.billing_currency, t.merchant, t.reason, t.approval_code, t.hold_id, t.available, t.available_currency, t.original_id,
			t.detail, t.received_at, t.decided_at, t.approved_amount
		FROM auth_journal t, generate_series(1, $1) g WHERE t.id = $2`, n, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %d rows in %s", n, time.Since(start).Round(time.Millisecond))
	if _, err := e.pool.Exec(e.ctx, `VACUUM ANALYZE auth_journal`); err != nil {
		t.Fatal(err)
	}
	sizes := func(table string) {
		rows, err := e.pool.Query(e.ctx, `SELECT 'heap', pg_relation_size($1::regclass) UNION ALL
			SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid) FROM pg_index i WHERE i.indrelid = $1::regclass`, table)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var size int64
			if err := rows.Scan(&name, &size); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s: %d bytes, %.1f per row", table, name, size, float64(size)/float64(n))
		}
	}
	sizes("auth_journal")
	var width float64
	if err := e.pool.QueryRow(e.ctx, `SELECT avg(pg_column_size(j.*)) FROM auth_journal j`).Scan(&width); err != nil {
		t.Fatal(err)
	}
	t.Logf("auth_journal: average tuple %.0f bytes", width)

	e.webhooksDone()
	var lsn0 string
	if err := e.pool.QueryRow(e.ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn0); err != nil {
		t.Fatal(err)
	}
	res, err := e.led.ArchiveJournal(e.ctx, ledger.ArchiveConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var wal int64
	if err := e.pool.QueryRow(e.ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint`, lsn0).Scan(&wal); err != nil {
		t.Fatal(err)
	}
	t.Logf("archive: %d bytes of WAL, %.0f per row", wal, float64(wal)/float64(res.Moved))
	t.Logf("archive: moved %d rows in %d batches of 5,000 in %s: %.0f rows/s; partitions %v",
		res.Moved, res.Batches, res.Took.Round(time.Millisecond), float64(res.Moved)/res.Took.Seconds(), res.Created)
	var archived int64
	if err := e.pool.QueryRow(e.ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'auth_journal_archive'::regclass`).Scan(&archived); err != nil {
		t.Fatal(err)
	}
	t.Logf("archive: %d bytes with indexes, %.1f per row", archived, float64(archived)/float64(res.Moved))
	start = time.Now()
	vs, err := e.led.Verify(e.ctx)
	t.Logf("verify after archival: %d violations (%v) in %s", len(vs), err, time.Since(start).Round(time.Millisecond))
}
