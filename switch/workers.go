package authswitch

import "time"

// workers runs request handlers on goroutines that outlive one request.
// A goroutine per request starts with a small stack and grows it again for
// every request (the ISO 8583 unpacking, the card host and the database
// driver are deep): measured at 6% of the switch's CPU under load. A
// worker that finishes waits for the next request for idleWorker before
// it ends, so the pool follows the load and keeps its grown stacks.
type workers struct {
	tasks chan func()
}

const idleWorker = 10 * time.Second

func newWorkers() *workers { return &workers{tasks: make(chan func())} }

// run runs f on an idle worker, or on a new one when none is idle; it
// never waits for a worker.
func (w *workers) run(f func()) {
	select {
	case w.tasks <- f:
	default:
		go w.work(f)
	}
}

func (w *workers) work(f func()) {
	idle := time.NewTimer(idleWorker)
	defer idle.Stop()
	for {
		f()
		idle.Reset(idleWorker)
		select {
		case f = <-w.tasks:
		case <-idle.C:
			return
		}
	}
}
