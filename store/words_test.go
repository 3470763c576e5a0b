package store

import (
	"testing"
	"time"
)

// TestWordsWindow: the look-back for late events runs every
// wordsSweepEvery, from where this replica's last complete sweep left
// every event final, or wordsSlack below the newest indexed event when
// that sweep is stale (another replica worked meanwhile) or further.
func TestWordsWindow(t *testing.T) {
	var w wordsState
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	if lo, ok := w.window(4_000, t0); !ok || lo != 0 {
		t.Fatalf("first sweep: %d, %v; want 0 (never below 0), true", lo, ok)
	}
	w.swept(50_000, t0)
	if _, ok := w.window(50_000, t0.Add(wordsSweepEvery-time.Millisecond)); ok {
		t.Fatal("a sweep was due before wordsSweepEvery had passed")
	}
	// 30,000 events indexed since: the window reaches back to where the
	// last sweep left off, not only wordsSlack below the newest.
	if lo, ok := w.window(80_000, t0.Add(wordsSweepEvery)); !ok || lo != 40_000 {
		t.Fatalf("sweep after %v: %d, %v; want 40000, true", wordsSweepEvery, lo, ok)
	}
	if lo, ok := w.window(80_000, t0.Add(wordsSweepStale)); !ok || lo != 70_000 {
		t.Fatalf("sweep after a stale one: %d, %v; want 70000, true", lo, ok)
	}
	w.every = -1
	if lo, ok := w.window(50_000, t0); !ok || lo != 40_000 {
		t.Fatalf("every < 0: %d, %v; want 40000, true", lo, ok)
	}
}
