package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// intakeCounts are moderator's own counts of its batches over a run (from
// its /metrics): how many batches the webhooks made, how many of those
// were judged ahead from the copies of counter marks and then recorded
// again, and how often a read loaded a user's or a channel's marks or a
// user's strikes. They
// say how much of a policy's traffic takes the one round trip path, and
// whether the copies hold, which the latencies alone cannot tell.
type intakeCounts struct {
	batches, records, ahead, misses, userLoads, channelLoads, strikeLoads float64
	// times are the batches by path and time.
	times batchTimes
}

// intakeMetrics are the counters read, by series (the name and its
// labels, as the text format writes them), one line each.
var intakeMetrics = map[string]func(*intakeCounts) *float64{
	"moderator_intake_batch_records_count":              func(c *intakeCounts) *float64 { return &c.batches },
	"moderator_intake_batch_records_sum":                func(c *intakeCounts) *float64 { return &c.records },
	"moderator_intake_judged_ahead_total":               func(c *intakeCounts) *float64 { return &c.ahead },
	"moderator_intake_copy_misses_total":                func(c *intakeCounts) *float64 { return &c.misses },
	`moderator_intake_copy_loads_total{kind="user"}`:    func(c *intakeCounts) *float64 { return &c.userLoads },
	`moderator_intake_copy_loads_total{kind="channel"}`: func(c *intakeCounts) *float64 { return &c.channelLoads },
	`moderator_intake_copy_loads_total{kind="strikes"}`: func(c *intakeCounts) *float64 { return &c.strikeLoads },
}

// scrapeIntake reads the intake's counts from moderator at addr.
func scrapeIntake(ctx context.Context, addr string) (intakeCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return intakeCounts{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return intakeCounts{}, fmt.Errorf("read the intake's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return intakeCounts{}, fmt.Errorf("read the intake's metrics: %s", resp.Status)
	}
	return parseIntake(resp.Body)
}

// parseIntake reads the counts from Prometheus's text format; a counter
// missing from it (an older moderator) reads 0.
func parseIntake(r io.Reader) (intakeCounts, error) {
	var c intakeCounts
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		bucket, err := c.times.addLine(sc.Text())
		if err != nil {
			return c, err
		}
		if bucket {
			continue
		}
		name, value, ok := strings.Cut(sc.Text(), " ")
		field, known := intakeMetrics[name]
		if !ok || !known {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return c, fmt.Errorf("read the intake's metrics: %s: %w", name, err)
		}
		*field(&c) = v
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("read the intake's metrics: %w", err)
	}
	return c, nil
}

// countIntake reads the intake's counts of moderator at addr, and
// returns the function that gives what was counted since; for the floor
// (name), which has none, nil.
func countIntake(ctx context.Context, name, addr string) (func() (*intakeCounts, error), error) {
	if name == "floor" {
		return func() (*intakeCounts, error) { return nil, nil }, nil
	}
	before, err := scrapeIntake(ctx, addr)
	if err != nil {
		return nil, err
	}
	return func() (*intakeCounts, error) {
		after, err := scrapeIntake(ctx, addr)
		if err != nil {
			return nil, err
		}
		counts := after.since(before)
		return &counts, nil
	}, nil
}

// since is what was counted between before and c.
func (c intakeCounts) since(before intakeCounts) intakeCounts {
	return intakeCounts{batches: c.batches - before.batches, records: c.records - before.records,
		ahead: c.ahead - before.ahead, misses: c.misses - before.misses,
		userLoads: c.userLoads - before.userLoads, channelLoads: c.channelLoads - before.channelLoads,
		strikeLoads: c.strikeLoads - before.strikeLoads, times: c.times.since(before.times)}
}

// reportIntake prints, for each moderator subject, its batches at the
// fixed rate and in the closed loop: how many webhooks each held, the
// share judged ahead from the copies (one round trip when no rule
// matched), the share of those recorded again, and the users', channels'
// and strikes' copy loads; and the fixed-rate batches' times by path.
// Medians over the rounds.
func reportIntake(w io.Writer, c config, results [][]result) {
	if len(results) == 0 || !slices.ContainsFunc(results[0], func(r result) bool { return r.intake != nil }) {
		return
	}
	fmt.Fprintf(w, "\nmoderator's batches at %d/s for %s, the warm-up included (its metrics):\n", c.rate, c.duration)
	intakeTable(w, results, func(r result) *intakeCounts { return r.intake })
	batchTimesTable(w, results)
	if slices.ContainsFunc(results[0], func(r result) bool { return r.closedIntake != nil }) {
		fmt.Fprintf(w, "\nand in the closed loop:\n")
		intakeTable(w, results, func(r result) *intakeCounts { return r.closedIntake })
	}
}

// intakeTable prints the table of reportIntake of the counts of one run.
func intakeTable(w io.Writer, results [][]result, of func(result) *intakeCounts) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "subject\tbatches\twebhooks a batch\tjudged ahead, %\trecorded again, %\tuser loads\tchannel loads\tstrike loads\t")
	for i, r := range results[0] {
		if of(r) == nil {
			continue
		}
		var batches, size, ahead, again, users, channels, strikes []float64
		for _, round := range results {
			in := of(round[i])
			if in == nil || in.batches == 0 {
				continue
			}
			batches, size = append(batches, in.batches), append(size, in.records/in.batches)
			users, channels = append(users, in.userLoads), append(channels, in.channelLoads)
			strikes = append(strikes, in.strikeLoads)
			ahead = append(ahead, 100*in.ahead/in.batches)
			if in.ahead > 0 {
				again = append(again, 100*in.misses/in.ahead)
			} else {
				again = append(again, 0)
			}
		}
		if len(batches) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t\n", r.name, median(batches), median(size), median(ahead), median(again),
			median(users), median(channels), median(strikes))
	}
	tw.Flush()
}
