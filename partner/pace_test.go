package partner

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeCPU is /proc/stat as the test says: each read advances the clock
// ticks by 100, of which left are left over.
type fakeCPU struct {
	mu          sync.Mutex
	left        uint64
	free, total uint64
}

func (f *fakeCPU) read() (uint64, uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.free += f.left
	f.total += 100
	return f.free, f.total, true
}

func (f *fakeCPU) set(left uint64) {
	f.mu.Lock()
	f.left = left
	f.mu.Unlock()
}

// sendFor calls wait for d and counts the sends it allowed.
func sendFor(p *pacer, d time.Duration) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); n++ {
		p.wait(context.Background())
	}
	return n
}

// TestPacerSlowsWhenBusyAndResumes: with the CPUs busy (2 % left over) the
// sends drop to MinRate; when CPU is left over again (60 %) they speed up
// and are soon not paced at all.
func TestPacerSlowsWhenBusyAndResumes(t *testing.T) {
	cpu := &fakeCPU{left: 60}
	p := &pacer{min: 50, busyIdle: 0.1, read: cpu.read}
	if n := sendFor(p, 300*time.Millisecond); n < 1_000 || p.paced() != 0 { // paced, it would be a few dozen
		t.Fatalf("idle CPUs: %d sends in 300 ms, rate %v; want unpaced", n, p.paced())
	}
	cpu.set(2)
	sendFor(p, 2*time.Second) // a few windows to come down (6 at least), with room for a loaded machine
	if r := p.paced(); r != 50 {
		t.Fatalf("busy CPUs: rate %v after 2 s, want MinRate 50", r)
	}
	if n := sendFor(p, time.Second); n < 20 || n > 70 { // wide below: a starved test goroutine sends less, never more
		t.Errorf("busy CPUs: %d sends in 1 s, want about 50", n)
	}
	cpu.set(60)
	sendFor(p, 3*time.Second) // doubling from 50 past the unpaced bound: 11 windows
	if r := p.paced(); r != 0 {
		t.Fatalf("idle again: rate %v after 3 s, want unpaced", r)
	}
	if n := sendFor(p, 200*time.Millisecond); n < 1_000 {
		t.Errorf("idle again: %d sends in 200 ms, want unpaced", n)
	}
}

// TestPacerNilAndUnreadable: a nil pacer (MinRate < 0) and one that cannot
// read the CPUs never wait.
func TestPacerNilAndUnreadable(t *testing.T) {
	var nilPacer *pacer
	p := &pacer{min: 1, busyIdle: 0.1, read: func() (uint64, uint64, bool) { return 0, 0, false }}
	start := time.Now()
	for range 1000 {
		nilPacer.wait(context.Background())
		p.wait(context.Background())
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("1000 sends took %v, want no pacing", d)
	}
}
