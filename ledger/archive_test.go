package ledger_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/antaca/antaca/ledger"
)

// journalRow inserts a journal row of request key stan created age ago,
// with hold (0: none, else its created_at is set to the row's, as when the
// switch writes both), and returns its id.
func (e *env) journalRow(stan string, age time.Duration, hold int64) int64 {
	e.t.Helper()
	var id int64
	err := e.pool.QueryRow(e.ctx, `INSERT INTO auth_journal (profile, mti, class, acquirer_id, stan, transmission_time, rrn, reason, hold_id, created_at)
		VALUES ('iso87', '0100', 1, '123456', $1, '1206120000', '000000000001', 'approved', NULLIF($2, 0), now() - make_interval(secs => $3))
		RETURNING id`, stan, hold, age.Seconds()).Scan(&id)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, `UPDATE holds SET created_at = (SELECT created_at FROM auth_journal WHERE id = $1) WHERE id = $2`, id, hold); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// journalHold places a hold with the authorisation ref of stan.
func (e *env) journalHold(credit ledger.Account, stan string) ledger.Hold {
	e.t.Helper()
	h, err := e.l.PlaceHold(e.ctx, ledger.HoldSpec{PartnerAccountID: credit.ID, Currency: "EUR", Amount: 1_00,
		Ref: "123456/" + stan + "/1206120000/000000000001/0100"})
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

func (e *env) idsOf(table string) []int64 {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT id FROM `+table+` ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

func (e *env) cursorAt(position int64) {
	e.t.Helper()
	if _, err := e.pool.Exec(e.ctx, `UPDATE webhook_cursors SET position = $1, seen = $1 WHERE name = 'auth_journal'`, position); err != nil {
		e.t.Fatal(err)
	}
}

// The archival moves only rows past the retention, and of those keeps hot
// the rows whose hold is open, the rows the webhook follower has not passed
// and the journal's newest row; each day goes to its own partition; verify stays
// clean, and after the days are dropped too.
func TestArchiveJournalMovesOnlyWhatIsDone(t *testing.T) {
	e := newEnv(t, 4)
	p := e.partner("")
	credit := e.credit(p, "EUR", 100_00, nil)
	day := 24 * time.Hour

	released := e.journalHold(credit, "000001")
	if _, err := e.l.Release(e.ctx, released.ID, 0); err != nil {
		t.Fatal(err)
	}
	open := e.journalHold(credit, "000002")
	// Journal ids grow with time, as they do when the switch writes them.
	old3 := e.journalRow("000003", 60*day, 0) // a decline, a day of its own
	old1 := e.journalRow("000001", 50*day, released.ID)
	old2 := e.journalRow("000002", 50*day, open.ID) // its hold is open
	late := e.journalRow("000005", 49*day, 0)       // past the retention, not passed by the webhooks yet
	fresh := e.journalRow("000004", time.Hour, 0)   // within the retention
	e.cursorAt(late - 1)

	res, err := e.l.ArchiveJournal(e.ctx, ledger.ArchiveConfig{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.idsOf("auth_journal_archive"), []int64{old3, old1}; !slices.Equal(got, want) {
		t.Errorf("archived %v, want %v", got, want)
	}
	if got, want := e.idsOf("auth_journal"), []int64{old2, late, fresh}; !slices.Equal(got, want) {
		t.Errorf("hot %v, want %v", got, want)
	}
	if res.Moved != 2 || res.Batches != 2 || len(res.Created) != 2 {
		t.Errorf("result %+v, want 2 rows moved in 2 batches, 2 partitions created", res)
	}
	for _, name := range res.Created {
		if !strings.HasPrefix(name, "auth_journal_archive_p") {
			t.Errorf("partition %q", name)
		}
	}
	e.clean()

	// Once the follower passes it, the late row moves.
	e.cursorAt(fresh)
	if _, err := e.l.ArchiveJournal(e.ctx, ledger.ArchiveConfig{}); err != nil {
		t.Fatal(err)
	}
	if got, want := e.idsOf("auth_journal"), []int64{old2, fresh}; !slices.Equal(got, want) {
		t.Errorf("hot %v, want %v", got, want)
	}
	// The open hold resolved, its row moves.
	if _, err := e.l.Release(e.ctx, open.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.ArchiveJournal(e.ctx, ledger.ArchiveConfig{}); err != nil {
		t.Fatal(err)
	}
	if got, want := e.idsOf("auth_journal_archive"), []int64{old3, old1, old2, late}; !slices.Equal(got, want) {
		t.Errorf("archived %v, want %v", got, want)
	}
	e.clean()

	// The archive's days older than 55 days are detached and dropped: the
	// decline's day only; its rows are gone, verify stays clean (the holds
	// of the days kept still find their rows).
	res, err = e.l.ArchiveJournal(e.ctx, ledger.ArchiveConfig{DropAfter: 55 * day})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Detached) != 1 || !res.Dropped {
		t.Errorf("detached %v (dropped %v), want the day of 60 days ago", res.Detached, res.Dropped)
	}
	if got, want := e.idsOf("auth_journal_archive"), []int64{old1, old2, late}; !slices.Equal(got, want) {
		t.Errorf("archived %v, want %v", got, want)
	}
	days, err := e.l.ArchiveDays(e.ctx)
	if err != nil || len(days) != 2 {
		t.Errorf("archive days %v (%v), want 2", days, err)
	}
	e.clean()

	// Dropping the days of the holds: verify does not ask for rows the
	// horizon says were exported. Kept: the table stays, detached.
	res, err = e.l.ArchiveJournal(e.ctx, ledger.ArchiveConfig{DropAfter: time.Hour, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Detached) != 2 || res.Dropped {
		t.Errorf("detached %v (dropped %v), want 2 kept", res.Detached, res.Dropped)
	}
	var n int
	if err := e.pool.QueryRow(e.ctx, fmt.Sprintf(`SELECT count(*) FROM %s`, res.Detached[0])).Scan(&n); err != nil || n == 0 {
		t.Errorf("kept table %s: %d rows (%v), want its rows", res.Detached[0], n, err)
	}
	if got := e.idsOf("auth_journal_archive"); len(got) != 0 {
		t.Errorf("archived %v, want none attached", got)
	}
	e.clean()
}

// Verify finds a row both hot and archived, and an archived row of an open
// hold; the job refuses to lose a column the archive lacks.
func TestArchiveJournalChecks(t *testing.T) {
	e := newEnv(t, 4)
	p := e.partner("")
	credit := e.credit(p, "EUR", 100_00, nil)
	open := e.journalHold(credit, "000001")
	id := e.journalRow("000001", 50*24*time.Hour, open.ID)
	e.journalRow("000002", time.Hour, 0)
	if _, err := e.pool.Exec(e.ctx, `CREATE TABLE auth_journal_archive_p19990101 PARTITION OF auth_journal_archive
		FOR VALUES FROM ('1999-01-01') TO ('1999-01-02')`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, `INSERT INTO auth_journal_archive SELECT * FROM auth_journal WHERE id = $1`, id); err == nil {
		t.Fatal("archive took a row of a day it has no partition for")
	}
	if _, err := e.pool.Exec(e.ctx, `INSERT INTO auth_journal_archive SELECT id, '1999-01-01 12:00+00', profile, mti, class, acquirer_id, stan,
		transmission_time, local_time, rrn, card_id, pan_enc, pan_masked, processing_code, amount, currency, billing_amount, billing_currency,
		merchant, reason, approval_code, hold_id, available, available_currency, original_id, detail, received_at, decided_at, approved_amount
		FROM auth_journal WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	got, _ := e.violations()
	if got["journal_archived_twice"] != 1 || got["journal_archived_open_hold"] != 1 || len(got) != 2 {
		t.Errorf("violations %v, want journal_archived_twice and journal_archived_open_hold", got)
	}

	if _, err := e.pool.Exec(e.ctx, `ALTER TABLE auth_journal ADD COLUMN key_day date`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.ArchiveJournal(e.ctx, ledger.ArchiveConfig{}); err == nil || !strings.Contains(err.Error(), "key_day") {
		t.Errorf("archive with a column missing from the archive: got %v, want an error naming it", err)
	}
}
