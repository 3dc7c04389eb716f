//go:build !linux

package api

// hashWorker runs password hashes from jobs until quit closes; thread
// priorities are set on Linux only.
func hashWorker(jobs <-chan func(), quit <-chan struct{}) {
	for {
		select {
		case fn := <-jobs:
			fn()
		case <-quit:
			return
		}
	}
}
