package partner

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/antaca/antaca/ledger"
)

// Catalog is the webhook store the API reads: the ledger's, with the events
// of the journal and their deliveries by batch (webhook_journal_sends)
// merged in, since those are not stored one by one.
type Catalog struct {
	*ledger.Ledger
}

// takes reports whether an endpoint subscribed to types takes typ.
func takes(types []string, typ string) bool {
	return slices.Contains(types, typ) || slices.Contains(types, "*")
}

// WebhookDeliveries lists deliveries, newest event first: the stored ones
// and those of journal events delivered on their first try by a batch
// (status succeeded, one attempt, no id of their own).
func (c Catalog) WebhookDeliveries(ctx context.Context, f ledger.DeliveryFilter) ([]ledger.WebhookDelivery, error) {
	ds, err := c.Ledger.WebhookDeliveries(ctx, f)
	if err != nil || (f.Status != "" && f.Status != "succeeded") {
		return ds, err
	}
	jid := ledger.JournalEventID(f.EventID)
	if f.EventID != "" && jid == 0 {
		return ds, nil
	}
	sent, err := c.JournalSent(ctx, f, jid)
	if err != nil {
		return nil, err
	}
	type key struct {
		endpoint int64
		event    string
	}
	seen := map[key]bool{}
	for _, s := range sent {
		for _, ev := range JournalEvents(s.Row) {
			k := key{s.EndpointID, ev.ID}
			if !takes(s.EventTypes, ev.Type) || slices.Contains(s.OwnDelivery, ev.ID) || (f.EventID != "" && ev.ID != f.EventID) || seen[k] {
				continue
			}
			seen[k] = true
			at := s.At
			ds = append(ds, ledger.WebhookDelivery{EndpointID: s.EndpointID, PartnerID: ev.PartnerID, EventID: ev.ID, EventType: ev.Type,
				Status: "succeeded", Attempts: 1, CreatedAt: ev.At, DeliveredAt: &at,
				Tries: []ledger.WebhookAttempt{{At: at, MS: s.MS}}})
		}
	}
	slices.SortStableFunc(ds, func(a, b ledger.WebhookDelivery) int { return b.CreatedAt.Compare(a.CreatedAt) })
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return ds[:min(len(ds), limit)], nil
}

// WebhookEvents lists a partner's events, newest first (at most limit,
// default 100), of one type when typ is set: the stored ones and those of
// its cards' journal rows.
func (c Catalog) WebhookEvents(ctx context.Context, partnerID int64, typ string, limit int) ([]ledger.WebhookEvent, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	es, err := c.Ledger.WebhookEvents(ctx, partnerID, typ, limit)
	if err != nil || (typ != "" && !slices.Contains(JournalTypes, typ)) {
		return es, err
	}
	rows, err := c.PartnerJournalRows(ctx, partnerID, limit)
	if err != nil {
		return nil, err
	}
	stored := map[string]bool{}
	for _, e := range es {
		stored[e.ID] = true
	}
	for _, r := range rows {
		for _, ev := range JournalEvents(r) {
			if (typ == "" || ev.Type == typ) && !stored[ev.ID] {
				es = append(es, ledger.WebhookEvent{ID: ev.ID, PartnerID: ev.PartnerID, Type: ev.Type, CreatedAt: ev.At, Data: ev.Data})
			}
		}
	}
	slices.SortStableFunc(es, func(a, b ledger.WebhookEvent) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	return es[:min(len(es), limit)], nil
}

// ReplayWebhookEvent sends an event again to one of its partner's
// endpoints (partnerID 0: any partner's), whether it was delivered by a
// batch, by the outbox or not at all; the answer is its delivery, now
// stored and pending.
func (c Catalog) ReplayWebhookEvent(ctx context.Context, partnerID, endpointID int64, eventID string) (ledger.WebhookDelivery, error) {
	jid := ledger.JournalEventID(eventID)
	if jid == 0 {
		e, err := c.WebhookEvent(ctx, partnerID, eventID)
		if err != nil {
			return ledger.WebhookDelivery{}, err
		}
		return c.ReplayWebhookEventTo(ctx, partnerID, endpointID, e)
	}
	r, err := c.JournalRow(ctx, jid)
	if err != nil {
		return ledger.WebhookDelivery{}, err
	}
	for _, e := range JournalEvents(r) {
		if e.ID == eventID && (partnerID == 0 || e.PartnerID == partnerID) {
			return c.ReplayWebhookEventTo(ctx, partnerID, endpointID, e)
		}
	}
	return ledger.WebhookDelivery{}, fmt.Errorf("event %s: %w", eventID, ledger.ErrNotFound)
}
