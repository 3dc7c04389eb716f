package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The journal's archival (migration 036; docs/operations.md "Journal
// archival"): rows of auth_journal past a retention move, in short batches,
// to auth_journal_archive, partitioned by day; archive days past a second
// retention are detached and dropped or left for export. The hot path
// never reads the archive: look-ups of an original or a row by id fall
// back to it when the hot table has none (FindOriginal, HoldRateOf,
// JournalRow).

// ArchiveConfig is what one run of ArchiveJournal does. Zero values take
// the defaults.
type ArchiveConfig struct {
	// Retention: rows created longer ago move to the archive (default 45
	// days, longer than every window that reads them), except rows whose
	// hold is open and rows the webhook follower has not passed.
	Retention time.Duration
	// Batch is the number of rows moved per transaction (default 5,000).
	Batch int
	// Pause is slept between two batches (default none), to leave the
	// machine to the switch on a busy day.
	Pause time.Duration
	// DropAfter: archive days that ended longer ago are detached (default
	// 0: never; keep the archive).
	DropAfter time.Duration
	// Keep leaves detached days as tables of their own, for export (COPY,
	// pg_dump -t), instead of dropping them.
	Keep bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultJournalRetention is how long journal rows stay in auth_journal.
const DefaultJournalRetention = 45 * 24 * time.Hour

func (c *ArchiveConfig) defaults() {
	if c.Retention <= 0 {
		c.Retention = DefaultJournalRetention
	}
	if c.Batch <= 0 {
		c.Batch = 5000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// ArchiveResult is what a run did.
type ArchiveResult struct {
	Moved    int64    // journal rows moved to the archive
	Batches  int      // transactions that moved rows
	Created  []string // archive partitions created
	Detached []string // archive partitions detached (and dropped unless kept)
	Dropped  bool     // the detached partitions were dropped
	Took     time.Duration
}

// archivePartitionPrefix names each day's partition: the prefix and the
// day in UTC, YYYYMMDD.
const archivePartitionPrefix = "auth_journal_archive_p"

// archiveCandidates are the next journal rows to move, locked (rows locked
// by anyone else are skipped, never waited for): created before $2, with
// ids in ($1, $3], whose hold is not open. $3 bounds the primary key range
// read: below the webhook follower's position, below the newest row (kept
// so that the journal's end stays readable) and not past the last row
// created before the retention.
const archiveCandidates = `SELECT j.id, j.created_at FROM auth_journal j
	WHERE j.id > $1 AND j.id <= $3 AND j.created_at < $2
		AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = j.hold_id AND h.status = 'open')
	ORDER BY j.id LIMIT $4 FOR UPDATE OF j SKIP LOCKED`

// archiveBound is the highest id a run may move besides the retention
// (see archiveCandidates): below the newest row and not past the webhook
// follower's position.
const archiveBound = `SELECT least((SELECT coalesce(max(id), 0) - 1 FROM auth_journal),
	coalesce((SELECT position FROM webhook_cursors WHERE name = 'auth_journal'), 0))`

// journalIDBefore returns the highest journal id created before t (0: none),
// by a binary search over the primary key, a few dozen index probes: ids
// grow with created_at (up to a transaction's length), and max(id) WHERE
// created_at < t would be planned as a backward scan of the primary key
// through every row newer than t.
func (l *Ledger) journalIDBefore(ctx context.Context, t time.Time) (int64, error) {
	var lo, hi int64
	if err := l.pool.QueryRow(ctx, `SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM auth_journal`).Scan(&lo, &hi); err != nil {
		return 0, dbErr("journal archive bound", err)
	}
	at := func(x int64) (time.Time, error) { // created_at of the first row from id x
		var c time.Time
		err := l.pool.QueryRow(ctx, `SELECT created_at FROM auth_journal WHERE id >= $1 ORDER BY id LIMIT 1`, x).Scan(&c)
		if err == pgx.ErrNoRows {
			return time.Unix(1<<62, 0), nil
		}
		return c, dbErr("journal archive bound", err)
	}
	if c, err := at(lo); err != nil || !c.Before(t) {
		return 0, err
	}
	for hi++; hi-lo > 1; {
		mid := lo + (hi-lo)/2
		c, err := at(mid)
		if err != nil {
			return 0, err
		}
		if c.Before(t) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// ArchiveJournal runs the journal's archival once: it moves the rows past
// c.Retention to the archive, then detaches the archive's days past
// c.DropAfter. Each batch is its own transaction holding only the locks of
// its rows (and, the first time a day is met, the archive's while its
// partition is attached, with a lock timeout), so the switch goes on
// writing and probing the journal meanwhile. Safe to run while the switch
// runs; two runs at once never move a row twice (they skip each other's
// rows).
func (l *Ledger) ArchiveJournal(ctx context.Context, c ArchiveConfig) (ArchiveResult, error) {
	c.defaults()
	start := time.Now()
	var res ArchiveResult
	cols, err := l.archiveColumns(ctx)
	if err != nil {
		return res, err
	}
	move := `WITH moved AS (DELETE FROM auth_journal WHERE id = ANY ($1) RETURNING ` + cols + `)
		INSERT INTO auth_journal_archive (` + cols + `) SELECT ` + cols + ` FROM moved`
	days, err := l.archiveDays(ctx)
	if err != nil {
		return res, err
	}
	cutoff := c.Now().Add(-c.Retention)
	var hi int64
	if err := l.pool.QueryRow(ctx, archiveBound).Scan(&hi); err != nil {
		return res, dbErr("journal archive bound", err)
	}
	old, err := l.journalIDBefore(ctx, cutoff)
	if err != nil {
		return res, err
	}
	hi = min(hi, old)
	for after := int64(0); after < hi; {
		var n int64
		err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, archiveCandidates, after, cutoff, hi, c.Batch)
			if err != nil {
				return err
			}
			var ids []int64
			var fresh []time.Time
			var id int64
			var at time.Time
			_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
				ids = append(ids, id)
				if day := at.UTC().Truncate(24 * time.Hour); !days[day] {
					days[day] = true
					fresh = append(fresh, day)
				}
				return nil
			})
			if err != nil || len(ids) == 0 {
				after = hi
				return err
			}
			for _, day := range fresh {
				if err := createArchiveDay(ctx, tx, day); err != nil {
					return err
				}
				res.Created = append(res.Created, archivePartition(day))
			}
			tag, err := tx.Exec(ctx, move, ids)
			n, after = tag.RowsAffected(), ids[len(ids)-1]
			return err
		})
		if err != nil {
			return res, dbErr("journal archive", err)
		}
		if n > 0 {
			res.Moved += n
			res.Batches++
		}
		if c.Pause > 0 && after < hi {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(c.Pause):
			}
		}
	}
	if c.DropAfter > 0 {
		if res.Detached, err = l.detachArchiveDays(ctx, c.Now().Add(-c.DropAfter), !c.Keep); err != nil {
			return res, err
		}
		res.Dropped = len(res.Detached) > 0 && !c.Keep
	}
	res.Took = time.Since(start)
	l.log.Info("journal archived", "moved", res.Moved, "batches", res.Batches, "created", len(res.Created),
		"detached", len(res.Detached), "took", res.Took)
	return res, nil
}

// archiveColumns returns auth_journal's columns as a list for the move,
// checking the archive has each of them (a column added to auth_journal
// alone would otherwise lose its values).
func (l *Ledger) archiveColumns(ctx context.Context) (string, error) {
	rows, err := l.pool.Query(ctx, `SELECT a.attname, b.attname IS NOT NULL FROM pg_attribute a
		LEFT JOIN pg_attribute b ON b.attrelid = 'auth_journal_archive'::regclass AND b.attname = a.attname AND b.attnum > 0 AND NOT b.attisdropped
		WHERE a.attrelid = 'auth_journal'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`)
	if err != nil {
		return "", dbErr("journal archive columns", err)
	}
	var cols, missing []string
	var name string
	var ok bool
	if _, err := pgx.ForEachRow(rows, []any{&name, &ok}, func() error {
		cols = append(cols, pgx.Identifier{name}.Sanitize())
		if !ok {
			missing = append(missing, name)
		}
		return nil
	}); err != nil {
		return "", dbErr("journal archive columns", err)
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("journal archive: auth_journal_archive lacks column %s: add it in the migration that added it to auth_journal", strings.Join(missing, ", "))
	}
	return strings.Join(cols, ", "), nil
}

// ArchiveDay is one day's partition of the archive.
type ArchiveDay struct {
	Name string
	Day  time.Time // its first instant, UTC
}

// ArchiveDays lists the archive's partitions, oldest first.
func (l *Ledger) ArchiveDays(ctx context.Context) ([]ArchiveDay, error) {
	rows, err := l.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'auth_journal_archive'::regclass`)
	if err != nil {
		return nil, dbErr("journal archive days", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbErr("journal archive days", err)
	}
	var out []ArchiveDay
	for _, n := range names {
		if d, err := time.Parse("20060102", strings.TrimPrefix(n, archivePartitionPrefix)); err == nil && strings.HasPrefix(n, archivePartitionPrefix) {
			out = append(out, ArchiveDay{Name: n, Day: d})
		}
	}
	slices.SortFunc(out, func(a, b ArchiveDay) int { return a.Day.Compare(b.Day) })
	return out, nil
}

func (l *Ledger) archiveDays(ctx context.Context) (map[time.Time]bool, error) {
	ds, err := l.ArchiveDays(ctx)
	m := make(map[time.Time]bool, len(ds))
	for _, d := range ds {
		m[d.Day] = true
	}
	return m, err
}

func archivePartition(day time.Time) string {
	return archivePartitionPrefix + day.Format("20060102")
}

// createArchiveDay creates in tx the archive's partition of day (UTC): a
// table of the archive's columns, then attached, which locks the archive
// SHARE UPDATE EXCLUSIVE (CREATE TABLE … PARTITION OF would lock it
// ACCESS EXCLUSIVE, queueing every read of the archive behind any long
// one, verify's say, until the batch commits).
func createArchiveDay(ctx context.Context, tx pgx.Tx, day time.Time) error {
	const ts = "2006-01-02 15:04:05+00"
	name := pgx.Identifier{archivePartition(day)}.Sanitize()
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, archivePartition(day)).Scan(&exists); err != nil || exists {
		return err
	}
	_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE auth_journal_archive INCLUDING CONSTRAINTS);
		ALTER TABLE auth_journal_archive ATTACH PARTITION %[1]s FOR VALUES FROM ('%s') TO ('%s')`,
		name, day.Format(ts), day.Add(24*time.Hour).Format(ts)))
	return err
}

// detachArchiveDays detaches the archive's days that ended before before,
// oldest first, and drops them when drop is set. The horizon verify reads
// (journal_archive_horizon) moves first, so verify never asks for a row
// being dropped; the detach is CONCURRENTLY, so that reads of the archive
// go on meanwhile.
func (l *Ledger) detachArchiveDays(ctx context.Context, before time.Time, drop bool) ([]string, error) {
	days, err := l.ArchiveDays(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range days {
		end := d.Day.Add(24 * time.Hour)
		if end.After(before) {
			break
		}
		name := pgx.Identifier{d.Name}.Sanitize()
		if _, err := l.pool.Exec(ctx, `INSERT INTO journal_archive_horizon (dropped_before) VALUES ($1)
			ON CONFLICT (one) DO UPDATE SET dropped_before = greatest(journal_archive_horizon.dropped_before, EXCLUDED.dropped_before)`, end); err != nil {
			return out, dbErr("journal archive horizon", err)
		}
		if _, err := l.pool.Exec(ctx, `ALTER TABLE auth_journal_archive DETACH PARTITION `+name+` CONCURRENTLY`); err != nil {
			return out, dbErr("journal archive detach "+d.Name, err)
		}
		if drop {
			if _, err := l.pool.Exec(ctx, `DROP TABLE `+name); err != nil {
				return out, dbErr("journal archive drop "+d.Name, err)
			}
		}
		out = append(out, d.Name)
	}
	return out, nil
}

// ArchivedAnswerOf returns the answer recorded in the archive for a
// request's journal key, when there is one: for a repeat of a request
// older than the journal's retention, which the keys of holds or postings
// (never archived) caught. Off the hot path: read only after such a key
// reported the repeat.
func ArchivedAnswerOf(ctx context.Context, q Querier, k JournalKey) (StoredAnswer, bool, error) {
	return storedAnswerIn(ctx, q, selectArchivedAnswer, k)
}

// selectArchivedAnswer is selectStoredAnswer in the archive, whose
// partitions cannot hold the journal key unique: the latest.
const selectArchivedAnswer = `SELECT reason, approval_code, coalesce(hold_id, 0), available, available_currency, coalesce(approved_amount, 0)
		FROM auth_journal_archive WHERE acquirer_id = $1 AND stan = $2 AND transmission_time = $3 AND rrn = $4 AND mti = $5
		ORDER BY id DESC LIMIT 1`
