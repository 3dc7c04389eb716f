//go:build !linux

// Package lowprio runs work at the lowest CPU priority where the system
// lets a thread have its own (Linux); elsewhere at the normal one.
package lowprio

// Worker runs the functions from jobs until quit closes; thread priorities
// are set on Linux only.
func Worker(jobs <-chan func(), quit <-chan struct{}) {
	for {
		select {
		case fn := <-jobs:
			fn()
		case <-quit:
			return
		}
	}
}
