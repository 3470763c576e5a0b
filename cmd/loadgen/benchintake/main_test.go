package main

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"moderator/policy"
)

// TestHeavyPolicy: the benchmark's counter-heavy policy is what the issue
// asks for (about 25 rules, at least 8 reading counters or strikes) and a
// valid rule set whose examples pass, laid over the starter pack.
func TestHeavyPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := layFolders(dir, []string{"../../../rules", "heavy"}); err != nil {
		t.Fatal(err)
	}
	rs, err := policy.Load(os.DirFS(dir))
	if err != nil {
		t.Fatalf("the heavy policy does not load: %v", err)
	}
	rules := rs.Rules()
	if len(rules) < 24 || len(rules) > 26 {
		t.Errorf("%d rules, want about 25", len(rules))
	}
	history := 0
	for _, r := range rules {
		if len(r.History) > 0 {
			history++
		}
	}
	if history < 8 {
		t.Errorf("%d rules read counters or strikes, want at least 8", history)
	}
	if _, err := os.Stat(filepath.Join(dir, "heavy.yaml")); err != nil {
		t.Fatal(err)
	}
}

// TestBarePolicy: the bare subject's folder loads as a rule set with no
// rules, so the service starts, records and judges nothing.
func TestBarePolicy(t *testing.T) {
	t.Parallel()
	rs, err := policy.Load(os.DirFS("bare"))
	if err != nil {
		t.Fatalf("the bare folder does not load: %v", err)
	}
	if n := len(rs.Rules()); n != 0 {
		t.Errorf("%d rules in the bare folder, want none", n)
	}
}

// TestParseStat: the CPU times are read after the command name, which may
// hold spaces and parentheses, and a line without them is refused.
func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "4242 (postgres: a (b) c) S 1 4242 4242 0 -1 4194560 1021 0 0 0 250 37 0 0 20 0 1 0 3086 226533376 2344"
	got, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 287 * clockTick; got != want {
		t.Errorf("parseStat = %s, want %s (250 + 37 ticks)", got, want)
	}
	if _, err := parseStat("4242 (cut) S 1 2"); err == nil {
		t.Error("a short line was accepted")
	}
	if runtime.GOOS != "linux" {
		return // no /proc
	}
	if got, err := procCPU(os.Getpid()); err != nil || got < 0 {
		t.Errorf("procCPU(self) = %s, %v", got, err)
	}
}

// TestReportRounds: with several rounds the report gives each figure's
// median and each ratio's range, every round's ratios being to its own
// floor.
func TestReportRounds(t *testing.T) {
	t.Parallel()
	sub := func(name string, rps, p50 float64, cpu time.Duration) result {
		r := result{name: name, cpu: cpuUse{server: cpu, requests: 1000, ok: true}}
		r.closed.AchievedRPS, r.open.LatencyMS.P50, r.open.LatencyMS.P99 = rps, p50, 2*p50
		r.beforeSend = &loadSummary{}
		r.beforeSend.LatencyMS.P50, r.beforeSend.LatencyMS.P99 = p50/4, p50
		return r
	}
	rounds := [][]result{
		{sub("floor", 1000, 1, 100*time.Millisecond), sub("starter", 500, 2, 200*time.Millisecond)},
		{sub("floor", 2000, 1, 100*time.Millisecond), sub("starter", 1400, 4, 125*time.Millisecond)},
		{sub("floor", 1000, 2, 100*time.Millisecond), sub("starter", 600, 6, 160*time.Millisecond)},
	}
	var out strings.Builder
	report(&out, config{n: 30000, conc: 64, rate: 500, duration: time.Second, beforeSend: "b.json"}, rounds)
	got := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		// before-send p50 0.5, 1, 1.5 ms; p99 2, 4, 6 ms: medians, worst;
		// the floor's p99 1, 1, 2 ms: ratios 2, 4, 3.
		"before-send at 500/s for 1s, ms: subject p50 p99 worst p99 p99 ratio floor 0.25 1.00 2.00 1.00 (1.00–1.00) starter 1.00 4.00 6.00 3.00 (2.00–4.00)",
		"3 rounds: medians",
		// The fixed rate first, on the fresh database.
		"500/s for 1s, then a closed loop (30000 requests, 64 in flight);",
		// throughput median 600; ratios 0.5, 0.7, 0.6; p50 4 ms; p50 ratios 2, 4, 3.
		"starter 600 0.60 (0.50–0.70) 4.00 8.00 3.00 (2.00–4.00) 3.00 (2.00–4.00)",
		// CPU 200, 125, 160 µs; cpu ratios 0.5, 0.8, 0.625.
		"starter 160 0 0 160 0.62 (0.50–0.80)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	out.Reset()
	report(&out, config{n: 30000, conc: 64, rate: 500, duration: time.Second}, rounds[:2])
	// Two rounds: the median is the mean of the two, 950/s and 0.6.
	if got := strings.Join(strings.Fields(out.String()), " "); !strings.Contains(got, "starter 950 0.60 (0.50–0.70)") {
		t.Errorf("two rounds' report:\n%s", got)
	}
	out.Reset()
	report(&out, config{n: 30000, conc: 64, rate: 500, duration: time.Second, afterBurst: true}, rounds[:2])
	if got := out.String(); !strings.Contains(got, "closed loop (30000 requests, 64 in flight), then 500/s for 1s right after it;") {
		t.Errorf("-after-burst report's heading:\n%s", got)
	}
	out.Reset()
	report(&out, config{n: 30000, conc: 64, rate: 500, duration: time.Second}, rounds[:1])
	if got := strings.Join(strings.Fields(out.String()), " "); strings.Contains(got, "rounds") || strings.Contains(got, "before-send at") ||
		!strings.Contains(got, "starter 500 0.50 2.00 4.00 2.00 2.00") {
		t.Errorf("one round's report:\n%s", got)
	}
}

// TestParseProcStat: the machine's busy time leaves idle, iowait and
// steal out; all is every core's time; a line without the times is
// refused.
func TestParseProcStat(t *testing.T) {
	t.Parallel()
	got, err := parseProcStat("cpu  100 5 40 800 20 3 2 30 7 0\ncpu0 50 2 20 400 10 1 1 15 3 0\n")
	if err != nil {
		t.Fatal(err)
	}
	want := machineTimes{busy: 150 * clockTick, steal: 30 * clockTick, all: 1000 * clockTick}
	if got != want {
		t.Errorf("parseProcStat = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
	if runtime.GOOS != "linux" {
		return
	}
	if m, err := readMachine(); err != nil || m.all <= 0 || m.busy > m.all {
		t.Errorf("readMachine() = %+v, %v", m, err)
	}
}

// TestOtherWork: what the subject, its backends and the load tool did not
// use is the rest of the machine's; the busiest other processes are
// named, the subject's own and the ones that ended left out.
func TestOtherWork(t *testing.T) {
	t.Parallel()
	u := cpuUse{server: 300 * time.Millisecond, postgres: 400 * time.Millisecond, load: 100 * time.Millisecond,
		machine: machineTimes{busy: time.Second}}
	if got := u.other(); got != 200*time.Millisecond {
		t.Errorf("other = %s, want 200ms", got)
	}
	u.machine.busy = 500 * time.Millisecond // the ticks' rounding
	if got := u.other(); got != 0 {
		t.Errorf("other = %s, want 0 when the parts add up to more", got)
	}
	before := map[int]procUse{
		1: {1, "kworker/0:1-events", 2 * time.Second}, 2: {2, "moderator", time.Second}, 3: {3, "psql", 0},
		4: {4, "bash", time.Second},
	}
	after := map[int]procUse{
		1: {1, "kworker/0:1-mm_percpu_wq", 2500 * time.Millisecond}, 2: {2, "moderator", 5 * time.Second},
		4: {4, "bash", time.Second}, 5: {5, "stray", 800 * time.Millisecond}, 6: {6, "a", 10 * time.Millisecond},
		7: {7, "b", 20 * time.Millisecond},
	}
	got := busiestOthers(before, after, map[int]bool{2: true})
	want := []procUse{{5, "stray", 800 * time.Millisecond}, {1, "kworker/0:1-mm_percpu_wq", 500 * time.Millisecond},
		{7, "b", 20 * time.Millisecond}}
	if !slices.Equal(got, want) {
		t.Errorf("busiestOthers = %v, want %v", got, want)
	}

	mk := func(name string, other float64) row {
		return row{name: name, other: other, total: 200, steal: 0.1, busiest: []procUse{{5, "stray", 800 * time.Millisecond}}}
	}
	var out strings.Builder
	reportMachine(&out, [][]row{{mk("floor", 3), mk("starter", 2)}, {mk("floor", 2), mk("starter", 12.5)}})
	text := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"floor 2 0.1", "starter 7 0.1",
		"warning: round 2, starter: other work added 12 µs to the 200 µs of CPU per webhook (more than 5 %); the busiest others: stray (pid 5) 0.80 s"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Count(text, "warning") != 1 {
		t.Errorf("a quiet run was warned of:\n%s", out.String())
	}
	out.Reset()
	reportMachine(&out, [][]row{{mk("floor", -1), mk("starter", 2)}})
	if out.Len() != 0 {
		t.Errorf("reported without measuring:\n%s", out.String())
	}
}

// TestIntakeCounts: the intake's counters are read from moderator's
// metrics text (other lines, labelled ones and comments ignored), a run's
// are the difference of two readings, and the report gives each
// subject's median batch size and shares of batches judged ahead and
// recorded again; the floor, which has no such metrics, has no line.
func TestIntakeCounts(t *testing.T) {
	t.Parallel()
	read := func(text string) intakeCounts {
		t.Helper()
		c, err := parseIntake(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	before := read("# HELP moderator_intake_judged_ahead_total Batches judged ahead.\n" +
		"moderator_intake_batch_records_count 10\nmoderator_intake_batch_records_sum 12\n" +
		"moderator_intake_judged_ahead_total 4\nmoderator_intake_copy_misses_total 0\n" +
		"moderator_intake_copy_loads_total{kind=\"user\"} 3\nmoderator_intake_copy_loads_total{kind=\"channel\"} 1\n" +
		"moderator_intake_copy_loads_total{kind=\"strikes\"} 2\n")
	after := read("moderator_intake_batch_records_bucket{le=\"1\"} 900\n" +
		"moderator_intake_batch_records_count 1010\nmoderator_intake_batch_records_sum 1262\n" +
		"moderator_intake_judged_ahead_total 604\nmoderator_intake_copy_misses_total 12\nmoderator_other_total 7\n" +
		"moderator_intake_copy_loads_total{kind=\"user\"} 503\nmoderator_intake_copy_loads_total{kind=\"channel\"} 13\n" +
		"moderator_intake_copy_loads_total{kind=\"strikes\"} 9\n")
	run := after.since(before)
	if want := (intakeCounts{batches: 1000, records: 1250, ahead: 600, misses: 12, userLoads: 500, channelLoads: 12, strikeLoads: 7}); run != want {
		t.Errorf("a run's counts %+v, want %+v", run, want)
	}
	if _, err := parseIntake(strings.NewReader("moderator_intake_judged_ahead_total many\n")); err == nil {
		t.Error("a value that is not a number was accepted")
	}
	other := run
	other.ahead, other.misses, other.userLoads, other.channelLoads, other.strikeLoads = 500, 0, 300, 4, 3
	closed := intakeCounts{batches: 100, records: 1500, ahead: 50, misses: 1, userLoads: 10, channelLoads: 2, strikeLoads: 30}
	rounds := [][]result{
		{{name: "floor"}, {name: "starter", intake: &run, closedIntake: &closed}},
		{{name: "floor"}, {name: "starter", intake: &other, closedIntake: &closed}},
	}
	var out strings.Builder
	reportIntake(&out, config{rate: 500, duration: 10 * time.Second}, rounds)
	got := strings.Join(strings.Fields(out.String()), " ")
	// 1,000 batches of 1.25 webhooks; 60 % and 50 % ahead, 2 % and 0 % of
	// those again: medians 55 % and 1 %; 500 and 300 users' loads, 12 and
	// 4 channels': medians 400 and 8; 7 and 3 strikes': median 5. The
	// closed loop's, the same in both rounds: 15 webhooks a batch, half
	// ahead, 2 % of those again.
	want := "moderator's batches at 500/s for 10s, the warm-up included (its metrics): subject batches webhooks a batch judged ahead, % recorded again, % user loads channel loads strike loads starter 1000 1.25 55.0 1.0 400 8 5" +
		" and in the closed loop: subject batches webhooks a batch judged ahead, % recorded again, % user loads channel loads strike loads starter 100 15.00 50.0 2.0 10 2 30"
	if got != want {
		t.Errorf("reportIntake:\n%s\nwant\n%s", got, want)
	}
}

// TestReportBudget: each subject with a throughput target gets what the
// target allows (the floor's CPU a webhook over the ratio) and where its
// own goes: recording (bare over the floor) and the policy (the subject
// over bare); medians over the rounds; no table without a targeted subject.
func TestReportBudget(t *testing.T) {
	t.Parallel()
	sub := func(name string, cpu time.Duration) result {
		r := result{name: name, cpu: cpuUse{server: cpu, requests: 1000, ok: true}}
		r.closed.AchievedRPS, r.open.LatencyMS.P50, r.open.LatencyMS.P99 = 1000, 1, 2
		return r
	}
	round := func(floor, bare, starter, heavy time.Duration) []result {
		return []result{sub("floor", floor), sub("bare", bare), sub("starter", starter), sub("heavy", heavy), sub("mine", starter)}
	}
	rounds := [][]result{
		round(280*time.Millisecond, 340*time.Millisecond, 620*time.Millisecond, 900*time.Millisecond),
		round(288*time.Millisecond, 348*time.Millisecond, 632*time.Millisecond, 924*time.Millisecond),
		round(300*time.Millisecond, 360*time.Millisecond, 700*time.Millisecond, 990*time.Millisecond),
	}
	var out strings.Builder
	report(&out, config{n: 30000, conc: 64, rate: 500, duration: time.Second}, rounds)
	got := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		// Medians: floor 288, bare 348, starter 632, heavy 924.
		"subject target allowed spent allowed beyond the floor recording (bare) the policy beyond bare " +
			"starter 0.80 360 632 72 60 284 heavy 0.60 480 924 192 60 576",
		// The footer names the same targets.
		"targets: starter pack throughput ratio >= 0.8, a counter-heavy policy >= 0.6; at the fixed rate",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "mine 0.") {
		t.Errorf("a subject without a target got a budget:\n%s", got)
	}

	// Without bare, the parts are not known.
	out.Reset()
	report(&out, config{n: 30000, conc: 64, rate: 500, duration: time.Second},
		[][]result{{sub("floor", 288*time.Millisecond), sub("starter", 632*time.Millisecond)}})
	if got := strings.Join(strings.Fields(out.String()), " "); !strings.Contains(got, "starter 0.80 360 632 72 - -") {
		t.Errorf("report without bare:\n%s", got)
	}
	// No subject with a target: no table.
	out.Reset()
	report(&out, config{n: 30000, conc: 64, rate: 500, duration: time.Second},
		[][]result{{sub("floor", 288*time.Millisecond), sub("mine", 632*time.Millisecond)}})
	if strings.Contains(out.String(), "what the throughput targets allow") {
		t.Errorf("a budget without a targeted subject:\n%s", out.String())
	}
}
