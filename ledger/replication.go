package ledger

import "context"

// Replication is what the primary says of its standbys
// (pg_stat_replication): how many stream from it and how many of them are
// synchronous, i.e. confirm every commit before it is answered.
type Replication struct {
	Standbys     int
	SyncStandbys int
	// SyncNames is synchronous_standby_names: Patroni empties it when the
	// synchronous standby is lost in non-strict mode, and the primary then
	// commits alone.
	SyncNames string
}

// Replication reads the replication state of the server the pool is on.
// It is safe for concurrent use.
func (l *Ledger) Replication(ctx context.Context) (Replication, error) {
	const q = `SELECT count(*), count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')), current_setting('synchronous_standby_names')
		FROM pg_stat_replication`
	var r Replication
	if err := l.pool.QueryRow(ctx, q).Scan(&r.Standbys, &r.SyncStandbys, &r.SyncNames); err != nil {
		return Replication{}, dbErr("replication state", err)
	}
	return r, nil
}
