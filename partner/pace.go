package partner

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Delivery yields to authorisations: a pacer spaces the sends out while
// this machine's CPUs are busy. Every paceWindow it reads how much CPU
// time was left over machine-wide (/proc/stat: idle, I/O wait and niced
// processes' time, which any normal-priority thread takes at will); below
// BusyIdle the allowed rate is divided by 4, down to MinRate; above, it doubles,
// and past maxPacedRate the sends are not paced at all. Under a peak the
// sends drop to MinRate within a few windows, and the backlog goes out
// when the peak has passed.

// paceWindow is how often the pacer looks at the CPUs.
const paceWindow = 100 * time.Millisecond

// maxPacedRate is the rate above which sends are not paced.
const maxPacedRate = 100_000

// pacer allows sends at a rate adapted to the CPU left over.
type pacer struct {
	min, busyIdle float64
	read          func() (free, total uint64, ok bool)

	mu          sync.Mutex
	rate        float64 // sends per second allowed; 0: no limit
	next        time.Time
	sampled     time.Time
	free, total uint64
	sent        int // since sampled
}

func newPacer(minRate, busyIdle float64) *pacer {
	return &pacer{min: minRate, busyIdle: busyIdle, read: cpuTimes}
}

// wait blocks until one more send may start, or ctx ends; a nil pacer
// never waits.
func (p *pacer) wait(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	now := time.Now()
	if now.Sub(p.sampled) >= paceWindow {
		p.adjust(now)
	}
	p.sent++
	var d time.Duration
	if p.rate > 0 {
		p.next = later(p.next, now)
		d = p.next.Sub(now)
		p.next = p.next.Add(time.Duration(float64(time.Second) / p.rate))
	}
	p.mu.Unlock()
	if d <= time.Millisecond {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// adjust sets the rate from the CPU time left over since the last sample.
func (p *pacer) adjust(now time.Time) {
	free, total, ok := p.read()
	if !ok {
		p.rate = 0
		return
	}
	if p.total != 0 && total > p.total {
		left := float64(free-p.free) / float64(total-p.total)
		switch {
		case left < p.busyIdle:
			cur := p.rate
			if cur == 0 { // from unpaced: what was sent
				cur = min(maxPacedRate, float64(p.sent)/max(now.Sub(p.sampled).Seconds(), 1e-3))
			}
			p.rate = max(p.min, cur/4)
		case p.rate > 0:
			if p.rate *= 2; p.rate > maxPacedRate {
				p.rate = 0
			}
		}
	}
	p.free, p.total, p.sampled, p.sent = free, total, now, 0
}

// paced reports the rate the pacer allows now (0: no limit).
func (p *pacer) paced() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate
}

// cpuTimes reads the machine's CPU time left over (idle, I/O wait, nice)
// and in all, in clock ticks, from /proc/stat.
func cpuTimes() (free, total uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal (guest is in user)
	var v [8]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(fields[i+1], 10, 64); err != nil {
			return 0, 0, false
		}
		total += v[i]
	}
	return v[1] + v[3] + v[4], total, true
}
