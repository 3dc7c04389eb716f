// Package periodic runs background rounds (expiry, delivery, pruning,
// retries) at a fixed interval.
package periodic

import (
	"context"
	"time"
)

// Run calls round at once, then every interval, until ctx ends. Rounds
// never overlap: after a round longer than the interval the next starts
// at once.
func Run(ctx context.Context, every time.Duration, round func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
