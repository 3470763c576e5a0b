package appeals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/appeals"
)

type pageOf struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

type listed struct {
	ID         int64     `json:"id"`
	EventID    int64     `json:"event_id"`
	ReceivedAt time.Time `json:"received_at"`
}

// all follows next_cursor from the first page to the last, failing on a
// repeated row, and returns the rows in order.
func (a *api) all(t *testing.T, list string, q url.Values, tok string) []listed {
	t.Helper()
	var out []listed
	seen := map[int64]bool{}
	q = cloneValues(q)
	q.Set("limit", "4")
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("%s?%s: more than 100 pages", list, q.Encode())
		}
		var p pageOf
		a.getJSON(t, list+"?"+q.Encode(), tok, &p)
		if len(p.Items) > 4 {
			t.Fatalf("%s: page of %d rows, limit 4", list, len(p.Items))
		}
		for _, raw := range p.Items {
			var l listed
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Fatal(err)
			}
			if seen[l.ID] {
				t.Fatalf("%s?%s: row %d repeated across pages", list, q.Encode(), l.ID)
			}
			seen[l.ID] = true
			out = append(out, l)
		}
		if p.NextCursor == "" {
			return out
		}
		if len(p.Items) != 4 {
			t.Fatalf("%s: a short page (%d) with a next_cursor", list, len(p.Items))
		}
		q.Set("cursor", p.NextCursor)
	}
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	return out
}

func ids(ls []listed) []int64 {
	out := []int64{}
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

// TestSearchSeededHistory searches a seeded history through the API with
// each filter, alone and combined, following the pages, and compares the
// rows with the model's, newest first, without gaps or repeats.
func TestSearchSeededHistory(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	seeded := seedHistory(t, st, 31)
	a := newAPI(t, st)
	tok := token(t, "searcher", appeals.RoleViewer)

	// Decisions are listed with their event's id: the model knows events.
	decisionOf := map[int64]int64{}
	for _, d := range a.all(t, "/decisions", url.Values{}, tok) {
		decisionOf[d.EventID] = d.ID
	}
	for _, ev := range seeded {
		ev.decisionID = decisionOf[ev.id]
		if (ev.rule != "") != (ev.decisionID != 0) {
			t.Fatalf("event %d: decision %d, rule %q", ev.id, ev.decisionID, ev.rule)
		}
	}

	type filter struct {
		name string
		q    url.Values
		keep func(*seedEvent) bool
	}
	filters := []filter{
		{"none", url.Values{}, func(*seedEvent) bool { return true }},
		{"user", url.Values{"user_id": {"bob"}}, func(e *seedEvent) bool { return e.user == "bob" }},
		{"user with dots", url.Values{"user_id": {"carol.x@example.com"}}, func(e *seedEvent) bool { return e.user == "carol.x@example.com" }},
		{"unknown user", url.Values{"user_id": {"nobody"}}, func(*seedEvent) bool { return false }},
		{"message", url.Values{"message_id": {"msg-007"}}, func(e *seedEvent) bool { return e.msg == "msg-007" }},
		{"channel", url.Values{"channel_cid": {"livestream:match-1"}}, func(e *seedEvent) bool { return e.channel == "livestream:match-1" }},
		{"rule", url.Values{"rule_id": {"links"}}, func(e *seedEvent) bool { return e.rule == "links" }},
		{"event type", url.Values{"event_type": {"message.updated"}}, func(e *seedEvent) bool { return e.typ == "message.updated" }},
		{"action type", url.Values{"action_type": {"mute"}}, func(e *seedEvent) bool { return e.actionType == "mute" }},
		{"outcome applied", url.Values{"outcome": {"applied"}}, func(e *seedEvent) bool { return e.actionID != 0 && e.outcome == "applied" }},
		{"outcome pending", url.Values{"outcome": {"pending"}}, func(e *seedEvent) bool { return e.actionID != 0 && e.outcome == "pending" }},
		{"user and rule", url.Values{"user_id": {"alice"}, "rule_id": {"profanity"}}, func(e *seedEvent) bool { return e.user == "alice" && e.rule == "profanity" }},
		{"channel, type, outcome", url.Values{"channel_cid": {"messaging:general"}, "action_type": {"ban"}, "outcome": {"failed"}},
			func(e *seedEvent) bool {
				return e.channel == "messaging:general" && e.actionType == "ban" && e.outcome == "failed"
			}},
	}
	lists := []struct {
		path string
		id   func(*seedEvent) int64 // 0: not in this list
	}{
		{"/events", func(e *seedEvent) int64 { return e.id }},
		{"/decisions", func(e *seedEvent) int64 { return e.decisionID }},
		{"/actions", func(e *seedEvent) int64 { return e.actionID }},
	}
	nonEmpty := 0
	for _, l := range lists {
		for _, f := range filters {
			want := []int64{}
			for i := len(seeded) - 1; i >= 0; i-- { // newest first
				if e := seeded[i]; f.keep(e) && l.id(e) != 0 {
					want = append(want, l.id(e))
				}
			}
			if len(want) > 0 {
				nonEmpty++
			}
			got := ids(a.all(t, l.path, f.q, tok))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s (%s): ids (-want +got):\n%s", l.path, f.name, f.q.Encode(), diff)
			}
		}
	}
	if nonEmpty < 30 {
		t.Errorf("only %d list × filter cases had rows: the seed does not exercise the filters", nonEmpty)
	}

	// A time range [from, to) taken from the rows' own times.
	events := a.all(t, "/events", url.Values{}, tok)
	if len(events) != len(seeded) {
		t.Fatalf("listed %d events, seeded %d", len(events), len(seeded))
	}
	from, to := events[20].ReceivedAt, events[5].ReceivedAt
	want := []int64{}
	for _, e := range events {
		if !e.ReceivedAt.Before(from) && e.ReceivedAt.Before(to) {
			want = append(want, e.ID)
		}
	}
	if len(want) < 10 {
		t.Fatalf("the range holds %d events; seeded times are too close", len(want))
	}
	got := ids(a.all(t, "/events", url.Values{"from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}}, tok))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("time range (-want +got):\n%s", diff)
	}

	// Each search left its staff audit row, with the filters.
	var n int
	err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM staff_audit
		WHERE actor = 'searcher' AND role = 'viewer' AND act = 'search' AND target_user_id = 'bob'
		AND params->>'list' = 'actions' AND params->>'user_id' = 'bob'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("no staff audit row for the search of bob's actions")
	}
}

// TestCursorsBelongToTheirList: a cursor is refused by another list, and
// a made-up one by its own, with 400 on cursor.
func TestCursorsBelongToTheirList(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	seedHistory(t, st, 6)
	a := newAPI(t, st)
	tok := token(t, "c", appeals.RoleViewer)
	var p pageOf
	a.getJSON(t, "/events?limit=2", tok, &p)
	if p.NextCursor == "" {
		t.Fatal("no next_cursor after 2 of 6 events")
	}
	for _, target := range []string{"/actions?cursor=" + p.NextCursor, "/decisions?cursor=" + p.NextCursor, "/events?cursor=bm9wZQ"} {
		code, raw := a.call(t, http.MethodGet, target, tok, "")
		if code != http.StatusBadRequest || decodeErr(t, raw).Error.Field != "cursor" {
			t.Errorf("%s: %d %s, want 400 on cursor", target, code, raw)
		}
	}
}

// TestTimelineEvidenceAndRuleStats reads a seeded user's timeline page by
// page, one decision's evidence with its conversation, and the per-rule
// figures, each checked against the model (and, as every answer, against
// openapi.yaml); the reads leave their staff audit rows.
func TestTimelineEvidenceAndRuleStats(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	seeded := seedHistory(t, st, 15)
	a := newAPI(t, st)
	tok := token(t, "tina", appeals.RoleViewer)

	// The timeline: every event, decision and action of bob's, newest
	// first, across pages without repeats.
	type entry struct {
		At   time.Time `json:"at"`
		Kind string    `json:"kind"`
		ID   int64     `json:"id"`
	}
	var got []entry
	seen := map[entry]bool{}
	q := url.Values{"limit": {"3"}}
	pagesRead := 0
	for ; ; pagesRead++ {
		if pagesRead > 50 {
			t.Fatal("more than 50 pages")
		}
		var p struct {
			Items      []entry `json:"items"`
			NextCursor string  `json:"next_cursor"`
		}
		a.getJSON(t, "/users/bob/timeline?"+q.Encode(), tok, &p)
		for _, e := range p.Items {
			k := entry{Kind: e.Kind, ID: e.ID}
			if seen[k] {
				t.Fatalf("timeline: %s %d repeated", e.Kind, e.ID)
			}
			seen[k] = true
			got = append(got, e)
		}
		if p.NextCursor == "" {
			pagesRead++
			break
		}
		q.Set("cursor", p.NextCursor)
	}
	want := map[entry]bool{}
	for _, e := range seeded {
		if e.user != "bob" {
			continue
		}
		want[entry{Kind: "event", ID: e.id}] = true
		if e.actionID != 0 {
			want[entry{Kind: "action", ID: e.actionID}] = true
		}
	}
	decisions := map[int64]int64{} // event id → decision id
	for _, d := range a.all(t, "/decisions", url.Values{"user_id": {"bob"}}, tok) {
		decisions[d.EventID] = d.ID
		want[entry{Kind: "decision", ID: d.ID}] = true
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("timeline entries (-want +got):\n%s", diff)
	}
	for i := 1; i < len(got); i++ {
		if got[i].At.After(got[i-1].At) {
			t.Errorf("timeline not newest first at %d: %v after %v", i, got[i].At, got[i-1].At)
		}
	}

	// The evidence of the decision on msg-010 (bob's, in
	// livestream:match-1 with events 3-5 and 9-11, of which 4 and 9 are
	// message.updated), with 2 messages around it: the conversation is
	// the channel's other message.new events.
	ev := seeded[10]
	if ev.user != "bob" || ev.actionID == 0 {
		t.Fatalf("seed: %+v", ev)
	}
	var evidence struct {
		Decision struct{ ID, EventID int64 } `json:"decision"`
		Event    struct {
			MessageID string          `json:"message_id"`
			Payload   json.RawMessage `json:"payload"`
		} `json:"event"`
		Matches []struct {
			RuleID string `json:"rule_id"`
		} `json:"matches"`
		Actions []struct {
			ID int64 `json:"id"`
		} `json:"actions"`
		Context struct {
			Scope  string `json:"scope"`
			Before []struct {
				MessageID string `json:"message_id"`
			} `json:"before"`
			After []struct {
				MessageID string `json:"message_id"`
			} `json:"after"`
		} `json:"context"`
	}
	decisionID := decisions[ev.id]
	a.getJSON(t, "/decisions/"+strconv.FormatInt(decisionID, 10)+"?around=2", tok, &evidence)
	if evidence.Decision.ID != decisionID || evidence.Event.MessageID != ev.msg || len(evidence.Event.Payload) == 0 {
		t.Errorf("evidence of decision %d: %+v", decisionID, evidence)
	}
	if len(evidence.Matches) != 1 || evidence.Matches[0].RuleID != ev.rule || len(evidence.Actions) != 1 || evidence.Actions[0].ID != ev.actionID {
		t.Errorf("evidence: matches %+v actions %+v, want rule %s action %d", evidence.Matches, evidence.Actions, ev.rule, ev.actionID)
	}
	var before, after []string
	for _, m := range evidence.Context.Before {
		before = append(before, m.MessageID)
	}
	for _, m := range evidence.Context.After {
		after = append(after, m.MessageID)
	}
	if evidence.Context.Scope != "channel" || !cmp.Equal(before, []string{"msg-003", "msg-005"}) || !cmp.Equal(after, []string{"msg-011"}) {
		t.Errorf("context %s: before %v after %v, want msg-003, msg-005 before and msg-011 after", evidence.Context.Scope, before, after)
	}
	if code, raw := a.call(t, http.MethodGet, "/decisions/999999", tok, ""); code != http.StatusNotFound {
		t.Errorf("missing decision: %d %s", code, raw)
	}

	// Per-rule figures over the default period (the last 30 days).
	var stats struct {
		Rules []struct {
			RuleID       string  `json:"rule_id"`
			Actions      int     `json:"actions"`
			Applied      int     `json:"applied"`
			Failed       int     `json:"failed"`
			Pending      int     `json:"pending"`
			OverturnRate float64 `json:"overturn_rate"`
		} `json:"rules"`
	}
	a.getJSON(t, "/rules/stats", tok, &stats)
	type fig struct{ actions, applied, failed, pending int }
	wantStats, gotStats := map[string]fig{}, map[string]fig{}
	for _, e := range seeded {
		if e.rule == "" {
			continue
		}
		f := wantStats[e.rule]
		f.actions++
		switch e.outcome {
		case "applied":
			f.applied++
		case "failed":
			f.failed++
		case "pending":
			f.pending++
		}
		wantStats[e.rule] = f
	}
	for _, r := range stats.Rules {
		gotStats[r.RuleID] = fig{r.Actions, r.Applied, r.Failed, r.Pending}
		if r.OverturnRate != 0 {
			t.Errorf("rule %s: overturn rate %v with nothing overturned", r.RuleID, r.OverturnRate)
		}
	}
	if diff := cmp.Diff(wantStats, gotStats, cmp.AllowUnexported(fig{})); diff != "" {
		t.Errorf("rule stats (-want +got):\n%s", diff)
	}

	var n int
	err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM staff_audit WHERE actor = 'tina'
		AND ((act = 'timeline' AND target_user_id = 'bob')
		  OR (act = 'view_decision' AND target_user_id = 'bob' AND target = $1)
		  OR (act = 'rule_stats'))`, "decision:"+strconv.FormatInt(decisionID, 10)).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != pagesRead+2 {
		t.Errorf("%d staff audit rows, want one for each of the timeline's %d pages, the evidence and the stats", n, pagesRead)
	}
}

// TestQuarantineList: GET /quarantine lists what the database refused,
// with the exact body, page by page (each answer checked against
// openapi.yaml), and the read leaves its staff audit row.
func TestQuarantineList(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	ctx := context.Background()
	bodies := []string{"{\"n\":1e1000000}", "{\"bad\":\"\xff\"}", "{}"}
	for i, b := range bodies {
		_, err := st.Pool().Exec(ctx, `INSERT INTO quarantine (webhook_id, attempt, api_key, compressed, body_sha256, body, headers, error, sqlstate)
			VALUES ($1, 1, 'k', false, sha256($2), $2, '{"X-Webhook-Id":"w"}', 'value overflows numeric format', '22003')`,
			fmt.Sprintf("q-%d", i), []byte(b))
		if err != nil {
			t.Fatal(err)
		}
	}
	a := newAPI(t, st)
	tok := token(t, "quinn", appeals.RoleViewer)
	var first, second struct {
		Items []struct {
			WebhookID string `json:"webhook_id"`
			Body      []byte `json:"body"`
			SQLState  string `json:"sqlstate"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	a.getJSON(t, "/quarantine?limit=2", tok, &first)
	if len(first.Items) != 2 || first.NextCursor == "" {
		t.Fatalf("first page: %+v, want 2 items and a cursor", first)
	}
	a.getJSON(t, "/quarantine?limit=2&cursor="+first.NextCursor, tok, &second)
	if len(second.Items) != 1 || second.NextCursor != "" {
		t.Fatalf("second page: %+v, want the last item", second)
	}
	all := append(first.Items, second.Items...)
	for i, it := range all {
		want := len(bodies) - 1 - i // newest first
		if it.WebhookID != fmt.Sprintf("q-%d", want) || string(it.Body) != bodies[want] || it.SQLState != "22003" {
			t.Errorf("item %d = %s %q %s, want q-%d with its exact body", i, it.WebhookID, it.Body, it.SQLState, want)
		}
	}
	code, raw := a.call(t, http.MethodGet, "/quarantine?user_id=bob", tok, "")
	if code != http.StatusBadRequest || decodeErr(t, raw).Error.Field != "user_id" {
		t.Errorf("unknown filter: %d %s, want 400 on user_id", code, raw)
	}
	var n int
	err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM staff_audit
		WHERE actor = 'quinn' AND act = 'search' AND params->>'list' = 'quarantine'`).Scan(&n)
	if err != nil || n != 2 {
		t.Errorf("staff audit rows of the quarantine reads = %d (%v), want 2", n, err)
	}
}
