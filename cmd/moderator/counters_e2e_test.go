package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/actions/streamtest"
	"moderator/store/storetest"
)

// startStarterPack runs the service with the starter pack (a copy) on a
// database of its own, calling a fake Stream.
func startStarterPack(t *testing.T) *actionsEnv {
	t.Helper()
	dbURL := storetest.NewDatabase(t)
	fake := streamtest.New(t, streamtest.WithCredentials(e2eKey, e2eSecret))
	s := startServer(t, serverOptions{stream: fake, dbURL: dbURL})
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &actionsEnv{testServer: s, pool: pool, fake: fake}
}

func swearAt(id, user string, at time.Time) []byte {
	return fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:e2e","created_at":%q,`+
		`"message":{"id":%q,"text":"what the fuck","user":{"id":%q}},"user":{"id":%q,"created_at":"2026-01-01T00:00:00Z"}}`,
		at.Format(time.RFC3339), id, user, user)
}

// TestEscalationLadder: the starter pack's ladder warns the first time a
// user swears, mutes the second and bans the third within a week, through
// the real pipeline (counting in the recording transaction, River jobs,
// the fake Stream); a retry of the second changes nothing. After staff
// overturn the second offence's actions, the third is a second offence
// again, and a mute, not a ban.
func TestEscalationLadder(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, overturned := range []bool{false, true} {
		t.Run(fmt.Sprintf("overturned=%v", overturned), func(t *testing.T) {
			t.Parallel()
			e := startStarterPack(t)
			user := "ladder"
			e.mustSend(t, "l-1", swearAt("l-1", user, t0))
			first := e.waitEnded(t, "l-1", 2)
			e.mustSend(t, "l-2", swearAt("l-2", user, t0.Add(24*time.Hour)))
			second := e.waitEnded(t, "l-2", 2)
			// Stream retries the second: a duplicate, no new count or action.
			if status, resp := e.send(t, delivery{body: swearAt("l-2", user, t0.Add(24*time.Hour)), webhookID: "l-2"}); status != 200 || resp["status"] != "duplicate" {
				t.Fatalf("retry: got %d %v, want 200 duplicate", status, resp)
			}
			if overturned {
				overturnEvent(t, e.pool, "l-2")
			}
			e.mustSend(t, "l-3", swearAt("l-3", user, t0.Add(48*time.Hour)))
			third := e.waitEnded(t, "l-3", 2)

			want := [][]actionRow{
				{{Type: "warn", Rule: "profanity-warn", Outcome: "applied"}, {Type: "flag", Rule: "profanity", Outcome: "applied"}},
				{{Type: "mute", Rule: "profanity-mute", Outcome: "applied"}, {Type: "flag", Rule: "profanity", Outcome: "applied"}},
				{{Type: "ban", Rule: "profanity-ban", Outcome: "applied"}, {Type: "flag", Rule: "profanity", Outcome: "applied"}},
			}
			if overturned {
				want[2][0] = actionRow{Type: "mute", Rule: "profanity-mute", Outcome: "applied"}
			}
			got := [][]actionRow{first, second, third}
			for _, rows := range got {
				for i := range rows {
					rows[i].Reason = ""
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("actions of the three messages (-want +got):\n%s\nlogs:\n%s", diff, e.logs)
			}
			wantMutes, wantBans := 1, 1
			if overturned {
				wantMutes, wantBans = 2, 0
			}
			if n := len(banCalls(e.fake, 24*60)); n != wantMutes {
				t.Errorf("mute calls (a day's ban): got %d, want %d", n, wantMutes)
			}
			if n := len(banCalls(e.fake, 7*24*60)); n != wantBans {
				t.Errorf("ban calls (a week's): got %d, want %d", n, wantBans)
			}
			if n := len(e.fake.Calls(streamtest.RouteBan)); n != wantMutes+wantBans {
				t.Errorf("calls to POST /moderation/ban: got %d, want %d", n, wantMutes+wantBans)
			}
			// The canonical log line reports the decision made in the
			// transaction.
			wantLine := `(.*"webhook_id":"l-3","attempt":1,"type":"message.new","outcome":"recorded".*)`
			line, err := e.logs.waitFor(wantLine, 5*time.Second)
			if err != nil {
				t.Fatalf("no log line for l-3: %v", err)
			}
			if rung := map[bool]string{false: "profanity-ban", true: "profanity-mute"}[overturned]; !strings.Contains(line, `"matched":["`+rung+`:enforce","profanity:enforce"],"actions":2`) {
				t.Errorf("log line of l-3 = %s, want it to name %s and profanity", line, rung)
			}
			// So do the metrics.
			rung := map[bool]string{false: "profanity-ban", true: "profanity-mute"}[overturned]
			if metrics := e.get(t, "/metrics"); !strings.Contains(metrics, `moderator_rule_matches_total{mode="enforce",rule="`+rung+`"} 1`) &&
				!strings.Contains(metrics, `moderator_rule_matches_total{mode="enforce",rule="`+rung+`"} 2`) {
				t.Errorf("metrics do not count %s:\n%s", rung, grep(metrics, "moderator_rule_matches_total"))
			}
			// The evidence of the third decision shows the strikes it read.
			var strikes int
			if err := e.pool.QueryRow(context.Background(), `
				SELECT (m->'evidence'->>'strikes.by_rule("profanity", "7d")')::int
				FROM decisions d JOIN events ev ON ev.id = d.event_id, jsonb_array_elements(d.matches) m
				WHERE ev.webhook_id = 'l-3' AND m->>'rule_id' LIKE 'profanity-%'`).Scan(&strikes); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 2, true: 1}[overturned]; strikes != want {
				t.Errorf("third decision's evidence: strikes.by_rule = %d, want %d", strikes, want)
			}
		})
	}
}

// TestLadderIgnoresEdits: a swear edited twice is one offence: the edits
// are judged against the user's other messages (the first rung again),
// and the next swear is the second rung, a mute, not a ban.
func TestLadderIgnoresEdits(t *testing.T) {
	t.Parallel()
	e := startStarterPack(t)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	user := "editor"
	e.mustSend(t, "x-1", swearAt("x-1", user, t0))
	e.waitEnded(t, "x-1", 2)
	for n, text := range []string{"what the fuck!", "what the actual fuck"} {
		id := fmt.Sprintf("x-1-edit-%d", n+1)
		at := t0.Add(time.Duration(n+1) * time.Minute)
		body := fmt.Appendf(nil, `{"type":"message.updated","cid":"messaging:e2e","created_at":%q,`+
			`"message":{"id":"x-1","text":%q,"user":{"id":%q},"updated_at":%q},"message_update":{"old_text":"what the fuck"},`+
			`"user":{"id":%q,"created_at":"2026-01-01T00:00:00Z"}}`, at.Format(time.RFC3339), text, user, at.Format(time.RFC3339), user)
		e.mustSend(t, id, body)
		got := e.waitEnded(t, id, 2)
		if got[0].Rule != "profanity-warn" {
			t.Fatalf("edit %d: actions %+v, want the first rung again (profanity-warn)", n+1, got)
		}
	}
	e.mustSend(t, "x-2", swearAt("x-2", user, t0.Add(time.Hour)))
	got := e.waitEnded(t, "x-2", 2)
	if got[0].Type != "mute" || got[0].Rule != "profanity-mute" || got[0].Outcome != "applied" {
		t.Fatalf("the next swear: actions %+v, want profanity-mute applied (the second offence)", got)
	}
	if n := len(banCalls(e.fake, 7*24*60)); n != 0 {
		t.Fatalf("got %d week-long bans, want none: the ladder climbed on edits", n)
	}
	if n := len(banCalls(e.fake, 24*60)); n != 1 {
		t.Fatalf("got %d day-long mutes, want 1", n)
	}
}

// banCalls returns the calls to POST /moderation/ban with a timeout of
// minutes: a mute's, or a timed ban's.
func banCalls(fake *streamtest.Server, minutes int) []streamtest.Request {
	var out []streamtest.Request
	for _, c := range fake.Calls(streamtest.RouteBan) {
		if c.Body["timeout"] == float64(minutes) {
			out = append(out, c)
		}
	}
	return out
}

// overturnEvent records a staff overturn of every action of the event's
// decision, as the overturn pipeline does (its own tests cover the
// reversal jobs): an overturns row and an action_reversals row per action.
func overturnEvent(t *testing.T, pool *pgxpool.Pool, webhookID string) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var decisionID, overturnID int64
		if err := tx.QueryRow(ctx, `SELECT d.id FROM decisions d JOIN events e ON e.id = d.event_id WHERE e.webhook_id = $1`,
			webhookID).Scan(&decisionID); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO overturns (decision_id, reviewer, reason) VALUES ($1, 'reviewer', 'not swearing: a quote')
			RETURNING id`, decisionID).Scan(&overturnID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO action_reversals (overturn_id, action_id, disposition)
			SELECT $1, a.id, 'nothing_to_undo' FROM actions a JOIN events e ON e.id = a.event_id WHERE e.webhook_id = $2`,
			overturnID, webhookID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFloodRule: the starter pack's flood rule mutes and warns on the
// eleventh message in a minute, exactly, and not again for the rest of
// the burst (its own strike); a retry and a replay of a message in the
// burst count nothing.
func TestFloodRule(t *testing.T) {
	t.Parallel()
	e := startStarterPack(t)
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	body := func(n int) []byte {
		return fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:room-%d","created_at":%q,`+
			`"message":{"id":"f-%d","text":"message %d","user":{"id":"flooder"}},"user":{"id":"flooder","created_at":"2026-01-01T00:00:00Z"}}`,
			n%3, t0.Add(time.Duration(n)*3*time.Second).Format(time.RFC3339), n, n)
	}
	for n := 1; n <= 14; n++ {
		id := fmt.Sprintf("f-%d", n)
		e.mustSend(t, id, body(n))
		if n == 5 {
			// Stream retries the fifth, then it is replayed under a new id.
			for _, dup := range []string{id, id + "-replay"} {
				if status, resp := e.send(t, delivery{body: body(n), webhookID: dup}); status != 200 || resp["status"] != "duplicate" {
					t.Fatalf("%s: got %d %v, want 200 duplicate", dup, status, resp)
				}
			}
		}
		var got []actionRow
		if n == 11 {
			got = e.waitEnded(t, id, 2)
			for i := range got {
				got[i].Reason = ""
			}
		} else {
			got = e.actionsOf(t, id)
		}
		var want []actionRow
		if n == 11 {
			want = []actionRow{{Type: "mute", Rule: "flood", Outcome: "applied"}, {Type: "warn", Rule: "flood", Outcome: "applied"}}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("message %d: actions (-want +got):\n%s\nlogs:\n%s", n, diff, e.logs)
		}
	}
	if n, all := len(banCalls(e.fake, 15)), len(e.fake.Calls(streamtest.RouteBan)); n != 1 || all != 1 {
		t.Errorf("mute calls (a 15-minute ban): got %d of %d ban calls, want 1 of 1", n, all)
	}
	var evidence string
	if err := e.pool.QueryRow(context.Background(), `SELECT d.matches->0->'evidence'->>'counts.user_messages("1m")'
		FROM decisions d JOIN events ev ON ev.id = d.event_id WHERE ev.webhook_id = 'f-11'`).Scan(&evidence); err != nil {
		t.Fatal(err)
	}
	if evidence != "11" {
		t.Errorf("evidence of the eleventh: counts.user_messages(\"1m\") = %s, want 11", evidence)
	}
}

// startShadowed runs the service as startStarterPack does, with the
// enforce rules of the starter pack's files switched to shadow, once the
// bot user is set up; it returns how many calls the fake had then.
func startShadowed(t *testing.T, files ...string) (*actionsEnv, int) {
	t.Helper()
	dir := copyDir(t, "../../rules")
	for _, f := range files {
		p := filepath.Join(dir, f)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("mode: enforce"), []byte("mode: shadow")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dbURL := storetest.NewDatabase(t)
	fake := streamtest.New(t, streamtest.WithCredentials(e2eKey, e2eSecret))
	s := startServer(t, serverOptions{stream: fake, dbURL: dbURL, rulesDir: dir})
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := &actionsEnv{testServer: s, pool: pool, fake: fake}
	if _, err := e.logs.waitFor(`"msg":"bot user ready"`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return e, len(fake.Requests())
}

// shadowMatches returns the rules that matched the event of webhookID,
// failing the test if one of them was enforced.
func (e *actionsEnv) shadowMatches(t *testing.T, webhookID string) []string {
	t.Helper()
	var matched, enforced []string
	err := e.pool.QueryRow(context.Background(), `SELECT coalesce(d.matched_rules, '{}'), coalesce(d.enforced_rules, '{}')
		FROM events ev LEFT JOIN decisions d ON d.event_id = ev.id WHERE ev.webhook_id = $1`, webhookID).Scan(&matched, &enforced)
	if err != nil {
		t.Fatalf("decision of %s: %v", webhookID, err)
	}
	if len(enforced) > 0 {
		t.Errorf("%s: enforced %v, want shadow matches only", webhookID, enforced)
	}
	return matched
}

// noStreamCalls fails the test if anything was recorded as an action or
// sent to Stream after the first before calls.
func (e *actionsEnv) noStreamCalls(t *testing.T, before int) {
	t.Helper()
	var actions int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM actions`).Scan(&actions); err != nil {
		t.Fatal(err)
	}
	if actions != 0 {
		t.Errorf("%d actions recorded, want none", actions)
	}
	if calls := e.fake.Requests()[before:]; len(calls) != 0 {
		t.Errorf("Stream got %d calls, want none: %+v", len(calls), calls)
	}
}

// TestShadowLadderClimbs: with the starter pack's profanity rule and
// ladder switched to shadow, three swears by one user climb the shadow
// ladder warn, mute, ban, as they would enforced (each rung reads the
// would-be strikes of the shadow profanity rule), and nothing reaches
// Stream.
func TestShadowLadderClimbs(t *testing.T) {
	t.Parallel()
	e, before := startShadowed(t, "ladder.yaml", "profanity.yaml")
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var got [][]string
	for i := range 3 {
		id := fmt.Sprintf("sl-%d", i+1)
		e.mustSend(t, id, swearAt(id, "shadowy", t0.Add(time.Duration(i)*time.Hour)))
		got = append(got, e.shadowMatches(t, id))
	}
	want := [][]string{{"profanity-warn", "profanity"}, {"profanity-mute", "profanity"}, {"profanity-ban", "profanity"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("shadow matches of the three swears (-want +got):\n%s\nlogs:\n%s", d, e.logs)
	}
	e.noStreamCalls(t, before)
}

// TestShadowFloodOncePerBurst: the starter pack's flood rule in shadow
// matches the eleventh message of a burst of fourteen and no other (its
// would-be strike is its "once per burst" guard), and nothing reaches
// Stream.
func TestShadowFloodOncePerBurst(t *testing.T) {
	t.Parallel()
	e, before := startShadowed(t, "flood.yaml")
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var got []int
	for n := 1; n <= 14; n++ {
		id := fmt.Sprintf("sf-%d", n)
		e.mustSend(t, id, fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:room-%d","created_at":%q,`+
			`"message":{"id":%q,"text":"message %d","user":{"id":"flooder"}},"user":{"id":"flooder","created_at":"2026-01-01T00:00:00Z"}}`,
			n%3, t0.Add(time.Duration(n)*3*time.Second).Format(time.RFC3339), id, n))
		if slices.Contains(e.shadowMatches(t, id), "flood") {
			got = append(got, n)
		}
	}
	if d := cmp.Diff([]int{11}, got); d != "" {
		t.Errorf("messages the shadow flood rule matched (-want +got):\n%s\nlogs:\n%s", d, e.logs)
	}
	e.noStreamCalls(t, before)
}
