package authswitch

import (
	"sync"
	"testing"
	"time"
)

// TestWorkersNeverWait: every task runs at once even when all workers are
// busy (a request must never wait for another's decision to start), and
// finished workers take later tasks.
func TestWorkersNeverWait(t *testing.T) {
	w := newWorkers()
	const n = 64
	for round := range 2 {
		var started, done sync.WaitGroup
		release := make(chan struct{})
		started.Add(n)
		done.Add(n)
		for range n {
			w.run(func() {
				started.Done()
				<-release
				done.Done()
			})
		}
		ok := make(chan struct{})
		go func() { started.Wait(); close(ok) }()
		select {
		case <-ok:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: not all %d tasks started while the others were blocked", round, n)
		}
		close(release)
		done.Wait()
	}
}
