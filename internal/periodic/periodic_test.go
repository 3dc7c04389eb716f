package periodic

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestRun: the first round runs at once, rounds repeat, and Run returns
// when its context ends.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var rounds atomic.Int32
	first := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, time.Millisecond, func(context.Context) {
			if rounds.Add(1) == 1 {
				close(first)
			}
		})
	}()
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("no first round")
	}
	for deadline := time.Now().Add(10 * time.Second); rounds.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d rounds in 10 s at 1 ms", rounds.Load())
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestRunFirstRoundAtOnce: the first round does not wait for the interval.
func TestRunFirstRoundAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{}, 1)
	go Run(ctx, time.Hour, func(context.Context) {
		select {
		case ran <- struct{}{}:
		default:
		}
	})
	defer cancel()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the first round waited for the interval")
	}
}
