package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
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
	// Intervals, with Config.ReportEvery, split the run by the time each
	// answer came: whether a long run slows down.
	Intervals []Interval `json:"intervals,omitempty"`
}

// Interval is one report interval of a run (Config.ReportEvery): its
// answers by the time they came, from Start seconds after the run's start
// for Seconds (the last one up to the end of the drain).
type Interval struct {
	Start          float64 `json:"start_s"`
	Seconds        float64 `json:"seconds"`
	Answered       int64   `json:"answered"`
	Approved       int64   `json:"approved"`
	MoneyAnswered  int64   `json:"money_answered"`
	AnswersPerSec  float64 `json:"answers_per_s"`
	ApprovedPerSec float64 `json:"approved_per_s"`
	MoneyPerSec    float64 `json:"money_per_s"`
	P99            float64 `json:"p99_ms"`
	MoneyP99       float64 `json:"money_p99_ms"`
}

// reportIntervals merges the clients' report intervals.
func (r *runner) reportIntervals(clients []*client, elapsed time.Duration) []Interval {
	n := 0
	for _, c := range clients {
		n = max(n, len(c.iv))
	}
	every := r.cfg.ReportEvery.Seconds()
	out := make([]Interval, n)
	for i := range out {
		iv := &out[i]
		iv.Start, iv.Seconds = float64(i)*every, every
		if i == n-1 {
			iv.Seconds = max(elapsed.Seconds()-iv.Start, 0)
		}
		var lat, money []time.Duration
		for _, c := range clients {
			if i >= len(c.iv) {
				continue
			}
			lat = append(lat, cut(c.lat, c.latCut, i)...)
			money = append(money, cut(c.moneyLat, c.moneyCut, i)...)
			iv.Answered += c.iv[i].answered
			iv.Approved += c.iv[i].approved
			iv.MoneyAnswered += c.iv[i].money
		}
		if iv.Seconds > 0 {
			iv.AnswersPerSec = float64(iv.Answered) / iv.Seconds
			iv.ApprovedPerSec = float64(iv.Approved) / iv.Seconds
			iv.MoneyPerSec = float64(iv.MoneyAnswered) / iv.Seconds
		}
		iv.P99, iv.MoneyP99 = latency(lat).P99, latency(money).P99
	}
	return out
}

// cut is interval i's part of a client's latencies, cuts[i] where each
// interval starts.
func cut(lat []time.Duration, cuts []int, i int) []time.Duration {
	end := len(lat)
	if i+1 < len(cuts) {
		end = cuts[i+1]
	}
	return lat[cuts[i]:end]
}

// DecayLine is Decay as one line,
//
//	decay: first_per_s=<n> last_per_s=<m> ratio=<m/n> first_p99_ms=<x> last_p99_ms=<y> p99_ratio=<y/x> intervals=<k>
//
// (money messages decided per second, their p99), or "" with fewer than
// two intervals.
func (rep *Report) DecayLine() string {
	first, last, rate, p99, ok := rep.Decay()
	if !ok {
		return ""
	}
	return fmt.Sprintf("decay: first_per_s=%.0f last_per_s=%.0f ratio=%.3f first_p99_ms=%.2f last_p99_ms=%.2f p99_ratio=%.2f intervals=%d",
		first.MoneyPerSec, last.MoneyPerSec, rate, first.MoneyP99, last.MoneyP99, p99, len(rep.Intervals))
}

// Decay compares the last report interval with the first: money
// messages decided per second (every kind but echo and balance inquiry,
// so approvals in an approvals-only run) and their p99, as ratios
// last/first. ok is false with fewer than two intervals.
func (rep *Report) Decay() (first, last Interval, rate, p99 float64, ok bool) {
	if len(rep.Intervals) < 2 {
		return Interval{}, Interval{}, 0, 0, false
	}
	first, last = rep.Intervals[0], rep.Intervals[len(rep.Intervals)-1]
	if first.MoneyPerSec > 0 {
		rate = last.MoneyPerSec / first.MoneyPerSec
	}
	if first.MoneyP99 > 0 {
		p99 = last.MoneyP99 / first.MoneyP99
	}
	return first, last, rate, p99, true
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
	if r.cfg.ReportEvery > 0 {
		rep.Intervals = r.reportIntervals(clients, elapsed)
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

// secs prints seconds with as many decimals as they need, at most one.
func secs(s float64) string { return strconv.FormatFloat(math.Round(s*10)/10, 'f', -1, 64) }

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
	for _, iv := range rep.Intervals {
		fmt.Fprintf(&b, "interval   %s-%s s: answers/s %.0f, approved/s %.0f, money/s %.0f, p99 %.3f ms, money p99 %.3f ms\n",
			secs(iv.Start), secs(iv.Start+iv.Seconds), iv.AnswersPerSec, iv.ApprovedPerSec, iv.MoneyPerSec, iv.P99, iv.MoneyP99)
	}
	if line := rep.DecayLine(); line != "" {
		fmt.Fprintln(&b, line)
	}
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
