package api

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// request is what a handler gets: the HTTP request, who is calling, the
// JSON body (decrypted when it came as JWE) and headers to add to the answer.
type request struct {
	*http.Request
	principal *Principal
	body      []byte
	header    http.Header
	now       time.Time
}

// handlerFunc handles one operation. It returns the status and the value
// to send as JSON (nil for no body), or an error: an *Error chooses the
// answer, anything else is a 500.
type handlerFunc func(q *request) (status int, body any, err error)

// decode reads the JSON body into v strictly: one object, no unknown
// fields, nothing after it.
func (q *request) decode(v any) error { return decodeJSON(q.body, v) }

func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "request body is empty; a JSON object is expected")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return errorf(http.StatusBadRequest, CodeValidation, "field %q must be %s", ute.Field, ute.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return errorf(http.StatusBadRequest, CodeValidation, "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "request body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "request body has data after the JSON value")
	}
	return nil
}

// route registers h for method and pattern behind the channel's
// authentication, the body limit, JWE and idempotency.
func (s *Server) route(rt Route, h handlerFunc) {
	prefix := map[Channel]string{ChannelSecure: "/secure/", ChannelCustomer: "/customers/me", ChannelAdmin: "/admin/"}[rt.Channel]
	if prefix != "" && !strings.HasPrefix(rt.Pattern, prefix) {
		panic(fmt.Sprintf("api: route %s %s is not under %s", rt.Method, rt.Pattern, prefix)) // programming error
	}
	if rt.Channel == ChannelSecure && len(rt.Kinds) == 0 {
		rt.Kinds = []string{KindPartner}
	}
	s.mu.Lock()
	s.routes = append(s.routes, rt)
	s.mu.Unlock()
	s.mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt, h))
}

// statusWriter remembers the status for the access log and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) wrap(rt Route, h handlerFunc) http.Handler {
	label := rt.Method + " " + rt.Pattern
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		var p *Principal
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("api handler panic", "route", label, "panic", fmt.Sprint(v))
				if sw.status == 0 {
					writeError(sw, &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"})
				}
			}
			d := time.Since(start)
			s.metrics.requests.WithLabelValues(label, fmt.Sprint(sw.status)).Inc()
			s.metrics.latency.WithLabelValues(label).Observe(d.Seconds())
			s.log.Info("api request", "route", label, "status", sw.status, "ms", d.Milliseconds(), "subject", p.scope())
		}()
		var e *Error
		p, e = s.serveRoute(sw, r, rt, h)
		if e != nil {
			if e.Status == http.StatusUnauthorized {
				sw.Header().Set("WWW-Authenticate", `Bearer realm="antaca"`)
			}
			writeError(sw, e)
		}
	})
}

// serveRoute runs the pipeline and writes the success answer; it returns
// the error answer for the caller to write.
func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, rt Route, h handlerFunc) (*Principal, *Error) {
	if rt.SourceLimited {
		if e := s.limitSource(w, r); e != nil {
			return nil, e
		}
	}
	ctx := r.Context()
	now := s.cfg.Now()
	p, e := s.authenticate(ctx, r, rt, now)
	if e != nil {
		return p, e
	}

	// Body, bounded.
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return p, errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body larger than %d bytes", s.cfg.MaxBodyBytes)
			}
			return p, errorf(http.StatusBadRequest, CodeInvalidJSON, "request body could not be read")
		}
		body = b
	}
	if len(body) > 0 {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return p, errorf(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "Content-Type must be application/json")
		}
	}

	// JWE.
	var clientKey *rsa.PublicKey
	encryptAnswer := false
	if rt.Encryption != EncryptionNone {
		var encrypted bool
		switch v := strings.ToLower(strings.TrimSpace(r.Header.Get(headerEncrypted))); v {
		case "true":
			encrypted = true
		case "", "false":
		default:
			return p, errorf(http.StatusBadRequest, CodeValidation, "Encrypted-Request must be true or false")
		}
		if v := r.Header.Get(headerPublicKey); v != "" {
			if clientKey, e = parsePublicKeyHeader(v); e != nil {
				return p, e
			}
		}
		if rt.Encryption == EncryptionRequired {
			if len(body) > 0 && !encrypted {
				return p, jweError(CodeEncryptionRequired, "this operation requires a JWE request (Encrypted-Request: true)")
			}
			if clientKey == nil {
				if encrypted {
					return p, jweError(CodeInvalidPublicKey, "Public-Key header is required to encrypt the answer")
				}
				return p, jweError(CodeEncryptionRequired, "this operation requires the Public-Key header to encrypt the answer")
			}
		}
		if encrypted && clientKey == nil {
			return p, jweError(CodeInvalidPublicKey, "Public-Key header is required to encrypt the answer")
		}
		if encrypted && len(body) > 0 {
			if body, e = decryptPayload(body, s.cfg.JWEKey, s.kid); e != nil {
				return p, e
			}
		}
		encryptAnswer = clientKey != nil && (encrypted || rt.Encryption == EncryptionRequired)
	}

	// Idempotency: POSTs of an authenticated subject with the header.
	var idem *idempotency
	if key := r.Header.Get(headerIdempotency); key != "" && r.Method == http.MethodPost && rt.Channel != ChannelPublic {
		var replay *storedAnswer
		idem, replay, e = s.claimIdempotency(ctx, p, key, r, body, now)
		if e != nil {
			return p, e
		}
		if replay != nil {
			if replay.location != "" {
				w.Header().Set("Location", replay.location)
			}
			w.Header().Set("Idempotent-Replayed", "true")
			writeRaw(w, replay.status, replay.contentType, replay.body)
			return p, nil
		}
	}

	q := &request{Request: r, principal: p, body: body, header: http.Header{}, now: now}
	status, out, err := h(q)
	ans := s.answer(status, out, err, encryptAnswer, clientKey, q.header)
	if idem != nil {
		s.finishIdempotency(idem, ans)
	}
	for k, v := range q.header {
		w.Header()[k] = v
	}
	writeRaw(w, ans.status, ans.contentType, ans.body)
	return p, nil
}

// answer turns a handler's result into the bytes sent on the wire.
func (s *Server) answer(status int, out any, err error, encrypt bool, key *rsa.PublicKey, hdr http.Header) *storedAnswer {
	if err != nil {
		e, known := asError(err)
		if !known {
			s.log.Error("api handler error", "err", err)
		}
		b, _ := json.Marshal(e)
		return &storedAnswer{status: e.Status, contentType: "application/json", body: b}
	}
	if status == http.StatusNoContent || out == nil {
		return &storedAnswer{status: status, location: hdr.Get("Location")}
	}
	var b []byte
	if raw, ok := out.(json.RawMessage); ok {
		b = raw
	} else if b, err = json.Marshal(out); err != nil {
		s.log.Error("api encode answer", "err", err)
		return &storedAnswer{status: http.StatusInternalServerError, contentType: "application/json", body: []byte(`{"code":"INTERNAL","message":"internal error"}`)}
	}
	if encrypt && status >= 200 && status < 300 {
		if b, err = encryptPayload(b, key); err != nil {
			s.log.Error("api encrypt answer", "err", err)
			return &storedAnswer{status: http.StatusInternalServerError, contentType: "application/json", body: []byte(`{"code":"INTERNAL","message":"internal error"}`)}
		}
	}
	return &storedAnswer{status: status, contentType: "application/json", body: b, location: hdr.Get("Location")}
}

// metrics are the API's Prometheus collectors.
type metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	approvals    *prometheus.CounterVec
	hashes       prometheus.Counter
	hashInFlight prometheus.Gauge
	hashBusy     prometheus.Counter
	loginRefused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "antaca_api_requests_total", Help: "API requests by route and status.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "antaca_api_request_seconds", Help: "API request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"route"}),
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "antaca_approvals_total", Help: "Four-eyes requests (Admin reloads, exception resolutions) by kind and the status they reached.",
		}, []string{"kind", "status"}),
		hashes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "antaca_api_password_hashes_total", Help: "PBKDF2 password checks run (admin logins).",
		}),
		hashInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "antaca_api_password_hashes_in_flight", Help: "PBKDF2 password checks running now (bounded by -hash-concurrency).",
		}),
		hashBusy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "antaca_api_password_hash_busy_total", Help: "Logins answered 503 BUSY: no hashing slot within the wait.",
		}),
		loginRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "antaca_api_login_refused_total", Help: "Admin logins refused before any hashing, by reason (source_rate, source_delay, name_delay).",
		}, []string{"reason"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency, m.approvals, m.hashes, m.hashInFlight, m.hashBusy, m.loginRefused} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// withoutCancel keeps bookkeeping writes going when the client leaves.
func withoutCancel(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}
