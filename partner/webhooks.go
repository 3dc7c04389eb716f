package partner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/antaca/antaca/cardhost"
	"github.com/antaca/antaca/internal/periodic"
	"github.com/antaca/antaca/ledger"
)

// EventTypes is the event catalogue (docs/api.md).
var EventTypes = []string{
	"authorization.approved", "authorization.declined", "authorization.reversed", "clearing.captured", "refund.credited",
	"card.created", "card.locked", "card.unlocked", "card.activated", "card.removed", "balance.low", "exception.opened",
}

// JournalTypes are the events made from the authorisation journal.
var JournalTypes = EventTypes[:5]

// Store is what webhook delivery needs of the database (package ledger).
type Store interface {
	LeaseJournal(ctx context.Context, owner string, lease time.Duration) (ledger.JournalState, bool, error)
	JournalFollow(ctx context.Context, types []string) (ledger.JournalSnapshot, error)
	JournalEnd(ctx context.Context) (int64, error)
	JournalRows(ctx context.Context, after int64, ids []int64, limit int) ([]ledger.JournalEventRow, error)
	CardOwners(ctx context.Context, ids []int64) (map[int64]ledger.CardOwner, error)
	CurrencyCodes(ctx context.Context) (map[string]string, error)
	AdvanceJournal(ctx context.Context, owner string, lease time.Duration, a ledger.JournalAdvance) (bool, error)
	ClaimWebhooks(ctx context.Context, limit int, lease time.Duration, skip []int64) ([]ledger.OutgoingWebhook, error)
	RecordWebhookAttempts(ctx context.Context, rs []ledger.WebhookResult) error
	PruneWebhooks(ctx context.Context, before time.Time, batch int) (int64, error)
}

// WebhookConfig configures webhook delivery. Zero fields get defaults.
type WebhookConfig struct {
	Logger *slog.Logger
	// Every is the interval of delivery rounds (default 1 s).
	Every time.Duration
	// Batch is how many deliveries are claimed at once (default 256), sent
	// by up to Parallel at a time (default 16); their tries are recorded
	// together.
	Batch, Parallel int
	// EndpointParallel bounds the journal's sends in flight to one
	// endpoint (default Parallel/2, at least 1), so that one slow
	// endpoint never takes every one of the Parallel slots.
	EndpointParallel int
	// JournalTimeout is how long a send from the journal waits for its
	// answer (default 2 s, at most the client's timeout). A send not
	// answered 2xx within it becomes a pending delivery, retried by
	// Deliver with the client's full timeout, and its endpoint's journal
	// events go to the retry store untried while it is marked down
	// (Backoff, doubling up to MaxBackoff while it keeps failing): a slow
	// or dead receiver holds the one journal cursor, and so every other
	// partner's events, back by at most JournalTimeout, and only when its
	// mark lapses.
	JournalTimeout time.Duration
	// Retention is how long the records of delivered events are kept:
	// webhook_journal_sends rows and succeeded deliveries with their
	// attempts (default 30 days). Prune deletes older ones, PruneEvery
	// (default 1 min) in Run, PruneBatch rows a statement (default 5,000).
	Retention, PruneEvery time.Duration
	PruneBatch            int
	// Backoff is the delay after a first failure; it doubles with each
	// attempt up to MaxBackoff, with jitter (half of it random). Defaults
	// 30 s and 1 h.
	Backoff, MaxBackoff time.Duration
	// RetryFor is how long a delivery is retried before it fails and its
	// endpoint is marked failing (default 72 h).
	RetryFor time.Duration
	// GapWait bounds how long a hole in the journal's ids is waited for
	// when the database cannot tell it settled (a transaction running all
	// that time somewhere in the cluster); default 10 min.
	GapWait time.Duration
	// JournalBatch is how many journal rows one round reads (default 1000).
	JournalBatch int
	// MinRate is the sends per second kept while this machine's CPUs are
	// busy (default 200; negative: sends are never paced), BusyIdle the
	// share of CPU time left over below which they count as busy (default
	// 0.5: a switch at its peak waits for commits and leaves 10 to 25 %
	// idle). See pace.go.
	MinRate, BusyIdle float64
}

// DefaultRetention is how long delivered events' records are kept unless
// WebhookConfig.Retention says otherwise.
const DefaultRetention = 30 * 24 * time.Hour

// Webhooks delivers events to partners' endpoints: those of the journal
// straight from its rows (webhook_journal.go), the others from the outbox
// (Deliver). Dispatch (and Round, which calls it) must not be called
// concurrently with itself; Deliver and Prune may run beside it (Run runs
// the three in their own loops). Several processes may run it against one
// database: one at a time follows the journal (the cursor's lease), all
// deliver the outbox.
type Webhooks struct {
	store  Store
	client *Client
	cfg    WebhookConfig
	log    *slog.Logger
	owner  string // this worker's name on the cursor's lease

	held     bool      // holds the cursor's lease
	leaseEnd time.Time // when it runs out unless renewed
	seen     int64     // highest journal id read
	gaps     map[int64]*gap
	mu       sync.Mutex
	down     map[int64]downMark // endpoint -> not tried from the journal before
	owners   map[int64]ledger.CardOwner
	codes    map[string]string // currency numeric -> alphabetic
	pace     *pacer
}

// NewWebhooks returns the webhook worker over store, calling out with c.
func NewWebhooks(store Store, c *Client, cfg WebhookConfig) *Webhooks {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 16
	}
	if cfg.EndpointParallel <= 0 {
		cfg.EndpointParallel = max(1, cfg.Parallel/2)
	}
	if cfg.JournalTimeout <= 0 || cfg.JournalTimeout > c.cfg.Timeout {
		cfg.JournalTimeout = min(2*time.Second, c.cfg.Timeout)
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.PruneEvery <= 0 {
		cfg.PruneEvery = time.Minute
	}
	if cfg.PruneBatch <= 0 {
		cfg.PruneBatch = 5000
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 30 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Hour
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 72 * time.Hour
	}
	if cfg.GapWait <= 0 {
		cfg.GapWait = 10 * time.Minute
	}
	if cfg.JournalBatch <= 0 {
		cfg.JournalBatch = 1000
	}
	if cfg.MinRate == 0 {
		cfg.MinRate = 200
	}
	if cfg.BusyIdle <= 0 {
		cfg.BusyIdle = 0.5
	}
	var pace *pacer
	if cfg.MinRate > 0 {
		pace = newPacer(cfg.MinRate, cfg.BusyIdle)
	}
	return &Webhooks{pace: pace, store: store, client: c, cfg: cfg, log: cfg.Logger, owner: "w" + strconv.FormatUint(rand.Uint64(), 36),
		gaps: map[int64]*gap{}, down: map[int64]downMark{}, owners: map[int64]ledger.CardOwner{}}
}

// Run follows the journal and delivers the outbox every cfg.Every, and
// prunes every cfg.PruneEvery, until ctx ends. The three run in their own
// loops, so retries of a slow endpoint (each up to the client's timeout)
// never hold the journal back. Sends are paced (pace.go): while this
// machine's CPUs are busy they slow down to MinRate, and speed up again
// when CPU is left over, so under peak load delivery lags and catches up
// later.
func (w *Webhooks) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		periodic.Run(ctx, w.cfg.Every, func(ctx context.Context) {
			if _, err := w.Deliver(ctx); err != nil && ctx.Err() == nil {
				w.log.Warn("webhooks: deliver", "err", err)
			}
		})
	})
	wg.Go(func() {
		periodic.Run(ctx, w.cfg.PruneEvery, func(ctx context.Context) {
			if _, err := w.Prune(ctx); err != nil && ctx.Err() == nil {
				w.log.Warn("webhooks: prune", "err", err)
			}
		})
	})
	periodic.Run(ctx, w.cfg.Every, func(ctx context.Context) {
		if err := w.follow(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("webhooks", "err", err)
		}
	})
	wg.Wait()
}

// Round delivers the events of the journal rows committed since the last
// round, then sends what is due from the outbox; it returns how many
// outbox deliveries succeeded.
func (w *Webhooks) Round(ctx context.Context) (int, error) {
	if err := w.follow(ctx); err != nil {
		return 0, err
	}
	return w.Deliver(ctx)
}

// follow dispatches the journal's batches until one is not full.
func (w *Webhooks) follow(ctx context.Context) error {
	for {
		n, err := w.Dispatch(ctx)
		if err != nil || n < w.cfg.JournalBatch {
			return err
		}
	}
}

// Prune deletes the records of events delivered more than Retention ago,
// PruneBatch rows a statement; it returns how many rows it deleted.
func (w *Webhooks) Prune(ctx context.Context) (int64, error) {
	return w.store.PruneWebhooks(ctx, time.Now().Add(-w.cfg.Retention), w.cfg.PruneBatch)
}

// journalClass mirrors cardhost's message classes as the journal stores them.
func journalClass(c int) cardhost.MessageClass { return cardhost.MessageClass(c) }

// JournalEvents are the events of one journal row (none for a row of no
// known card): an authorisation approved or declined, a capture (a
// completion, or an approved x200 besides its approval), a refund credited,
// a reversal. Each id names the row: evt_auth_<id>, evt_clr_<id>,
// evt_ref_<id>, evt_rev_<id>.
func JournalEvents(r ledger.JournalEventRow) []ledger.Event {
	if r.PartnerID == 0 {
		return nil
	}
	approved := r.Reason == string(cardhost.Approved)
	refund := strings.HasPrefix(r.ProcessingCode, cardhost.ProcRefund)
	var out []ledger.Event
	var data json.RawMessage
	add := func(prefix, typ string) {
		if data == nil {
			data = journalBody(r)
		}
		out = append(out, ledger.Event{ID: prefix + strconv.FormatInt(r.ID, 10), PartnerID: r.PartnerID, Type: typ, At: r.CreatedAt, Data: data})
	}
	switch journalClass(r.Class) {
	case cardhost.ClassAuthorization, cardhost.ClassAdvice, cardhost.ClassFinancial:
		switch {
		case refund && approved && journalClass(r.Class) == cardhost.ClassFinancial && strings.HasPrefix(r.Detail, "refund credited "):
			add(ledger.EventRefundPrefix, "refund.credited")
		case approved:
			add(ledger.EventAuthPrefix, "authorization.approved")
			if journalClass(r.Class) == cardhost.ClassFinancial && !refund {
				add(ledger.EventClearingPrefix, "clearing.captured")
			}
		default:
			add(ledger.EventAuthPrefix, "authorization.declined")
		}
	case cardhost.ClassCompletion:
		switch {
		case !approved:
		case refund && strings.HasPrefix(r.Detail, "refund credited "):
			add(ledger.EventRefundPrefix, "refund.credited")
		case strings.HasPrefix(r.Detail, "captured "):
			add(ledger.EventClearingPrefix, "clearing.captured")
		}
	case cardhost.ClassReversal, cardhost.ClassReversalAdvice:
		if approved {
			add(ledger.EventReversalPrefix, "authorization.reversed")
		}
	}
	return out
}

// journalData is the data of a journal event: the partner's objects' ids,
// the masked PAN, amounts in minor units with their currency. Its fields
// are in the order of their names, as a map's would be (the documented
// bodies); a struct encodes several times faster, and this runs per event.
type journalData struct {
	Amount            int64   `json:"amount"`
	ApprovalCode      string  `json:"approvalCode,omitempty"`
	Available         *int64  `json:"available,omitempty"`
	AvailableCurrency *string `json:"availableCurrency,omitempty"`
	BalanceID         int64   `json:"balanceId"`
	BillingAmount     int64   `json:"billingAmount,omitempty"`
	BillingCurrency   *string `json:"billingCurrency,omitempty"`
	CardID            int64   `json:"cardId"`
	Currency          string  `json:"currency"`
	CustomerID        int64   `json:"customerId"`
	Detail            string  `json:"detail,omitempty"`
	HoldID            int64   `json:"holdId,omitempty"`
	JournalID         int64   `json:"journalId"`
	MaskedPAN         string  `json:"maskedPan"`
	Merchant          string  `json:"merchant"`
	MTI               string  `json:"mti"`
	OriginalJournalID int64   `json:"originalJournalId,omitempty"`
	ProcessingCode    string  `json:"processingCode"`
	ProgramID         int64   `json:"programId"`
	Reason            string  `json:"reason"`
}

func journalBody(r ledger.JournalEventRow) json.RawMessage {
	d := journalData{Amount: r.Amount, ApprovalCode: r.ApprovalCode, Available: r.Available, BalanceID: r.AccountID,
		BillingAmount: r.BillingAmount, CardID: r.CardID, Currency: r.Currency, CustomerID: r.UserID, Detail: r.Detail,
		HoldID: r.HoldID, JournalID: r.ID, MaskedPAN: r.MaskedPAN, Merchant: r.Merchant, MTI: r.MTI,
		OriginalJournalID: r.OriginalID, ProcessingCode: r.ProcessingCode, ProgramID: r.ProgramID, Reason: r.Reason}
	if r.BillingAmount != 0 {
		d.BillingCurrency = &r.BillingCurrency
	}
	if r.Available != nil {
		d.AvailableCurrency = &r.AvailableCurrency
	}
	b, _ := json.Marshal(d)
	return b
}

// Deliver sends the due deliveries; it returns how many succeeded. An
// endpoint that fails is not tried again in this round.
func (w *Webhooks) Deliver(ctx context.Context) (int, error) {
	var (
		mu   sync.Mutex
		skip []int64
		ok   int
	)
	for {
		mu.Lock()
		s := slices.Clone(skip)
		mu.Unlock()
		batch, err := w.store.ClaimWebhooks(ctx, w.cfg.Batch, w.lease(), s)
		if err != nil || len(batch) == 0 {
			return ok, err
		}
		sem := make(chan struct{}, w.cfg.Parallel)
		results := make([]ledger.WebhookResult, len(batch))
		var wg sync.WaitGroup
		for i, o := range batch {
			w.pace.wait(ctx) // returns at once when ctx ends
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				results[i] = w.send(ctx, o)
				mu.Lock()
				if results[i].OK {
					ok++
				} else if !slices.Contains(skip, o.EndpointID) {
					skip = append(skip, o.EndpointID)
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		// One statement records the whole batch's tries.
		if err := w.store.RecordWebhookAttempts(context.WithoutCancel(ctx), results); err != nil {
			return ok, err
		}
		if ctx.Err() != nil {
			return ok, ctx.Err()
		}
	}
}

// lease is how long a claimed delivery or the journal's cursor stays with
// this worker unless it records it.
func (w *Webhooks) lease() time.Duration { return 2*w.client.cfg.Timeout + 30*time.Second }

// downMark keeps an endpoint off the journal's path until a time; streak
// counts the failures in a row that set it.
type downMark struct {
	until  time.Time
	streak int
}

// markDown notes whether an endpoint answered in time: while it is down,
// the journal's events for it become pending deliveries without a try.
// Each failure in a row doubles how long, from Backoff up to MaxBackoff.
func (w *Webhooks) markDown(endpointID int64, down bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !down {
		delete(w.down, endpointID)
		return
	}
	m := w.down[endpointID]
	d := w.cfg.Backoff << min(m.streak, 30)
	if d <= 0 || d > w.cfg.MaxBackoff {
		d = max(w.cfg.MaxBackoff, w.cfg.Backoff)
	}
	w.down[endpointID] = downMark{until: time.Now().Add(d), streak: m.streak + 1}
}

// downUntil is, while an endpoint is kept off the journal's path, when
// its journal events held back now are first tried by Deliver: at the end
// of the mark, or Backoff from now when that is sooner (the mark grows
// while the endpoint keeps failing, and a receiver back up should not
// wait an hour for them). Zero: the endpoint is tried from the journal.
func (w *Webhooks) downUntil(endpointID int64) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if m, ok := w.down[endpointID]; ok && now.Before(m.until) {
		if soon := now.Add(w.cfg.Backoff); soon.Before(m.until) {
			return soon
		}
		return m.until
	}
	return time.Time{}
}

// Body is the bytes POSTed for an event: {"id", "type", "created", "data"}.
func Body(o ledger.OutgoingWebhook) []byte {
	return eventBody(o.EventID, o.Type, o.EventAt, o.Data)
}

func eventBody(id, typ string, at time.Time, data json.RawMessage) []byte {
	b, _ := json.Marshal(struct {
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Created int64           `json:"created"`
		Data    json.RawMessage `json:"data"`
	}{id, typ, at.Unix(), data})
	return b
}

// send makes one try of o and says what follows.
func (w *Webhooks) send(ctx context.Context, o ledger.OutgoingWebhook) ledger.WebhookResult {
	res := ledger.WebhookResult{DeliveryID: o.DeliveryID, EndpointID: o.EndpointID}
	var err error
	res.Status, res.Took, err = w.post(ctx, o.URL, o.Secrets, o.EventID, Body(o))
	// A success slower than the journal waits keeps the endpoint on this
	// path: back on the journal's it would hold the cursor again.
	w.markDown(o.EndpointID, err != nil || res.Took >= w.cfg.JournalTimeout)
	if err == nil {
		res.OK = true
		return res
	}
	res.Error = err.Error()
	res.NextAt, res.GiveUp = w.retry(o.Attempts, o.CreatedAt)
	return res
}

// retry is when a delivery tried attempts times before, of an event made
// at created, is tried next, or that it is not (given up).
func (w *Webhooks) retry(attempts int, created time.Time) (time.Time, bool) {
	if time.Since(created) >= w.cfg.RetryFor {
		return time.Time{}, true
	}
	delay := w.cfg.Backoff << min(attempts, 30)
	if delay <= 0 || delay > w.cfg.MaxBackoff {
		delay = w.cfg.MaxBackoff
	}
	delay = delay/2 + rand.N(delay/2+1)
	return time.Now().Add(delay), false
}

// post makes one signed POST of body to url: the answer's status (0: none
// came), how long it took, and an error unless it was a 2xx.
func (w *Webhooks) post(ctx context.Context, u string, secrets []string, eventID string, body []byte) (int, time.Duration, error) {
	start := time.Now()
	status := 0
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("%w: bad url", ErrURL)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Antaca-Webhooks/1")
		req.Header.Set(EventIDHeader, eventID)
		req.Header.Set(SignatureHeader, Signature(time.Now(), body, secrets...))
		resp, err := w.client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				return ue.Err // never the URL, which may carry a token
			}
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		status = resp.StatusCode
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("answered %d", resp.StatusCode)
		}
		return nil
	}()
	return status, time.Since(start), err
}
