package api

import "github.com/antaca/antaca/internal/lowprio"

// hashWorker runs password hashes from jobs on an OS thread of its own at
// the lowest CPU priority (nice 19), so a hash takes only the CPU that
// authorisations and the database leave, until quit closes.
var hashWorker = lowprio.Worker
