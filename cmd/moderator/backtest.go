package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"moderator/backtest"
	"moderator/policy"
)

const backtestUsage = `usage: moderator rules backtest [--since 7d | --from T --to T] [--channel CID]... [--rule ID]...
                                [--samples N] [--json] [--database-url URL] CANDIDATE_DIR

replay the stored events of the window through the candidate rules folder, with
counters and strikes as they were, and compare with what was decided at the time.
Examples that fail are listed but do not stop the backtest (the candidate is a draft).
`

// stringsFlag is a repeatable flag.
type stringsFlag []string

func (f *stringsFlag) String() string { return strings.Join(*f, ",") }
func (f *stringsFlag) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty value")
	}
	*f = append(*f, s)
	return nil
}

// backtestArgs is the parsed command line of `rules backtest`.
type backtestArgs struct {
	dir         string
	opt         backtest.Options
	json        bool
	databaseURL string
}

func parseBacktestArgs(args []string, now time.Time, stderr io.Writer) (backtestArgs, error) {
	var a backtestArgs
	fs := flag.NewFlagSet("rules backtest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	since := fs.String("since", "", "the window: this long before now (7d, 24h); default 7d")
	var from, to timeFlag
	from.t, to.t = &a.opt.From, &a.opt.To
	fs.Var(from, "from", "the window's start, RFC 3339")
	fs.Var(to, "to", "the window's end, RFC 3339 (default now)")
	var channels, ruleIDs stringsFlag
	fs.Var(&channels, "channel", "report only this channel's events (repeatable)")
	fs.Var(&ruleIDs, "rule", "report only this rule (repeatable)")
	fs.IntVar(&a.opt.Samples, "samples", backtest.DefaultSamples, "examples shown of each difference (0-100)")
	fs.BoolVar(&a.json, "json", false, "print the report as JSON")
	fs.StringVar(&a.databaseURL, "database-url", "", "Postgres connection string (DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprint(stderr, backtestUsage+"\n")
			fs.PrintDefaults()
			return a, err
		}
		return a, err
	}
	if fs.NArg() != 1 {
		return a, errors.New("want one CANDIDATE_DIR, the rules folder to backtest")
	}
	a.dir = fs.Arg(0)
	a.opt.Channels, a.opt.Rules = channels, ruleIDs
	if *since != "" && !a.opt.From.IsZero() {
		return a, errors.New("--since and --from: give one of them")
	}
	if a.opt.To.IsZero() {
		a.opt.To = now
	}
	if a.opt.From.IsZero() {
		d := 7 * 24 * time.Hour
		if *since != "" {
			var err error
			if d, err = policy.ParseDuration(*since); err != nil || d <= 0 {
				return a, fmt.Errorf("--since %q: want a duration such as 7d, 24h or 90m", *since)
			}
		}
		a.opt.From = a.opt.To.Add(-d)
	}
	if !a.opt.From.Before(a.opt.To) {
		return a, errors.New("--from must be before --to")
	}
	if a.opt.Samples < 0 || a.opt.Samples > backtest.MaxSamples {
		return a, fmt.Errorf("--samples %d: want 0 to %d", a.opt.Samples, backtest.MaxSamples)
	}
	return a, nil
}

// runBacktest is `moderator rules backtest`: it loads the candidate as a
// draft, replays the window and prints the comparison; the report is kept
// in the backtests table and the run is a staff_audit row (actor
// cli:$USER).
func runBacktest(ctx context.Context, args []string, getenv func(string) string, now time.Time, stdout, stderr io.Writer) error {
	a, err := parseBacktestArgs(args, now, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		fmt.Fprintln(stderr, "moderator rules backtest:", err)
		return errUsage
	}
	cand, err := loadCandidate(a.dir, stderr)
	if err != nil {
		return err
	}
	st, user, err := openCLIStore(ctx, getenv, a.databaseURL, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := backtest.Record(ctx, st, cand, a.opt, backtest.Request{Actor: "cli:" + user, Role: "cli", Source: a.dir})
	if err != nil {
		return fmt.Errorf("rules backtest: %w", err)
	}
	if a.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printBacktest(stdout, a.dir, rep)
	return nil
}

// loadCandidate loads the candidate folder as a draft: problems stop the
// backtest (printed as file:line), failing examples do not.
func loadCandidate(dir string, stderr io.Writer) (*policy.RuleSet, error) {
	return loadFolder(dir, stderr, policy.LoadDraft)
}

// printBacktest writes the report for a terminal: chat text escaped.
func printBacktest(w io.Writer, dir string, rep *backtest.Report) {
	fmt.Fprintf(w, "backtest of %s (version %s, %d rules) over [%s, %s)\n", clean(dir), rep.Candidate.Version,
		rep.Candidate.Rules, stamp(rep.From), stamp(rep.To))
	fmt.Fprintf(w, "events    %d replayed, %d evaluated", rep.Events, rep.Evaluated)
	if rep.Unreadable > 0 {
		fmt.Fprintf(w, ", %d unreadable", rep.Unreadable)
	}
	fmt.Fprintf(w, " in %.1fs; judged at the time by %s\n", rep.Elapsed, dash(strings.Join(rep.RecordedVersions, ", ")))
	if len(rep.Candidate.FailingExamples) > 0 {
		fmt.Fprintf(w, "failing examples (reported; the draft is backtested all the same):\n")
		for _, p := range rep.Candidate.FailingExamples {
			fmt.Fprintf(w, "  %s\n", clean(filepath.Join(dir, p)))
		}
	}
	fmt.Fprintf(w, "totals    %s\n\n", rep.Summary)

	t := table(w)
	row(t, "RULE", "MODE", "MATCHES", "ACTED", "ADDED", "REMOVED", "CHANGED", "ERRORS")
	for _, r := range rep.Rules {
		mode := string(r.Mode)
		if mode == "" {
			mode = "(gone)"
		}
		if r.FailingExamples > 0 {
			mode += "!"
		}
		row(t, r.RuleID, mode, fmt.Sprintf("%d → %d", r.Recorded.Matches, r.Candidate.Matches),
			fmt.Sprintf("%d → %d", r.Recorded.Acted, r.Candidate.Acted),
			changeCell(r.Added), changeCell(r.Removed), changeCell(r.Changed), fmt.Sprint(r.Errors))
	}
	t.Flush()
	fmt.Fprintln(w)
	t = table(w)
	row(t, "ACTION", "ON", "RECORDED", "CANDIDATE", "DIFFERENCE")
	for _, tot := range rep.Totals {
		row(t, string(tot.Action), tot.Unit, fmt.Sprint(tot.Recorded), fmt.Sprint(tot.Candidate), fmt.Sprintf("%+d", tot.Candidate-tot.Recorded))
	}
	t.Flush()
	for _, r := range rep.Rules {
		for _, c := range []struct {
			name string
			ch   backtest.Change
		}{{"added", r.Added}, {"removed", r.Removed}, {"changed", r.Changed}} {
			if len(c.ch.Samples) == 0 {
				continue
			}
			fmt.Fprintf(w, "\n%s %s: %d event(s), %d user(s), %d message(s)\n", strings.ToUpper(c.name), r.RuleID,
				c.ch.Events, c.ch.Users, c.ch.Messages)
			for _, s := range c.ch.Samples {
				printSample(w, s)
			}
		}
	}
}

func changeCell(c backtest.Change) string {
	if c.Events == 0 {
		return "-"
	}
	return fmt.Sprintf("%d (%du)", c.Events, c.Users)
}

func printSample(w io.Writer, s backtest.Sample) {
	acts := func(a []string) string {
		if len(a) == 0 {
			return "nothing"
		}
		return strings.Join(a, " + ")
	}
	fmt.Fprintf(w, "  event %d  %s  %s  %s  %s → %s\n", s.EventID, stamp(s.At), dash(s.UserID), dash(s.ChannelCID),
		acts(s.Recorded), acts(s.Candidate))
	if s.Text != "" {
		fmt.Fprintf(w, "    text      %s\n", quoteText(s.Text, 80))
	}
	var ev map[string]any
	if json.Unmarshal(s.Evidence, &ev) == nil && len(ev) > 0 {
		for _, k := range slices.Sorted(maps.Keys(ev)) {
			v, _ := json.Marshal(ev[k])
			fmt.Fprintf(w, "    read      %s = %s\n", clean(k), clean(string(v)))
		}
	}
}
