package loadtest

import (
	"os"
	"strconv"
	"syscall"
)

// NiceProcess puts every thread of this process at nice 19; threads
// started later inherit it from the thread that starts them. (On Linux
// setpriority of a process id changes one thread.)
func NiceProcess() {
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19) // best effort
		}
	}
}
