package cardhost

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// batcher groups concurrent requests so that one database round trip and
// one commit serve many of them (group commit). Workers each take the
// first waiting item, then whatever else is queued (up to max), waiting at
// most window for more; while workers are busy in the database, new items
// queue up, so batches grow with load and stay single at low load. It is
// safe for concurrent use.
type batcher[T any] struct {
	items   chan *batchItem[T]
	max     int
	window  time.Duration
	flush   func(ctx context.Context, items []*batchItem[T])
	workers int
	timeout time.Duration

	size, seconds prometheus.Observer

	once sync.Once
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.RWMutex
	done bool
}

// batchItem is one request in a batch; flush must call reply exactly once.
type batchItem[T any] struct {
	ctx   context.Context
	in    T
	reply chan error
}

// errClosed is returned by a batcher after Close.
var errClosed = errors.New("card host closed")

func newBatcher[T any](workers, max int, window, timeout time.Duration, flush func(context.Context, []*batchItem[T])) *batcher[T] {
	return &batcher[T]{items: make(chan *batchItem[T], workers*max), max: max, window: window, timeout: timeout, flush: flush, workers: workers, stop: make(chan struct{})}
}

// observe records each batch's size and duration.
func (b *batcher[T]) observe(size, seconds prometheus.Observer) { b.size, b.seconds = size, seconds }

// do queues in and waits for its batch to be flushed.
func (b *batcher[T]) do(ctx context.Context, in T) error {
	b.once.Do(b.start)
	it := &batchItem[T]{ctx: ctx, in: in, reply: make(chan error, 1)}
	b.mu.RLock()
	if b.done {
		b.mu.RUnlock()
		return errClosed
	}
	select {
	case b.items <- it:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the item is always answered: its batch may already be
	// committing, and leaving early would lose what it did.
	return <-it.reply
}

func (b *batcher[T]) start() {
	for range b.workers {
		b.wg.Add(1)
		go b.work()
	}
}

func (b *batcher[T]) work() {
	defer b.wg.Done()
	batch := make([]*batchItem[T], 0, b.max)
	for {
		batch = batch[:0]
		select {
		case it := <-b.items:
			batch = append(batch, it)
		case <-b.stop:
			// Drain what was queued before Close.
			for {
				select {
				case it := <-b.items:
					b.run([]*batchItem[T]{it})
				default:
					return
				}
			}
		}
		var timer <-chan time.Time
		if b.window > 0 {
			timer = time.After(b.window)
		}
	fill:
		for len(batch) < b.max {
			select {
			case it := <-b.items:
				batch = append(batch, it)
			default:
				if timer == nil {
					break fill
				}
				select {
				case it := <-b.items:
					batch = append(batch, it)
				case <-timer:
					break fill
				}
			}
		}
		b.run(batch)
	}
}

// run flushes a batch, leaving out items whose context is already done.
func (b *batcher[T]) run(batch []*batchItem[T]) {
	live := batch[:0]
	for _, it := range batch {
		if err := it.ctx.Err(); err != nil {
			it.reply <- err
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	// A database that stops answering without closing its connections
	// must not hold requests for longer than the budget: the batch then
	// fails (rolled back unless the commit itself was under way) and its
	// requests are answered issuer unavailable.
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	start := time.Now()
	b.flush(ctx, live)
	if b.size != nil {
		b.size.Observe(float64(len(live)))
		b.seconds.Observe(time.Since(start).Seconds())
	}
}

// close stops the workers after the queued items are flushed.
func (b *batcher[T]) close() {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.mu.Unlock()
	b.once.Do(func() {}) // never start after close
	close(b.stop)
	b.wg.Wait()
}
