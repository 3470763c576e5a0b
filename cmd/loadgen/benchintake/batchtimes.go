package main

import (
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"text/tabwriter"
)

// batchPaths are the values of the path label of moderator's
// moderator_intake_batch_seconds (store.BatchPath), in the report's order.
var batchPaths = [...]string{"insert", "ahead", "read", "write", "failed"}

// batchBounds are the upper bounds of that histogram's buckets (its le
// labels), in seconds; the last is +Inf.
var batchBounds = [...]float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 6, math.Inf(1)}

// batchTimes counts a run's batches by path and time, cumulatively by
// bound, as the histogram's buckets do. An array, so that intakeCounts
// stays comparable.
type batchTimes [len(batchPaths)][len(batchBounds)]float64

// batchBucket matches one bucket's line of the histogram.
var batchBucket = regexp.MustCompile(`^moderator_intake_batch_seconds_bucket\{path="([a-z]+)",le="([^"]+)"\} (\S+)$`)

// addLine keeps the count of line when it is one of the histogram's
// buckets with a known path and bound, and reports whether it was.
func (t *batchTimes) addLine(line string) (bool, error) {
	m := batchBucket.FindStringSubmatch(line)
	if m == nil {
		return false, nil
	}
	p, b := slices.Index(batchPaths[:], m[1]), -1
	le, err := strconv.ParseFloat(m[2], 64)
	if err == nil {
		b = slices.Index(batchBounds[:], le)
	}
	if p < 0 || b < 0 {
		return false, nil
	}
	n, err := strconv.ParseFloat(m[3], 64)
	if err != nil {
		return false, fmt.Errorf("read the intake's metrics: %s: %w", line, err)
	}
	t[p][b] = n
	return true, nil
}

// since is what was counted between before and t.
func (t batchTimes) since(before batchTimes) batchTimes {
	for p := range t {
		for b := range t[p] {
			t[p][b] -= before[p][b]
		}
	}
	return t
}

// batches is how many batches went by path p.
func (t batchTimes) batches(p int) float64 { return t[p][len(batchBounds)-1] }

// quantile estimates the q-quantile of path p's batch times, in seconds,
// by interpolating within its bucket, as Prometheus's histogram_quantile
// does; past the last finite bound it gives that bound. NaN without
// batches.
func (t batchTimes) quantile(p int, q float64) float64 {
	total := t.batches(p)
	if total == 0 {
		return math.NaN()
	}
	want := q * total
	lo, below := 0.0, 0.0
	for b, n := range t[p] {
		if n >= want {
			if math.IsInf(batchBounds[b], 1) || n == below {
				return lo
			}
			return lo + (batchBounds[b]-lo)*(want-below)/(n-below)
		}
		lo, below = batchBounds[b], n
	}
	return lo
}

// batchTimesTable prints, for each moderator subject, how its batches at
// the fixed rate went (the share of each path) and how long each path's
// took: a batch in which a rule matched takes more round trips than one
// committed with its insert, and the latencies' tail is theirs. Medians
// over the rounds; nothing when no batch was timed by path (a moderator
// older than the label).
func batchTimesTable(w io.Writer, results [][]result) {
	var rows []string
	for i, r := range results[0] {
		for p, path := range batchPaths {
			var share, p50, p90, p99 []float64
			for _, round := range results {
				in := round[i].intake
				if in == nil || in.batches == 0 || in.times.batches(p) == 0 {
					continue
				}
				share = append(share, 100*in.times.batches(p)/in.batches)
				p50 = append(p50, 1000*in.times.quantile(p, .5))
				p90 = append(p90, 1000*in.times.quantile(p, .9))
				p99 = append(p99, 1000*in.times.quantile(p, .99))
			}
			if len(share) > 0 {
				rows = append(rows, fmt.Sprintf("%s\t%s\t%.1f\t%.2f\t%.2f\t%.2f\t", r.name, path,
					median(share), median(p50), median(p90), median(p99)))
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprint(w, "\ntheir times by path, ms (from the histogram's buckets; insert: committed with the insert,"+
		" ahead: judged ahead, then its decisions written, read: judged after a history read):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "subject\tpath\tbatches, %\tp50\tp90\tp99\t")
	for _, row := range rows {
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
}
