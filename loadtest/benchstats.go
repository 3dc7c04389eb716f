package loadtest

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/ledger/pgcluster"
)

// BatchStats count the card host's write batches (one transaction each):
// how many, the requests they carried and their time, commit included.
type BatchStats struct {
	Batches  uint64
	Requests float64
	Seconds  float64
}

func (s BatchStats) sub(o BatchStats) BatchStats {
	return BatchStats{Batches: s.Batches - o.Batches, Requests: s.Requests - o.Requests, Seconds: s.Seconds - o.Seconds}
}

// batchStats reads the batch histograms from the card host's registry.
func batchStats(reg prometheus.Gatherer) (BatchStats, error) {
	families, err := reg.Gather()
	if err != nil {
		return BatchStats{}, err
	}
	var s BatchStats
	for _, f := range families {
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			switch f.GetName() {
			case "antaca_auth_batch_size":
				s.Batches += h.GetSampleCount()
				s.Requests += h.GetSampleSum()
			case "antaca_auth_batch_seconds":
				s.Seconds += h.GetSampleSum()
			}
		}
	}
	return s, nil
}

// WriteStats are Postgres' write counters over the load.
type WriteStats struct {
	WALBytes, WALRecords, WALFullPages int64
	Checkpoints                        int64
	AccountUpdates, AccountHOTUpdates  int64
	// BlocksRead and BlocksHit are the database's page reads from
	// outside shared_buffers and hits in them; Autovacuums counts
	// autovacuum and autoanalyze runs on its tables.
	BlocksRead, BlocksHit, Autovacuums int64
}

func writeStats(ctx context.Context, pool *pgxpool.Pool) (WriteStats, error) {
	const q = `SELECT w.wal_bytes::bigint, w.wal_records, w.wal_fpi, b.checkpoints_timed + b.checkpoints_req,
		t.n_tup_upd, t.n_tup_hot_upd, d.blks_read, d.blks_hit,
		(SELECT sum(autovacuum_count + autoanalyze_count)::bigint FROM pg_stat_user_tables)
		FROM pg_stat_wal w, pg_stat_bgwriter b, pg_stat_user_tables t, pg_stat_database d
		WHERE t.relname = 'accounts' AND d.datname = current_database()`
	var s WriteStats
	err := pool.QueryRow(ctx, q).Scan(&s.WALBytes, &s.WALRecords, &s.WALFullPages, &s.Checkpoints, &s.AccountUpdates, &s.AccountHOTUpdates,
		&s.BlocksRead, &s.BlocksHit, &s.Autovacuums)
	return s, err
}

func (s WriteStats) sub(o WriteStats) WriteStats {
	return WriteStats{s.WALBytes - o.WALBytes, s.WALRecords - o.WALRecords, s.WALFullPages - o.WALFullPages,
		s.Checkpoints - o.Checkpoints, s.AccountUpdates - o.AccountUpdates, s.AccountHOTUpdates - o.AccountHOTUpdates,
		s.BlocksRead - o.BlocksRead, s.BlocksHit - o.BlocksHit, s.Autovacuums - o.Autovacuums}
}

// sampleWrites logs, every interval until ctx ends, what Postgres did in
// it (the WAL, its full-page images, page reads, checkpoints,
// autovacuums), beside the load generator's report intervals: whether a
// later interval is slower because of a checkpoint or a vacuum.
func sampleWrites(ctx context.Context, pool *pgxpool.Pool, every time.Duration, log *slog.Logger) {
	last, err := writeStats(ctx, pool)
	if err != nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := writeStats(ctx, pool)
		if err != nil {
			return
		}
		d := now.sub(last)
		last = now
		log.Info("postgres interval", "n", i, "wal_mb", fmt.Sprintf("%.1f", float64(d.WALBytes)/1e6), "full_page_images", d.WALFullPages,
			"blocks_read", d.BlocksRead, "blocks_hit", d.BlocksHit, "checkpoints", d.Checkpoints, "autovacuums", d.Autovacuums)
	}
}

// Statement is one pg_stat_statements row.
type Statement struct {
	Calls   int64
	TotalMS float64 // executing
	MeanMS  float64
	Plans   int64   // times planned (a cached plan is not)
	PlanMS  float64 // planning
	Query   string  // first 120 characters, whitespace folded
	// Buffer and WAL counters, totals over the calls: pages found in
	// shared_buffers (Hit), read from outside them (Read), dirtied, and
	// written by the backend itself to make room (Written); full-page
	// images and bytes of WAL. Unlike times, they do not depend on what
	// else runs on the machine.
	Hit, Read, Dirtied, Written, WALFullPages, WALBytes int64
}

func hasStatStatements() bool {
	bin, err := pgcluster.BinDir()
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(filepath.Join(bin, "initdb")); err == nil {
		bin = filepath.Dir(real)
	}
	_, err = os.Stat(filepath.Join(filepath.Dir(bin), "lib", "pg_stat_statements.so"))
	return err == nil
}

func topStatements(ctx context.Context, pool *pgxpool.Pool) ([]Statement, error) {
	const q = `SELECT calls, total_exec_time, mean_exec_time, plans, total_plan_time, query,
		shared_blks_hit, shared_blks_read, shared_blks_dirtied, shared_blks_written, wal_fpi, wal_bytes::bigint FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time + total_plan_time DESC LIMIT 12`
	rows, err := pool.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	var out []Statement
	var st Statement
	_, err = pgx.ForEachRow(rows, []any{&st.Calls, &st.TotalMS, &st.MeanMS, &st.Plans, &st.PlanMS, &st.Query,
		&st.Hit, &st.Read, &st.Dirtied, &st.Written, &st.WALFullPages, &st.WALBytes}, func() error {
		q := strings.Join(strings.Fields(st.Query), " ")
		if len(q) > 120 {
			q = q[:120]
		}
		st.Query = q
		out = append(out, st)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	return out, nil
}

// journalTables are the tables that grow with every message (docs/
// operations.md, "Journal growth"): their size per approval says how fast
// the journal must be partitioned and archived.
var journalTables = []string{"auth_journal", "holds", "postings", "entries"}

// TableSizes are pg_total_relation_size (heap, indexes, TOAST) of the
// journal tables, in the order of journalTables.
type TableSizes []int64

func tableSizes(ctx context.Context, pool *pgxpool.Pool) (TableSizes, error) {
	const q = `SELECT coalesce(pg_total_relation_size(to_regclass(t)), 0) FROM unnest($1::text[]) WITH ORDINALITY AS x(t, i) ORDER BY i`
	rows, err := pool.Query(ctx, q, journalTables)
	if err != nil {
		return nil, fmt.Errorf("table sizes: %w", err)
	}
	s, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("table sizes: %w", err)
	}
	return s, nil
}

// Growth is what each journal table grew by from o to s, by name.
func (s TableSizes) Growth(o TableSizes) map[string]int64 {
	g := map[string]int64{}
	for i, name := range journalTables {
		if i < len(s) && i < len(o) {
			g[name] = s[i] - o[i]
		}
	}
	return g
}

// WaitEvent is how often Postgres' backends were seen waiting on one
// event (pg_stat_activity, sampled every 10 ms during the load): where a
// stall comes from (a lock, the WAL, a new WAL segment, I/O).
type WaitEvent struct {
	Backend, Event string // backend type; wait_event_type:wait_event, or "cpu" for an active backend not waiting
	Samples        int64
}

// sampleWaits samples the wait events of the cluster's backends every
// 10 ms until ctx ends and returns the counts, most frequent first.
func sampleWaits(ctx context.Context, pool *pgxpool.Pool) []WaitEvent {
	const q = `SELECT backend_type, coalesce(wait_event_type || ':' || wait_event, 'cpu'), count(*) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND (state = 'active' OR backend_type <> 'client backend')
		AND coalesce(wait_event_type, '') NOT IN ('Activity', 'Client') GROUP BY 1, 2`
	counts := map[[2]string]int64{}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil
	}
	defer conn.Release()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			out := make([]WaitEvent, 0, len(counts))
			for k, n := range counts {
				out = append(out, WaitEvent{Backend: k[0], Event: k[1], Samples: n})
			}
			slices.SortFunc(out, func(a, b WaitEvent) int { return cmp.Compare(b.Samples, a.Samples) })
			return out
		case <-t.C:
		}
		rows, err := conn.Query(ctx, q)
		if err != nil {
			continue
		}
		var b, e string
		var n int64
		pgx.ForEachRow(rows, []any{&b, &e, &n}, func() error {
			counts[[2]string{b, e}] += n
			return nil
		})
	}
}
