package authswitch

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the wire metrics of one server. Two servers (one per profile)
// may share a Registerer: the collectors are then shared and told apart by
// the profile label. The series that have only the profile label are
// resolved once, here, not per message.
type metrics struct {
	requests *prometheus.CounterVec // profile, mti
	answers  *prometheus.CounterVec // profile, mti, code

	read, decide, write   prometheus.Observer // antaca_iso_stage_seconds
	connections, inflight prometheus.Gauge
	panics, formatErrors  prometheus.Counter
	refused               *prometheus.CounterVec // profile, reason
}

func newMetrics(reg prometheus.Registerer, profile string) (*metrics, error) {
	m := &metrics{}
	v, err := newVecs(reg)
	if err != nil {
		return nil, err
	}
	m.requests, m.answers = v.requests, v.answers
	m.read = v.stage.WithLabelValues(profile, "read")
	m.decide = v.stage.WithLabelValues(profile, "decide")
	m.write = v.stage.WithLabelValues(profile, "write")
	m.connections = v.connections.WithLabelValues(profile)
	m.inflight = v.inflight.WithLabelValues(profile)
	m.panics = v.panics.WithLabelValues(profile)
	m.formatErrors = v.formatErrors.WithLabelValues(profile)
	m.refused = v.refused
	return m, nil
}

// vecs are the collectors as registered.
type vecs struct {
	requests     *prometheus.CounterVec   // profile, mti
	answers      *prometheus.CounterVec   // profile, mti, code
	stage        *prometheus.HistogramVec // profile, stage
	connections  *prometheus.GaugeVec     // profile
	inflight     *prometheus.GaugeVec     // profile
	panics       *prometheus.CounterVec   // profile
	formatErrors *prometheus.CounterVec   // profile
	refused      *prometheus.CounterVec   // profile, reason
}

func newVecs(reg prometheus.Registerer) (*vecs, error) {
	m := &vecs{}
	var err error
	if m.requests, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "antaca_iso_requests_total",
		Help: "ISO 8583 requests read, by profile and MTI.",
	}, []string{"profile", "mti"})); err != nil {
		return nil, err
	}
	if m.answers, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "antaca_iso_answers_total",
		Help: "ISO 8583 answers written, by profile, MTI and action code (DE39).",
	}, []string{"profile", "mti", "code"})); err != nil {
		return nil, err
	}
	if m.stage, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "antaca_iso_stage_seconds",
		Help:    "Latency of each stage of one ISO 8583 message: read (first byte to whole frame), decide (the Authorizer), write.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"profile", "stage"})); err != nil {
		return nil, err
	}
	if m.refused, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "antaca_iso_connections_refused_total",
		Help: "ISO 8583 connections closed at once, by profile and reason: total or per_source (a connection limit), source (address not allowed), first_message (no message within the first-message deadline).",
	}, []string{"profile", "reason"})); err != nil {
		return nil, err
	}
	if m.connections, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "antaca_iso_connections",
		Help: "Open ISO 8583 connections.",
	}, []string{"profile"})); err != nil {
		return nil, err
	}
	if m.inflight, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "antaca_iso_inflight",
		Help: "ISO 8583 requests read and not yet answered.",
	}, []string{"profile"})); err != nil {
		return nil, err
	}
	if m.panics, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "antaca_iso_panics_total",
		Help: "Panics recovered while handling one ISO 8583 message (answered with a system error).",
	}, []string{"profile"})); err != nil {
		return nil, err
	}
	if m.formatErrors, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "antaca_iso_format_errors_total",
		Help: "ISO 8583 messages that could not be parsed or mapped.",
	}, []string{"profile"})); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same description, so that both profiles can share a registry.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		var zero T
		return zero, fmt.Errorf("register metric: %w", err)
	}
	return c, nil
}
