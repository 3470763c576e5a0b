package main

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: serve raises the collector's target unless the operator
// set GOGC, whose value then stands. Not parallel: the target is global.
func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tuneGC(func(string) (string, bool) { return "", false })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC unset: the target is %d, want %d", got, defaultGCPercent)
	}
	tuneGC(func(k string) (string, bool) { return "50", k == "GOGC" })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: the target was changed to %d", got)
	}
}
