package main

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// bucketLines is the text of moderator_intake_batch_seconds' buckets for
// path, with counts cumulative by bound (batchBounds, the last +Inf).
func bucketLines(path string, counts ...float64) string {
	var b strings.Builder
	for i, n := range counts {
		le := "+Inf"
		if !math.IsInf(batchBounds[i], 1) {
			le = fmt.Sprint(batchBounds[i])
		}
		fmt.Fprintf(&b, "moderator_intake_batch_seconds_bucket{path=%q,le=%q} %v\n", path, le, n)
	}
	return b.String()
}

// TestBatchTimes: the batches' times are read by path from the
// histogram's buckets (unknown paths and bounds ignored), a run's are the
// difference of two readings, the quantiles interpolate within a bucket,
// and the table gives each path's share of the batches and its p50, p90
// and p99; a run without them prints no table.
func TestBatchTimes(t *testing.T) {
	t.Parallel()
	before, err := parseIntake(strings.NewReader("moderator_intake_batch_records_count 10\n" +
		bucketLines("insert", 0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10)))
	if err != nil {
		t.Fatal(err)
	}
	// After: 10 more batches of path insert, all under 1 ms; 100 of path
	// ahead: 50 under 2 ms, 90 under 3 ms, 100 under 5 ms; a path this
	// tool does not know, and a bound it does not know, are skipped.
	ahead := []float64{0, 0, 50, 90, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100}
	after, err := parseIntake(strings.NewReader("moderator_intake_batch_records_count 120\n" +
		bucketLines("insert", 0, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20) +
		bucketLines("ahead", ahead...) + bucketLines("elsewhere", ahead...) +
		"moderator_intake_batch_seconds_bucket{path=\"ahead\",le=\"0.004\"} 99\n"))
	if err != nil {
		t.Fatal(err)
	}
	run := after.since(before)
	if run.batches != 110 || run.times.batches(0) != 10 || run.times.batches(1) != 100 || run.times.batches(2) != 0 {
		t.Fatalf("a run's batches %v, by path %v", run.batches, run.times)
	}
	for _, q := range []struct {
		path int
		q    float64
		want float64 // ms
	}{
		{0, .5, 0.75}, // the 5th of 10 in (0.5 ms, 1 ms]
		{1, .5, 2},    // the 50th: the end of (1 ms, 2 ms]
		{1, .7, 2.5},  // the 70th: half way through (2 ms, 3 ms]
		{1, .99, 4.8}, // the 99th: nine tenths through (3 ms, 5 ms]
	} {
		if got := 1000 * run.times.quantile(q.path, q.q); math.Abs(got-q.want) > 1e-9 {
			t.Errorf("path %s, quantile %v: %v ms, want %v", batchPaths[q.path], q.q, got, q.want)
		}
	}
	if got := run.times.quantile(2, .5); !math.IsNaN(got) {
		t.Errorf("the quantile of a path without batches: %v, want NaN", got)
	}
	if c, err := parseIntake(strings.NewReader(`moderator_intake_batch_seconds_bucket{path="ahead"} 3` + "\n")); err != nil || c.times != (batchTimes{}) {
		t.Errorf("a bucket without a bound: %v, %v; want it skipped", c.times, err)
	}
	if _, err := parseIntake(strings.NewReader(`moderator_intake_batch_seconds_bucket{path="ahead",le="0.001"} many` + "\n")); err == nil {
		t.Error("a count that is not a number was accepted")
	}

	var out strings.Builder
	batchTimesTable(&out, [][]result{{{name: "floor"}, {name: "starter", intake: &run}}})
	got := strings.Join(strings.Fields(out.String()), " ")
	want := "their times by path, ms (from the histogram's buckets; insert: committed with the insert, ahead: judged ahead," +
		" then its decisions written, read: judged after a history read): subject path batches, % p50 p90 p99" +
		" starter insert 9.1 0.75 0.95 0.99 starter ahead 90.9 2.00 3.00 4.80"
	if got != want {
		t.Errorf("batchTimesTable:\n%s\nwant\n%s", got, want)
	}
	none := intakeCounts{batches: 5}
	out.Reset()
	batchTimesTable(&out, [][]result{{{name: "starter", intake: &none}}})
	if out.Len() != 0 {
		t.Errorf("without times, a table:\n%s", out.String())
	}
}
