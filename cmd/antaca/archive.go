package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/antaca/antaca/ledger"
)

// journalArchive runs `antaca journal-archive`: it moves the journal's rows
// past the retention to its archive and detaches the archive's days past
// -drop-after-days (docs/operations.md "Journal archival"), once, or every
// -every until stopped (a failed run is then logged and the next one goes
// on). Safe while the switch runs.
func journalArchive(ctx context.Context, args []string, stdout io.Writer) error {
	var (
		c                    common
		retention, dropAfter int
		batch                int
		pause, every         time.Duration
		keep                 bool
	)
	fs := flag.NewFlagSet("journal-archive", flag.ContinueOnError)
	c.register(fs)
	fs.IntVar(&retention, "retention-days", int(ledger.DefaultJournalRetention/(24*time.Hour)),
		"journal rows older than this many days move to the archive, except rows of open holds and rows the webhooks have not passed")
	fs.IntVar(&batch, "batch", 5000, "rows moved per transaction")
	fs.DurationVar(&pause, "pause", 0, "sleep between two batches, to leave the machine to the switch")
	fs.IntVar(&dropAfter, "drop-after-days", 0, "detach the archive's days that ended more than this many days ago (0: keep the archive)")
	fs.BoolVar(&keep, "keep", false, "leave detached days as tables of their own, for export, instead of dropping them")
	fs.DurationVar(&every, "every", 0, "run again after this long until stopped (0: run once)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if retention < 1 || batch < 1 || dropAfter < 0 {
		return fmt.Errorf("journal-archive: -retention-days and -batch must be at least 1, -drop-after-days not negative")
	}
	log := c.logger()
	pool, closeFn, err := c.open(ctx, log)
	if err != nil {
		return err
	}
	defer closeFn()
	l := ledger.New(pool, ledger.Config{Logger: log})
	cfg := ledger.ArchiveConfig{Retention: time.Duration(retention) * 24 * time.Hour, Batch: batch, Pause: pause,
		DropAfter: time.Duration(dropAfter) * 24 * time.Hour, Keep: keep}
	for {
		res, err := l.ArchiveJournal(ctx, cfg)
		switch {
		case ctx.Err() != nil:
			return nil // stopped: what was moved is committed, batch by batch
		case err != nil && every <= 0:
			return fmt.Errorf("journal-archive: %w", err)
		case err != nil:
			// A lock timeout, a failover: the next run goes on.
			log.Error("journal archive run failed", "err", err)
		default:
			rate := 0.0
			if s := res.Took.Seconds(); s > 0 {
				rate = float64(res.Moved) / s
			}
			fmt.Fprintf(stdout, "journal-archive: moved=%d batches=%d rows_per_s=%.0f partitions_created=%d detached=%d dropped=%v took=%s\n",
				res.Moved, res.Batches, rate, len(res.Created), len(res.Detached), res.Dropped, res.Took.Round(time.Millisecond))
		}
		if every <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
