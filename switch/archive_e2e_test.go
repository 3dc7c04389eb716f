package authswitch

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/ledger"
)

// journalID is the id of the journal row of request req (by STAN), in the
// journal or its archive.
func (e *e2e) journalID(req *iso8583.Message) int64 {
	e.t.Helper()
	var id int64
	err := e.pool.QueryRow(e.ctx, `SELECT id FROM (SELECT id, stan FROM auth_journal UNION ALL SELECT id, stan FROM auth_journal_archive) j
		WHERE stan = $1 ORDER BY id LIMIT 1`, get(e.t, req, 11)).Scan(&id)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// webhooksDone records the webhook follower as past every journal row, as
// it is once it has run (no follower runs in these tests).
func (e *e2e) webhooksDone() {
	e.t.Helper()
	if _, err := e.pool.Exec(e.ctx, `UPDATE webhook_cursors SET position = (SELECT coalesce(max(id), 0) FROM auth_journal) WHERE name = 'auth_journal'`); err != nil {
		e.t.Fatal(err)
	}
}

// TestE2EJournalArchive ages a card's journal rows past the retention and
// archives them: the open hold's row stays and completes on the batches'
// path; a recent request's duplicate still gets its stored answer; a
// repeat of an archived approval holds nothing more (holds_ref); a
// refund naming the archived purchase is matched to it (not blind, so
// credited); a late reversal of an archived, released authorisation finds
// it (not kept as a pending reversal); verify is clean.
func TestE2EJournalArchive(t *testing.T) {
	forProfiles(t, nil, func(t *testing.T, e *e2e) {
		card := e.virtualCard(e.prog, 10_000)
		purchase, resp := e.auth(card, 1_000, nil)
		e.expect(resp, cardhost.Approved)
		completion := e.follow("220", purchase, card, 1_000, nil)
		completionResp := e.send(completion)
		e.expect(completionResp, cardhost.Approved)
		released, resp := e.auth(card, 500, nil)
		e.expect(resp, cardhost.Approved)
		e.expect(e.send(e.follow("400", released, card, 500, nil)), cardhost.Approved)
		open, resp := e.auth(card, 300, nil)
		e.expect(resp, cardhost.Approved)
		refund := map[int]string{3: "200000"}
		early := e.follow("200", purchase, card, 100, refund)
		earlyResp := e.send(early)
		e.expect(earlyResp, cardhost.Approved)
		e.expectBalance(card.AccountID, 9_100, 300)

		other := e.virtualCard(e.prog, 10_000)
		recent, first := e.auth(other, 700, nil)
		e.expect(first, cardhost.Approved)

		if _, err := e.pool.Exec(e.ctx, `UPDATE auth_journal SET created_at = created_at - interval '50 days' WHERE card_id = $1`, card.ID); err != nil {
			t.Fatal(err)
		}
		e.webhooksDone()
		res, err := e.led.ArchiveJournal(e.ctx, ledger.ArchiveConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Moved != 5 {
			t.Errorf("moved %d rows, want 5 (purchase, its completion, an authorisation and its reversal, a refund)", res.Moved)
		}
		for _, r := range []struct {
			req   *iso8583.Message
			table string
		}{{purchase, "auth_journal_archive"}, {released, "auth_journal_archive"}, {open, "auth_journal"}, {recent, "auth_journal"}} {
			if n := e.count(`SELECT count(*) FROM `+r.table+` WHERE id = $1`, e.journalID(r.req)); n != 1 {
				t.Errorf("journal row of STAN %s: not in %s", get(t, r.req, 11), r.table)
			}
		}
		e.verify()

		// A duplicate within the window: the stored answer, no new hold.
		again := e.send(recent)
		for _, f := range []int{39, 38, 54} {
			if a, b := get(t, first, f), get(t, again, f); a != b {
				t.Errorf("DE%d: duplicate after archival got %q, first %q", f, b, a)
			}
		}
		if n := e.count(`SELECT count(*) FROM holds WHERE user_account_id = $1`, other.AccountID); n != 1 {
			t.Errorf("holds of the duplicate's card: got %d, want 1", n)
		}

		// A repeat of an archived approval, past the journal's window:
		// the holds' unique ref (holds are never archived) still holds it
		// once.
		holds := e.count(`SELECT count(*) FROM holds WHERE user_account_id = $1`, card.AccountID)
		e.expect(e.send(purchase), cardhost.Approved)
		if n := e.count(`SELECT count(*) FROM holds WHERE user_account_id = $1`, card.AccountID); n != holds {
			t.Errorf("holds after a repeat of an archived approval: got %d, want %d", n, holds)
		}
		e.expectBalance(card.AccountID, 9_100, 300)
		// A repeat of an archived refund: credited once, answered as the
		// first time (its stored answer read from the archive).
		again = e.send(early)
		for _, f := range []int{39, 38} {
			if a, b := get(t, earlyResp, f), get(t, again, f); a != b {
				t.Errorf("DE%d: repeat of an archived refund got %q, first %q", f, b, a)
			}
		}
		e.expectBalance(card.AccountID, 9_100, 300)
		// And of an archived completion: captured once, its first answer.
		again = e.send(completion)
		for _, f := range []int{39, 38} {
			if a, b := get(t, completionResp, f), get(t, again, f); a != b {
				t.Errorf("DE%d: repeat of an archived completion got %q, first %q", f, b, a)
			}
		}
		e.expectBalance(card.AccountID, 9_100, 300)

		// A refund naming the archived purchase: matched, credited up to
		// its capture less the refund before (the program credits no
		// blind refund).
		e.expect(e.send(e.follow("200", purchase, card, 600, refund)), cardhost.Approved)
		e.expectBalance(card.AccountID, 9_700, 300)
		e.expect(e.send(e.follow("200", purchase, card, 600, refund)), cardhost.Approved)
		e.expectBalance(card.AccountID, 10_000, 300) // the rest of the capture, no more
		if n := e.count(`SELECT count(*) FROM exceptions WHERE kind = 'blind_refund' AND card_id = $1`, card.ID); n != 1 {
			t.Errorf("blind refund exceptions: got %d, want 1 (the 300 above the capture)", n)
		}

		// A late reversal of the archived authorisation finds it: nothing
		// to release, no pending reversal.
		late := e.follow("420", released, card, 500, nil)
		e.expect(e.send(late), cardhost.Approved)
		var orig *int64
		if err := e.pool.QueryRow(e.ctx, `SELECT original_id FROM auth_journal WHERE id = $1`, e.journalID(late)).Scan(&orig); err != nil {
			t.Fatal(err)
		}
		if want := e.journalID(released); orig == nil || *orig != want {
			t.Errorf("late reversal's original: got %v, want %d", orig, want)
		}
		if n := e.count(`SELECT count(*) FROM pending_reversals`); n != 0 {
			t.Errorf("pending reversals: got %d, want 0", n)
		}

		// The open hold kept hot completes.
		e.expect(e.send(e.follow("220", open, card, 300, nil)), cardhost.Approved)
		e.expectBalance(card.AccountID, 9_700, 0)

		// Replay by event id reads the archived row.
		row, err := e.led.JournalRow(e.ctx, e.journalID(purchase))
		if err != nil || row.CardID != card.ID {
			t.Errorf("archived journal row: got %+v, %v", row, err)
		}
	})
}

// TestE2EJournalArchiveWhileAuthorising runs the archival, with a retention
// of a millisecond and small batches, again and again while two
// connections authorise: one approves and reverses, the other is declined
// and sends each decline twice. Every answer is the one expected, rows
// move meanwhile, and the ledger verifies.
func TestE2EJournalArchiveWhileAuthorising(t *testing.T) {
	const n = 150
	e := newE2E(t, ProfileISO87, nil)
	rich, poor := e.virtualCard(e.prog, 1_000_000), e.virtualCard(e.prog, 0)
	var approvals, declines []*iso8583.Message
	for range n {
		a := e.msg("100", rich, 100, nil)
		approvals = append(approvals, a, e.follow("400", a, rich, 100, nil))
		declines = append(declines, e.msg("100", poor, 100, nil))
	}
	approved, short := actionCode(t, e.profile, cardhost.Approved), actionCode(t, e.profile, cardhost.InsufficientFunds)
	errs := make(chan error, 4*n)
	var wg sync.WaitGroup
	send := func(c *connection.Connection, ms []*iso8583.Message, want string, times int) {
		defer wg.Done()
		for _, m := range ms {
			for range times {
				resp, err := c.Send(m)
				if err != nil {
					errs <- err
					continue
				}
				if code, _ := resp.GetString(39); code != want {
					errs <- fmt.Errorf("STAN %s: DE39 %s, want %s", get(t, m, 11), code, want)
				}
			}
		}
	}
	wg.Add(2)
	go send(e.dial(), approvals, approved, 1)
	go send(e.dial(), declines, short, 2)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var moved int64
	runs := 0
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		e.webhooksDone()
		res, err := e.led.ArchiveJournal(e.ctx, ledger.ArchiveConfig{Retention: time.Millisecond, Batch: 20})
		if err != nil {
			t.Fatalf("archive run %d: %v", runs, err)
		}
		moved += res.Moved
		runs++
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if moved == 0 {
		t.Errorf("archive: %d runs moved nothing", runs)
	}
	t.Logf("%d archive runs moved %d rows while authorising", runs, moved)
	e.expectBalance(rich.AccountID, 1_000_000, 0)
	e.expectBalance(poor.AccountID, 0, 0)
	if n := e.count(`SELECT count(*) FROM holds WHERE status = 'open'`); n != 0 {
		t.Errorf("open holds: %d, want 0", n)
	}
	// Nothing lost: every request has its row, hot or archived. (With a
	// retention of a millisecond a decline may move before its duplicate
	// comes, which is then declined again: rows of the same request.)
	if got := e.count(`SELECT count(DISTINCT stan) FROM (SELECT stan FROM auth_journal UNION ALL SELECT stan FROM auth_journal_archive) j`); got != 3*n {
		t.Errorf("journaled requests: got %d, want %d", got, 3*n)
	}
	if got := e.count(`SELECT count(*) FROM auth_journal j JOIN auth_journal_archive a USING (id)`); got != 0 {
		t.Errorf("rows both hot and archived: %d", got)
	}
}
