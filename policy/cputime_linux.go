package policy

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// clockThreadCPUTime is CLOCK_THREAD_CPUTIME_ID of clock_gettime(2).
const clockThreadCPUTime = 3

// cpuTimer measures the CPU time the calling goroutine spends, so that
// the worst-case check at load is not fooled by a busy machine: time spent
// waiting for a CPU does not count. It locks the goroutine to its thread
// until stop.
type cpuTimer struct{ start time.Duration }

func startCPUTimer() cpuTimer {
	runtime.LockOSThread()
	return cpuTimer{start: threadCPUTime()}
}

func (t cpuTimer) stop() time.Duration {
	d := threadCPUTime() - t.start
	runtime.UnlockOSThread()
	return d
}

func threadCPUTime() time.Duration {
	var ts syscall.Timespec
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}
