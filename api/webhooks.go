package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/antaca/antaca/ledger"
	"github.com/antaca/antaca/partner"
)

// WebhookStore is what the webhook routes need (package ledger).
type WebhookStore interface {
	CreateWebhookEndpoint(ctx context.Context, partnerID int64, url string, types []string, secret string) (ledger.WebhookEndpoint, error)
	WebhookEndpoints(ctx context.Context, partnerID int64) ([]ledger.WebhookEndpoint, error)
	DisableWebhookEndpoint(ctx context.Context, partnerID, id int64) (ledger.WebhookEndpoint, error)
	RotateWebhookSecret(ctx context.Context, partnerID, id int64, secret string, overlap time.Duration) (ledger.WebhookEndpoint, error)
	WebhookDeliveries(ctx context.Context, f ledger.DeliveryFilter) ([]ledger.WebhookDelivery, error)
	WebhookDelivery(ctx context.Context, partnerID, id int64) (ledger.WebhookDelivery, error)
	ReplayWebhookDelivery(ctx context.Context, partnerID, id int64) (ledger.WebhookDelivery, error)
	WebhookEvents(ctx context.Context, partnerID int64, typ string, limit int) ([]ledger.WebhookEvent, error)
	// ReplayWebhookEvent sends an event again to an endpoint, by the
	// event's id: journal events delivered on their first try have no
	// delivery id (partner.Catalog).
	ReplayWebhookEvent(ctx context.Context, partnerID, endpointID int64, eventID string) (ledger.WebhookDelivery, error)
}

func (s *Server) registerWebhookRoutes() {
	opt := EncryptionOptional
	// Without a store (a test's fake card host) the routes exist and
	// answer 503.
	guard := func(h handlerFunc) handlerFunc {
		return func(q *request) (int, any, error) {
			if s.cfg.Webhooks == nil {
				return 0, nil, errorf(http.StatusServiceUnavailable, CodeUnavailable, "webhooks are not configured")
			}
			return h(q)
		}
	}
	sec := func(method, path string, h handlerFunc) {
		s.route(Route{Method: method, Pattern: "/secure" + path, Channel: ChannelSecure, Encryption: opt}, guard(h))
	}
	adm := func(method, path string, roles []Role, h handlerFunc) {
		s.route(Route{Method: method, Pattern: "/admin" + path, Channel: ChannelAdmin, Roles: roles, Encryption: opt}, guard(h))
	}
	sec("POST", "/webhooks/endpoints", s.createWebhookEndpoint)
	sec("GET", "/webhooks/endpoints", s.listWebhookEndpoints)
	sec("DELETE", "/webhooks/endpoints/{endpointId}", s.disableWebhookEndpoint)
	sec("POST", "/webhooks/endpoints/{endpointId}/rotate", s.rotateWebhookSecret)
	sec("GET", "/webhooks/deliveries", s.listWebhookDeliveries)
	sec("GET", "/webhooks/deliveries/{deliveryId}", s.getWebhookDelivery)
	sec("POST", "/webhooks/deliveries/{deliveryId}/replay", s.replayWebhookDelivery)
	sec("POST", "/webhooks/endpoints/{endpointId}/replay", s.replayWebhookEvent)
	sec("GET", "/events", s.listEvents)
	sec("POST", "/programs/{programId}/remote-secret", s.rotateRemoteSecret)
	adm("GET", "/webhooks/endpoints", AllRoles, s.listWebhookEndpoints)
	adm("GET", "/webhooks/deliveries", AllRoles, s.listWebhookDeliveries)
	adm("GET", "/webhooks/deliveries/{deliveryId}", AllRoles, s.getWebhookDelivery)
	adm("POST", "/webhooks/deliveries/{deliveryId}/replay", []Role{RoleAdmin}, s.replayWebhookDelivery)
	adm("POST", "/webhooks/endpoints/{endpointId}/replay", []Role{RoleAdmin}, s.replayWebhookEvent)
}

// webhookPartner is the partner whose webhooks a request sees: the
// certificate's on /secure, every partner (0) or ?partnerId= on /admin.
func webhookPartner(q *request) (int64, error) {
	if q.principal.Channel == ChannelSecure {
		return q.principal.PartnerID, nil
	}
	return queryID(q, "partnerId")
}

type endpointView struct {
	ID            int64      `json:"id"`
	PartnerID     int64      `json:"partnerId"`
	URL           string     `json:"url"`
	EventTypes    []string   `json:"eventTypes"`
	Status        string     `json:"status"`
	FailingSince  *time.Time `json:"failingSince,omitempty"`
	PreviousUntil *time.Time `json:"previousSecretUntil,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	Secret        string     `json:"secret,omitempty"` // creation and rotation only
}

func endpointOf(e ledger.WebhookEndpoint) endpointView {
	return endpointView{ID: e.ID, PartnerID: e.PartnerID, URL: e.URL, EventTypes: e.EventTypes, Status: e.Status,
		FailingSince: e.FailingSince, PreviousUntil: e.PreviousUntil, CreatedAt: e.CreatedAt, Secret: e.Secret}
}

func newWebhookSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return "whsec_" + hex.EncodeToString(b[:])
}

func (s *Server) createWebhookEndpoint(q *request) (int, any, error) {
	var in struct {
		URL        string   `json:"url"`
		EventTypes []string `json:"eventTypes"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Partner.CheckURL(in.URL); err != nil {
		return 0, nil, validation("url: %v", err)
	}
	if len(in.EventTypes) == 0 {
		return 0, nil, validation("eventTypes is required: event types, or [\"*\"] for all")
	}
	for _, t := range in.EventTypes {
		if t != "*" && !slices.Contains(partner.EventTypes, t) {
			return 0, nil, validation("eventTypes: unknown event type %q", t)
		}
	}
	e, err := s.cfg.Webhooks.CreateWebhookEndpoint(q.Context(), q.principal.PartnerID, in.URL, in.EventTypes, newWebhookSecret())
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("webhook endpoint created", "endpoint_id", e.ID, "partner_id", e.PartnerID)
	return http.StatusCreated, endpointOf(e), nil
}

func (s *Server) listWebhookEndpoints(q *request) (int, any, error) {
	pid, err := webhookPartner(q)
	if err != nil {
		return 0, nil, err
	}
	es, err := s.cfg.Webhooks.WebhookEndpoints(q.Context(), pid)
	if err != nil {
		return 0, nil, err
	}
	out := make([]endpointView, 0, len(es))
	for _, e := range es {
		out = append(out, endpointOf(e))
	}
	return http.StatusOK, map[string]any{"endpoints": out}, nil
}

func (s *Server) disableWebhookEndpoint(q *request) (int, any, error) {
	id, err := pathID(q.Request, "endpointId")
	if err != nil {
		return 0, nil, err
	}
	e, err := s.cfg.Webhooks.DisableWebhookEndpoint(q.Context(), q.principal.PartnerID, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, endpointOf(e), nil
}

func (s *Server) rotateWebhookSecret(q *request) (int, any, error) {
	id, err := pathID(q.Request, "endpointId")
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		OverlapSeconds *int64 `json:"overlapSeconds"`
	}
	if len(q.body) > 0 {
		if err := q.decode(&in); err != nil {
			return 0, nil, err
		}
	}
	overlap := 24 * time.Hour
	if in.OverlapSeconds != nil {
		if *in.OverlapSeconds < 0 || *in.OverlapSeconds > 7*24*3600 {
			return 0, nil, validation("overlapSeconds must be 0 to 604800 (7 days)")
		}
		overlap = time.Duration(*in.OverlapSeconds) * time.Second
	}
	e, err := s.cfg.Webhooks.RotateWebhookSecret(q.Context(), q.principal.PartnerID, id, newWebhookSecret(), overlap)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("webhook secret rotated", "endpoint_id", e.ID, "partner_id", e.PartnerID)
	return http.StatusOK, endpointOf(e), nil
}

type attemptView struct {
	At     time.Time `json:"at"`
	Status *int      `json:"status,omitempty"`
	Error  string    `json:"error,omitempty"`
	MS     int       `json:"ms"`
}

type deliveryView struct {
	ID int64 `json:"id,omitempty"` // none: a journal event delivered on its first try

	EndpointID  int64         `json:"endpointId"`
	PartnerID   int64         `json:"partnerId"`
	EventID     string        `json:"eventId"`
	EventType   string        `json:"eventType"`
	Status      string        `json:"status"`
	Attempts    int           `json:"attempts"`
	NextAt      *time.Time    `json:"nextAttemptAt,omitempty"`
	LastStatus  *int          `json:"lastStatus,omitempty"`
	LastError   string        `json:"lastError,omitempty"`
	CreatedAt   time.Time     `json:"createdAt"`
	DeliveredAt *time.Time    `json:"deliveredAt,omitempty"`
	Tries       []attemptView `json:"attemptsList,omitempty"`
}

func deliveryOf(d ledger.WebhookDelivery) deliveryView {
	v := deliveryView{ID: d.ID, EndpointID: d.EndpointID, PartnerID: d.PartnerID, EventID: d.EventID, EventType: d.EventType,
		Status: d.Status, Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: d.LastError, CreatedAt: d.CreatedAt, DeliveredAt: d.DeliveredAt}
	if d.Status == "pending" {
		v.NextAt = &d.NextAt
	}
	for _, a := range d.Tries {
		v.Tries = append(v.Tries, attemptView{At: a.At, Status: a.Status, Error: a.Error, MS: a.MS})
	}
	return v
}

func (s *Server) listWebhookDeliveries(q *request) (int, any, error) {
	pid, err := webhookPartner(q)
	if err != nil {
		return 0, nil, err
	}
	qs := q.URL.Query()
	f := ledger.DeliveryFilter{PartnerID: pid, Status: qs.Get("status"), EventID: qs.Get("eventId")}
	if f.EndpointID, err = queryID(q, "endpointId"); err != nil {
		return 0, nil, err
	}
	if f.Status != "" && f.Status != "pending" && f.Status != "succeeded" && f.Status != "failed" {
		return 0, nil, validation("status must be pending, succeeded or failed")
	}
	if f.Limit, err = queryLimit(q, 0, 1000); err != nil {
		return 0, nil, err
	}
	ds, err := s.cfg.Webhooks.WebhookDeliveries(q.Context(), f)
	if err != nil {
		return 0, nil, err
	}
	out := make([]deliveryView, 0, len(ds))
	for _, d := range ds {
		out = append(out, deliveryOf(d))
	}
	return http.StatusOK, map[string]any{"deliveries": out}, nil
}

func (s *Server) getWebhookDelivery(q *request) (int, any, error) {
	return s.oneDelivery(q, s.cfg.Webhooks.WebhookDelivery)
}

func (s *Server) replayWebhookDelivery(q *request) (int, any, error) {
	return s.oneDelivery(q, s.cfg.Webhooks.ReplayWebhookDelivery)
}

// replayWebhookEvent sends the body's eventId again to the path's endpoint
// (the caller's own on /secure), whether or not it has a delivery id.
func (s *Server) replayWebhookEvent(q *request) (int, any, error) {
	id, err := pathID(q.Request, "endpointId")
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		EventID string `json:"eventId"`
	}
	if err := q.decode(&in); err != nil {
		return 0, nil, err
	}
	if in.EventID == "" || len(in.EventID) > 64 {
		return 0, nil, validation("eventId is required: the id of one of the partner's events")
	}
	var pid int64
	if q.principal.Channel == ChannelSecure {
		pid = q.principal.PartnerID
	}
	d, err := s.cfg.Webhooks.ReplayWebhookEvent(q.Context(), pid, id, in.EventID)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("webhook event replayed", "endpoint_id", id, "event_id", in.EventID, "by", q.principal.scope())
	return http.StatusOK, deliveryOf(d), nil
}

// oneDelivery answers with f's delivery of the path's id, scoped to the
// caller's partner on /secure.
func (s *Server) oneDelivery(q *request, f func(ctx context.Context, partnerID, id int64) (ledger.WebhookDelivery, error)) (int, any, error) {
	id, err := pathID(q.Request, "deliveryId")
	if err != nil {
		return 0, nil, err
	}
	var pid int64
	if q.principal.Channel == ChannelSecure {
		pid = q.principal.PartnerID
	}
	d, err := f(q.Context(), pid, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, deliveryOf(d), nil
}

type partnerEventView struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Created int64           `json:"created"`
	Data    json.RawMessage `json:"data"`
}

func (s *Server) listEvents(q *request) (int, any, error) {
	typ := q.URL.Query().Get("type")
	if typ != "" && !slices.Contains(partner.EventTypes, typ) {
		return 0, nil, validation("type: unknown event type %q", typ)
	}
	es, err := s.cfg.Webhooks.WebhookEvents(q.Context(), q.principal.PartnerID, typ, 100)
	if err != nil {
		return 0, nil, err
	}
	out := make([]partnerEventView, 0, len(es))
	for _, e := range es {
		out = append(out, partnerEventView{ID: e.ID, Type: e.Type, Created: e.CreatedAt.Unix(), Data: e.Data})
	}
	return http.StatusOK, map[string]any{"events": out}, nil
}

// rotateRemoteSecret gives one of the partner's programs a new secret for
// the remote decision, shown once. Decisions asked from then on are signed
// with it and their answers must be signed with it.
func (s *Server) rotateRemoteSecret(q *request) (int, any, error) {
	id, err := pathID(q.Request, "programId")
	if err != nil {
		return 0, nil, err
	}
	p, err := s.host.Program(q.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	if p.PartnerID != q.principal.PartnerID {
		return 0, nil, notFound()
	}
	r, ok := s.host.(interface {
		RotateRemoteSecret(ctx context.Context, programID int64) (string, error)
	})
	if !ok {
		return 0, nil, errorf(http.StatusServiceUnavailable, CodeUnavailable, "remote secrets are not configured")
	}
	secret, err := r.RotateRemoteSecret(q.Context(), p.ID)
	if err != nil {
		return 0, nil, err
	}
	s.log.Info("remote secret rotated", "program_id", p.ID, "by", q.principal.scope())
	return http.StatusOK, map[string]any{"programId": p.ID, "remoteSecret": secret}, nil
}
