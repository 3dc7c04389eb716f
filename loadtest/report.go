package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Latency holds latency percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
}

// Report is the outcome of a run.
type Report struct {
	Profile        string           `json:"profile"`
	Conns          int              `json:"conns"`
	Mode           string           `json:"mode"` // open or closed
	TargetRate     float64          `json:"target_rate,omitempty"`
	InFlight       int              `json:"inflight_per_conn,omitempty"`
	Mix            string           `json:"mix"`
	Seconds        float64          `json:"seconds"`
	Sent           int64            `json:"sent"`
	SentByKind     map[string]int64 `json:"sent_by_kind"`
	Answered       int64            `json:"answered"`
	Approved       int64            `json:"approved"`
	AnswersPerSec  float64          `json:"answers_per_s"`
	ApprovedPerSec float64          `json:"approved_per_s"`
	Latency        Latency          `json:"latency"`
	// AnsweredByKind and ApprovedByKind count answers, and approvals
	// among them, by kind sent.
	AnsweredByKind map[string]int64 `json:"answered_by_kind"`
	ApprovedByKind map[string]int64 `json:"approved_by_kind"`
	// MoneyAnswered counts the money messages (every kind but echoes and
	// balance inquiries) answered with a decision: approved or declined
	// for a reason of the card or request, not issuer unavailable, system
	// or format error. MoneyLatency is the latency of every money message
	// answered, failures included.
	MoneyAnswered int64            `json:"money_answered"`
	MoneyPerSec   float64          `json:"money_per_s"`
	MoneyLatency  Latency          `json:"money_latency"`
	Codes         map[string]int64 `json:"codes"` // answers by DE39
	Timeouts      int64            `json:"timeouts"`
	Errors        int64            `json:"errors"`
	Unmatched     int64            `json:"unmatched"` // answers to no pending request (late after a timeout, or unknown STAN)
	ErrorSample   []string         `json:"error_sample,omitempty"`
}

func (r *runner) report(clients []*client, elapsed time.Duration) *Report {
	rep := &Report{
		Profile: r.cfg.Profile, Conns: r.cfg.Conns, Mode: "closed", InFlight: r.cfg.InFlight, Mix: r.cfg.Mix.String(),
		Seconds: elapsed.Seconds(), Sent: r.sent.Load(), Answered: r.answered.Load(), Approved: r.approvedN.Load(),
		Timeouts: r.timeouts.Load(), Errors: r.errs.Load(), Unmatched: r.unmatched.Load(),
		Codes: map[string]int64{}, SentByKind: map[string]int64{}, MoneyAnswered: r.moneyAnswered.Load(),
		AnsweredByKind: map[string]int64{}, ApprovedByKind: map[string]int64{},
	}
	if r.cfg.Rate > 0 {
		rep.Mode, rep.TargetRate, rep.InFlight = "open", r.cfg.Rate, 0
	}
	for o := range numOps {
		if n := r.sentByOp[o].Load(); n > 0 {
			rep.SentByKind[opNames[o]] = n
		}
	}
	var all, money []time.Duration
	for _, c := range clients {
		all = append(all, c.lat...)
		money = append(money, c.moneyLat...)
		for k, v := range c.codes {
			rep.Codes[k] += v
		}
		for o := range numOps {
			if n := c.answeredByOp[o]; n > 0 {
				rep.AnsweredByKind[opNames[o]] += n
			}
			if n := c.approvedByOp[o]; n > 0 {
				rep.ApprovedByKind[opNames[o]] += n
			}
		}
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.AnswersPerSec = float64(rep.Answered) / s
		rep.ApprovedPerSec = float64(rep.Approved) / s
		rep.MoneyPerSec = float64(rep.MoneyAnswered) / s
	}
	rep.Latency, rep.MoneyLatency = latency(all), latency(money)
	r.errMu.Lock()
	rep.ErrorSample = slices.Clone(r.errSample)
	r.errMu.Unlock()
	return rep
}

// latency sorts d and returns its percentiles.
func latency(d []time.Duration) Latency {
	slices.Sort(d)
	l := Latency{P50: pct(d, 0.50), P90: pct(d, 0.90), P99: pct(d, 0.99), P999: pct(d, 0.999)}
	if len(d) > 0 {
		l.Max = ms(d[len(d)-1])
	}
	return l
}

// pct is the nearest-rank percentile of sorted durations, in ms.
func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return ms(sorted[i])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// WriteJSON writes the report as one JSON object on one line.
func (rep *Report) WriteJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(rep)
}

// WriteText writes the report for people.
func (rep *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	mode := fmt.Sprintf("closed-loop, %d in flight per connection", rep.InFlight)
	if rep.Mode == "open" {
		mode = fmt.Sprintf("open-loop at %.0f/s", rep.TargetRate)
	}
	fmt.Fprintf(&b, "profile %s, %d connections, %s, mix %s, %.1f s\n", rep.Profile, rep.Conns, mode, rep.Mix, rep.Seconds)
	fmt.Fprintf(&b, "sent       %d (%s)\n", rep.Sent, kv(rep.SentByKind))
	fmt.Fprintf(&b, "answered   %d, %.0f/s\n", rep.Answered, rep.AnswersPerSec)
	fmt.Fprintf(&b, "approved   %d, %.0f/s (authorisations and advices)\n", rep.Approved, rep.ApprovedPerSec)
	if len(rep.SentByKind) > 1 {
		fmt.Fprintf(&b, "by kind    answered %s\n           approved %s\n", kv(rep.AnsweredByKind), kv(rep.ApprovedByKind))
		fmt.Fprintf(&b, "money      %d decided, %.0f/s, p99 %.3f ms (every kind but echo and balance)\n", rep.MoneyAnswered, rep.MoneyPerSec, rep.MoneyLatency.P99)
	}
	fmt.Fprintf(&b, "latency    p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms\n",
		rep.Latency.P50, rep.Latency.P90, rep.Latency.P99, rep.Latency.P999, rep.Latency.Max)
	fmt.Fprintf(&b, "DE39       %s\n", kv(rep.Codes))
	fmt.Fprintf(&b, "timeouts   %d, errors %d, unmatched %d\n", rep.Timeouts, rep.Errors, rep.Unmatched)
	for _, e := range rep.ErrorSample {
		fmt.Fprintf(&b, "error      %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func kv(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
