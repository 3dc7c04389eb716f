package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/antaca/antaca/ledger"
)

// watchReplication polls the primary's replication state every interval
// until ctx ends and exports it: antaca_ledger_sync_standbys is 0 when
// the primary commits alone (no synchronous standby: a two-node Patroni
// cluster in non-strict mode that lost its standby, or `make run`'s single
// server), which an HA deployment alerts on; a loss is logged once.
func watchReplication(ctx context.Context, led *ledger.Ledger, reg prometheus.Registerer, every time.Duration, log *slog.Logger) {
	standbys := prometheus.NewGauge(prometheus.GaugeOpts{Name: "antaca_ledger_standbys", Help: "Standbys streaming from the ledger's primary."})
	sync := prometheus.NewGauge(prometheus.GaugeOpts{Name: "antaca_ledger_sync_standbys",
		Help: "Synchronous standbys of the ledger's primary: 0 means every commit is on one server only."})
	reg.MustRegister(standbys, sync)
	last := -1
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, every)
		r, err := led.Replication(qctx)
		cancel()
		if err == nil {
			standbys.Set(float64(r.Standbys))
			sync.Set(float64(r.SyncStandbys))
			if last > 0 && r.SyncStandbys == 0 {
				log.Warn("ledger: no synchronous standby; the primary commits alone", "standbys", r.Standbys)
			} else if last == 0 && r.SyncStandbys > 0 {
				log.Info("ledger: synchronous standby back", "sync_standbys", r.SyncStandbys)
			}
			last = r.SyncStandbys
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
