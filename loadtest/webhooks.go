package loadtest

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/partner"
)

// startWebhooks registers an HTTPS receiver of every authorisation event
// for every partner and runs the webhook worker until the returned stop.
func startWebhooks(ctx context.Context, pool *pgxpool.Pool, led *ledger.Ledger) (stop func(), err error) {
	var got atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	rows, err := pool.Query(ctx, `SELECT id FROM partners`)
	if err != nil {
		srv.Close()
		return nil, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			srv.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	types := []string{"authorization.approved", "authorization.declined", "authorization.reversed", "clearing.captured", "refund.credited"}
	for _, id := range ids {
		if _, err := led.CreateWebhookEndpoint(ctx, id, srv.URL, types, fmt.Sprintf("whsec_bench_%d", id)); err != nil {
			srv.Close()
			return nil, err
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		partner.NewWebhooks(led, partner.NewClient(partner.Config{RootCAs: roots, AllowLoopback: true}), partner.WebhookConfig{}).Run(wctx)
	}()
	return func() {
		cancel()
		<-done
		srv.Close()
		fmt.Printf("webhooks: %d deliveries received during the bench\n", got.Load())
	}, nil
}
