//go:build !linux

package loadtest

// niceProcess lowers nothing: thread priorities are set on Linux only.
func niceProcess() {}
