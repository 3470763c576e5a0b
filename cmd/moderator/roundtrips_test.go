package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/actions"
	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// TestDryRunActionsRoundTrips: in dry run, a batch whose decision asks for
// actions costs three round trips through the intake's hooks: BEGIN with
// the events' insert; the decision with the actions' insert and the
// immunities' read; the dry-run outcomes with COMMIT. The actions and
// their outcomes are committed with the event.
func TestDryRunActionsRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, trips := storetest.TracedStore(t)
	pool := st.Pool()
	runner, err := actions.NewRunner(actions.ClientConfig{APIKey: "k", APISecret: "s", BaseURL: "http://127.0.0.1:1", BotUserID: "bot"},
		actions.Config{DryRun: true, Ledger: storeLedger{st: st}, Logger: slog.New(slog.DiscardHandler),
			Metrics: actions.NewMetrics(prometheus.NewRegistry(), pool)})
	if err != nil {
		t.Fatal(err)
	}
	hooks := store.Hooks{Early: linkBeforeSend(slog.New(slog.DiscardHandler)), Queue: enqueueActions(runner), Quiet: actionsQuiet}

	body := []byte(`{"type":"message.new","cid":"messaging:rt","channel_type":"messaging","channel_id":"rt",
		"message":{"id":"rt-1","text":"spam","user":{"id":"mallory"}},"user":{"id":"mallory"}}`)
	ev, err := policy.ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	acts := []policy.Action{{Type: policy.ActionFlag, RuleID: "spam"}, {Type: policy.ActionMute, RuleID: "spam", TimeoutMinutes: 60},
		{Type: policy.ActionFlag, RuleID: "spam-again"}}
	rec := store.EventRecord{WebhookID: "rt-1", BodySHA256: sha256.Sum256(body), Attempt: 1, APIKey: "k", Payload: body, Event: ev,
		Decision: &policy.Decision{RuleSetVersion: "v1", Actions: acts,
			Matches: []policy.Match{{RuleID: "spam", Mode: policy.ModeEnforce, Actions: acts}}}}
	trips.Take()
	res, err := st.RecordEventsWith(ctx, []store.EventRecord{rec}, hooks)
	if err != nil {
		t.Fatal(err)
	}
	if got := trips.Take(); fmt.Sprint(got) != fmt.Sprint([]string{"batch", "batch", "batch"}) {
		t.Errorf("round trips %v, want three pipelines", got)
	}
	rows, err := pool.Query(ctx, `SELECT a.type, a.rule_id, o.outcome FROM actions a JOIN action_outcomes o ON o.action_id = a.id
		WHERE a.event_id = $1 ORDER BY a.position`, res[0].EventID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var typ, rule, outcome string
		if err := rows.Scan(&typ, &rule, &outcome); err != nil {
			t.Fatal(err)
		}
		got = append(got, typ+" "+rule+" "+outcome)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"flag spam dry_run", "mute spam dry_run", "flag spam-again superseded"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("actions and outcomes %q, want %q", got, want)
	}
}

// TestActionsQuiet: the intake's queue hook says it is quiet exactly for
// the records it queues nothing for, so a batch committed with its insert
// never skips an action (store.Hooks.Quiet). Links to before-send
// decisions go with the insert (linkBeforeSend, an early hook), so they
// keep no batch from committing early.
func TestActionsQuiet(t *testing.T) {
	t.Parallel()
	st, _ := storetest.TracedStore(t)
	runner, err := actions.NewRunner(actions.ClientConfig{APIKey: "k", APISecret: "s", BaseURL: "http://127.0.0.1:1", BotUserID: "bot"},
		actions.Config{DryRun: true, Ledger: storeLedger{st: st}, Logger: slog.New(slog.DiscardHandler),
			Metrics: actions.NewMetrics(prometheus.NewRegistry(), st.Pool())})
	if err != nil {
		t.Fatal(err)
	}
	hook := enqueueActions(runner)
	rec := func(body string, d *policy.Decision, own bool) store.EventRecord {
		ev, err := policy.ParseEvent([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return store.EventRecord{WebhookID: body, BodySHA256: sha256.Sum256([]byte(body)), Payload: []byte(body), Event: ev, Decision: d, Own: own}
	}
	msg := `{"type":"message.new","cid":"messaging:q","message":{"id":"q-1","text":"hi","user":{"id":"u"}},"user":{"id":"u"}}`
	bs := `{"type":"before_send","cid":"messaging:q","message":{"id":"q-2","text":"darn","user":{"id":"u"}},"user":{"id":"u"}}`
	flag := []policy.Action{{Type: policy.ActionFlag, RuleID: "r"}}
	tests := []struct {
		name  string
		rec   store.EventRecord
		quiet bool
	}{
		{"a reaction", rec(`{"type":"reaction.new","message":{"id":"q-1"},"user":{"id":"u"}}`, nil, false), true},
		{"a channel event", rec(`{"type":"channel.created","cid":"messaging:q"}`, nil, false), true},
		{"a message no rule matched", rec(msg, nil, false), true},
		{"the service's own message, with actions", rec(msg, &policy.Decision{RuleSetVersion: "v", Actions: flag}, true), true},
		{"a before-send call rewritten", rec(bs, &policy.Decision{RuleSetVersion: "v", Actions: flag, Rewrite: &policy.Rewrite{Text: "****"}}, false), true},
		{"an edit with actions", rec(`{"type":"message.updated","message":{"id":"q-3","user":{"id":"u"}},"user":{"id":"u"}}`,
			&policy.Decision{RuleSetVersion: "v", Actions: flag, Matches: []policy.Match{{RuleID: "r", Mode: policy.ModeEnforce, Actions: flag}}}, false), false},
	}
	for _, tt := range tests {
		if got := actionsQuiet([]store.EventRecord{tt.rec}); got != tt.quiet {
			t.Errorf("%s: quiet %v, want %v", tt.name, got, tt.quiet)
		}
		var w store.Writes
		then, err := hook(context.Background(), &w, []store.NewEvent{{EventID: 1, Record: &tt.rec}})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if queued := w.Len() > 0 || then != nil; queued == tt.quiet {
			t.Errorf("%s: the hooks queued %d statements (a continuation: %v), yet quiet is %v", tt.name, w.Len(), then != nil, tt.quiet)
		}
	}
	all := make([]store.EventRecord, 0, len(tests))
	for _, tt := range tests {
		all = append(all, tt.rec)
	}
	if actionsQuiet(all) {
		t.Error("a batch with an edit to act on says it is quiet")
	}
}
