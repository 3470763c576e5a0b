package main

import (
	"testing"
	"time"
)

// TestWordsPause: the indexer's pause after a full batch keeps it to half
// of the time while it catches up, and to a tenth while the intake is busy.
func TestWordsPause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		took time.Duration
		busy bool
		want time.Duration
	}{
		{40 * time.Millisecond, false, 40 * time.Millisecond},
		{40 * time.Millisecond, true, 360 * time.Millisecond},
		{0, true, 0},
	} {
		if got := wordsPause(tc.took, tc.busy); got != tc.want {
			t.Errorf("wordsPause(%s, busy %v) = %s, want %s", tc.took, tc.busy, got, tc.want)
		}
	}
}
