package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// auditFixture is a database with a short, real history: three messages in
// a channel, judged by the starter rules; the middle one (a scam link from
// "newbie") matched scam-domains, which asked for a delete and a ban; the
// ban was applied after a retry and the delete is pending; newbie appealed.
type auditFixture struct {
	env        map[string]string
	st         *store.Store
	decisionID int64
	banID      int64
	appealID   int64
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	ctx := context.Background()
	f := &auditFixture{env: map[string]string{"DATABASE_URL": storetest.NewDatabase(t), "USER": "tester",
		"MODERATOR_RULES_DIR": "../../rules"}}
	var out bytes.Buffer
	if err := run(ctx, []string{"migrate"}, f.getenv, strings.NewReader(""), &out, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	st, err := store.Open(ctx, storetest.Bounded(f.env["DATABASE_URL"]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	f.st = st
	rs, err := policy.Load(os.DirFS("../../rules"))
	if err != nil {
		t.Fatal(err)
	}
	messages := []struct{ user, id, text string }{
		{"bob", "msg-1", "hello all"},
		{"newbie", "msg-2", "FREE NITRO for everyone!!! claim at https://discord-nitro.gift/claim"},
		{"carol", "msg-3", "welcome \x1b[31mnewbie\x1b[0m"}, // an escape sequence must not reach the terminal
	}
	for _, m := range messages {
		d, ids := f.post(t, rs, m.user, m.id, m.text)
		for i, a := range d.Actions {
			if a.Type == policy.ActionBan {
				f.banID = ids[i]
			}
		}
		time.Sleep(2 * time.Millisecond) // distinct receive times, as deliveries have
	}
	if f.banID == 0 {
		t.Fatal("the starter rules did not ban the scam link")
	}
	for _, status := range []int{503, 201} {
		if _, err := st.RecordAttempt(ctx, store.AttemptRow{ActionID: f.banID, Endpoint: "POST /moderation/ban", HTTPStatus: status,
			Duration: 12 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: f.banID, Outcome: store.OutcomeApplied}); err != nil {
		t.Fatal(err)
	}
	ban, err := st.Action(ctx, f.banID)
	if err != nil {
		t.Fatal(err)
	}
	f.decisionID = ban.DecisionID
	ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: "newbie", ActionID: f.banID, Statement: "it was a joke",
		Source: "email", RecordedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	f.appealID = ap.ID
	return f
}

// post records a new message in messaging:general judged by rs, with the
// actions its decision asks for left pending, and returns the decision and
// the actions' ids.
func (f *auditFixture) post(t *testing.T, rs *policy.RuleSet, user, id, text string) (policy.Decision, []int64) {
	t.Helper()
	ctx := context.Background()
	js := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	body := fmt.Sprintf(`{"type":"message.new","cid":"messaging:general","channel_type":"messaging","channel_id":"general",
		"created_at":"2026-11-24T12:00:00Z","message":{"id":%s,"text":%s,"user":{"id":%s}},"user":{"id":%s}}`,
		js(id), js(text), js(user), js(user))
	ev, err := policy.ParseEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	d := rs.Evaluate(ev)
	rec := store.EventRecord{WebhookID: id, BodySHA256: sha256.Sum256([]byte(body)), Attempt: 1, APIKey: "k",
		Payload: []byte(body), Event: ev, Decision: &d}
	var ids []int64
	_, err = f.st.RecordEvents(ctx, []store.EventRecord{rec}, func(ctx context.Context, tx pgx.Tx, evs []store.NewEvent) error {
		var rows []store.ActionRow
		for i, a := range d.Actions {
			params, _ := json.Marshal(a)
			rows = append(rows, store.ActionRow{EventID: evs[0].EventID, Position: i, RuleID: a.RuleID, Type: string(a.Type),
				TargetUserID: user, MessageID: id, ChannelCID: "messaging:general", Params: params,
				Key: fmt.Sprintf("%d:%d", evs[0].EventID, i)})
		}
		var err error
		ids, err = store.InsertActions(ctx, tx, rows)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, ids
}

func (f *auditFixture) getenv(k string) string { return f.env[k] }

func (f *auditFixture) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), append([]string{"audit"}, args...), f.getenv, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

func (f *auditFixture) staffRows(t *testing.T) []string {
	t.Helper()
	rows, err := f.st.Pool().Query(context.Background(), `SELECT actor || ' ' || role || ' ' || act || ' ' ||
		coalesce(target_user_id, '-') || ' ' || coalesce(target, '-') FROM staff_audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// inOrder checks that out has each of wants, in that order.
func inOrder(t *testing.T, out string, wants ...string) {
	t.Helper()
	rest := out
	for _, w := range wants {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("output lacks %q (or it is out of order):\n%s", w, out)
			return
		}
		rest = rest[i+len(w):]
	}
}

func TestAuditCommand(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)

	t.Run("user timeline", func(t *testing.T) {
		out, _, err := f.run(t, "user", "newbie")
		if err != nil {
			t.Fatal(err)
		}
		// Newest first: the appeal, then the two actions, the decision and
		// the event (recorded in one transaction, at one instant).
		inOrder(t, out, "timeline of newbie, newest first",
			"TIME", "KIND", "ID", "TYPE", "RULES", "STATUS",
			"appeal", "email", "pending", `"it was a joke" by ann`,
			"action", "ban", "scam-domains", "applied",
			"action", "delete", "scam-domains", "pending",
			"decision", "scam-domains", "scam link: discord-nitro.gift",
			"event", "message.new", "messaging:general", "msg-2", `"FREE NITRO`)
		// Columns line up: every row's KIND starts where the header's does.
		lines := strings.Split(strings.TrimSpace(out), "\n")[2:]
		col := strings.Index(lines[0], "KIND")
		for _, l := range lines[1:] {
			if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
				t.Errorf("row %q is not aligned with the header at column %d", l, col)
			}
		}
	})

	t.Run("user timeline json", func(t *testing.T) {
		out, _, err := f.run(t, "user", "newbie", "--json", "--limit", "2")
		if err != nil {
			t.Fatal(err)
		}
		var p store.Page[store.TimelineEntry]
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(p.Items) != 2 || p.Items[0].Kind != store.KindAppeal || p.Items[1].ID != f.banID || p.NextCursor == "" {
			t.Fatalf("got %+v, want the appeal and the ban, and a next page", p)
		}
		out, _, err = f.run(t, "user", "newbie", "--json", "--cursor", p.NextCursor)
		if err != nil {
			t.Fatal(err)
		}
		var next store.Page[store.TimelineEntry]
		if err := json.Unmarshal([]byte(out), &next); err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range next.Items {
			kinds = append(kinds, e.Kind)
		}
		if strings.Join(kinds, ",") != "action,decision,event" || next.NextCursor != "" {
			t.Errorf("second page kinds %v (next %q), want action,decision,event and no more", kinds, next.NextCursor)
		}
	})

	t.Run("decision evidence", func(t *testing.T) {
		out, _, err := f.run(t, "decision", fmt.Sprint(f.decisionID), "--around", "3")
		if err != nil {
			t.Fatal(err)
		}
		inOrder(t, out,
			fmt.Sprintf("decision  %d", f.decisionID), "rule set ",
			"user      newbie  channel messaging:general  message msg-2",
			`text      "FREE NITRO for everyone!!! claim at https://discord-nitro.gift/claim"`,
			"MATCH  scam-domains (enforce, domains.yaml:5)",
			`  when      domain_in(text.domains, "scam_domains")`,
			"  reason    scam link: discord-nitro.gift",
			`  evidence  domain_in(text.domains, "scam_domains") = ["discord-nitro.gift"]`,
			"  actions   delete", `ban 7d delete-messages=soft ("posted a scam link")`,
			"ACTIONS", "delete", "pending", "ban", "applied", "2",
			fmt.Sprintf("#%d attempt 1  POST /moderation/ban  503  12.0ms", f.banID),
			fmt.Sprintf("#%d attempt 2  POST /moderation/ban  201  12.0ms", f.banID),
			"APPEALS", fmt.Sprintf("#%d pending", f.appealID), `newbie via email: "it was a joke"`,
			"CONVERSATION (channel, 1 before, 1 after)",
			"msg-1", "bob", `"hello all"`,
			"> ", "msg-2", "newbie", `"FREE NITRO`, "[scam-domains]",
			"msg-3", "carol", `"welcome \x1b[31mnewbie`[:9])
		if strings.ContainsRune(out, '\x1b') {
			t.Errorf("a user's escape sequence reached the terminal:\n%q", out)
		}
		if !strings.Contains(out, `\x1b[31mnewbie\x1b[0m`) {
			t.Errorf("the escape sequence is not shown escaped:\n%s", out)
		}
	})

	t.Run("decision evidence json", func(t *testing.T) {
		out, _, err := f.run(t, "decision", fmt.Sprint(f.decisionID), "--json")
		if err != nil {
			t.Fatal(err)
		}
		var ev store.Evidence
		if err := json.Unmarshal([]byte(out), &ev); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(ev.Matches) != 1 || ev.Matches[0].When != `domain_in(text.domains, "scam_domains")` || ev.Matches[0].Source != "domains.yaml:5" ||
			len(ev.Context.Before) != 1 || len(ev.Context.After) != 1 || !json.Valid(ev.Event.Payload) {
			t.Errorf("evidence %+v", ev)
		}
	})

	t.Run("message", func(t *testing.T) {
		out, _, err := f.run(t, "message", "msg-2")
		if err != nil {
			t.Fatal(err)
		}
		inOrder(t, out, "message msg-2", "EVENTS", "message.new", "newbie", "scam-domains", "DECISIONS",
			"scam-domains", "delete,ban", "ACTIONS", "ban", "applied", "delete", "pending")
	})

	t.Run("user filtered", func(t *testing.T) {
		out, _, err := f.run(t, "user", "newbie", "--type", "ban", "--outcome", "applied")
		if err != nil {
			t.Fatal(err)
		}
		inOrder(t, out, "user newbie, filtered", "EVENTS", "msg-2", "DECISIONS", "delete,ban", "ACTIONS", "ban", "applied")
		if strings.Contains(out, "delete  scam-domains") || strings.Contains(out, "TIME ") {
			t.Errorf("want only the applied ban, and no timeline:\n%s", out)
		}
		out, _, err = f.run(t, "user", "newbie", "--rule", "profanity")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(out, "none") != 3 {
			t.Errorf("a rule that never matched newbie: want three empty lists:\n%s", out)
		}
	})

	t.Run("actions search", func(t *testing.T) {
		out, _, err := f.run(t, "actions", "--user", "newbie", "--outcome", "applied", "--since", "1h")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, fmt.Sprintf(" %d ", f.banID)) {
			t.Errorf("want a header and the ban alone:\n%s", out)
		}
		out, _, err = f.run(t, "actions", "--user", "' OR 1=1 --")
		if err != nil || strings.TrimSpace(out) != "none" {
			t.Errorf("an injection attempt: got %q, %v; want none", out, err)
		}
		out, _, err = f.run(t, "events", "--until", "2000-01-01T00:00:00Z")
		if err != nil || strings.TrimSpace(out) != "none" {
			t.Errorf("events before 2000: got %q, %v; want none", out, err)
		}
	})

	t.Run("rules", func(t *testing.T) {
		out, _, err := f.run(t, "rules")
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^scam-domains\s+enforce\s+1\s+0\s+0\s+2\s+1\s+0\s+0\.0%\s+0\s+0\s+1\s+banned 1 user\s+-$`).MatchString(out) {
			t.Errorf("want scam-domains: 1 enforce match, no error, 2 actions, 1 taken (the ban), 1 pending:\n%s", out)
		}
	})
}

func TestAuditCommandBadInput(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	before := len(f.staffRows(t))
	for _, tt := range []struct {
		args []string
		want string // in the one line on stderr
	}{
		{[]string{}, "say what to audit"},
		{[]string{"everything"}, `unknown "everything"`},
		{[]string{"user"}, "the user id is required"},
		{[]string{"user", "a", "b"}, `unexpected argument "b"`},
		{[]string{"user", "a", "--user", "b"}, "flag provided but not defined: --user"},
		{[]string{"user", "a", "--rule", "r", "--cursor", "x"}, "--cursor pages the whole timeline"},
		{[]string{"message", "m", "--outcome", "nope"}, "--outcome: want one of"},
		{[]string{"actions", "--outcome", "' OR 1=1"}, "--outcome: want one of"},
		{[]string{"events", "--since", "yesterday"}, "--since"},
		{[]string{"events", "--until", "-3h"}, "--until"},
		{[]string{"events", "--limit", "1000"}, "--limit: want 1 to 200"},
		{[]string{"events", "--limit", "ten"}, "--limit"},
		{[]string{"events", "--since", "1h", "--until", "2h"}, "--since must be before --until"},
		{[]string{"decision", "x"}, "decision: the id must be a positive number"},
		{[]string{"decision", "1", "--around", "99"}, "--around: want 0 to 50"},
		{[]string{"rules", "--bogus"}, "--bogus"},
		{[]string{"appeal"}, "the appeal id is required"},
		{[]string{"appeal", "one"}, "appeal: the id must be a positive number"},
		{[]string{"appeals", "--status", "open"}, "--status: want pending, upheld, overturned or all"},
		{[]string{"appeals", "--sort", "age"}, "--sort: want oldest or newest"},
		{[]string{"appeals", "--type", "nuke"}, "--type: want flag"},
		{[]string{"appeals", "7"}, `unexpected argument "7"`},
	} {
		out, errOut, err := f.run(t, tt.args...)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: got %v, want the usage error (exit 2)", tt.args, err)
		}
		if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "moderator audit: ") || !strings.Contains(errOut, tt.want) || out != "" {
			t.Errorf("%q: stderr %q, stdout %q; want one line naming %q", tt.args, errOut, out, tt.want)
		}
	}
	// Not found and a foreign cursor are errors of their own (exit 1).
	if _, _, err := f.run(t, "decision", "999999"); err == nil || !strings.Contains(err.Error(), "decision 999999: not found") {
		t.Errorf("missing decision: got %v", err)
	}
	if _, _, err := f.run(t, "events", "--cursor", "bm9wZQ"); err == nil || !strings.Contains(err.Error(), "--cursor") {
		t.Errorf("bad cursor: got %v", err)
	}
	if got := len(f.staffRows(t)); got != before {
		t.Errorf("refused commands wrote %d staff audit rows", got-before)
	}
	// -h prints the usage, on stdout, and is no error (exit 0).
	if out, _, err := f.run(t, "events", "-h"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "usage: moderator audit <what>") {
		t.Errorf("-h: got %v, stdout %q", err, out)
	}
	// Without a database: the same one line as migrate.
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"audit", "user", "a"}, func(string) string { return "" }, strings.NewReader(""), &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL is required") {
		t.Errorf("no DATABASE_URL: got %v", err)
	}
}

// TestAuditAppeals: the queue, oldest first, and one appeal with its
// notes and the evidence of what it is about; each a staff audit row.
func TestAuditAppeals(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	ctx := context.Background()
	second, err := f.st.RecordAppeal(ctx, store.NewAppeal{UserID: "newbie", ActionID: f.banID, Statement: "please \x1b[2J",
		Source: "in_app", RecordedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.AssignAppeal(ctx, f.appealID, store.AssignClaim, "", "rita", store.StaffAct{Role: "reviewer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.AddAppealNote(ctx, f.appealID, "rita", "asked the channel's moderator", store.StaffAct{Role: "reviewer"}); err != nil {
		t.Fatal(err)
	}
	out, _, err := f.run(t, "appeals")
	if err != nil {
		t.Fatal(err)
	}
	inOrder(t, out, "ID", "WAITING", "USER", "RULES", "ACTIONS", "STATUS", "HELD BY", "STATEMENT",
		fmt.Sprint(f.appealID), "newbie", "scam-domains", "ban", "pending", "rita", `"it was a joke"`,
		fmt.Sprint(second.ID), "newbie", "pending", `"please \x1b[2J"`)
	if strings.ContainsRune(out, 0x1b) {
		t.Error("an escape sequence reached the terminal")
	}
	out, _, err = f.run(t, "appeals", "--sort", "newest", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var p store.Page[store.Appeal]
	if err := json.Unmarshal([]byte(out), &p); err != nil || len(p.Items) != 2 || p.Items[0].ID != second.ID {
		t.Fatalf("--sort newest --json: %v %s", err, out)
	}
	if out, _, err = f.run(t, "appeals", "--status", "upheld"); err != nil || !strings.Contains(out, "no appeals") {
		t.Fatalf("--status upheld: %v %s", err, out)
	}

	out, _, err = f.run(t, "appeal", fmt.Sprint(f.appealID))
	if err != nil {
		t.Fatal(err)
	}
	inOrder(t, out, fmt.Sprintf("appeal    %d, pending", f.appealID), "user      newbie",
		fmt.Sprintf("about     action %d (ban; rules scam-domains)", f.banID), "held by   rita", `statement "it was a joke"`,
		"NOTES", `rita  "asked the channel's moderator"`,
		"MATCH  scam-domains", "CONVERSATION")
	if _, _, err := f.run(t, "appeal", "999999"); err == nil || !strings.Contains(err.Error(), "appeal 999999: not found") {
		t.Errorf("a missing appeal: got %v", err)
	}
	rows := f.staffRows(t)
	if want := fmt.Sprintf("cli:tester cli view_appeal newbie appeal:%d", f.appealID); !slices.Contains(rows, want) ||
		!slices.Contains(rows, "cli:tester cli list_appeals - -") {
		t.Errorf("staff audit rows lack the appeal reads:\n%s", strings.Join(rows, "\n"))
	}
}

func TestAuditCommandRecordsStaffAct(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	for _, args := range [][]string{{"user", "newbie"}, {"decision", fmt.Sprint(f.decisionID)}, {"message", "msg-2"},
		{"actions", "--rule", "scam-domains"}, {"rules"}} {
		if _, _, err := f.run(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"cli:tester cli timeline newbie -",
		fmt.Sprintf("cli:tester cli view_decision newbie decision:%d", f.decisionID),
		"cli:tester cli search - message:msg-2",
		"cli:tester cli search - -",
		"cli:tester cli rule_stats - -",
	}
	if got := f.staffRows(t); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("staff audit rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var params string
	if err := f.st.Pool().QueryRow(context.Background(), `SELECT params::text FROM staff_audit WHERE act = 'search' AND target IS NULL`).Scan(&params); err != nil {
		t.Fatal(err)
	}
	if params != `{"what": "actions", "rule_id": "scam-domains"}` {
		t.Errorf("params %s, want the command's filters", params)
	}
}

// TestAuditQuarantine: `moderator audit quarantine` lists what the
// database refused, escaped for the terminal, with the exact body in
// --json, and records the read.
func TestAuditQuarantine(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	body := []byte("{\"type\":\"message.new\",\"n\":1e1000000}")
	_, err := f.st.Pool().Exec(context.Background(), `INSERT INTO quarantine (webhook_id, attempt, api_key, compressed,
		body_sha256, body, event_type, headers, error, sqlstate)
		VALUES ($1, 1, 'k', false, sha256($2), $2, 'message.new', '{}', 'value overflows numeric format', '22003')`,
		"wh-\x1b[31m", body)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := f.run(t, "quarantine", "--since", "1h")
	if err != nil {
		t.Fatal(err)
	}
	inOrder(t, out, "QUARANTINED", "ID", "WEBHOOK", "TYPE", "BYTES", "SQLSTATE", "ERROR",
		`"wh-\x1b[31m"`, "message.new", fmt.Sprint(len(body)), "22003", `"value overflows numeric format"`)
	if strings.ContainsRune(out, '\x1b') {
		t.Errorf("an escape sequence reached the terminal:\n%q", out)
	}
	out, _, err = f.run(t, "quarantine", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var p store.Page[store.Quarantined]
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(p.Items) != 1 || string(p.Items[0].Body) != string(body) {
		t.Fatalf("got %+v, want the one row with its exact body", p)
	}
	if _, _, err := f.run(t, "quarantine", "--user", "x"); err == nil {
		t.Error("audit quarantine --user: no error")
	}
	if got := f.staffRows(t); len(got) != 2 || got[0] != "cli:tester cli search - -" {
		t.Errorf("staff audit rows %q, want the two reads recorded", got)
	}
}

// TestAuditStatement: `audit statement ID` prints the statement of reasons
// of the scam-link decision (the applied ban, the rule's recorded reason,
// the pending appeal, the ways to redress), with the message's escape
// sequence escaped; --json gives its fields; the read is a staff act; a bad
// id is one line.
func TestAuditStatement(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	id := strconv.FormatInt(f.decisionID, 10)
	out, errOut, err := f.run(t, "statement", id)
	if err != nil {
		t.Fatalf("audit statement: %v\n%s", err, errOut)
	}
	inOrder(t, out,
		"Statement of reasons for decision "+id+"\nTo: newbie\n",
		"1. What we decided\n",
		"- Deletion of your message msg-2. Decided, and being carried out.\n",
		"- A ban from posting anywhere in the app for 7 days, with the deletion of your messages. In effect from ",
		"2. The facts we relied on\nYour message msg-2 in messaging:general, sent 24 November 2026, 12:00 UTC:\n",
		`  "FREE NITRO for everyone!!! claim at https://discord-nitro.gift/claim"`,
		"- scam-domains: ",
		"3. Use of automated means\n",
		"is waiting for a person's review.\n",
		"4. The grounds for the decision\n- The platform's rule scam-domains (rule set version ",
		`domains.yaml:`, `): "scam link: discord-nitro.gift"`,
		"5. How you can seek redress\n",
	)
	if strings.ContainsRune(out, '\x1b') {
		t.Errorf("the statement sent an escape character to the terminal:\n%q", out)
	}
	jsonOut, _, err := f.run(t, "statement", id, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		DecisionID int64  `json:"decision_id"`
		Restricted bool   `json:"restricted"`
		Text       string `json:"text"`
	}
	if err := json.Unmarshal([]byte(jsonOut), &st); err != nil || st.DecisionID != f.decisionID || !st.Restricted || st.Text != out {
		t.Errorf("--json: %+v (%v), want decision %d, restricted, with the text printed above", st, err, f.decisionID)
	}
	rows := f.staffRows(t)
	if want := "cli:tester cli view_statement newbie decision:" + id; len(rows) < 2 || rows[len(rows)-1] != want || rows[len(rows)-2] != want {
		t.Errorf("staff audit rows %q, want two %q", rows, want)
	}
	_, errOut, err = f.run(t, "statement", "x")
	if !errors.Is(err, errUsage) || !strings.Contains(errOut, "statement: the id must be a positive number") {
		t.Errorf("bad id: %v, %q", err, errOut)
	}
}

// A shadow rule's would-be action is marked as such in the decisions
// list, and audit rules lists every rule of the rules folder, those that
// never matched with zeros, with what each did or would have done.
func TestAuditShadowAndIdleRules(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	rs, err := policy.Load(os.DirFS("../../rules"))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := f.post(t, rs, "loud", "msg-4", "WHY DOES NOBODY EVER ANSWER MY QUESTION")
	if len(d.Actions) != 0 || len(d.Matches) != 1 || d.Matches[0].RuleID != "caps-shouting" {
		t.Fatalf("the shouting message: %+v, want only the shadow caps-shouting match", d)
	}

	out, _, err := f.run(t, "decisions", "--user", "loud")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\S+\s+\d+\s+\d+\s+loud\s+messaging:general\s+msg-4\s+caps-shouting\s+-\s+warn \(shadow\)\s+\S+$`).MatchString(out) {
		t.Errorf("want the would-be warning marked shadow, nothing enforced:\n%s", out)
	}
	out, _, err = f.run(t, "decisions", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var page store.Page[store.DecisionSummary]
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range page.Items {
		got[d.MessageID] = fmt.Sprint(d.ActionTypes, d.ShadowActionTypes)
	}
	if want := map[string]string{"msg-2": "[delete ban] []", "msg-4": "[] [warn]"}; !maps.Equal(got, want) {
		t.Errorf("decisions' action types and shadow action types: got %v, want %v", got, want)
	}

	out, _, err = f.run(t, "rules")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`caps-shouting\s+shadow\s+0\s+1\s+0\s+0\s+0\s+0\s+0\.0%\s+0\s+0\s+0\s+-\s+would warn 1 user`,
		`scam-domains\s+enforce\s+1\s+0\s+0\s+2\s+1\s+0\s+0\.0%\s+0\s+0\s+1\s+banned 1 user\s+-`,
		`raid\s+shadow\s+0\s+0\s+0\s+0\s+0\s+0\s+0\.0%\s+0\s+0\s+0\s+-\s+-`, // never matched
	} {
		if !regexp.MustCompile(`(?m)^` + line + `$`).MatchString(out) {
			t.Errorf("want a line %s:\n%s", line, out)
		}
	}
	if n := strings.Count(out, "\n") - 1; n != len(rs.Rules()) {
		t.Errorf("%d rules listed, want the folder's %d:\n%s", n, len(rs.Rules()), out)
	}

	// A folder that does not load: said, and the rules with figures still listed.
	out, errOut, err := f.run(t, "rules", "--rules", t.TempDir()+"/missing")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "not loaded, so rules that never matched are not listed") ||
		!regexp.MustCompile(`(?m)^scam-domains\s+-\s+1\s`).MatchString(out) || strings.Contains(out, "raid") {
		t.Errorf("a missing folder: stderr %q, stdout:\n%s", errOut, out)
	}
}
