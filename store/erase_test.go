package store_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// The erased user's secret word: it appears in every kind of row an
// erasure must reach, and nowhere after it. The other user's word must stay.
const (
	secret    = "quokkasecret"
	otherText = "wombatwords"
)

// erasureSeed is what seedErasure wrote: ids to check the skeleton by.
type erasureSeed struct {
	eveNew, eveOld, bobQuote, eveReacts, bobReacts, carol int64
}

// seedErasure records, as the service would, the content of user "eve"
// across two months of partitions and every table that keeps text, plus
// the messages of bob (one quoting eve) and carol.
func seedErasure(t *testing.T, st *store.Store) erasureSeed {
	t.Helper()
	ctx := context.Background()
	// The months of the test: last month's partitions, as retention's
	// upkeep would have made them.
	if _, err := st.Pool().Exec(ctx, `SELECT moderator_ensure_partitions(now() - interval '40 days', 1)`); err != nil {
		t.Fatal(err)
	}
	dec := &policy.Decision{RuleSetVersion: "v7",
		Matches: []policy.Match{{RuleID: "no-quokkas", Mode: policy.ModeEnforce, When: `"x" in text.words`, Source: "q.yaml:3",
			Evidence: map[string]any{`contains_any(text.words, "animals")`: []string{secret}, "counts.user_messages": 3},
			Reason:   "said " + secret,
			Actions:  []policy.Action{{Type: policy.ActionFlag, RuleID: "no-quokkas", Reason: "said " + secret}}}},
		Actions: []policy.Action{{Type: policy.ActionFlag, RuleID: "no-quokkas", Reason: "said " + secret}},
		Errors:  []policy.RuleError{{RuleID: "broken", Error: "cannot compare " + secret}}}
	var s erasureSeed
	rec := func(id, body string, at time.Time, d *policy.Decision) int64 {
		r := record(t, id, body)
		r.ReceivedAt, r.Decision = at, d
		res, err := st.RecordEvent(ctx, r)
		if err != nil || res.EventID == 0 {
			t.Fatalf("record %s: %+v, %v", id, res, err)
		}
		return res.EventID
	}
	now, old := time.Now(), time.Now().AddDate(0, 0, -40)
	eve := `{"id":"eve","name":"Eve ` + secret + `","role":"user","image":"https://x/` + secret + `.png"}`
	s.eveNew = rec("e1", `{"type":"message.new","cid":"messaging:zoo","created_at":"2026-12-01T10:00:00Z","message":{"id":"m-eve-1","text":"I love `+secret+`","html":"<p>`+secret+`</p>","user":`+eve+`,"attachments":[{"type":"image","title":"`+secret+`.jpg"}],"created_at":"2026-12-01T10:00:00Z"},"user":`+eve+`}`, now, dec)
	// \u0000 cannot be stored in jsonb: the signed bytes go to event_raw_bodies.
	s.eveOld = rec("e2", `{"type":"message.new","cid":"messaging:zoo","message":{"id":"m-eve-0","text":"old `+secret+`\u0000","user":`+eve+`},"user":`+eve+`}`, old, dec)
	s.bobQuote = rec("b1", `{"type":"message.new","cid":"messaging:zoo","message":{"id":"m-bob-1","text":"`+otherText+`","user":{"id":"bob"},"quoted_message_id":"m-eve-1","quoted_message":{"id":"m-eve-1","text":"I love `+secret+`","user":`+eve+`}},"user":{"id":"bob"}}`, now, nil)
	s.eveReacts = rec("e3", `{"type":"reaction.updated","cid":"messaging:zoo","reaction":{"type":"like","user":`+eve+`},"message":{"id":"m-bob-1","text":"`+otherText+`","user":{"id":"bob"}},"user":`+eve+`}`, now, nil)
	// Bob's reaction to eve's message: its subject and actor are bob, yet
	// it carries eve's message and text.
	s.bobReacts = rec("b2", `{"type":"reaction.updated","cid":"messaging:zoo","reaction":{"type":"love","user":{"id":"bob"}},"message":{"id":"m-eve-1","text":"I love `+secret+`","user":`+eve+`},"user":{"id":"bob","name":"Bob"}}`, now, nil)
	s.carol = rec("c1", `{"type":"message.new","cid":"messaging:zoo","message":{"id":"m-carol","text":"carol `+otherText+`","user":{"id":"carol"}},"user":{"id":"carol"}}`, old, nil)
	bs := rec("e4", `{"type":"before_message_send","message":{"text":"`+secret+` again"},"user":`+eve+`}`, now, nil)

	key := policy.MessageKey("eve", "messaging:zoo", secret+" again")
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO actions (event_id, position, rule_id, type, target_user_id, message_id, params, idempotency_key)
			VALUES ($1, 0, 'no-quokkas', 'flag', 'eve', 'm-eve-1', $2, 'erase-test-0')`,
			[]any{s.eveNew, `{"type":"flag","rule_id":"no-quokkas","reason":"said ` + secret + `","words":["` + secret + `"]}`}},
		{`INSERT INTO action_outcomes (action_id, outcome, request)
			SELECT id, 'dry_run', $1::jsonb FROM actions WHERE idempotency_key = 'erase-test-0'`,
			[]any{`{"target_user_id":"eve","reason":"said ` + secret + `"}`}},
		{`INSERT INTO before_send_keys (event_id, link_key, outcome) VALUES ($1, $2, 'rewrite')`, []any{bs, key[:]}},
		{`INSERT INTO quarantine (attempt, api_key, compressed, body_sha256, body, event_type, headers, error)
			VALUES (1, 'k', false, '\x01', $1, 'message.new', '{}', 'invalid input: ` + secret + `')`,
			[]any{[]byte(`{"type":"message.new","user":{"id":"eve"},"message":{"text":"` + secret + `\xff`)}},
		{`INSERT INTO appeals (user_id, decision_id, statement, source, recorded_by)
			SELECT 'eve', id, 'my ` + secret + ` was fine', 'email', 'ann' FROM decisions WHERE event_id = $1`, []any{s.eveNew}},
		{`INSERT INTO backtests (requested_by, role, params, candidate_version, status, finished_at, report)
			VALUES ('ann', 'reviewer', '{}', 'v8', 'done', now(), $1)`,
			[]any{`{"added":{"samples":[{"event_id":1,"user_id":"eve","text":"` + secret + `","evidence":{"x":"` + secret + `"}},{"event_id":2,"user_id":"bob","text":"` + otherText + `"}]}}`}},
		{`INSERT INTO counter_marks (event_id, user_id, channel_cid, at, links, fingerprint, young)
			VALUES ($1, 'eve', 'messaging:zoo', now(), 0, 42, false)`, []any{s.eveNew}},
	} {
		if _, err := st.Pool().Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if _, err := st.IndexEventWords(ctx, 100); err != nil {
		t.Fatal(err)
	}
	return s
}

// rowsHolding returns "table: row" for every row of every table (partitions
// and all, words and bytes included) whose text holds word, as a dump of
// the database would show it.
func rowsHolding(t *testing.T, st *store.Store, word string) []string {
	t.Helper()
	ctx := context.Background()
	tables, err := pgx.CollectRows(must(st.Pool().Query(ctx, `SELECT c.oid::regclass::text FROM pg_class c
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1`)), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, tbl := range tables {
		rows, err := pgx.CollectRows(must(st.Pool().Query(ctx, `SELECT x::text FROM `+tbl+` x
			WHERE strpos(lower(x::text), $1) > 0 OR strpos(x::text, $2) > 0`, word, hex.EncodeToString([]byte(word)))),
			pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", tbl, err)
		}
		for _, r := range rows {
			found = append(found, tbl+": "+r)
		}
	}
	return found
}

func must(rows pgx.Rows, err error) pgx.Rows {
	if err != nil {
		panic(err)
	}
	return rows
}

// skeleton is what an erasure keeps: per event its type, ids and times,
// with its decision's rule set, rules and action types, and the actions'
// types and outcomes.
func skeleton(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := pgx.CollectRows(must(st.Pool().Query(context.Background(), `
		SELECT concat_ws(' | ', e.id, e.type, e.user_id, e.actor_id, e.message_id, e.channel_cid, e.received_at,
			e.payload #>> '{message,id}', e.payload #>> '{message,user,id}', e.payload #>> '{message,created_at}',
			d.rule_set_version, d.matched_rules::text, d.enforced_rules::text, d.decided_at,
			(SELECT string_agg(m ->> 'rule_id' || ':' || (m ->> 'mode') || ':' || (m ->> 'when'), ',') FROM jsonb_array_elements(d.matches) m),
			(SELECT string_agg(a ->> 'type', ',') FROM jsonb_array_elements(d.actions) a),
			(SELECT string_agg(x.type || ':' || o.outcome, ',') FROM actions x JOIN action_outcomes o ON o.action_id = x.id WHERE x.event_id = e.id))
		FROM events e LEFT JOIN decisions d ON d.event_id = e.id ORDER BY e.id`)), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func countersOf(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := pgx.CollectRows(must(st.Pool().Query(context.Background(),
		`SELECT x::text FROM counter_marks x ORDER BY 1`)), pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestEraseUser erases a user through the service role, across two months
// of partitions, and checks that no row of the database holds their text
// any more, that the skeleton of the trail and the counters are as they
// were, that the act is recorded, that the others' text stays, and that a
// second erasure changes nothing.
func TestEraseUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewDatabase(t)
	owner := openURL(t, dbURL)
	if _, err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seed := seedErasure(t, owner)
	if got := rowsHolding(t, owner, secret); len(got) < 10 {
		t.Fatalf("the seed holds the secret in %d rows, want it everywhere:\n%s", len(got), strings.Join(got, "\n"))
	}
	var months int
	if err := owner.Pool().QueryRow(ctx, `SELECT count(DISTINCT tableoid) FROM events WHERE user_id = 'eve'`).Scan(&months); err != nil || months != 2 {
		t.Fatalf("eve's events sit in %d partitions (%v), want 2", months, err)
	}
	before, counters := skeleton(t, owner), countersOf(t, owner)

	svc := loginAs(t, owner, dbURL, store.ServiceRole)
	got, err := svc.EraseUser(ctx, "eve", store.StaffAct{Actor: "ann", Role: "admin", Reason: "GDPR request 12"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"events": 4, "quoting_events": 1, "message_copies": 1, "raw_bodies": 1, "search_words": 5, "decisions": 2,
		"actions": 1, "action_outcomes": 1, "before_send_keys": 1, "quarantine": 1, "appeals": 1, "backtests": 1, "spool": 2}
	if diff := cmp.Diff(want, got.Counts); diff != "" {
		t.Errorf("erased counts (-want +got):\n%s", diff)
	}
	if left := rowsHolding(t, owner, secret); len(left) > 0 {
		t.Errorf("the secret is still in %d rows:\n%s", len(left), strings.Join(left, "\n"))
	}
	if kept := rowsHolding(t, owner, otherText); len(kept) < 3 {
		t.Errorf("the others' text is in %d rows, want bob's message, eve's reaction to it, carol's and a sample:\n%s",
			len(kept), strings.Join(kept, "\n"))
	}
	if diff := cmp.Diff(before, skeleton(t, owner)); diff != "" {
		t.Errorf("the skeleton changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(counters, countersOf(t, owner)); diff != "" {
		t.Errorf("the counters changed (-before +after):\n%s", diff)
	}
	checkRedactedShape(t, owner, seed)

	var actor, role, reason string
	var params []byte
	if err := owner.Pool().QueryRow(ctx, `SELECT actor, role, reason, params FROM staff_audit
		WHERE act = $1 AND target_user_id = 'eve'`, store.ActErase).Scan(&actor, &role, &reason, &params); err != nil {
		t.Fatalf("the erasure's staff audit row: %v", err)
	}
	var recorded map[string]int64
	if err := json.Unmarshal(params, &recorded); err != nil || actor != "ann" || role != "admin" || reason != "GDPR request 12" ||
		!cmp.Equal(recorded, want) {
		t.Errorf("staff audit row: %s %s %q %s (%v), want ann admin with the counts", actor, role, reason, params, err)
	}

	again, err := svc.EraseUser(ctx, "eve", store.StaffAct{Actor: store.ActorSystem, Role: store.ActorSystem}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for kind, n := range again.Counts {
		if n != 0 {
			t.Errorf("second erasure: %s = %d, want 0 (nothing left)", kind, n)
		}
	}
	if len(again.Counts) != len(store.ErasureKinds) {
		t.Errorf("second erasure answered kinds %v, want %v", again.Counts, store.ErasureKinds)
	}
}

// checkRedactedShape checks what the redacted rows look like: the marker
// where the text was, ids and types kept, and bob's own text in his
// message quoting eve.
func checkRedactedShape(t *testing.T, st *store.Store, seed erasureSeed) {
	t.Helper()
	ctx := context.Background()
	var text, name, quoted, bobText, evidence, reason string
	if err := st.Pool().QueryRow(ctx, `SELECT payload #>> '{message,text}', payload #>> '{user,name}' FROM events WHERE id = $1`,
		seed.eveNew).Scan(&text, &name); err != nil || text != store.Redacted || name != store.Redacted {
		t.Errorf("eve's message: text %q, name %q (%v), want %q", text, name, err, store.Redacted)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT payload #>> '{message,quoted_message,text}', payload #>> '{message,text}'
		FROM events WHERE id = $1`, seed.bobQuote).Scan(&quoted, &bobText); err != nil || quoted != store.Redacted || bobText != otherText {
		t.Errorf("bob quoting eve: quoted %q, his text %q (%v), want %q and %q", quoted, bobText, err, store.Redacted, otherText)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT matches -> 0 -> 'evidence' ->> 'counts.user_messages', matches -> 0 ->> 'reason'
		FROM decisions WHERE event_id = $1`, seed.eveNew).Scan(&evidence, &reason); err != nil ||
		evidence != store.Redacted || reason != store.Redacted {
		t.Errorf("eve's decision: evidence %q, reason %q (%v), want the marker", evidence, reason, err)
	}
	var reaction, reactor, copied string
	if err := st.Pool().QueryRow(ctx, `SELECT payload #>> '{reaction,type}', payload #>> '{user,name}', payload #>> '{message,text}'
		FROM events WHERE id = $1`, seed.bobReacts).Scan(&reaction, &reactor, &copied); err != nil ||
		reaction != "love" || reactor != "Bob" || copied != store.Redacted {
		t.Errorf("bob's reaction to eve's message: %q by %q on %q (%v), want love by Bob on the marker", reaction, reactor, copied, err)
	}
	var hits int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM event_words WHERE words @@ to_tsquery('simple', 'redacted')`).Scan(&hits); err != nil || hits != 5 {
		t.Errorf("search for the marker: %d events (%v), want eve's 4 texts and bob's copy of one", hits, err)
	}
}

// TestEraseUserRefusals: a bad user id is refused with the field named and
// nothing written; the service role still cannot update an audit row by
// itself, even with the erasure's flag set, and the auditor cannot erase.
func TestEraseUserRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewDatabase(t)
	owner := openURL(t, dbURL)
	if _, err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seedErasure(t, owner)
	svc := loginAs(t, owner, dbURL, store.ServiceRole)
	for _, id := range []string{"", "  ", strings.Repeat("u", 256), "eve\n", "\xff"} {
		_, err := svc.EraseUser(ctx, id, store.StaffAct{Actor: "ann", Role: "admin"}, 0)
		if ie, ok := store.IsInputError(err); !ok || ie.Field != "user_id" {
			t.Errorf("erase %q: %v, want an input error on user_id", id, err)
		}
	}
	tx, err := svc.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('moderator.sanctioned_change', 'erasure', true)`); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, `UPDATE events SET payload = '{}' WHERE user_id = 'eve'`)
	refused(t, "service role updating with the erasure's flag", err)
	_ = tx.Rollback(ctx)

	auditor := loginAs(t, owner, dbURL, store.AuditorRole)
	_, err = auditor.EraseUser(ctx, "eve", store.StaffAct{Actor: "ann", Role: "admin"}, 0)
	refused(t, "auditor erasing", err)
	var n int
	if err := owner.Pool().QueryRow(ctx, `SELECT count(*) FROM staff_audit WHERE act = 'erase'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("refused erasures recorded %d acts (%v), want none", n, err)
	}
	if left := rowsHolding(t, owner, secret); len(left) < 10 {
		t.Errorf("after refused erasures the secret is in %d rows, want every seeded one", len(left))
	}
}

// TestRedactPayloadMatchesSQL: the Go redaction (the spool's) and the SQL
// one (the database's) make the same of every sample event, and keep the
// same keys.
func TestRedactPayloadMatchesSQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	var keep []string
	if err := st.Pool().QueryRow(ctx, `SELECT moderator_payload_keep()`).Scan(&keep); err != nil {
		t.Fatal(err)
	}
	goKeep := policy.RedactKeep()
	slices.Sort(keep)
	slices.Sort(goKeep)
	if diff := cmp.Diff(keep, goKeep); diff != "" {
		t.Errorf("kept keys, SQL (-) and Go (+):\n%s", diff)
	}
	var marker string
	if err := st.Pool().QueryRow(ctx, `SELECT moderator_redact('"x"', '{}')#>>'{}'`).Scan(&marker); err != nil || marker != store.Redacted {
		t.Errorf("the SQL marker: %q (%v), want %q", marker, err, store.Redacted)
	}
	files, err := filepath.Glob("../testdata/samples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("samples: %v %v", files, err)
	}
	files = append(files, "") // and an event with evidence, HTML and numbers of its own
	for _, f := range files {
		body := []byte(`{"type":"x","evidence":{"a":1,"b":["<b>"]},"n":1.5,"html":"<p>a & b</p>","e":"","user":{"id":"u","name":"N"}}`)
		if f != "" {
			if body, err = os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
		goRedacted, err := policy.RedactPayload(body)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var sqlRedacted string
		if err := st.Pool().QueryRow(ctx, `SELECT moderator_redact($1::jsonb, moderator_payload_keep())::text`, string(body)).Scan(&sqlRedacted); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var a, b any
		if err := errors.Join(json.Unmarshal(goRedacted, &a), json.Unmarshal([]byte(sqlRedacted), &b)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(b, a); diff != "" {
			t.Errorf("%s: SQL (-) and Go (+) redactions differ:\n%s", f, diff)
		}
		if strings.Contains(string(goRedacted), `"N"`) || !strings.Contains(string(goRedacted), fmt.Sprintf("%q", store.Redacted)) {
			t.Errorf("%s: redacted to %s", f, goRedacted)
		}
	}
}

// TestErasedSince: the users erased since a time, each with its latest
// erasure, from the erasures' records; other acts and older erasures are
// not listed.
func TestErasedSince(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	start := time.Now().Add(-time.Second)
	for _, u := range []string{"since-ann", "since-bob", "since-ann"} {
		if _, err := st.EraseUser(ctx, u, store.StaffAct{Actor: "ann", Role: "admin", Reason: "test"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RecordStaffAct(ctx, store.StaffAct{Actor: "ann", Role: "admin", Act: "timeline", TargetUserID: "since-carol"}); err != nil {
		t.Fatal(err)
	}
	got, err := st.ErasedSince(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id, at := range got {
		if strings.HasPrefix(id, "since-") {
			ids = append(ids, id)
			if at.Before(start) {
				t.Errorf("%s erased at %v, before the test started", id, at)
			}
		}
	}
	slices.Sort(ids)
	if diff := cmp.Diff([]string{"since-ann", "since-bob"}, ids); diff != "" {
		t.Errorf("erased users (-want +got):\n%s", diff)
	}
	later, err := st.ErasedSince(ctx, time.Now().Add(time.Hour))
	if err != nil || len(later) != 0 {
		t.Errorf("erased since an hour from now: %v (%v), want none", later, err)
	}
}

// TestRedactMessageMatchesSQL: the copy of a user's message in another's
// event is redacted the same in Go (the spool, the intake) as in SQL
// (moderator_erase_user), and the rest stays.
func TestRedactMessageMatchesSQL(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"reaction.updated","reaction":{"type":"love","user":{"id":"bob"}},` +
		`"message":{"id":"m1","text":"eve's <b>words</b>","user":{"id":"eve","name":"Eve"},"reaction_counts":{"love":2}},"user":{"id":"bob","name":"Bob"}}`)
	goRedacted, ok, err := policy.RedactMessage(body)
	if err != nil || !ok {
		t.Fatalf("RedactMessage: %v %v", ok, err)
	}
	var sqlRedacted string
	if err := storetest.Store(t).Pool().QueryRow(context.Background(), `SELECT jsonb_set($1::jsonb, '{message}',
		moderator_redact($1::jsonb -> 'message', moderator_payload_keep()))::text`, string(body)).Scan(&sqlRedacted); err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := errors.Join(json.Unmarshal(goRedacted, &a), json.Unmarshal([]byte(sqlRedacted), &b)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, a); diff != "" {
		t.Errorf("SQL (-) and Go (+) redactions differ:\n%s", diff)
	}
	if strings.Contains(string(goRedacted), "words") || !strings.Contains(string(goRedacted), `"Bob"`) {
		t.Errorf("redacted to %s, want eve's message redacted and bob's name kept", goRedacted)
	}
	if _, ok, err := policy.RedactMessage([]byte(`{"type":"user.updated","user":{"id":"eve"}}`)); ok || err != nil {
		t.Errorf("an event with no message: ok %v (%v), want false", ok, err)
	}
}
