package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/antaca/antaca/ledger/ledgertest"
)

// TestJournalArchiveCommand: `antaca journal-archive` moves the journal's
// rows past -retention-days (here a decline 50 days old, the webhooks past
// it) and says how many; bad flags fail before connecting.
func TestJournalArchiveCommand(t *testing.T) {
	url := ledgertest.URL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`INSERT INTO auth_journal (profile, mti, class, stan, reason, created_at) VALUES ('iso87', '0100', 1, '000001', 'insufficient_funds', now() - interval '50 days')`,
		`INSERT INTO auth_journal (profile, mti, class, stan, reason) VALUES ('iso87', '0100', 1, '000002', 'insufficient_funds')`,
		`UPDATE webhook_cursors SET position = (SELECT max(id) FROM auth_journal) WHERE name = 'auth_journal'`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"journal-archive", "-database-url", url, "-log-level", "error"}, &out); err != nil {
		t.Fatalf("antaca journal-archive: %v", err)
	}
	if !strings.HasPrefix(out.String(), "journal-archive: moved=1 batches=1 ") {
		t.Errorf("output %q, want moved=1 batches=1", out.String())
	}
	var hot, archived int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM auth_journal), (SELECT count(*) FROM auth_journal_archive)`).Scan(&hot, &archived); err != nil {
		t.Fatal(err)
	}
	if hot != 1 || archived != 1 {
		t.Errorf("hot %d, archived %d rows, want 1 and 1", hot, archived)
	}
	if err := run(ctx, []string{"journal-archive", "-database-url", url, "-retention-days", "0"}, &out); err == nil {
		t.Error("-retention-days 0: got no error")
	}
}
