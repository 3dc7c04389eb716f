package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// WebhookEndpoint is a partner's registered receiver of events.
type WebhookEndpoint struct {
	ID            int64
	PartnerID     int64
	URL           string
	EventTypes    []string
	Status        string // enabled, failing, disabled
	FailingSince  *time.Time
	PreviousUntil *time.Time // end of a rotation's overlap
	CreatedAt     time.Time
	// Secret is set only on creation and rotation (shown once).
	Secret string
}

const endpointColumns = `id, partner_id, url, event_types, status, failing_since, previous_until, created_at`

func scanEndpoint(row pgx.CollectableRow) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	err := row.Scan(&e.ID, &e.PartnerID, &e.URL, &e.EventTypes, &e.Status, &e.FailingSince, &e.PreviousUntil, &e.CreatedAt)
	return e, err
}

// CreateWebhookEndpoint registers url for partnerID's events of types.
func (l *Ledger) CreateWebhookEndpoint(ctx context.Context, partnerID int64, url string, types []string, secret string) (WebhookEndpoint, error) {
	rows, err := l.pool.Query(ctx, `INSERT INTO webhook_endpoints (partner_id, url, event_types, secret) VALUES ($1, $2, $3, $4)
		RETURNING `+endpointColumns, partnerID, url, types, secret)
	if err != nil {
		return WebhookEndpoint{}, dbErr("create webhook endpoint", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEndpoint)
	e.Secret = secret
	return e, dbErr("create webhook endpoint", err)
}

// WebhookEndpoints lists a partner's endpoints (every partner's when
// partnerID is 0), newest first.
func (l *Ledger) WebhookEndpoints(ctx context.Context, partnerID int64) ([]WebhookEndpoint, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE $1 = 0 OR partner_id = $1 ORDER BY id DESC`, partnerID)
	if err != nil {
		return nil, dbErr("webhook endpoints", err)
	}
	out, err := pgx.CollectRows(rows, scanEndpoint)
	return out, dbErr("webhook endpoints", err)
}

// DisableWebhookEndpoint stops deliveries to a partner's endpoint (pending
// ones are not sent any more).
func (l *Ledger) DisableWebhookEndpoint(ctx context.Context, partnerID, id int64) (WebhookEndpoint, error) {
	rows, err := l.pool.Query(ctx, `UPDATE webhook_endpoints SET status = 'disabled' WHERE id = $1 AND partner_id = $2
		RETURNING `+endpointColumns, id, partnerID)
	if err != nil {
		return WebhookEndpoint{}, dbErr("disable webhook endpoint", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEndpoint)
	return e, dbErr("disable webhook endpoint", err)
}

// RotateWebhookSecret gives a partner's endpoint a new secret; the old one
// keeps signing (a second v1=) for overlap.
func (l *Ledger) RotateWebhookSecret(ctx context.Context, partnerID, id int64, secret string, overlap time.Duration) (WebhookEndpoint, error) {
	rows, err := l.pool.Query(ctx, `UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,
		previous_until = now() + make_interval(secs => $4) WHERE id = $1 AND partner_id = $2 AND status <> 'disabled'
		RETURNING `+endpointColumns, id, partnerID, secret, overlap.Seconds())
	if err != nil {
		return WebhookEndpoint{}, dbErr("rotate webhook secret", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEndpoint)
	e.Secret = secret
	return e, dbErr("rotate webhook secret", err)
}

// WebhookDelivery is one event's delivery to one endpoint.
type WebhookDelivery struct {
	ID          int64
	EndpointID  int64
	PartnerID   int64
	EventID     string
	EventType   string
	Status      string // pending, succeeded, failed
	Attempts    int
	NextAt      time.Time
	LastStatus  *int
	LastError   string
	CreatedAt   time.Time
	DeliveredAt *time.Time
	// Tries are its attempts, oldest first (WebhookDelivery only).
	Tries []WebhookAttempt
}

// WebhookAttempt is one try of a delivery.
type WebhookAttempt struct {
	At     time.Time
	Status *int
	Error  string
	MS     int
}

// DeliveryFilter selects deliveries; zero fields select all.
type DeliveryFilter struct {
	PartnerID, EndpointID int64
	Status, EventID       string
	Limit                 int // default 100
}

const deliveryColumns = `d.id, d.endpoint_id, e.partner_id, d.event_id, v.type, d.status, d.attempts, d.next_at, d.last_status,
	coalesce(d.last_error, ''), d.created_at, d.delivered_at`

func scanDelivery(row pgx.CollectableRow) (WebhookDelivery, error) {
	var d WebhookDelivery
	err := row.Scan(&d.ID, &d.EndpointID, &d.PartnerID, &d.EventID, &d.EventType, &d.Status, &d.Attempts, &d.NextAt, &d.LastStatus,
		&d.LastError, &d.CreatedAt, &d.DeliveredAt)
	return d, err
}

// WebhookDeliveries lists deliveries, newest first.
func (l *Ledger) WebhookDeliveries(ctx context.Context, f DeliveryFilter) ([]WebhookDelivery, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	rows, err := l.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d
		JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN webhook_events v ON v.id = d.event_id
		WHERE ($1 = 0 OR e.partner_id = $1) AND ($2 = 0 OR d.endpoint_id = $2) AND ($3 = '' OR d.status = $3) AND ($4 = '' OR d.event_id = $4)
		ORDER BY d.id DESC LIMIT $5`, f.PartnerID, f.EndpointID, f.Status, f.EventID, f.Limit)
	if err != nil {
		return nil, dbErr("webhook deliveries", err)
	}
	out, err := pgx.CollectRows(rows, scanDelivery)
	return out, dbErr("webhook deliveries", err)
}

// WebhookDelivery returns a delivery with its attempts; partnerID 0 finds
// any partner's.
func (l *Ledger) WebhookDelivery(ctx context.Context, partnerID, id int64) (WebhookDelivery, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d
		JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN webhook_events v ON v.id = d.event_id
		WHERE d.id = $1 AND ($2 = 0 OR e.partner_id = $2)`, id, partnerID)
	if err != nil {
		return WebhookDelivery{}, dbErr("webhook delivery", err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDelivery)
	if err != nil {
		return WebhookDelivery{}, dbErr("webhook delivery", err)
	}
	rows, err = l.pool.Query(ctx, `SELECT at, status, coalesce(error, ''), ms FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id`, id)
	if err != nil {
		return WebhookDelivery{}, dbErr("webhook attempts", err)
	}
	d.Tries, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (WebhookAttempt, error) {
		var a WebhookAttempt
		err := row.Scan(&a.At, &a.Status, &a.Error, &a.MS)
		return a, err
	})
	return d, dbErr("webhook attempts", err)
}

// ReplayWebhookDelivery sends a delivery again as soon as the worker runs,
// whatever its state (the event keeps its id: receivers deduplicate).
func (l *Ledger) ReplayWebhookDelivery(ctx context.Context, partnerID, id int64) (WebhookDelivery, error) {
	tag, err := l.pool.Exec(ctx, `UPDATE webhook_deliveries d SET status = 'pending', next_at = now()
		FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND d.id = $1 AND ($2 = 0 OR e.partner_id = $2) AND e.status <> 'disabled'`, id, partnerID)
	if err != nil {
		return WebhookDelivery{}, dbErr("replay webhook delivery", err)
	}
	if tag.RowsAffected() == 0 {
		return WebhookDelivery{}, fmt.Errorf("replay webhook delivery %d: %w", id, ErrNotFound)
	}
	return l.WebhookDelivery(ctx, partnerID, id)
}

// WebhookEvent is one event as stored.
type WebhookEvent struct {
	ID        string
	PartnerID int64
	Type      string
	CreatedAt time.Time
	Data      json.RawMessage
}

// WebhookEvents lists a partner's events, newest first (at most limit,
// default 100), of one type when typ is set.
func (l *Ledger) WebhookEvents(ctx context.Context, partnerID int64, typ string, limit int) ([]WebhookEvent, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := l.pool.Query(ctx, `SELECT id, partner_id, type, created_at, data FROM webhook_events
		WHERE partner_id = $1 AND ($2 = '' OR type = $2) ORDER BY created_at DESC, id DESC LIMIT $3`, partnerID, typ, limit)
	if err != nil {
		return nil, dbErr("webhook events", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (WebhookEvent, error) {
		var e WebhookEvent
		err := row.Scan(&e.ID, &e.PartnerID, &e.Type, &e.CreatedAt, &e.Data)
		return e, err
	})
	return out, dbErr("webhook events", err)
}

// OutgoingWebhook is a delivery claimed for sending.
type OutgoingWebhook struct {
	DeliveryID, EndpointID int64
	URL                    string
	Secrets                []string // the current one, then the previous during a rotation
	EventID, Type          string
	EventAt                time.Time
	Data                   json.RawMessage
	Attempts               int
	CreatedAt              time.Time
}

// ClaimWebhooks takes up to limit due deliveries, skipping the endpoints in
// skip, and leases them for lease (another worker does not take them
// meanwhile; one that dies lets its lease run out).
func (l *Ledger) ClaimWebhooks(ctx context.Context, limit int, lease time.Duration, skip []int64) ([]OutgoingWebhook, error) {
	const q = `WITH due AS (
			SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
			WHERE d.status = 'pending' AND d.next_at <= now() AND e.status <> 'disabled' AND NOT d.endpoint_id = ANY ($3)
			ORDER BY d.next_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED),
		claimed AS (
			UPDATE webhook_deliveries d SET next_at = now() + make_interval(secs => $2) FROM due WHERE d.id = due.id
			RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, d.created_at)
		SELECT c.id, c.endpoint_id, e.url,
			array_remove(ARRAY[e.secret, CASE WHEN e.previous_until > now() THEN e.previous_secret END], NULL),
			v.id, v.type, v.created_at, v.data, c.attempts, c.created_at
		FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id JOIN webhook_events v ON v.id = c.event_id
		ORDER BY c.id`
	if skip == nil {
		skip = []int64{}
	}
	rows, err := l.pool.Query(ctx, q, limit, lease.Seconds(), skip)
	if err != nil {
		return nil, dbErr("claim webhooks", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (OutgoingWebhook, error) {
		var o OutgoingWebhook
		err := row.Scan(&o.DeliveryID, &o.EndpointID, &o.URL, &o.Secrets, &o.EventID, &o.Type, &o.EventAt, &o.Data, &o.Attempts, &o.CreatedAt)
		return o, err
	})
	return out, dbErr("claim webhooks", err)
}

// WebhookResult is the outcome of one try.
type WebhookResult struct {
	DeliveryID, EndpointID int64
	OK                     bool
	Status                 int // 0: no answer
	Error                  string
	Took                   time.Duration
	// NextAt is the next try of a failed delivery; GiveUp ends its tries
	// (failed) and marks its endpoint failing.
	NextAt time.Time
	GiveUp bool
}

// RecordWebhookAttempts records tries and their consequences in one
// statement: each try's attempt row, its delivery's new state, and the
// endpoints marked failing (a delivery given up) or enabled again (a
// success).
func (l *Ledger) RecordWebhookAttempts(ctx context.Context, rs []WebhookResult) error {
	if len(rs) == 0 {
		return nil
	}
	n := len(rs)
	var (
		ids, eps      = make([]int64, n), make([]int64, n)
		oks, gives    = make([]bool, n), make([]bool, n)
		statuses, mss = make([]int32, n), make([]int32, n)
		errs          = make([]string, n)
		nexts         = make([]time.Time, n)
	)
	for i, r := range rs {
		ids[i], eps[i], oks[i], gives[i] = r.DeliveryID, r.EndpointID, r.OK, r.GiveUp
		statuses[i], mss[i], errs[i], nexts[i] = int32(r.Status), int32(r.Took.Milliseconds()), r.Error, r.NextAt
	}
	const q = `WITH r AS (
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bool[], $4::int[], $5::text[], $6::int[], $7::timestamptz[], $8::bool[])
				AS r (delivery_id, endpoint_id, ok, status, error, ms, next_at, give_up)),
		ins AS (
			INSERT INTO webhook_attempts (delivery_id, status, error, ms)
			SELECT delivery_id, NULLIF(status, 0), NULLIF(error, ''), ms FROM r),
		upd AS (
			UPDATE webhook_deliveries d SET
				status = CASE WHEN r.ok THEN 'succeeded' WHEN r.give_up THEN 'failed' ELSE 'pending' END,
				attempts = d.attempts + 1, last_status = NULLIF(r.status, 0), last_error = NULLIF(r.error, ''),
				delivered_at = CASE WHEN r.ok THEN now() ELSE d.delivered_at END,
				next_at = CASE WHEN r.ok OR r.give_up THEN d.next_at ELSE r.next_at END
			FROM r WHERE d.id = r.delivery_id)
		UPDATE webhook_endpoints e SET
			status = CASE WHEN x.any_ok THEN 'enabled' ELSE 'failing' END,
			failing_since = CASE WHEN x.any_ok THEN NULL ELSE coalesce(e.failing_since, now()) END
		FROM (SELECT endpoint_id, bool_or(ok) AS any_ok, bool_or(give_up) AS any_give FROM r GROUP BY endpoint_id) x
		WHERE e.id = x.endpoint_id AND ((x.any_ok AND e.status = 'failing') OR (NOT x.any_ok AND x.any_give AND e.status = 'enabled'))`
	_, err := l.pool.Exec(ctx, q, ids, eps, oks, statuses, errs, mss, nexts, gives)
	return dbErr("record webhook attempts", err)
}

// PruneWebhooks deletes the records of events delivered before before:
// webhook_journal_sends rows and succeeded deliveries with their attempts,
// oldest first, at most batch rows a statement (each its own transaction,
// so no long lock), until none is left; it returns how many rows of sends
// and deliveries it deleted. Events themselves are kept (GET events).
func (l *Ledger) PruneWebhooks(ctx context.Context, before time.Time, batch int) (int64, error) {
	const sends = `DELETE FROM webhook_journal_sends WHERE id IN (
		SELECT id FROM webhook_journal_sends WHERE at < $1 ORDER BY at LIMIT $2)`
	const deliveries = `WITH d AS (
			SELECT id FROM webhook_deliveries WHERE status = 'succeeded' AND delivered_at < $1
			ORDER BY delivered_at LIMIT $2 FOR UPDATE SKIP LOCKED),
		a AS (DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM d))
		DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM d)`
	var total int64
	for _, q := range []string{sends, deliveries} {
		for {
			tag, err := l.pool.Exec(ctx, q, before, batch)
			if err != nil {
				return total, dbErr("prune webhooks", err)
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < int64(batch) {
				break
			}
		}
	}
	return total, nil
}
