//go:build !linux

package loadtest

// NiceProcess lowers nothing: thread priorities are set on Linux only.
func NiceProcess() {}
