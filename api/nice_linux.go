package api

import (
	"runtime"
	"syscall"
)

// hashWorker runs password hashes from jobs on an OS thread of its own at
// the lowest CPU priority (nice 19), so a hash takes only the CPU that
// authorisations and the database leave, until quit closes. The thread
// never exits while niced: a thread that ends kills the children it
// started with a parent-death signal (the local PostgreSQL), so at the
// end the worker restores its priority and unlocks, or, when it may not
// (lowering nice needs CAP_SYS_NICE), stays parked on its thread.
func hashWorker(jobs <-chan func(), quit <-chan struct{}) {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	niced := syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19) == nil // best effort
	for {
		select {
		case fn := <-jobs:
			fn()
			continue
		case <-quit:
		}
		break
	}
	if niced && syscall.Setpriority(syscall.PRIO_PROCESS, tid, 0) != nil {
		select {} // parked for the rest of the process, see above
	}
	runtime.UnlockOSThread()
}
