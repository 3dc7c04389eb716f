package panel

import (
	"fmt"
	"strings"
	"time"

	"github.com/antaca/antaca/ledger"
)

// ---- Summary ----

type summaryRow struct {
	Currency, Users, Wallet, PartnerCredit, PartnerDeposit, Partner, UsersHeld string
}

type gauge struct {
	PartnerID    int64
	PartnerName  string
	AccountID    int64
	Kind         string
	Currency     string
	Available    string
	Threshold    string
	HasThreshold bool
	Value, Max   int64
	Low          int64
	Below        bool
}

func (p *Panel) summary(c *call) error {
	data := map[string]any{}
	partners, err := p.visiblePartners(c)
	if err != nil {
		return err
	}
	var gauges []gauge
	for _, pt := range partners {
		gs, err := p.gauges(c, pt)
		if err != nil {
			return err
		}
		gauges = append(gauges, gs...)
	}
	data["Gauges"] = gauges
	if c.s.Role != RolePartner {
		sums, err := p.cfg.Host.Summary(c.ctx())
		if err != nil {
			return err
		}
		var rows []summaryRow
		for _, s := range sums {
			f := func(v int64) string { return formatAmount(v, s.Exponent) }
			rows = append(rows, summaryRow{Currency: s.Currency, Users: f(s.Users), Wallet: f(s.Wallet), PartnerCredit: f(s.PartnerCredit),
				PartnerDeposit: f(s.PartnerDeposit), Partner: f(s.Partner), UsersHeld: f(s.Held)})
		}
		data["Currencies"] = rows
		now := p.cfg.Now()
		stats, err := p.cfg.Reader.AuthsPerMinute(c.ctx(), now.Add(-time.Hour).Truncate(time.Minute))
		if err != nil {
			return err
		}
		data["Chart"] = chartOf(stats, now)
	}
	return c.page("summary", "Summary", data)
}

// visiblePartners is every partner for staff, the own one for a viewer.
func (p *Panel) visiblePartners(c *call) ([]ledger.Partner, error) {
	if c.s.Role == RolePartner {
		pt, err := p.cfg.Host.Partner(c.ctx(), c.s.PartnerID)
		if err != nil {
			return nil, err
		}
		return []ledger.Partner{pt}, nil
	}
	return p.cfg.Host.Partners(c.ctx())
}

// gauges are a partner's balances against their thresholds.
func (p *Panel) gauges(c *call, pt ledger.Partner) ([]gauge, error) {
	as, err := p.cfg.Host.PartnerBalances(c.ctx(), pt.ID)
	if err != nil {
		return nil, err
	}
	out := make([]gauge, 0, len(as))
	for _, a := range as {
		g, err := p.gaugeOf(c, pt, a)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

func (p *Panel) gaugeOf(c *call, pt ledger.Partner, a ledger.Account) (gauge, error) {
	exp, err := p.cfg.Host.CurrencyExponent(c.ctx(), a.Currency)
	if err != nil {
		return gauge{}, err
	}
	g := gauge{PartnerID: pt.ID, PartnerName: pt.Name, AccountID: a.ID, Kind: a.Kind, Currency: a.Currency,
		Available: formatAmount(a.Available(), exp), Value: max(a.Available(), 0)}
	g.Max = max(g.Value, 1)
	if a.LowThreshold != nil {
		g.HasThreshold, g.Threshold, g.Low = true, formatAmount(*a.LowThreshold, exp), *a.LowThreshold
		g.Max = max(g.Max, 4**a.LowThreshold)
		g.Below = a.Available() < *a.LowThreshold
	}
	return g, nil
}

// chart is the last hour per minute as SVG shapes: bars of requests
// (approved part darker) and the p99 answer time as a line.
type chart struct {
	W, H              int
	Bars              []bar
	P99               string // polyline points
	MaxCount          int
	MaxP99            string
	Total, Approved   int
	ApprovalRate      string
	P99Hour           string
	XLabels           []label
	HasData, HasP99MS bool
}

type bar struct {
	X, Y, W, H   int
	AY, AH       int
	PX, PY       int // the p99 point, when HasP99
	HasP99       bool
	Minute       string
	Count, Appr  int
	Rate, P99txt string
}

type label struct {
	X    int
	Text string
}

func chartOf(stats []ledger.MinuteStat, now time.Time) chart {
	const w, h, top, bottom = 720, 200, 10, 180
	ch := chart{W: w, H: h}
	start := now.Add(-time.Hour).Truncate(time.Minute)
	byMin := map[int64]ledger.MinuteStat{}
	var maxP99 time.Duration
	for _, s := range stats {
		byMin[s.Minute.Unix()] = s
		ch.MaxCount = max(ch.MaxCount, s.Total)
		ch.Total += s.Total
		ch.Approved += s.Approved
		if s.HasP99 {
			maxP99 = max(maxP99, s.P99)
		}
	}
	ch.HasData = ch.Total > 0
	if ch.Total > 0 {
		ch.ApprovalRate = fmt.Sprintf("%.1f %%", 100*float64(ch.Approved)/float64(ch.Total))
	}
	ch.MaxP99 = fmtDuration(maxP99)
	ch.HasP99MS = maxP99 > 0
	bw := w / 61
	var pts []string
	for i := 0; i <= 60; i++ {
		m := start.Add(time.Duration(i) * time.Minute)
		s := byMin[m.Unix()]
		x := i * bw
		if i%10 == 0 {
			ch.XLabels = append(ch.XLabels, label{X: x, Text: m.UTC().Format("15:04")})
		}
		if s.Total == 0 {
			continue
		}
		bh := (bottom - top) * s.Total / max(ch.MaxCount, 1)
		ah := (bottom - top) * s.Approved / max(ch.MaxCount, 1)
		b := bar{X: x, Y: bottom - bh, W: bw - 1, H: bh, AY: bottom - ah, AH: ah, Minute: m.UTC().Format("15:04"),
			Count: s.Total, Appr: s.Approved, Rate: fmt.Sprintf("%.1f %%", 100*float64(s.Approved)/float64(s.Total))}
		b.P99txt = "—"
		if s.HasP99 {
			b.P99txt = fmtDuration(s.P99)
			b.PX, b.PY, b.HasP99 = x+bw/2, bottom-int(float64(bottom-top)*float64(s.P99)/float64(max(maxP99, 1))), true
			pts = append(pts, fmt.Sprintf("%d,%d", b.PX, b.PY))
		}
		ch.Bars = append(ch.Bars, b)
	}
	ch.P99 = strings.Join(pts, " ")
	return ch
}

func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
