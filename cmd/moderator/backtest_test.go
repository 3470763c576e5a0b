package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"moderator/backtest"
)

// The audit fixture's history was judged by the starter rules; the
// candidate has no scam-domains rule, so the scam link's delete and ban
// go away.
func TestRulesBacktestCommand(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	runBT := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"rules", "backtest"}, args...), f.getenv, strings.NewReader(""), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	out, errOut, err := runBT("--since", "30d", "--samples", "2", "../../backtest/testdata/candidate")
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, errOut)
	}
	inOrder(t, out, "backtest of ../../backtest/testdata/candidate (version ",
		"events    3 replayed, 3 evaluated",
		"failing examples (reported; the draft is backtested all the same):",
		"../../backtest/testdata/candidate/rules.yaml:47: rule caps",
		"totals    would ban 1 fewer user, would delete 1 fewer message",
		"RULE", "scam-domains  (gone)", "1 → 0",
		"REMOVED scam-domains: 1 event(s), 1 user(s), 1 message(s)",
		`"FREE NITRO for everyone!!!`)
	if strings.Contains(out, "\x1b") {
		t.Errorf("an escape sequence from chat text reached the terminal:\n%q", out)
	}

	out, _, err = runBT("--since", "30d", "--json", "--rule", "scam-domains", "../../backtest/testdata/candidate")
	if err != nil {
		t.Fatal(err)
	}
	var rep backtest.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(rep.Rules) != 1 || rep.Rules[0].RuleID != "scam-domains" || rep.Rules[0].Removed.Events != 1 || rep.ID == 0 {
		t.Errorf("--json --rule scam-domains: %+v", rep)
	}
	got := f.staffRows(t)
	want := []string{fmt.Sprintf("cli:tester cli backtest - backtest:%d", rep.ID-1), fmt.Sprintf("cli:tester cli backtest - backtest:%d", rep.ID)}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("staff audit rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	b, err := f.st.GetBacktest(context.Background(), rep.ID)
	if err != nil || b.Status != "done" || !strings.Contains(string(b.Report), `"scam-domains"`) {
		t.Errorf("kept backtest %d: %+v, %v", rep.ID, b, err)
	}
}

func TestRulesBacktestBadInput(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none"}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "want one CANDIDATE_DIR"},
		{[]string{"--since", "soon", "d"}, `--since "soon": want a duration`},
		{[]string{"--since", "7d", "--from", "2026-11-01T00:00:00Z", "d"}, "--since and --from: give one of them"},
		{[]string{"--from", "2026-12-01T00:00:00Z", "--to", "2026-11-01T00:00:00Z", "d"}, "--from must be before --to"},
		{[]string{"--samples", "1000", "d"}, "--samples 1000: want 0 to 100"},
		{[]string{"--channel", "", "d"}, "empty value"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"rules", "backtest"}, tt.args...), func(k string) string { return env[k] },
			strings.NewReader(""), &out, &errOut)
		if !errors.Is(err, errUsage) || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%q: err %v, stderr %q; want usage error with %q", tt.args, err, errOut.String(), tt.want)
		}
	}
	// A candidate that does not compile is refused with file:line.
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"rules", "backtest", "testdata/no-such-folder"}, func(k string) string { return env[k] },
		strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "rules folder") {
		t.Errorf("missing folder: %v", err)
	}
}
