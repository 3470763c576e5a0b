package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/actions/streamtest"
	"moderator/store/storetest"
)

// actionRules ask for overlapping actions so that merging shows: "banme"
// bans for an hour and mutes, "forever" bans permanently; "flagme" flags.
const actionRules = `rules:
  - id: ban-hour
    description: bans for an hour on banme
    mode: enforce
    when: message.text contains "banme"
    actions:
      - ban: {timeout: 1h, reason: "said banme"}
      - mute: {timeout: 30m}
    examples:
      - event: {message: {text: "banme"}}
        expect: {match: true}
      - event: {message: {text: "hi"}}
        expect: {match: false}
  - id: ban-forever
    description: bans for good on banme forever
    mode: enforce
    when: message.text contains "banme forever"
    actions:
      - ban: {reason: "said banme forever"}
    examples:
      - event: {message: {text: "banme forever"}}
        expect: {match: true}
      - event: {message: {text: "banme"}}
        expect: {match: false}
  - id: warn-word
    description: warns on warnme
    mode: enforce
    when: message.text contains "warnme"
    actions:
      - warn: {text: "Please be kind.", in_thread: true}
    examples:
      - event: {message: {text: "warnme"}}
        expect: {match: true}
      - event: {message: {text: "hi"}}
        expect: {match: false}
  - id: flag-word
    description: flags on flagme
    mode: enforce
    when: message.text contains "flagme"
    actions: [flag]
    examples:
      - event: {message: {text: "flagme"}}
        expect: {match: true}
      - event: {message: {text: "hi"}}
        expect: {match: false}
`

// actionsEnv is a service with the action rules on a database of its own
// (so that no other test's workers take its jobs) calling fake.
type actionsEnv struct {
	*testServer
	pool *pgxpool.Pool
	fake *streamtest.Server
}

func startActions(t testing.TB, fake *streamtest.Server, env map[string]string) *actionsEnv {
	t.Helper()
	return startActionsOn(t, storetest.NewDatabase(t), fake, env)
}

// startActionsOn starts the service on the database at dbURL (migrated by
// the service itself).
func startActionsOn(t testing.TB, dbURL string, fake *streamtest.Server, env map[string]string) *actionsEnv {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "actions.yaml"), []byte(actionRules), 0o644); err != nil {
		t.Fatal(err)
	}
	if fake == nil {
		fake = streamtest.New(t, streamtest.WithCredentials(e2eKey, e2eSecret))
	}
	s := startServer(t, serverOptions{rulesDir: dir, stream: fake, dbURL: dbURL, env: env})
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &actionsEnv{testServer: s, pool: pool, fake: fake}
}

func authoredBy(id, user, text string) []byte {
	return fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:e2e","created_at":"2026-11-24T10:00:00Z",`+
		`"message":{"id":%q,"text":%q,"user":{"id":%q}},"user":{"id":%q,"created_at":"2026-01-01T00:00:00Z"}}`, id, text, user, user)
}

// actionRow is an action of an event and how it ended ("" while pending).
type actionRow struct {
	Type, Rule, Outcome, Reason string
}

func (e *actionsEnv) actionsOf(t testing.TB, webhookID string) []actionRow {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `
		SELECT a.type, a.rule_id, coalesce(o.outcome, ''), coalesce(o.reason, '')
		FROM actions a JOIN events ev ON ev.id = a.event_id
		LEFT JOIN action_outcomes o ON o.action_id = a.id
		WHERE ev.webhook_id = $1 ORDER BY a.position`, webhookID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []actionRow
	for rows.Next() {
		var r actionRow
		if err := rows.Scan(&r.Type, &r.Rule, &r.Outcome, &r.Reason); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitEnded waits until every action of the event has an outcome.
func (e *actionsEnv) waitEnded(t testing.TB, webhookID string, want int) []actionRow {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := e.actionsOf(t, webhookID)
		ended := len(got) == want
		for _, r := range got {
			ended = ended && r.Outcome != ""
		}
		if ended {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("actions of %s never ended: %+v\nlogs:\n%s", webhookID, got, e.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type attemptRow struct {
	Endpoint string
	Status   int
	Code     int
	N        int
}

func (e *actionsEnv) attemptsOf(t testing.TB, webhookID string) []attemptRow {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `
		SELECT t.endpoint, coalesce(t.http_status, 0), coalesce(t.stream_code, 0), t.attempt
		FROM action_attempts t JOIN actions a ON a.id = t.action_id JOIN events ev ON ev.id = a.event_id
		WHERE ev.webhook_id = $1 ORDER BY a.position, t.attempt`, webhookID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []attemptRow
	for rows.Next() {
		var r attemptRow
		if err := rows.Scan(&r.Endpoint, &r.Status, &r.Code, &r.N); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func (e *actionsEnv) mustSend(t testing.TB, webhookID string, body []byte) {
	t.Helper()
	status, resp := e.send(t, delivery{body: body, webhookID: webhookID})
	if status != 200 {
		t.Fatalf("webhook %s: got %d %v, want 200", webhookID, status, resp)
	}
}

// TestActionsExactlyOnce: a webhook whose rules ask for two bans and a mute
// of one user makes exactly one Stream call (the permanent ban); a retry
// and a replay of it make none.
func TestActionsExactlyOnce(t *testing.T) {
	t.Parallel()
	e := startActions(t, nil, nil)
	if _, err := e.logs.waitFor(`"msg":"bot user ready"`, 10*time.Second); err != nil {
		t.Fatalf("bot user not created: %v", err)
	}
	if _, ok := e.fake.User(e2eBot); !ok {
		t.Fatalf("the bot user %s does not exist at Stream", e2eBot)
	}
	body := authoredBy("once-1", "mallory", "banme forever")
	e.mustSend(t, "once-1", body)
	got := e.waitEnded(t, "once-1", 3)
	wantOutcomes := []string{"superseded", "superseded", "applied"}
	for i, r := range got {
		if r.Outcome != wantOutcomes[i] {
			t.Fatalf("actions = %+v, want outcomes %v", got, wantOutcomes)
		}
	}
	bans := e.fake.Calls(streamtest.RouteBan)
	if len(bans) != 1 {
		t.Fatalf("got %d ban calls, want 1", len(bans))
	}
	if b := bans[0].Body; b["target_user_id"] != "mallory" || b["banned_by_id"] != e2eBot || b["timeout"] != nil {
		t.Fatalf("ban body = %v, want a permanent ban of mallory by the bot", b)
	}
	if n := len(e.fake.Calls(streamtest.RouteMute)); n != 0 {
		t.Fatalf("got %d mute calls, want 0 (the ban supersedes the mute)", n)
	}
	// Every call names the service and its version.
	ua := "moderator/" + buildVersion()
	for _, r := range e.fake.Requests() {
		if r.Header.Get("X-Stream-Client") != ua || r.Header.Get("User-Agent") != ua {
			t.Fatalf("%s %s: X-Stream-Client %q, User-Agent %q; want %q", r.Method, r.Path,
				r.Header.Get("X-Stream-Client"), r.Header.Get("User-Agent"), ua)
		}
	}

	// A retry (same id) and a replay (same body, new id) record nothing new.
	for _, id := range []string{"once-1", "once-1-replay"} {
		status, resp := e.send(t, delivery{body: body, webhookID: id})
		if status != 200 || resp["status"] != "duplicate" {
			t.Fatalf("delivery %s: got %d %v, want 200 duplicate", id, status, resp)
		}
	}
	// A later action ends after any the duplicates could have caused.
	e.mustSend(t, "once-2", authoredBy("once-2", "bob", "flagme"))
	e.waitEnded(t, "once-2", 1)
	if n := len(e.fake.Calls(streamtest.RouteBan)); n != 1 {
		t.Fatalf("after duplicates: got %d ban calls, want 1", n)
	}
	if n := len(e.fake.Calls(streamtest.RouteFlag)); n != 1 {
		t.Fatalf("got %d flag calls, want 1", n)
	}
	// A warning comes from the bot, in the message's thread, once.
	e.mustSend(t, "once-3", authoredBy("once-3", "bob", "warnme"))
	if got := e.waitEnded(t, "once-3", 1); got[0].Outcome != "applied" {
		t.Fatalf("warning: %+v, want applied", got)
	}
	var warnings []streamtest.Message
	for _, m := range e.fake.Messages() {
		if m.UserID == e2eBot {
			warnings = append(warnings, m)
		}
	}
	if len(warnings) != 1 || warnings[0].Text != "Please be kind." || warnings[0].ParentID != "once-3" || warnings[0].CID != "messaging:e2e" {
		t.Fatalf("bot messages = %+v, want one warning in the thread of once-3", warnings)
	}
	var actionsTotal int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM actions").Scan(&actionsTotal); err != nil {
		t.Fatal(err)
	}
	if actionsTotal != 5 {
		t.Fatalf("got %d action rows, want 5 (3 for once-1, 1 each for once-2 and once-3)", actionsTotal)
	}
	if m := e.get(t, "/metrics"); !strings.Contains(m, `moderator_actions_total{outcome="applied",type="ban"} 1`) ||
		!strings.Contains(m, `moderator_actions_total{outcome="superseded",type="mute"} 1`) {
		t.Fatalf("metrics lack the outcomes:\n%s", grep(m, "moderator_action"))
	}
}

// TestActionsDryRun: nothing reaches Stream; each action is recorded with
// the request it would have sent.
func TestActionsDryRun(t *testing.T) {
	t.Parallel()
	e := startActions(t, nil, map[string]string{"MODERATOR_DRY_RUN": "true"})
	e.mustSend(t, "dry-1", authoredBy("dry-1", "mallory", "banme forever flagme"))
	got := e.waitEnded(t, "dry-1", 4)
	var req []byte
	err := e.pool.QueryRow(context.Background(), `SELECT o.request FROM action_outcomes o JOIN actions a ON a.id = o.action_id
		WHERE a.type = 'ban' AND o.outcome = 'dry_run'`).Scan(&req)
	if err != nil {
		t.Fatalf("read the dry-run request: %v (actions %+v)", err, got)
	}
	var r struct {
		Method, Path string
		Body         map[string]any
	}
	if err := json.Unmarshal(req, &r); err != nil {
		t.Fatal(err)
	}
	if r.Method != "POST" || r.Path != "/moderation/ban" || r.Body["target_user_id"] != "mallory" || r.Body["reason"] != "said banme forever" {
		t.Fatalf("recorded request = %s, want the permanent ban of mallory", req)
	}
	if strings.Contains(string(req), e2eKey) {
		t.Fatalf("recorded request %s contains the API key", req)
	}
	outcomes := map[string]int{}
	for _, a := range got {
		outcomes[a.Outcome]++
	}
	if diff := cmp.Diff(map[string]int{"dry_run": 2, "superseded": 2}, outcomes); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	if reqs := e.fake.Requests(); len(reqs) != 0 {
		t.Fatalf("got %d requests at Stream in dry run (first %s %s), want 0", len(reqs), reqs[0].Method, reqs[0].Path)
	}
}

// TestActionsRetries: transient failures are retried with every attempt
// audited; a 429 waits for the reset; a permanent error is tried once.
func TestActionsRetries(t *testing.T) {
	t.Parallel()
	fake := streamtest.New(t, streamtest.WithCredentials(e2eKey, e2eSecret))
	e := startActions(t, fake, nil)

	t.Run("5xx then success", func(t *testing.T) {
		fake.Script(streamtest.RouteFlag, streamtest.Status(503), streamtest.Pass())
		e.mustSend(t, "retry-flag", authoredBy("retry-flag", "carol", "flagme"))
		got := e.waitEnded(t, "retry-flag", 1)
		if got[0].Outcome != "applied" {
			t.Fatalf("got %+v, want applied", got)
		}
		want := []attemptRow{{"POST /moderation/flag", 503, -1, 1}, {"POST /moderation/flag", 200, 0, 2}}
		if diff := cmp.Diff(want, e.attemptsOf(t, "retry-flag")); diff != "" {
			t.Fatalf("attempts (-want +got):\n%s", diff)
		}
		if n := len(fake.Flags()); n != 1 {
			t.Fatalf("got %d flags at Stream, want 1", n)
		}
	})
	t.Run("429 waits for the reset", func(t *testing.T) {
		// Stream's reset is in whole seconds: at least a second from now.
		reset := time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second)
		fake.Script(streamtest.RouteBan, streamtest.RateLimited(reset))
		e.mustSend(t, "retry-429", authoredBy("retry-429", "dave", "banme"))
		got := e.waitEnded(t, "retry-429", 2)
		if got[0].Outcome != "applied" {
			t.Fatalf("got %+v, want the ban applied", got)
		}
		calls := fake.Calls(streamtest.RouteBan)
		if len(calls) != 2 || calls[0].Status != 429 || calls[1].Status != 200 {
			t.Fatalf("ban calls: %d, want a 429 then a 200", len(calls))
		}
		if calls[1].At.Before(reset) {
			t.Fatalf("retried at %s, before the reset at %s", calls[1].At, reset)
		}
		if m := e.get(t, "/metrics"); !strings.Contains(m, `moderator_action_rate_limited_total{type="ban"} 1`) {
			t.Fatalf("429 not counted:\n%s", grep(m, "rate_limited"))
		}
	})
	t.Run("permanent error", func(t *testing.T) {
		fake.Script(streamtest.RouteBan, streamtest.Error(403, 17, "not allowed"))
		e.mustSend(t, "retry-403", authoredBy("retry-403", "erin", "banme"))
		got := e.waitEnded(t, "retry-403", 2)
		if got[0].Outcome != "failed" || !strings.Contains(got[0].Reason, "not allowed") {
			t.Fatalf("got %+v, want the ban failed with Stream's reason", got)
		}
		want := []attemptRow{{"POST /moderation/ban", 403, 17, 1}}
		if diff := cmp.Diff(want, e.attemptsOf(t, "retry-403")); diff != "" {
			t.Fatalf("attempts (-want +got):\n%s", diff)
		}
	})
}

// TestActionsDailyCap: past the day's cap an action is held: recorded, not
// sent, counted and logged.
func TestActionsDailyCap(t *testing.T) {
	t.Parallel()
	e := startActions(t, nil, map[string]string{"MODERATOR_DAILY_CAPS": "ban=1"})
	e.mustSend(t, "cap-1", authoredBy("cap-1", "gina", "banme"))
	e.mustSend(t, "cap-2", authoredBy("cap-2", "hank", "banme"))
	if got := e.waitEnded(t, "cap-1", 2); got[0].Outcome != "applied" {
		t.Fatalf("first ban: %+v, want applied", got)
	}
	if got := e.waitEnded(t, "cap-2", 2); got[0].Outcome != "held" || !strings.Contains(got[0].Reason, "daily cap of 1 ban") {
		t.Fatalf("second ban: %+v, want held by the daily cap", got)
	}
	calls := e.fake.Calls(streamtest.RouteBan)
	if len(calls) != 1 || calls[0].Body["target_user_id"] != "gina" {
		t.Fatalf("got %d ban calls, want 1 (gina's)", len(calls))
	}
	if _, err := e.logs.waitFor(`"msg":"action held: daily cap reached".*"type":"ban"`, time.Second); err != nil {
		t.Fatalf("no log line for the held action: %v", err)
	}
	if m := e.get(t, "/metrics"); !strings.Contains(m, `moderator_actions_total{outcome="held",type="ban"} 1`) ||
		!strings.Contains(m, "moderator_action_queue_depth ") || !strings.Contains(m, "moderator_action_oldest_pending_seconds ") {
		t.Fatalf("metrics lack the held action or the queue depth:\n%s", grep(m, "moderator_action"))
	}
}

// TestActionsSurviveWorkerStop: the service stops while Stream has not
// answered a ban; after a restart the ban is applied, once.
func TestActionsSurviveWorkerStop(t *testing.T) {
	t.Parallel()
	fake := streamtest.New(t, streamtest.WithCredentials(e2eKey, e2eSecret))
	fake.Script(streamtest.RouteBan, streamtest.Pass().After(time.Minute)) // hangs until the client gives up
	dbURL := storetest.NewDatabase(t)
	env := map[string]string{"MODERATOR_SHUTDOWN_TIMEOUT": "300ms"}
	first := startActionsOn(t, dbURL, fake, env)
	first.mustSend(t, "stop-1", authoredBy("stop-1", "frank", "banme"))
	deadline := time.Now().Add(15 * time.Second)
	for len(fake.Calls(streamtest.RouteBan)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the ban never reached Stream; logs:\n%s", first.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := first.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := first.actionsOf(t, "stop-1"); got[0].Outcome != "" {
		t.Fatalf("after the stop: %+v, want the ban still pending", got)
	}

	second := startActionsOn(t, dbURL, fake, nil)
	got := second.waitEnded(t, "stop-1", 2)
	if got[0].Outcome != "applied" {
		t.Fatalf("got %+v, want the ban applied", got)
	}
	var bans int
	for _, b := range fake.Bans() {
		if b.UserID == "frank" {
			bans++
		}
	}
	if bans != 1 {
		t.Fatalf("got %d bans of frank at Stream, want 1", bans)
	}
	attempts := second.attemptsOf(t, "stop-1")
	if len(attempts) != 2 || attempts[0].Status != 0 || attempts[1].Status != 200 {
		t.Fatalf("attempts = %+v, want the cancelled one (no answer) then a 200", attempts)
	}
}

// TestActionsBurstRespectsBudget: 1,000 ban decisions at once reach Stream
// within its windows (no 429, never more than the per-second share in any
// second) and all are applied. The budget is raised to 6,000 a minute so
// the test takes seconds; the pacing is the same at any budget (see
// actions.TestLimiterNeverExceedsStreamWindows for the minute window).
func TestActionsBurstRespectsBudget(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("sends 1,000 webhooks")
	}
	const budget, n = 6000, 1000
	fake := streamtest.New(t, streamtest.WithCredentials(e2eKey, e2eSecret), streamtest.WithRateLimit(streamtest.RouteBan, budget))
	e := startActions(t, fake, map[string]string{"MODERATOR_RATE_LIMITS": fmt.Sprintf("ban=%d", budget)})
	var wg sync.WaitGroup
	ids := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range ids {
				id := fmt.Sprintf("burst-%d", i)
				e.mustSend(t, id, authoredBy(id, fmt.Sprintf("burst-user-%d", i), "banme"))
			}
		})
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()

	e.waitApplied(t, n, 2*time.Minute)
	calls := fake.Calls(streamtest.RouteBan)
	if len(calls) != n {
		t.Fatalf("got %d ban calls, want %d (one per decision, none refused)", len(calls), n)
	}
	for i, c := range calls {
		if c.Status != 200 {
			t.Fatalf("ban call %d answered %d, want 200 (no avoidable 429)", i, c.Status)
		}
	}
	for _, w := range []struct {
		size  time.Duration
		limit int
	}{{time.Second, budget / 30}, {time.Minute, budget}} {
		if most := busiest(calls, w.size); most > w.limit {
			t.Fatalf("%d ban calls in the busiest %s, want at most %d", most, w.size, w.limit)
		}
	}
	if banned := len(fake.Bans()); banned != n {
		t.Fatalf("got %d bans at Stream, want %d", banned, n)
	}
}

// BenchmarkEnqueueToFirstAttempt measures, under a steady load of flagging
// webhooks, the time from the transaction that records a decision to the
// first attempt of its action (River's attempted_at minus created_at; the
// latter is the recording transaction's start, so the figure includes the
// commit), and to the start of the Stream call (the attempt's started_at).
// It reports p50 and p99 in milliseconds.
func BenchmarkEnqueueToFirstAttempt(b *testing.B) {
	fake := streamtest.New(b, streamtest.WithCredentials(e2eKey, e2eSecret), streamtest.WithoutRateLimits())
	e := startActions(b, fake, map[string]string{"MODERATOR_RATE_LIMITS": "flag=1000000", "MODERATOR_LOG_LEVEL": "info"})
	b.ResetTimer()
	tick := time.NewTicker(10 * time.Millisecond) // 100 webhooks/s
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range b.N {
		<-tick.C
		wg.Go(func() {
			id := fmt.Sprintf("bench-%d-%d", b.N, i)
			e.mustSend(b, id, authoredBy(id, "user-"+id, "flagme"))
		})
	}
	wg.Wait()
	deadline := time.Now().Add(time.Minute)
	for {
		var pending int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM actions a
			WHERE NOT EXISTS (SELECT 1 FROM action_outcomes o WHERE o.action_id = a.id)`).Scan(&pending); err != nil {
			b.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d actions still pending", pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	var p50, p99 float64
	err := e.pool.QueryRow(context.Background(), `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.99) WITHIN GROUP (ORDER BY d)
		FROM (SELECT extract(epoch FROM attempted_at - created_at) * 1000 AS d FROM river_job
		      WHERE kind = 'stream_action' AND attempt = 1) x`).Scan(&p50, &p99)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	// To the call itself: after the job starts it records the call (a
	// durable commit) and takes a call from the shared budget.
	err = e.pool.QueryRow(context.Background(), `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.99) WITHIN GROUP (ORDER BY d)
		FROM (SELECT extract(epoch FROM t.started_at - j.created_at) * 1000 AS d FROM river_job j
		      JOIN action_attempts t ON t.action_id = (j.args->>'action_id')::bigint AND t.attempt = 1
		      WHERE j.kind = 'stream_action') x`).Scan(&p50, &p99)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(p50, "call-p50-ms")
	b.ReportMetric(p99, "call-p99-ms")
}
