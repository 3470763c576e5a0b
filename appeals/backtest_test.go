package appeals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"moderator/appeals"
	"moderator/store"
)

// candidateFiles reads the backtest package's draft candidate as the
// API takes it.
func candidateFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, name := range []string{"rules.yaml", "swears.txt"} {
		b, err := os.ReadFile("../backtest/testdata/candidate/" + name)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	return files
}

func TestBacktestAPI(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	a := newAPI(t, st)
	seeded := seedHistory(t, st, 6)
	reviewer := token(t, "rita@example.com", appeals.RoleReviewer)
	body, _ := json.Marshal(map[string]any{"files": candidateFiles(t), "since": "1h", "samples": 1})
	code, raw := a.call(t, http.MethodPost, "/backtests", reviewer, string(body))
	if code != http.StatusAccepted {
		t.Fatalf("POST /backtests: %d %s", code, raw)
	}
	var started struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &started); err != nil || started.ID == 0 || started.Status != "running" {
		t.Fatalf("started %s (%v)", raw, err)
	}

	// It runs in the background: follow it until it is no longer running.
	var b store.Backtest
	deadline := time.Now().Add(2 * time.Minute) // a bound on a hang, not a speed check
	for {
		code, raw = a.call(t, http.MethodGet, fmt.Sprintf("/backtests/%d", started.ID), reviewer, "")
		if code != http.StatusOK {
			t.Fatalf("GET /backtests/%d: %d %s", started.ID, code, raw)
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		if b.Status != store.BacktestRunning || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b.Status != store.BacktestDone || b.RequestedBy != "rita@example.com" || b.Params.Source != "api" {
		t.Fatalf("backtest: %+v", b)
	}
	var rep struct {
		Events int64 `json:"events"`
		Rules  []struct {
			RuleID  string `json:"rule_id"`
			Mode    string `json:"mode"`
			Removed struct {
				Events int64 `json:"events"`
			} `json:"removed"`
		} `json:"rules"`
		Candidate struct {
			FailingExamples []string `json:"failing_examples"`
		} `json:"candidate"`
	}
	if err := json.Unmarshal(b.Report, &rep); err != nil {
		t.Fatal(err)
	}
	// The seeded decisions' rules (links, profanity) are not in the
	// candidate: every action they took is removed.
	var decided int64
	for _, ev := range seeded {
		if ev.rule != "" {
			decided++
		}
	}
	var removed int64
	for _, r := range rep.Rules {
		if r.Mode == "" {
			removed += r.Removed.Events
		}
	}
	if rep.Events != int64(len(seeded)) || removed != decided || len(rep.Candidate.FailingExamples) != 1 {
		t.Errorf("report: %d events, %d removed (want %d, %d), failing %q", rep.Events, removed, len(seeded), decided, rep.Candidate.FailingExamples)
	}

	code, raw = a.call(t, http.MethodGet, "/backtests", reviewer, "")
	var page store.Page[store.Backtest]
	if err := json.Unmarshal(raw, &page); code != http.StatusOK || err != nil || len(page.Items) != 1 || page.Items[0].ID != started.ID ||
		page.Items[0].Report != nil {
		t.Errorf("GET /backtests: %d %s", code, raw)
	}
	var acts []string
	rows, err := st.Pool().Query(context.Background(), `SELECT act || ' ' || coalesce(target, '-') FROM staff_audit WHERE actor = 'rita@example.com' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		acts = append(acts, s)
	}
	if got := acts[0]; got != fmt.Sprintf("backtest backtest:%d", started.ID) || acts[len(acts)-1] != "list_backtests -" {
		t.Errorf("staff acts %q", acts)
	}
}

// Bad requests are refused with the field named, and start nothing.
func TestBacktestAPIBadInput(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	a := newAPI(t, st)
	reviewer := token(t, "rita", appeals.RoleReviewer)
	good := candidateFiles(t)
	with := func(edit func(m map[string]any)) string {
		m := map[string]any{"files": good}
		edit(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tt := range []struct {
		name  string
		body  string
		code  int
		field string
		want  string
	}{
		{"no files", `{"since":"1h"}`, 400, "files", "is required"},
		{"a path out of the folder", with(func(m map[string]any) { m["files"] = map[string]string{"../etc/passwd.txt": "x"} }), 400, "files", "relative path"},
		{"an absolute path", with(func(m map[string]any) { m["files"] = map[string]string{"/rules.yaml": "x"} }), 400, "files", "relative path"},
		{"not a rule file", with(func(m map[string]any) { m["files"] = map[string]string{"run.sh": "x"} }), 400, "files", ".yaml, .yml or .txt"},
		{"does not compile", with(func(m map[string]any) {
			m["files"] = map[string]string{"r.yaml": strings.Replace(good["rules.yaml"], "counts.user_messages", "counts.user_mesages", 1), "swears.txt": good["swears.txt"]}
		}), 400, "files", "r.yaml:"},
		{"bad since", with(func(m map[string]any) { m["since"] = "soon" }), 400, "since", "duration"},
		{"since and from", with(func(m map[string]any) { m["since"] = "1h"; m["from"] = "2026-11-01T00:00:00Z" }), 400, "since", "not both"},
		{"window too long", with(func(m map[string]any) { m["since"] = "200d" }), 400, "from", "at most 92 days"},
		{"bad channel", with(func(m map[string]any) { m["channels"] = []string{"general"} }), 400, "channels", "channel cid"},
		{"bad rule", with(func(m map[string]any) { m["rules"] = []string{"Flood!"} }), 400, "rules", "lower-case"},
		{"samples", with(func(m map[string]any) { m["samples"] = 101 }), 400, "samples", "0 to 100"},
		{"unknown field", with(func(m map[string]any) { m["folder"] = "/etc" }), 400, "folder", "unknown field"},
		{"too large", with(func(m map[string]any) { m["files"] = map[string]string{"big.txt": strings.Repeat("x", 5<<20)} }), 413, "", "larger"},
	} {
		code, raw := a.call(t, http.MethodPost, "/backtests", reviewer, tt.body)
		var e struct {
			Error struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		if code != tt.code || e.Error.Field != tt.field || !strings.Contains(e.Error.Message, tt.want) {
			t.Errorf("%s: %d %s; want %d naming %q with %q", tt.name, code, raw, tt.code, tt.field, tt.want)
		}
	}
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM backtests) + (SELECT count(*) FROM staff_audit)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows written by refused requests (%v)", n, err)
	}
}

// An admin restores a demoted rule, with a reason; it is audited, and a
// second restore is a conflict.
func TestRestoreRuleAPI(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	a := newAPI(t, st)
	ctx := context.Background()
	if ok, err := st.DemoteRule(ctx, store.Demotion{RuleID: "noisy", RuleDigest: "d1", Reason: "7 of 20 overturned", Taken: 20, Overturned: 7}); !ok || err != nil {
		t.Fatalf("demote: %v %v", ok, err)
	}
	admin := token(t, "ada", appeals.RoleAdmin)
	if code, raw := a.call(t, http.MethodPost, "/rules/noisy/restore", admin, `{"reason":" "}`); code != http.StatusBadRequest {
		t.Errorf("blank reason: %d %s", code, raw)
	}
	if code, raw := a.call(t, http.MethodPost, "/rules/noisy/restore", token(t, "rita", appeals.RoleReviewer), `{"reason":"fixed"}`); code != http.StatusForbidden {
		t.Errorf("reviewer: %d %s", code, raw)
	}
	if code, raw := a.call(t, http.MethodPost, "/rules/noisy/restore", admin, `{"reason":"the rule is fixed"}`); code != http.StatusOK ||
		!strings.Contains(string(raw), `"restored":true`) {
		t.Fatalf("restore: %d %s", code, raw)
	}
	if code, raw := a.call(t, http.MethodPost, "/rules/noisy/restore", admin, `{"reason":"again"}`); code != http.StatusConflict {
		t.Errorf("second restore: %d %s", code, raw)
	}
	state, err := st.GuardState(ctx)
	if err != nil || len(state.Active) != 0 || state.Restored["noisy"].IsZero() {
		t.Errorf("state after restore: %+v %v", state, err)
	}
	var acts string
	if err := st.Pool().QueryRow(ctx, `SELECT string_agg(actor || ' ' || act || ' ' || coalesce(reason, '-'), '; ' ORDER BY id) FROM staff_audit`).Scan(&acts); err != nil {
		t.Fatal(err)
	}
	if acts != "system demote_rule 7 of 20 overturned; ada restore_rule the rule is fixed" {
		t.Errorf("staff audit: %s", acts)
	}
}

// A rule in force that never matched is listed with zeros.
func TestRuleStatsListIdleRules(t *testing.T) {
	t.Parallel()
	a := newAPI(t, ownStore(t))
	code, raw := a.call(t, http.MethodGet, "/rules/stats", token(t, "vera", appeals.RoleViewer), "")
	var got struct {
		Rules []store.RuleStat `json:"rules"`
	}
	if err := json.Unmarshal(raw, &got); code != http.StatusOK || err != nil || len(got.Rules) != 1 || got.Rules[0].RuleID != "links" ||
		got.Rules[0].EnforceMatches != 0 || got.Rules[0].WouldUsers == nil || got.Rules[0].TakenUsers == nil {
		t.Errorf("GET /rules/stats on an empty trail: %d %s", code, raw)
	}
}
