package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"moderator/policy"
)

// maxEvalInput bounds the event `moderator eval` reads; Stream's events are
// far smaller.
const maxEvalInput = 16 << 20

// runRulesTest is `moderator rules test [DIR]` (args are those after
// "rules test"): it loads the rules folder (default "rules") as the
// service would, which type-checks every rule and runs every example, and
// prints each problem to stderr as "file:line: message". It returns an
// error when there is any problem, so CI fails.
func runRulesTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: moderator rules test [-v] [DIR]\n\ncheck a rules folder (default rules): compile every rule and run its examples\n\n")
		fs.PrintDefaults()
	}
	verbose := fs.Bool("v", false, "list the rules in evaluation order")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	dir := "rules"
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	rs, err := loadRules(dir, stderr)
	if err != nil {
		return err
	}
	rules := rs.Rules()
	examples := 0
	for _, r := range rules {
		examples += r.Examples
	}
	if *verbose {
		for _, r := range rules {
			fmt.Fprintf(stdout, "%-8s %-28s %s:%d  %s\n", r.Mode, r.ID, filepath.Join(dir, r.File), r.Line, r.Description)
		}
	}
	fmt.Fprintf(stdout, "ok: %d rules, %d examples passed (version %s)\n", len(rules), examples, rs.Version())
	return nil
}

// loadRules loads the rules folder dir, printing every problem to stderr
// with its path from the working directory, so editors can jump to it.
func loadRules(dir string, stderr io.Writer) (*policy.RuleSet, error) {
	return loadFolder(dir, stderr, policy.Load)
}

// loadFolder is loadRules with the loader as a parameter (policy.Load, or
// policy.LoadDraft for a backtest's candidate).
func loadFolder(dir string, stderr io.Writer, load func(fs.FS) (*policy.RuleSet, error)) (*policy.RuleSet, error) {
	if info, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("rules folder: %w", err)
	} else if !info.IsDir() {
		return nil, fmt.Errorf("rules folder %s is not a folder", dir)
	}
	rs, err := loadRulesDir(dir, load)
	var le *policy.LoadError
	if errors.As(err, &le) {
		for _, p := range le.Problems {
			p.File = filepath.Join(dir, p.File)
			fmt.Fprintln(stderr, p)
		}
		return nil, fmt.Errorf("rules folder %s: %d problem(s)", dir, len(le.Problems))
	}
	if err != nil {
		return nil, fmt.Errorf("rules folder %s: %w", dir, err)
	}
	for _, n := range rs.Notes() {
		n.File = filepath.Join(dir, n.File)
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	return rs, nil
}

// runEval is `moderator eval [--rules DIR] [--json] [--partial] [FILE]`
// (args are those after "eval"): it evaluates one Stream event, read from
// FILE or stdin, against the rules folder and prints the decision with the
// evidence of each match, for staff checking what a rule would do.
func runEval(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: moderator eval [--rules DIR] [--json] [--partial] [--history CALL=N]... [FILE]\n\nevaluate one Stream event (JSON from FILE, or stdin) against the rules and print the decision\n\n")
		fs.PrintDefaults()
	}
	dir := fs.String("rules", "rules", "rules folder")
	asJSON := fs.Bool("json", false, "print the decision as JSON, as the audit trail stores it")
	partial := fs.Bool("partial", false, "the input is a partial event merged over the default example event, as in rule examples")
	var history historyFlag
	fs.Var(&history, "history", "a history value the rules read, as `CALL=N`: --history 'counts.user_messages(\"1m\")=11' (repeatable; the others read 0)")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	in, name := stdin, "stdin"
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		defer f.Close()
		in, name = f, fs.Arg(0)
	}
	body, err := io.ReadAll(io.LimitReader(in, maxEvalInput+1))
	if err != nil {
		return fmt.Errorf("eval: read %s: %w", name, err)
	}
	if len(body) > maxEvalInput {
		return fmt.Errorf("eval: %s is larger than %d bytes", name, maxEvalInput)
	}
	ev, err := parseEvalEvent(body, *partial)
	if err != nil {
		return fmt.Errorf("eval: %s: %w", name, err)
	}

	rs, err := loadRules(*dir, stderr)
	if err != nil {
		return err
	}
	h, err := history.resolve(rs)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	d := rs.EvaluateWith(ev, h)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	printDecision(stdout, *dir, rs, ev, d)
	return nil
}

// historyFlag collects --history values: the counters and strikes that a
// live event would have from the database, zero unless given.
type historyFlag []string

func (f *historyFlag) String() string { return strings.Join(*f, " ") }

func (f *historyFlag) Set(v string) error {
	*f = append(*f, v)
	return nil
}

// resolve parses the values, each of which must be one the rules read.
func (f historyFlag) resolve(rs *policy.RuleSet) (policy.History, error) {
	h := policy.History{}
	reads := rs.History()
	for _, v := range f {
		i := strings.LastIndex(v, "=")
		if i < 0 {
			return nil, fmt.Errorf("--history %s: want CALL=N, like 'counts.user_messages(\"1m\")=11'", v)
		}
		k, err := policy.ParseHistoryKey(strings.TrimSpace(v[:i]))
		if err != nil {
			return nil, fmt.Errorf("--history: %w", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(v[i+1:]))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--history %s: the value must be a whole number ≥ 0", v)
		}
		if !slices.Contains(reads, k) {
			what := "they read none"
			if len(reads) > 0 {
				what = "they read " + policy.JoinHistoryKeys(reads)
			}
			return nil, fmt.Errorf("--history %s: no rule reads it (%s)", k, what)
		}
		h[k] = n
	}
	return h, nil
}

func parseEvalEvent(body []byte, partial bool) (*policy.Event, error) {
	if !partial {
		ev, err := policy.ParseEvent(body)
		if err == nil && ev.Type == "" && ev.Message != nil {
			// Stream's before-send payload has no type; the hook judges
			// it as before_send, and so does eval.
			ev.Type = policy.EventBeforeSend
		}
		return ev, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode partial event: %w", err)
	}
	return policy.ExampleEvent(m)
}

// printDecision writes a decision for people: each match with its reason,
// evidence and actions, then the actions to be taken and the errors.
func printDecision(w io.Writer, dir string, rs *policy.RuleSet, ev *policy.Event, d policy.Decision) {
	rules := make(map[string]policy.RuleInfo)
	applicable := 0
	for _, r := range rs.Rules() {
		rules[r.ID] = r
		if r.AppliesTo(ev.Type) {
			applicable++
		}
	}
	fmt.Fprintf(w, "rule set  %s (%s, %d rules, %d for %s events)\n", d.RuleSetVersion, dir, len(rules), applicable, orNone(ev.Type))
	fmt.Fprintf(w, "event     %s\n", describeEvent(ev))
	if !d.Matched() {
		fmt.Fprintln(w, "\nno rule matched")
	}
	for _, m := range d.Matches {
		r := rules[m.RuleID]
		label := "MATCH "
		if m.Mode == policy.ModeShadow {
			label = "SHADOW"
		}
		fmt.Fprintf(w, "\n%s %s (%s, %s:%d)\n", label, m.RuleID, m.Mode, filepath.Join(dir, r.File), r.Line)
		if m.Reason != "" {
			fmt.Fprintf(w, "  reason    %s\n", m.Reason)
		}
		keys := slices.Sorted(maps.Keys(m.Evidence))
		for i, k := range keys {
			head := "  evidence  "
			if i > 0 {
				head = "            "
			}
			fmt.Fprintf(w, "%s%s = %s\n", head, k, jsonish(m.Evidence[k]))
		}
		for i, a := range m.Actions {
			head := "  actions   "
			if m.Mode == policy.ModeShadow {
				head = "  would     "
			}
			if i > 0 {
				head = "            "
			}
			fmt.Fprintf(w, "%s%s\n", head, a)
		}
	}
	fmt.Fprintln(w)
	if len(d.Actions) == 0 {
		fmt.Fprintln(w, "actions   none")
	}
	for i, a := range d.Actions {
		head := "actions   "
		if i > 0 {
			head = "          "
		}
		fmt.Fprintf(w, "%s%s  [%s]\n", head, a, a.RuleID)
	}
	switch {
	case d.Block != nil:
		fmt.Fprintf(w, "answer    block, showing the sender %q  [%s]\n", d.Block.Text, d.Block.RuleID)
	case d.Rewrite != nil:
		fmt.Fprintf(w, "answer    rewrite, sending %q  [%s]\n", d.Rewrite.Text, strings.Join(d.Rewrite.RuleIDs, ", "))
	case ev.Type == policy.EventBeforeSend:
		fmt.Fprintln(w, "answer    accept, as sent")
	}
	for _, e := range d.Errors {
		fmt.Fprintf(w, "error     %s: %s\n", e.RuleID, e.Error)
	}
}

// describeEvent summarises an event on one line: type, message, author,
// channel.
func describeEvent(ev *policy.Event) string {
	parts := []string{orNone(ev.Type)}
	if id := ev.MessageIDOrEmpty(); id != "" {
		parts = append(parts, "message "+id)
	}
	if id := ev.SubjectUserID(); id != "" {
		parts = append(parts, "user "+id)
	}
	if cid := ev.ChannelCID(); cid != "" {
		parts = append(parts, "channel "+cid)
	}
	if ev.Message != nil && ev.Message.Text != "" {
		text := ev.Message.Text
		if r := []rune(text); len(r) > 60 {
			text = string(r[:59]) + "…"
		}
		parts = append(parts, fmt.Sprintf("text %q", text))
	}
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(no type)"
	}
	return s
}

func jsonish(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// usageError maps -h to flag.ErrHelp (exit 0) and other flag errors to
// errUsage (the flag package has printed them).
func usageError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return errUsage
}
