package store

import "testing"

// TestWordsSettle: a mark settles once none of the transactions running
// when it was made is still running; the newest settled mark above the
// frontier is the one returned, and stays until the frontier passes it.
func TestWordsSettle(t *testing.T) {
	var w wordsState
	steps := []struct {
		now    wordsMark
		lo     int64
		want   int64
		wantOK bool
	}{
		{wordsMark{10, []int64{5}}, 0, 0, false},    // 5 still runs
		{wordsMark{20, []int64{5, 6}}, 0, 0, false}, // 5 still runs
		{wordsMark{30, []int64{6, 7}}, 0, 10, true}, // 5 ended: 10 settles, not 20 (6 runs)
		{wordsMark{35, []int64{6, 7}}, 0, 10, true}, // the frontier did not move: 10 again
		{wordsMark{40, nil}, 10, 40, true},          // all ended: the newest
		{wordsMark{50, []int64{9}}, 40, 0, false},   // 40 is the frontier now
		{wordsMark{60, []int64{9}}, 40, 0, false},   // 9 still runs
	}
	for i, s := range steps {
		got, ok := w.settle(s.now, s.lo)
		if got != s.want || ok != s.wantOK {
			t.Fatalf("step %d: settle(%v, %d) = %d, %v; want %d, %v", i, s.now, s.lo, got, ok, s.want, s.wantOK)
		}
	}
	if got, ok := w.settle(wordsMark{70, nil}, 40); !ok || got != 70 || len(w.marks) != 1 {
		t.Fatalf("after 9 ended: %d, %v, %d marks kept; want 70, true, 1", got, ok, len(w.marks))
	}
	// A transaction that never ends while marks keep coming: the marks
	// kept stay bounded, and settle all at once when it ends.
	for i := range 3 * wordsMarksKept {
		if _, ok := w.settle(wordsMark{int64(100 + i), []int64{77}}, 70); ok {
			t.Fatalf("mark %d settled while 77 runs", i)
		}
	}
	if len(w.marks) > wordsMarksKept {
		t.Fatalf("%d marks kept, want at most %d", len(w.marks), wordsMarksKept)
	}
	if got, ok := w.settle(wordsMark{1000, []int64{78}}, 70); !ok || got < 100 || got >= 1000 {
		t.Fatalf("after 77 ended: %d, %v; want one of the marks it held back", got, ok)
	}
}
