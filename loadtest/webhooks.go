package loadtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/partner"
)

// The bench's webhook receiver stands in for the partners' machines, which
// are not ours: it runs in a process of its own at nice 19 (`loadtest
// webhook-receiver`, started by `loadtest bench -webhook`), so the bench
// measures what delivery costs our side. It is a real HTTPS receiver: it
// checks every signature and counts the distinct events it got.

// receiverSecretEnv carries the endpoints' secret to the receiver process.
const receiverSecretEnv = "ANTACA_BENCH_WEBHOOK_SECRET"

// receiverHello is the receiver's first line on its standard output.
type receiverHello struct {
	URL  string `json:"url"`
	Cert []byte `json:"cert"` // DER
}

// receiverCounts is what GET /count on the receiver answers.
type receiverCounts struct {
	Received int64 `json:"received"` // deliveries with a valid signature
	Distinct int64 `json:"distinct"` // distinct event ids among them
	Bad      int64 `json:"bad"`      // refused: no valid signature, or id mismatch
}

// WebhookReceiver serves HTTPS on 127.0.0.1 until in ends (its
// parent closes it or exits): every POST must carry a valid Antaca-Signature
// for the secret in $ANTACA_BENCH_WEBHOOK_SECRET and an Antaca-Event-Id
// equal to the body's id, else it is answered 400 and counted bad; GET
// /count answers the counts. Its first line on out is its URL and
// certificate (JSON).
func WebhookReceiver(ctx context.Context, in io.Reader, out io.Writer) error {
	secret := os.Getenv(receiverSecretEnv)
	if secret == "" {
		return errors.New("webhook-receiver: $" + receiverSecretEnv + " is empty")
	}
	var (
		mu     sync.Mutex
		seen   = map[string]struct{}{}
		counts receiverCounts
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/count" {
			mu.Lock()
			c := counts
			mu.Unlock()
			json.NewEncoder(w).Encode(c)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var ev struct {
			ID string `json:"id"`
		}
		if err != nil || partner.Verify(r.Header.Get(partner.SignatureHeader), body, secret, time.Now(), 5*time.Minute) != nil ||
			json.Unmarshal(body, &ev) != nil || ev.ID == "" || ev.ID != r.Header.Get(partner.EventIDHeader) {
			mu.Lock()
			counts.Bad++
			mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		counts.Received++
		if _, ok := seen[ev.ID]; !ok {
			seen[ev.ID] = struct{}{}
			counts.Distinct++
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.StartTLS()
	defer srv.Close()
	if err := json.NewEncoder(out).Encode(receiverHello{URL: srv.URL, Cert: srv.Certificate().Raw}); err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, in)
		close(ended)
	}()
	select {
	case <-ended:
	case <-ctx.Done():
	}
	return nil
}

// benchWebhooks is the receiver process and the webhook worker of a bench.
type benchWebhooks struct {
	led    *ledger.Ledger
	cmd    *exec.Cmd
	stdin  io.Closer
	url    string
	client *http.Client
	cancel context.CancelFunc
	done   chan struct{}
	// expected counts the events of the journal rows read so far.
	expected int64
	after    int64
	owners   map[int64]int64 // card -> partner
}

// startWebhooks starts the receiver process (argv), registers it for every
// authorisation event of every partner and runs the webhook worker until
// stop.
func startWebhooks(ctx context.Context, pool *pgxpool.Pool, led *ledger.Ledger, argv []string) (*benchWebhooks, error) {
	if len(argv) == 0 {
		return nil, errors.New("no receiver command (BenchConfig.ReceiverCommand)")
	}
	key := make([]byte, 16)
	rand.Read(key)
	secret := "whsec_bench_" + hex.EncodeToString(key)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), receiverSecretEnv+"="+secret)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	b := &benchWebhooks{led: led, cmd: cmd, stdin: stdin, owners: map[int64]int64{}}
	fail := func(err error) (*benchWebhooks, error) {
		stdin.Close()
		cmd.Wait()
		return nil, err
	}
	var hello receiverHello
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&hello); err != nil {
		return fail(fmt.Errorf("receiver: %w", err))
	}
	cert, err := x509.ParseCertificate(hello.Cert)
	if err != nil {
		return fail(fmt.Errorf("receiver: %w", err))
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	b.url = hello.URL
	b.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	var ids []int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM partners`).Scan(&ids); err != nil {
		return fail(err)
	}
	for _, id := range ids {
		if _, err := led.CreateWebhookEndpoint(ctx, id, hello.URL+"/hooks", partner.JournalTypes, secret); err != nil {
			return fail(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		partner.NewWebhooks(led, partner.NewClient(partner.Config{RootCAs: roots, AllowLoopback: true}), partner.WebhookConfig{}).Run(wctx)
	}()
	return b, nil
}

// counts asks the receiver what it got.
func (b *benchWebhooks) counts(ctx context.Context) (receiverCounts, error) {
	var c receiverCounts
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/count", nil)
	if err != nil {
		return c, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return c, fmt.Errorf("receiver: %w", err)
	}
	defer resp.Body.Close()
	return c, json.NewDecoder(resp.Body).Decode(&c)
}

// expect counts the events of the journal rows written since the last call
// (every authorisation event of every partner is registered), from the
// journal itself and partner.JournalEvents, as the worker makes them.
func (b *benchWebhooks) expect(ctx context.Context) (int64, error) {
	for {
		rows, err := b.led.JournalRows(ctx, b.after, nil, 10_000)
		if err != nil || len(rows) == 0 {
			return b.expected, err
		}
		var missing []int64
		for _, r := range rows {
			if _, ok := b.owners[r.CardID]; !ok && r.CardID != 0 {
				missing = append(missing, r.CardID)
			}
		}
		owners, err := b.led.CardOwners(ctx, missing)
		if err != nil {
			return b.expected, err
		}
		for _, id := range missing {
			b.owners[id] = owners[id].PartnerID
		}
		for _, r := range rows {
			r.PartnerID = b.owners[r.CardID]
			b.expected += int64(len(partner.JournalEvents(r)))
			b.after = r.ID
		}
	}
}

// WebhookLag is what the receiver had got when a phase's load ended and how
// long the backlog took to drain after it.
type WebhookLag struct {
	Events, AtEnd int64 // events of the journal; distinct ones received when the load ended
	Drain         time.Duration
}

// drainTimeout bounds the wait for the backlog after a phase.
const drainTimeout = 15 * time.Minute

// drain waits until the receiver has every event of the journal so far.
func (b *benchWebhooks) drain(ctx context.Context) (WebhookLag, error) {
	start := time.Now()
	c, err := b.counts(ctx)
	if err != nil {
		return WebhookLag{}, err
	}
	lag := WebhookLag{AtEnd: c.Distinct}
	if lag.Events, err = b.expect(ctx); err != nil {
		return lag, err
	}
	for c.Distinct < lag.Events {
		if time.Since(start) > drainTimeout {
			return lag, fmt.Errorf("webhooks: %d of %d events received %v after the load", c.Distinct, lag.Events, drainTimeout)
		}
		select {
		case <-ctx.Done():
			return lag, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if c, err = b.counts(ctx); err != nil {
			return lag, err
		}
	}
	lag.Drain = time.Since(start)
	if c.Bad > 0 || c.Distinct > lag.Events {
		return lag, fmt.Errorf("webhooks: the receiver refused %d deliveries and got %d distinct events of %d", c.Bad, c.Distinct, lag.Events)
	}
	return lag, nil
}

// stop ends the worker and the receiver; it returns the receiver's CPU
// seconds.
func (b *benchWebhooks) stop() float64 {
	b.cancel()
	<-b.done
	b.stdin.Close()
	if b.cmd.Wait() != nil && b.cmd.ProcessState == nil {
		return 0
	}
	return (b.cmd.ProcessState.UserTime() + b.cmd.ProcessState.SystemTime()).Seconds()
}
