//go:build !linux

package policy

import "time"

// cpuTimer falls back to wall time where the thread's CPU time is not
// available (see cputime_linux.go).
type cpuTimer struct{ start time.Time }

func startCPUTimer() cpuTimer { return cpuTimer{start: time.Now()} }

func (t cpuTimer) stop() time.Duration { return time.Since(t.start) }
