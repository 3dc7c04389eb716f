package ledger_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/ledger"
)

// TestJournalOneInsert: the journal has one insert, used by a batch (many
// rows, a key that exists fails the statement: JournalDuplicate, and
// nothing of it is inserted) and by a message alone (one row, a key that
// exists is reported, the transaction goes on); the stored answer reads
// back what either wrote.
func TestJournalOneInsert(t *testing.T) {
	e := newEnv(t, 0)
	row := func(stan, reason string) ledger.JournalRow {
		avail := int64(4_200)
		return ledger.JournalRow{Key: ledger.JournalKey{Acq: "12345678901", STAN: stan, TT: "1206120000", RRN: "000000000001", MTI: "0100"},
			Profile: "iso87", Class: 1, Reason: reason, ApprovalCode: "654321", Available: &avail, AvailableCurrency: "978", Detail: "test"}
	}
	tx, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(e.ctx)
	id, inserted, err := ledger.InsertJournal(e.ctx, tx, row("000001", "approved"))
	if err != nil || !inserted || id <= 0 {
		t.Fatalf("first insert: id %d inserted %v err %v, want a new row", id, inserted, err)
	}
	if id, inserted, err := ledger.InsertJournal(e.ctx, tx, row("000001", "insufficient_funds")); err != nil || inserted || id != 0 {
		t.Fatalf("the same key again: id %d inserted %v err %v, want not inserted, no error", id, inserted, err)
	}
	if err := tx.Commit(e.ctx); err != nil {
		t.Fatalf("commit after a duplicate: %v (the transaction must go on)", err)
	}

	var q pgx.Batch
	b := ledger.NewJournalRows(2)
	b.Add(row("000002", "approved"))
	b.Add(row("000001", "approved"))
	ledger.QueueInsertJournals(&q, b)
	if err := e.pool.SendBatch(e.ctx, &q).Close(); !ledger.JournalDuplicate(err) {
		t.Fatalf("batch with a key that exists: %v, want the journal's duplicate", err)
	}
	var n int
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM auth_journal WHERE stan = '000002'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows of the failed batch (%v), want none", n, err)
	}
	q = pgx.Batch{}
	b = ledger.NewJournalRows(1)
	b.Add(row("000002", "approved"))
	ledger.QueueInsertJournals(&q, b)
	if err := e.pool.SendBatch(e.ctx, &q).Close(); err != nil {
		t.Fatal(err)
	}
	for _, stan := range []string{"000001", "000002"} {
		a, ok, err := ledger.StoredAnswerOf(e.ctx, e.pool, row(stan, "").Key)
		if err != nil || !ok || a.Reason != "approved" || a.ApprovalCode != "654321" || a.Available == nil || *a.Available != 4_200 {
			t.Errorf("stored answer of %s: %+v %v %v, want approved 654321 available 4200", stan, a, ok, err)
		}
	}
}
