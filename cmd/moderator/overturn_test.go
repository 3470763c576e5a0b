package main

import (
	stdcmp "cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"moderator/actions"
	"moderator/actions/streamtest"
	"moderator/appeals"
	"moderator/jobs"
	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// overturnEnv is the overturn pipeline in process, on a database of its
// own: events are recorded with hand-made decisions through the store and
// the enqueue hook, the runner calls the fake Stream, and the overturner
// under test shares the runner.
type overturnEnv struct {
	st      *store.Store
	fake    *streamtest.Server
	runner  *actions.Runner
	workers *jobs.Client
	ov      *overturner
	metrics *prometheus.Registry
	logs    *logBuffer
	clock   atomic.Pointer[time.Time] // the runner's clock; nil: time.Now
	seq     atomic.Int64
}

type overturnOptions struct {
	dryRun    bool
	transport http.RoundTripper // wraps the runner's calls to Stream
	retryBase time.Duration
}

func newOverturnEnv(t testing.TB, opts overturnOptions) *overturnEnv {
	t.Helper()
	return newOverturnEnvOn(t, nil, nil, opts)
}

// newOverturnEnvOn builds the pipeline on st and fake, or on new ones when
// nil (a second runner on the same database, say in dry run).
func newOverturnEnvOn(t testing.TB, st *store.Store, fake *streamtest.Server, opts overturnOptions) *overturnEnv {
	t.Helper()
	ctx := context.Background()
	if st == nil {
		var err error
		st, err = store.Open(ctx, storetest.Bounded(storetest.NewDatabase(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if fake == nil {
		fake = streamtest.New(t)
	}
	e := &overturnEnv{st: st, fake: fake, metrics: prometheus.NewRegistry(), logs: newLogBuffer()}
	logger := slog.New(slog.NewJSONHandler(e.logs, nil))
	var hc *http.Client
	if opts.transport != nil {
		hc = &http.Client{Transport: opts.transport, Timeout: 10 * time.Second}
	}
	runner, err := actions.NewRunner(
		actions.ClientConfig{BaseURL: fake.URL, APIKey: fake.Key, APISecret: fake.Secret, BotUserID: e2eBot, HTTPClient: hc},
		actions.Config{DryRun: opts.dryRun, Ledger: storeLedger{st: st}, Logger: logger, Metrics: actions.NewMetrics(e.metrics, nil),
			RetryBase: stdcmp.Or(opts.retryBase, 50*time.Millisecond),
			Now: func() time.Time {
				if c := e.clock.Load(); c != nil {
					return *c
				}
				return time.Now()
			}})
	if err != nil {
		t.Fatal(err)
	}
	e.runner = runner
	if e.workers, err = jobs.New(st.Pool(), jobs.Config{Logger: logger, FetchPollInterval: 50 * time.Millisecond}, runner); err != nil {
		t.Fatal(err)
	}
	e.ov = newOverturner(st, runner, time.Hour, logger, nil)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs)
		}
	})
	return e
}

// start starts the workers until the test ends.
func (e *overturnEnv) start(t *testing.T) {
	t.Helper()
	if err := e.workers.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.workers.Stop(ctx); err != nil {
			t.Errorf("stop workers: %v", err)
		}
	})
}

// record records a message.new by user and a decision asking for acts
// (each rule in enforce mode), enqueuing the actions as the service does.
// It returns the event and decision ids.
func (e *overturnEnv) record(t testing.TB, user, messageID string, acts ...policy.Action) (eventID, decisionID int64) {
	t.Helper()
	ctx := context.Background()
	n := e.seq.Add(1)
	payload := fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:ov","message":{"id":%q,"text":"hello","user":{"id":%q}},"user":{"id":%q},"n":%d}`,
		messageID, user, user, n)
	var ev policy.Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatal(err)
	}
	d := &policy.Decision{RuleSetVersion: "test", Actions: acts}
	if len(acts) == 0 { // a shadow rule's match: a decision without actions
		d.Matches = []policy.Match{{RuleID: "shadow", Mode: policy.ModeShadow, Evidence: map[string]any{}}}
	}
	seen := map[string]bool{}
	for _, a := range acts {
		if !seen[a.RuleID] {
			seen[a.RuleID] = true
			d.Matches = append(d.Matches, policy.Match{RuleID: a.RuleID, Mode: policy.ModeEnforce, Evidence: map[string]any{}})
		}
	}
	res, err := e.st.RecordEventsWith(ctx, []store.EventRecord{{
		WebhookID: fmt.Sprintf("%s-%d", messageID, n), BodySHA256: sha256.Sum256(payload), Attempt: 1, APIKey: "k",
		Payload: payload, Event: &ev, Decision: d,
	}}, store.Hooks{Queue: enqueueActions(e.runner)})
	if err != nil {
		t.Fatal(err)
	}
	eventID = res[0].EventID
	if err := e.st.Pool().QueryRow(ctx, `SELECT id FROM decisions WHERE event_id = $1`, eventID).Scan(&decisionID); err != nil {
		t.Fatal(err)
	}
	return eventID, decisionID
}

// recordedAction is an actions row and its outcome ("" while pending).
type recordedAction struct {
	ID, Reverses, Overturn int64
	Type, Rule, Key        string
	Outcome, Reason        string
}

func (e *overturnEnv) actions(t *testing.T, where string, args ...any) []recordedAction {
	t.Helper()
	rows, err := e.st.Pool().Query(context.Background(), `
		SELECT a.id, coalesce(a.reverses_action_id, 0), coalesce(a.overturn_id, 0), a.type, a.rule_id, a.idempotency_key,
			coalesce(o.outcome, ''), coalesce(o.reason, '')
		FROM actions a LEFT JOIN action_outcomes o ON o.action_id = a.id WHERE `+where+` ORDER BY a.id`, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[recordedAction])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitEnded waits until every action matching where has an outcome, and
// returns them.
func (e *overturnEnv) waitEnded(t *testing.T, want int, where string, args ...any) []recordedAction {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := e.actions(t, where, args...)
		ended := len(got) == want
		for _, a := range got {
			ended = ended && a.Outcome != ""
		}
		if ended {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("actions where %s never all ended: %+v", where, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *overturnEnv) overturn(t *testing.T, req appeals.OverturnRequest) appeals.OverturnResult {
	t.Helper()
	if req.Reviewer == "" {
		req.Reviewer, req.Role = "alice", "reviewer"
	}
	if req.Reason == "" {
		req.Reason = "the message was a quote"
	}
	res, err := e.ov.Overturn(context.Background(), req)
	if err != nil {
		t.Fatalf("overturn %+v: %v", req, err)
	}
	return res
}

func ban(rule string) policy.Action {
	return policy.Action{Type: policy.ActionBan, RuleID: rule, Reason: "said something"}
}

// TestOverturnAppliedBan: an applied ban, overturned, is lifted by exactly
// one unban through the pipeline (attempt and outcome recorded), with the
// overturn, its reversal, the appeal's decision and the staff audit row
// written; a second overturn is refused and calls nothing; the reversal
// itself cannot be overturned.
func TestOverturnAppliedBan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOverturnEnv(t, overturnOptions{})
	e.start(t)
	eventID, decisionID := e.record(t, "mallory", "m-ban", ban("r-ban"))
	orig := e.waitEnded(t, 1, "a.event_id = $1", eventID)[0]
	if orig.Outcome != "applied" || !e.fake.IsBanned("mallory", "") {
		t.Fatalf("ban = %+v, banned %t; want applied", orig, e.fake.IsBanned("mallory", ""))
	}
	appeal, err := e.st.RecordAppeal(ctx, store.NewAppeal{UserID: "mallory", DecisionID: decisionID, Statement: "I was quoting",
		Source: "email", RecordedBy: "bob"})
	if err != nil {
		t.Fatal(err)
	}

	res := e.overturn(t, appeals.OverturnRequest{ActionID: orig.ID, AppealID: appeal.ID})
	rev := e.waitEnded(t, 1, "a.reverses_action_id = $1", orig.ID)[0]
	want := []appeals.ReversalResult{{ActionID: orig.ID, Type: "ban", Disposition: "reversed", ReversalActionID: rev.ID, ReversalType: "unban"}}
	if diff := cmp.Diff(want, res.Actions); diff != "" {
		t.Fatalf("result (-want +got):\n%s", diff)
	}
	wantRev := recordedAction{ID: rev.ID, Reverses: orig.ID, Overturn: res.OverturnID, Type: "unban", Rule: "r-ban",
		Key: fmt.Sprintf("o%d-a%d", res.OverturnID, orig.ID), Outcome: "applied"}
	if diff := cmp.Diff(wantRev, rev); diff != "" {
		t.Fatalf("reversal action (-want +got):\n%s", diff)
	}
	unbans := e.fake.Calls(streamtest.RouteUnban)
	if len(unbans) != 1 {
		t.Fatalf("got %d unban calls, want 1", len(unbans))
	}
	if q := unbans[0].Query; q.Get("target_user_id") != "mallory" || q.Get("created_by") != e2eBot || q.Get("channel_cid") != "" ||
		q.Get("reason") != fmt.Sprintf("overturned (moderator overturn %d)", res.OverturnID) {
		t.Fatalf("unban query = %v, want an app-wide unban of mallory by the bot with an opaque reason naming the overturn", q)
	}
	if e.fake.IsBanned("mallory", "") {
		t.Fatal("mallory is still banned at Stream")
	}

	var (
		endpoint    string
		status      int
		disposition string
		reversalID  int64
		reviewer    string
		reason      string
		appealID    int64
		immuneUntil time.Time
	)
	if err := e.st.Pool().QueryRow(ctx, `SELECT endpoint, http_status FROM action_attempts WHERE action_id = $1`, rev.ID).Scan(&endpoint, &status); err != nil {
		t.Fatalf("the reversal's attempt: %v", err)
	}
	if endpoint != "DELETE /moderation/ban" || status != 200 {
		t.Fatalf("reversal attempt = %s %d, want DELETE /moderation/ban 200", endpoint, status)
	}
	if err := e.st.Pool().QueryRow(ctx, `SELECT disposition, reversal_action_id FROM action_reversals WHERE overturn_id = $1 AND action_id = $2`,
		res.OverturnID, orig.ID).Scan(&disposition, &reversalID); err != nil {
		t.Fatalf("action_reversals: %v", err)
	}
	if disposition != "reversed" || reversalID != rev.ID {
		t.Fatalf("action_reversals = %s %d, want reversed %d", disposition, reversalID, rev.ID)
	}
	if err := e.st.Pool().QueryRow(ctx, `SELECT reviewer, reason, appeal_id, immune_until FROM overturns WHERE id = $1 AND action_id = $2`,
		res.OverturnID, orig.ID).Scan(&reviewer, &reason, &appealID, &immuneUntil); err != nil {
		t.Fatalf("overturns: %v", err)
	}
	if reviewer != "alice" || reason != "the message was a quote" || appealID != appeal.ID || !immuneUntil.Equal(res.ImmuneUntil) {
		t.Fatalf("overturn = %s %q appeal %d until %s, want alice, the reason, appeal %d, until %s", reviewer, reason, appealID, immuneUntil, appeal.ID, res.ImmuneUntil)
	}
	if d := time.Until(res.ImmuneUntil); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("immune until %s, want about an hour from now (the window)", res.ImmuneUntil)
	}
	got, err := e.st.Appeal(ctx, appeal.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Decision == nil || got.Decision.Outcome != "overturned" || got.Decision.OverturnID != res.OverturnID || got.Decision.Reviewer != "alice" {
		t.Fatalf("appeal decision = %+v, want overturned by alice with overturn %d", got.Decision, res.OverturnID)
	}
	var (
		actor, role, act, target, targetUser string
		params                               []byte
	)
	if err := e.st.Pool().QueryRow(ctx, `SELECT actor, role, act, target, target_user_id, params FROM staff_audit WHERE act = 'overturn'`).
		Scan(&actor, &role, &act, &target, &targetUser, &params); err != nil {
		t.Fatalf("staff audit: %v", err)
	}
	if actor != "alice" || role != "reviewer" || target != fmt.Sprintf("action:%d", orig.ID) || targetUser != "mallory" ||
		!strings.Contains(string(params), fmt.Sprintf(`"overturn_id": %d`, res.OverturnID)) {
		t.Fatalf("staff audit = %s %s %s %s %s %s", actor, role, act, target, targetUser, params)
	}

	// Again: refused, nothing new anywhere.
	_, err = e.ov.Overturn(ctx, appeals.OverturnRequest{ActionID: orig.ID, Reviewer: "carol", Role: "reviewer", Reason: "again"})
	if !errors.Is(err, store.ErrAlreadyOverturned) {
		t.Fatalf("second overturn: got %v, want ErrAlreadyOverturned", err)
	}
	_, err = e.ov.Overturn(ctx, appeals.OverturnRequest{DecisionID: decisionID, Reviewer: "carol", Role: "reviewer", Reason: "again"})
	if !errors.Is(err, store.ErrAlreadyOverturned) {
		t.Fatalf("overturn of the decision after its only action: got %v, want ErrAlreadyOverturned", err)
	}
	_, err = e.ov.Overturn(ctx, appeals.OverturnRequest{ActionID: rev.ID, Reviewer: "carol", Role: "reviewer", Reason: "undo the undo"})
	if ie, ok := store.IsInputError(err); !ok || ie.Field != "id" || !strings.Contains(err.Error(), fmt.Sprintf("the reversal of action %d", orig.ID)) {
		t.Fatalf("overturn of the reversal: got %v, want an input error on id naming action %d", err, orig.ID)
	}
	if n := len(e.actions(t, "a.reverses_action_id IS NOT NULL")); n != 1 {
		t.Fatalf("got %d reversal actions after the refused overturns, want 1", n)
	}
	var overturns int
	if err := e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM overturns`).Scan(&overturns); err != nil || overturns != 1 {
		t.Fatalf("got %d overturns (%v), want 1", overturns, err)
	}
	if n := len(e.fake.Calls(streamtest.RouteUnban)); n != 1 {
		t.Fatalf("got %d unban calls after the refused overturns, want 1", n)
	}
	if got := counterValue(t, e.metrics, "moderator_actions_total", map[string]string{"type": "unban", "outcome": "applied"}); got != 1 {
		t.Fatalf("moderator_actions_total{type=unban,outcome=applied} = %v, want 1", got)
	}
}

// TestOverturnErrors: unknown ids, bad requests and appeals about
// something else are refused and write nothing.
func TestOverturnErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOverturnEnv(t, overturnOptions{})
	_, decisionID := e.record(t, "oscar", "m-err", ban("r-err"))
	actionID := e.actions(t, "true")[0].ID
	_, otherDecision := e.record(t, "peggy", "m-err-2", ban("r-err"))
	_, shadowDecision := e.record(t, "oscar", "m-err-3")
	decided, err := e.st.RecordAppeal(ctx, store.NewAppeal{UserID: "oscar", DecisionID: decisionID, Statement: "please",
		Source: "email", RecordedBy: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.DecideAppealUpheld(ctx, decided.ID, "bob", "fair ban", store.StaffAct{Actor: "bob", Role: "reviewer",
		Act: store.ActDecideAppeal, Target: fmt.Sprintf("appeal:%d", decided.ID), Reason: "fair ban"}); err != nil {
		t.Fatal(err)
	}
	otherAppeal, err := e.st.RecordAppeal(ctx, store.NewAppeal{UserID: "peggy", DecisionID: otherDecision, Statement: "not me",
		Source: "email", RecordedBy: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		req   appeals.OverturnRequest
		check func(error) bool
	}{
		{"unknown action", appeals.OverturnRequest{ActionID: 999999, Reviewer: "a", Reason: "r"}, isErr(store.ErrNotFound)},
		{"unknown decision", appeals.OverturnRequest{DecisionID: 999999, Reviewer: "a", Reason: "r"}, isErr(store.ErrNotFound)},
		{"unknown appeal", appeals.OverturnRequest{ActionID: actionID, AppealID: 999999, Reviewer: "a", Reason: "r"}, isErr(store.ErrNotFound)},
		{"both ids", appeals.OverturnRequest{ActionID: actionID, DecisionID: decisionID, Reviewer: "a", Reason: "r"}, isInput("id")},
		{"no id", appeals.OverturnRequest{Reviewer: "a", Reason: "r"}, isInput("id")},
		{"blank reason", appeals.OverturnRequest{ActionID: actionID, Reviewer: "a", Reason: "  "}, isInput("reason")},
		{"no reviewer", appeals.OverturnRequest{ActionID: actionID, Reason: "r"}, isInput("reviewer")},
		{"appeal decided already", appeals.OverturnRequest{ActionID: actionID, AppealID: decided.ID, Reviewer: "a", Reason: "r"}, isErr(store.ErrAlreadyDecided)},
		{"decision without actions", appeals.OverturnRequest{DecisionID: shadowDecision, Reviewer: "a", Reason: "r"}, isInput("id")},
		{"appeal about another decision", appeals.OverturnRequest{ActionID: actionID, AppealID: otherAppeal.ID, Reviewer: "a", Reason: "r"}, isInput("appeal_id")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.ov.Overturn(ctx, tt.req)
			if !tt.check(err) {
				t.Fatalf("got %v, want another error", err)
			}
		})
	}
	// The upheld decision is the only one; the pending ban is untouched.
	for table, want := range map[string]int{"overturns": 0, "action_reversals": 0, "rule_immunities": 0, "action_outcomes": 0,
		"appeal_decisions": 1, "staff_audit": 1} {
		var n int
		if err := e.st.Pool().QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != want {
			t.Fatalf("%s has %d rows (%v) after refused overturns, want %d", table, n, err, want)
		}
	}
	var state string
	if err := e.st.Pool().QueryRow(ctx, `SELECT state FROM river_job WHERE args @> jsonb_build_object('action_id', $1::bigint)`, actionID).Scan(&state); err != nil || state != "available" {
		t.Fatalf("the ban's job is %q (%v), want still available", state, err)
	}
	if got := counterValue(t, e.metrics, "moderator_actions_total", map[string]string{"type": "ban", "outcome": "superseded"}); got != 0 {
		t.Fatalf("moderator_actions_total{type=ban,outcome=superseded} = %v after rolled-back overturns, want 0", got)
	}
}

func isErr(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isInput(field string) func(error) bool {
	return func(err error) bool {
		ie, ok := store.IsInputError(err)
		return ok && ie.Field == field
	}
}

// TestOverturnPendingBanIsNeverSent: a ban overturned before any worker
// ran it ends superseded, naming the overturn and the reviewer; its job is
// cancelled, and Stream never sees it.
func TestOverturnPendingBanIsNeverSent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOverturnEnv(t, overturnOptions{})
	eventID, _ := e.record(t, "trudy", "m-pending", ban("r-pending"))
	orig := e.actions(t, "a.event_id = $1", eventID)[0]
	res := e.overturn(t, appeals.OverturnRequest{ActionID: orig.ID})
	if len(res.Actions) != 1 || res.Actions[0].Disposition != "cancelled" || res.Actions[0].ReversalActionID != 0 {
		t.Fatalf("result = %+v, want the ban cancelled without a reversal", res.Actions)
	}
	got := e.actions(t, "a.id = $1", orig.ID)[0]
	wantReason := fmt.Sprintf("superseded by overturn %d by alice: the message was a quote", res.OverturnID)
	if got.Outcome != "superseded" || got.Reason != wantReason {
		t.Fatalf("outcome = %q %q, want superseded %q", got.Outcome, got.Reason, wantReason)
	}
	var state string
	if err := e.st.Pool().QueryRow(ctx, `SELECT state FROM river_job WHERE args @> jsonb_build_object('action_id', $1::bigint)`, orig.ID).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "cancelled" {
		t.Fatalf("the ban's job is %s, want cancelled", state)
	}
	if got := counterValue(t, e.metrics, "moderator_actions_total", map[string]string{"type": "ban", "outcome": "superseded"}); got != 1 {
		t.Fatalf("moderator_actions_total{type=ban,outcome=superseded} = %v, want 1", got)
	}

	// The workers start; a later flag runs, the ban never does.
	e.start(t)
	flagEvent, _ := e.record(t, "victor", "m-after", policy.Action{Type: policy.ActionFlag, RuleID: "r-flag"})
	if a := e.waitEnded(t, 1, "a.event_id = $1", flagEvent)[0]; a.Outcome != "applied" {
		t.Fatalf("flag = %+v, want applied", a)
	}
	if calls := e.fake.Calls(streamtest.RouteBan); len(calls) != 0 {
		t.Fatalf("got %d ban calls, want none", len(calls))
	}
	if n := len(e.actions(t, "a.reverses_action_id IS NOT NULL")); n != 0 {
		t.Fatalf("got %d reversal actions, want none (nothing reached Stream)", n)
	}
}

// TestOverturnDecisionReversesEach: a decision's ban, soft delete, message
// flag, user flag, mute and warning are each undone by one call; a hard
// delete and a merged-away action have nothing to undo.
func TestOverturnDecisionReversesEach(t *testing.T) {
	t.Parallel()
	e := newOverturnEnv(t, overturnOptions{})
	e.start(t)
	e.fake.AddMessage(streamtest.Message{ID: "m-many", CID: "messaging:ov", UserID: "walter", Text: "hello"})
	eventID, decisionID := e.record(t, "walter", "m-many",
		policy.Action{Type: policy.ActionBan, RuleID: "r1", ChannelOnly: true, TimeoutMinutes: 60},
		policy.Action{Type: policy.ActionDelete, RuleID: "r1"},
		policy.Action{Type: policy.ActionFlag, RuleID: "r2"},
		policy.Action{Type: policy.ActionFlag, RuleID: "r2", Target: "user"},
		policy.Action{Type: policy.ActionMute, RuleID: "r3", ChannelOnly: true, TimeoutMinutes: 30}, // superseded by the ban
		policy.Action{Type: policy.ActionWarn, RuleID: "r3", Text: "Please be kind."},
	)
	e.waitEnded(t, 6, "a.event_id = $1", eventID)
	var warning string
	if err := e.st.Pool().QueryRow(context.Background(), `SELECT stream_message_id FROM actions WHERE event_id = $1 AND type = 'warn'`,
		eventID).Scan(&warning); err != nil || !strings.HasPrefix(warning, "moderator-") {
		t.Fatalf("the warning's message id: %q, %v", warning, err)
	}
	if m, ok := e.fake.Message(warning); !ok || m.Deleted || !e.fake.IsBanned("walter", "messaging:ov") || len(e.fake.Flags()) != 2 {
		t.Fatalf("before: warning %+v %t, banned %t, flags %d", m, ok, e.fake.IsBanned("walter", "messaging:ov"), len(e.fake.Flags()))
	}

	res := e.overturn(t, appeals.OverturnRequest{DecisionID: decisionID})
	var got []string
	for _, a := range res.Actions {
		got = append(got, a.Type+"→"+a.Disposition+":"+a.ReversalType)
	}
	want := []string{"ban→reversed:unban", "delete→reversed:undelete", "flag→reversed:unflag", "flag→reversed:unflag",
		"mute→nothing_to_undo:", "warn→reversed:unwarn"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("dispositions (-want +got):\n%s", diff)
	}
	revs := e.waitEnded(t, 5, "a.overturn_id = $1", res.OverturnID)
	for _, r := range revs {
		if r.Outcome != "applied" {
			t.Fatalf("reversal %+v, want applied", r)
		}
	}
	if e.fake.IsBanned("walter", "messaging:ov") {
		t.Fatal("walter is still banned in messaging:ov")
	}
	if unbans := e.fake.Calls(streamtest.RouteUnban); len(unbans) != 1 || unbans[0].Query.Get("channel_cid") != "messaging:ov" {
		t.Fatalf("unban calls = %d, want one in messaging:ov (a channel-only ban)", len(unbans))
	}
	if m, _ := e.fake.Message("m-many"); m.Deleted {
		t.Fatal("m-many is still deleted")
	}
	if f := e.fake.Flags(); len(f) != 0 {
		t.Fatalf("flags at Stream = %+v, want none", f)
	}
	if m, ok := e.fake.Message(warning); !ok || !m.HardDeleted {
		t.Fatalf("warning %s = %+v, want hard-deleted", warning, m)
	}
	for route, n := range map[string]int{streamtest.RouteUnflag: 2, streamtest.RouteUndeleteMessage: 1, streamtest.RouteUnmute: 0} {
		if got := len(e.fake.Calls(route)); got != n {
			t.Fatalf("%s: got %d calls, want %d", route, got, n)
		}
	}

	// A hard delete cannot be undone; an applied mute can.
	hardEvent, hardDecision := e.record(t, "xavier", "m-hard",
		policy.Action{Type: policy.ActionDelete, RuleID: "r4", Hard: true}, policy.Action{Type: policy.ActionMute, RuleID: "r4", TimeoutMinutes: 30})
	e.waitEnded(t, 2, "a.event_id = $1", hardEvent)
	res = e.overturn(t, appeals.OverturnRequest{DecisionID: hardDecision})
	if res.Actions[0].Disposition != "nothing_to_undo" || res.Actions[0].Note != "a hard delete cannot be undone" ||
		res.Actions[1].Disposition != "reversed" || res.Actions[1].ReversalType != "unmute" {
		t.Fatalf("result = %+v, want the hard delete with nothing to undo and the mute reversed", res.Actions)
	}
	if rev := e.waitEnded(t, 1, "a.overturn_id = $1", res.OverturnID)[0]; rev.Outcome != "applied" {
		t.Fatalf("unmute = %+v, want applied", rev)
	}
	if e.fake.IsBanned("xavier", "") {
		t.Fatal("xavier is still silenced at Stream after the mute's overturn")
	}
}

// TestOverturnImmunity: after an overturn, the same rule's actions against
// the same user are suppressed (recorded, counted, logged, not sent) until
// the window ends; another rule, or another user, is not immune.
func TestOverturnImmunity(t *testing.T) {
	t.Parallel()
	e := newOverturnEnv(t, overturnOptions{})
	e.start(t)
	eventID, _ := e.record(t, "yvonne", "m-imm-1", ban("r-imm"))
	orig := e.waitEnded(t, 1, "a.event_id = $1", eventID)[0]
	res := e.overturn(t, appeals.OverturnRequest{ActionID: orig.ID})
	e.waitEnded(t, 1, "a.overturn_id = $1", res.OverturnID)

	again, _ := e.record(t, "yvonne", "m-imm-2", ban("r-imm"), policy.Action{Type: policy.ActionFlag, RuleID: "r-imm"},
		policy.Action{Type: policy.ActionMute, RuleID: "r-other", TimeoutMinutes: 15})
	got := e.waitEnded(t, 3, "a.event_id = $1", again)
	wantReason := fmt.Sprintf("rule r-imm may not act against user yvonne until %s: overturn %d by alice",
		res.ImmuneUntil.UTC().Format(time.RFC3339), res.OverturnID)
	if got[0].Outcome != "suppressed" || got[0].Reason != wantReason || got[1].Outcome != "suppressed" {
		t.Fatalf("r-imm's actions = %+v, want suppressed: %q", got[:2], wantReason)
	}
	if got[2].Outcome != "applied" {
		t.Fatalf("r-other's mute = %+v, want applied (not immune, and not superseded by the suppressed ban)", got[2])
	}
	other, _ := e.record(t, "zed", "m-imm-3", ban("r-imm"))
	if a := e.waitEnded(t, 1, "a.event_id = $1", other)[0]; a.Outcome != "applied" {
		t.Fatalf("r-imm against another user = %+v, want applied", a)
	}
	if n := len(e.fake.Calls(streamtest.RouteBan)); n != 3 {
		t.Fatalf("got %d ban calls, want 3 (the overturned one, r-other's mute and zed's)", n)
	}
	if got := counterValue(t, e.metrics, "moderator_actions_total", map[string]string{"type": "ban", "outcome": "suppressed"}); got != 1 {
		t.Fatalf("moderator_actions_total{type=ban,outcome=suppressed} = %v, want 1", got)
	}
	if _, err := e.logs.waitFor(`"msg":"action suppressed: rule immune after an overturn".*"rule_id":"r-imm".*"overturn_id":`+fmt.Sprint(res.OverturnID), time.Second); err != nil {
		t.Fatalf("no log line for the suppressed action: %v", err)
	}

	// Past the window the rule acts again.
	later := res.ImmuneUntil.Add(time.Second)
	e.clock.Store(&later)
	after, _ := e.record(t, "yvonne", "m-imm-4", ban("r-imm"))
	if a := e.waitEnded(t, 1, "a.event_id = $1", after)[0]; a.Outcome != "applied" {
		t.Fatalf("after the window: %+v, want applied", a)
	}
	if !e.fake.IsBanned("yvonne", "") {
		t.Fatal("yvonne not banned after the window")
	}
}

// TestOverturnConcurrent: simultaneous overturns of one decision: one
// wins, the others find it overturned; one reversal per action.
func TestOverturnConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOverturnEnv(t, overturnOptions{})
	_, decisionID := e.record(t, "conrad", "m-conc", ban("r-conc"), policy.Action{Type: policy.ActionFlag, RuleID: "r-conc"})
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = e.ov.Overturn(ctx, appeals.OverturnRequest{DecisionID: decisionID, Reviewer: fmt.Sprintf("r%d", i), Role: "reviewer", Reason: "dup"})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrAlreadyOverturned):
			t.Fatalf("got %v, want nil or ErrAlreadyOverturned", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d overturns succeeded, want 1", won)
	}
	var overturns, reversals int
	if err := e.st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM overturns), (SELECT count(*) FROM action_reversals)`).Scan(&overturns, &reversals); err != nil {
		t.Fatal(err)
	}
	if overturns != 1 || reversals != 2 {
		t.Fatalf("got %d overturns and %d reversals, want 1 and 2", overturns, reversals)
	}
}

// TestOverturnDecisionSkipsOverturned: overturning a decision after one of
// its actions was overturned covers only the others.
func TestOverturnDecisionSkipsOverturned(t *testing.T) {
	t.Parallel()
	e := newOverturnEnv(t, overturnOptions{})
	eventID, decisionID := e.record(t, "quinn", "m-skip", ban("r-skip"), policy.Action{Type: policy.ActionFlag, RuleID: "r-skip"})
	acts := e.actions(t, "a.event_id = $1", eventID)
	first := e.overturn(t, appeals.OverturnRequest{ActionID: acts[0].ID})
	second := e.overturn(t, appeals.OverturnRequest{DecisionID: decisionID})
	if len(first.Actions) != 1 || first.Actions[0].ActionID != acts[0].ID || len(second.Actions) != 1 || second.Actions[0].ActionID != acts[1].ID {
		t.Fatalf("first %+v, second %+v: want the ban, then only the flag", first.Actions, second.Actions)
	}
	var n int
	if err := e.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM action_reversals WHERE action_id = ANY($1)`,
		[]int64{acts[0].ID, acts[1].ID}).Scan(&n); err != nil || n != 2 {
		t.Fatalf("got %d reversal rows (%v), want 2", n, err)
	}
}

// raceTransport runs hook once, when the first ban call is on its way to
// Stream, and then delivers the call whatever happened to the worker's
// context meanwhile: the ban takes effect after the overturn committed.
type raceTransport struct {
	once sync.Once
	hook func()
}

func (rt *raceTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/moderation/ban") {
		rt.once.Do(rt.hook)
		req = req.WithContext(context.WithoutCancel(req.Context()))
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestOverturnRaceWithWorker: a worker has read "no outcome" and its ban is
// in flight when the overturn records "superseded" and cancels the job;
// the ban then lands at Stream. The call was recorded as started before it
// was made, so the overturn counts it as one that may take effect and
// enqueues the unban itself; the unban waits until the ban's call has
// ended, and the worker, seeing the overturn's reversal, adds none. Stream
// ends unbanned: one ban, then one unban.
func TestOverturnRaceWithWorker(t *testing.T) {
	t.Parallel()
	rt := &raceTransport{}
	e := newOverturnEnv(t, overturnOptions{transport: rt})
	eventID, _ := e.record(t, "rita", "m-race", ban("r-race"))
	orig := e.actions(t, "a.event_id = $1", eventID)[0]
	var (
		res        appeals.OverturnResult
		ovErr      error
		overturned = make(chan struct{})
	)
	rt.hook = func() {
		defer close(overturned)
		res, ovErr = e.ov.Overturn(context.Background(), appeals.OverturnRequest{ActionID: orig.ID, Reviewer: "alice", Role: "reviewer", Reason: "race"})
	}
	e.start(t)
	<-overturned
	if ovErr != nil {
		t.Fatalf("overturn during the call: %v", ovErr)
	}
	if res.Actions[0].Disposition != "reversed" {
		t.Fatalf("result = %+v, want reversed (a call started, not yet answered)", res.Actions)
	}
	rev := e.waitEnded(t, 1, "a.reverses_action_id = $1", orig.ID)[0]
	wantKey := fmt.Sprintf("o%d-a%d", res.OverturnID, orig.ID)
	if rev.Type != "unban" || rev.Key != wantKey || rev.Overturn != res.OverturnID || rev.Outcome != "applied" {
		t.Fatalf("reversal = %+v, want an applied unban keyed %s", rev, wantKey)
	}
	bans, unbans := e.fake.Calls(streamtest.RouteBan), e.fake.Calls(streamtest.RouteUnban)
	if len(bans) != 1 || bans[0].Status != 200 || len(unbans) != 1 || unbans[0].At.Before(bans[0].At) {
		t.Fatalf("got %d ban and %d unban calls, want one ban then one unban", len(bans), len(unbans))
	}
	if e.fake.IsBanned("rita", "") {
		t.Fatal("rita is banned at Stream after the overturn")
	}
	if got := e.actions(t, "a.id = $1", orig.ID)[0]; got.Outcome != "superseded" {
		t.Fatalf("the ban's outcome = %q, want superseded (the overturn's)", got.Outcome)
	}
	// The call is on record with its answer, and only the overturn's
	// reversal exists: the worker added none of its own.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var answered, reversals int
		if err := e.st.Pool().QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM action_attempts WHERE action_id = $1 AND attempt = 1 AND http_status = 200),
			(SELECT count(*) FROM actions WHERE reverses_action_id = $1)`, orig.ID).Scan(&answered, &reversals); err != nil {
			t.Fatal(err)
		}
		if answered == 1 && reversals == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("answered attempts %d, reversals %d; want 1 and 1", answered, reversals)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOverturnPendingAfterLostAnswer: a ban whose first call got no answer
// (Stream may have applied it) waits for its retry when it is overturned:
// it is cancelled and also reversed, so Stream ends unbanned.
func TestOverturnPendingAfterLostAnswer(t *testing.T) {
	t.Parallel()
	e := newOverturnEnv(t, overturnOptions{retryBase: time.Hour}) // the retry would come long after the test
	e.fake.Script(streamtest.RouteBan, streamtest.ApplyThenDisconnect())
	e.start(t)
	eventID, _ := e.record(t, "sybil", "m-lost", ban("r-lost"))
	orig := e.actions(t, "a.event_id = $1", eventID)[0]
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := e.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM action_attempts WHERE action_id = $1`, orig.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ban was never attempted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !e.fake.IsBanned("sybil", "") {
		t.Fatal("the lost call did not ban sybil at the fake")
	}
	res := e.overturn(t, appeals.OverturnRequest{ActionID: orig.ID})
	if a := res.Actions[0]; a.Disposition != "reversed" || a.ReversalType != "unban" {
		t.Fatalf("result = %+v, want reversed by an unban", res.Actions)
	}
	e.waitEnded(t, 1, "a.overturn_id = $1", res.OverturnID)
	if got := e.actions(t, "a.id = $1", orig.ID)[0]; got.Outcome != "superseded" {
		t.Fatalf("the ban's outcome = %q, want superseded", got.Outcome)
	}
	if e.fake.IsBanned("sybil", "") || len(e.fake.Calls(streamtest.RouteBan)) != 1 {
		t.Fatalf("banned %t after %d ban calls, want unbanned after 1", e.fake.IsBanned("sybil", ""), len(e.fake.Calls(streamtest.RouteBan)))
	}
}

// TestOverturnDryRun: in dry run a reversal is recorded with the request
// it would have sent, and nothing reaches Stream.
func TestOverturnDryRun(t *testing.T) {
	t.Parallel()
	live := newOverturnEnv(t, overturnOptions{})
	live.start(t)
	eventID, _ := live.record(t, "uma", "m-dry", policy.Action{Type: policy.ActionBan, RuleID: "r-dry", ChannelOnly: true})
	orig := live.waitEnded(t, 1, "a.event_id = $1", eventID)[0]
	calls := len(live.fake.Requests())

	dry := newOverturnEnvOn(t, live.st, live.fake, overturnOptions{dryRun: true})
	res := dry.overturn(t, appeals.OverturnRequest{ActionID: orig.ID})
	rev := dry.actions(t, "a.overturn_id = $1", res.OverturnID)[0]
	if rev.Outcome != "dry_run" {
		t.Fatalf("reversal = %+v, want dry_run", rev)
	}
	var req []byte
	if err := dry.st.Pool().QueryRow(context.Background(), `SELECT request FROM action_outcomes WHERE action_id = $1`, rev.ID).Scan(&req); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Method, Path string
		Query        map[string]string
	}
	if err := json.Unmarshal(req, &r); err != nil {
		t.Fatal(err)
	}
	if r.Method != "DELETE" || r.Path != "/moderation/ban" || r.Query["target_user_id"] != "uma" || r.Query["channel_cid"] != "messaging:ov" {
		t.Fatalf("recorded request = %s, want the channel unban of uma", req)
	}
	if got := counterValue(t, dry.metrics, "moderator_actions_total", map[string]string{"type": "unban", "outcome": "dry_run"}); got != 1 {
		t.Fatalf("moderator_actions_total{type=unban,outcome=dry_run} = %v, want 1", got)
	}
	if n := len(live.fake.Requests()); n != calls {
		t.Fatalf("got %d requests at Stream after the dry-run overturn, want %d", n, calls)
	}
}

// counterValue is the value of reg's counter name with the given labels,
// 0 when it was never counted.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := len(m.GetLabel()) == len(labels)
			for _, lp := range m.GetLabel() {
				match = match && labels[lp.GetName()] == lp.GetValue()
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// BenchmarkOverturn measures one overturn of an applied ban: the locks,
// the overturn, its reversal action and job, the immunity and the staff
// audit row, in one transaction (the reversal's call to Stream is not
// included: the workers are not started).
func BenchmarkOverturn(b *testing.B) {
	e := newOverturnEnv(b, overturnOptions{})
	ctx := context.Background()
	ids := make([]int64, b.N)
	for i := range b.N {
		eventID, _ := e.record(b, fmt.Sprintf("bench-user-%d", i), fmt.Sprintf("bench-m-%d", i), ban("r-bench"))
		if err := e.st.Pool().QueryRow(ctx, `SELECT id FROM actions WHERE event_id = $1`, eventID).Scan(&ids[i]); err != nil {
			b.Fatal(err)
		}
		if _, err := e.st.RecordOutcome(ctx, store.OutcomeRow{ActionID: ids[i], Outcome: store.OutcomeApplied}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := e.ov.Overturn(ctx, appeals.OverturnRequest{ActionID: ids[i], Reviewer: "alice", Role: "reviewer", Reason: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}
