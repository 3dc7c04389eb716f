// Package gctune sets the garbage collector of the long-running commands.
package gctune

import (
	"os"
	"runtime/debug"
)

// Percent is the GOGC the switch, the API and the load generator run with
// unless GOGC is set: their live heap is small (tens of MB) and memory is
// not what the machine lacks, while collection was about a tenth of the
// switch's CPU under load at the default 100.
const Percent = 400

// Apply sets Percent unless the GOGC environment variable decides.
func Apply() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(Percent)
	}
}
