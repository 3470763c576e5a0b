package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"moderator/store"
)

// TestSearchPlansUseIndexes seeds a history large enough for the planner
// to prefer indexes (seedBulk) and checks, with EXPLAIN, that no filtered
// search reads a whole audit table, and that the filters 0008 is for use
// its indexes.
func TestSearchPlansUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	seedBulk(t, st)
	from := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	filters := []store.AuditFilter{
		{UserID: "u7"}, {ChannelCID: "messaging:c9"}, {RuleID: "rule7"}, {MessageID: "m300"},
		{UserID: "u7", From: from, To: from.Add(time.Hour)}, {ChannelCID: "messaging:c9", RuleID: "rule9"},
	}
	type plan struct {
		name string
		sql  string
		args []any
		want string // an index the plan must use
	}
	var plans []plan
	for _, f := range filters {
		sql, args := store.EventsSQL(f)
		plans = append(plans, plan{fmt.Sprintf("events %+v", f), sql, args, ""})
		sql, args = store.DecisionsSQL(f)
		plans = append(plans, plan{fmt.Sprintf("decisions %+v", f), sql, args, ""})
		sql, args = store.ActionsSQL(f)
		var want string
		switch {
		case f.ChannelCID != "" && f.RuleID == "":
			want = "actions_channel_idx"
		case f.MessageID != "":
			want = "actions_message_idx"
		}
		plans = append(plans, plan{fmt.Sprintf("actions %+v", f), sql, args, want})
	}
	sql, args := store.TimelineSQL("u7", store.AuditFilter{})
	plans = append(plans, plan{"timeline", sql, args, ""})
	// Full-text search: a word in 8 of the 40,000 messages is found by the
	// text index.
	sql, args = store.EventsSQL(store.AuditFilter{Text: "w4242"})
	plans = append(plans, plan{"events text", sql, args, "event_words_words_idx"})
	at := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	for _, thread := range []bool{false, true} {
		for _, before := range []bool{false, true} {
			// A quiet channel's top-level messages; the thread is in the busy one.
			args := []any{"messaging:c9", at, int64(18009), 10}
			want := "events_channel_idx"
			if thread {
				args = []any{"messaging:c7", at, int64(18007), 10, "m7"}
				want = "events_thread_idx"
			}
			plans = append(plans, plan{fmt.Sprintf("conversation thread=%v before=%v", thread, before),
				store.ConversationSQL(thread, before), args, want})
		}
	}
	// An erasure's lookups (moderator_erase_user, the same conditions).
	plans = append(plans,
		plan{"erase: the user's events", `SELECT id FROM events WHERE user_id = $1`, []any{"u7"}, "events_user_idx"},
		plan{"erase: the events the user caused", `SELECT id FROM events WHERE actor_id = $1
			AND actor_id IS NOT NULL AND actor_id IS DISTINCT FROM user_id`, []any{"u7"}, "events_actor_idx"},
		plan{"erase: messages quoting the user", `SELECT id FROM events WHERE payload #>> '{message,quoted_message,user,id}' = $1
			AND payload #> '{message,quoted_message}' IS NOT NULL`, []any{"u7"}, "events_quoted_user_idx"},
		plan{"erase: others' events carrying the user's message", `SELECT id FROM events WHERE payload #>> '{message,user,id}' = $1
			AND payload #>> '{message,user,id}' IS DISTINCT FROM user_id`, []any{"u7"}, "events_message_author_idx"},
		plan{"erase: their decisions", `SELECT id FROM decisions WHERE event_id = ANY ($1)`, []any{[]int64{7, 8}}, "decisions_event_idx"})
	parents := partitionParents(t, st)
	for _, p := range plans {
		var out []byte
		if err := st.Pool().QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+p.sql, p.args...).Scan(&out); err != nil {
			t.Fatalf("%s: explain: %v", p.name, err)
		}
		var doc []struct{ Plan planNode }
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		doc[0].Plan.nameParents(parents)
		if seq := doc[0].Plan.seqScans(); len(seq) > 0 {
			t.Errorf("%s: sequential scan of %s:\n%s", p.name, strings.Join(seq, ", "), out)
		}
		if idx := doc[0].Plan.indexes(); p.want != "" && !slices.Contains(idx, p.want) {
			t.Errorf("%s: uses %v, want %s:\n%s", p.name, idx, p.want, out)
		}
	}
}

// seedBulk writes a large history straight in SQL: 40,000 events a second
// apart from 2026-11-01 (each saying "hello wN", N the event's number
// modulo 5,000) by 2,000 users in 200 channels (messaging:c7 busy
// with a quarter of them, and a thread of 40 replies to m7), a decision on
// every third event (400 rules), an action per decision, half of them
// applied, and an appeal on every 50th action; then ANALYZE.
func seedBulk(tb testing.TB, st *store.Store) {
	tb.Helper()
	ctx := context.Background()
	for _, stmt := range []string{
		`INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed, body_bytes, received_at, type,
			created_at, user_id, channel_cid, message_id, own, ignored, payload, rule_set_version)
		SELECT 'w' || i, sha256(('w' || i)::bytea), 1, 'k', false, 100,
			timestamptz '2026-11-01' + i * interval '1 second', 'message.new', NULL,
			'u' || (i % 2000), CASE WHEN i % 4 = 0 THEN 'messaging:c7' ELSE 'messaging:c' || (i % 200) END, 'm' || i, false, false,
			jsonb_build_object('type', 'message.new', 'message', jsonb_build_object('id', 'm' || i, 'text', 'hello w' || (i % 5000),
				'parent_id', CASE WHEN i % 1000 = 7 AND i > 7 THEN 'm7' END)), 'v1'
		FROM generate_series(1, 40000) AS i`,
		`INSERT INTO decisions (event_id, decided_at, rule_set_version, matched_rules, enforced_rules, user_id,
			channel_cid, message_id, matches, actions, errors)
		SELECT id, received_at, 'v1', ARRAY['rule' || (id % 400)], ARRAY['rule' || (id % 400)], user_id, channel_cid,
			message_id, jsonb_build_array(jsonb_build_object('rule_id', 'rule' || (id % 400), 'mode', 'enforce')),
			jsonb_build_array(jsonb_build_object('type', 'flag')), '[]'
		FROM events WHERE id % 3 = 0`,
		`INSERT INTO actions (event_id, position, rule_id, type, target_user_id, message_id, channel_cid, params,
			idempotency_key, created_at)
		SELECT event_id, 0, matched_rules[1], 'flag', user_id, message_id, channel_cid, '{}', 'k' || event_id, decided_at
		FROM decisions`,
		`INSERT INTO action_outcomes (action_id, outcome, at) SELECT id, 'applied', created_at FROM actions WHERE id % 2 = 0`,
		`INSERT INTO appeals (user_id, action_id, statement, source, recorded_by)
		SELECT target_user_id, id, 's', 'email', 'ann' FROM actions WHERE id % 50 = 0`,
		`INSERT INTO event_words SELECT id, received_at, to_tsvector('simple', coalesce(payload #>> '{message,text}', '')) FROM events`,
		`ANALYZE`,
	} {
		if _, err := st.Pool().Exec(ctx, stmt); err != nil {
			tb.Fatalf("%s: %v", stmt, err)
		}
	}
}

type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Plans    []planNode `json:"Plans"`
}

// partitionParents maps each partition of a table and each partition of
// an index to its parent: a plan names the partitions it reads, the test
// the tables and indexes of the schema. An empty partition (a month
// ahead) maps to "": reading it whole costs nothing, and the planner does.
func partitionParents(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), `SELECT c.relname::text,
			CASE WHEN c.relkind = 'r' AND c.reltuples <= 0 THEN '' ELSE p.relname::text END
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			t.Fatal(err)
		}
		out[child] = parent
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// nameParents renames the partitions the plan reads to their parents.
func (n *planNode) nameParents(parents map[string]string) {
	if p, ok := parents[n.Relation]; ok {
		n.Relation = p
	}
	if p, ok := parents[n.Index]; ok {
		n.Index = p
	}
	for i := range n.Plans {
		n.Plans[i].nameParents(parents)
	}
}

// indexes lists the indexes the plan uses.
func (n planNode) indexes() []string {
	var out []string
	if n.Index != "" {
		out = append(out, n.Index)
	}
	for _, c := range n.Plans {
		out = append(out, c.indexes()...)
	}
	return out
}

// seqScans lists the audit tables the plan reads whole.
func (n planNode) seqScans() []string {
	var out []string
	if n.NodeType == "Seq Scan" && n.Relation != "" && (n.Relation == "events" || n.Relation == "decisions" || n.Relation == "actions") {
		out = append(out, n.Relation)
	}
	for _, c := range n.Plans {
		out = append(out, c.seqScans()...)
	}
	return out
}
