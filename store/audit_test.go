package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"moderator/store"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// walk reads every page of a list with filter f and returns the ids in
// order; between pages it calls between (which may insert rows).
func walk[T any](t *testing.T, f store.AuditFilter, list func(store.AuditFilter) (store.Page[T], error), id func(T) int64, between func(page int)) []int64 {
	t.Helper()
	var ids []int64
	for page := 0; ; page++ {
		p, err := list(f)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		want := f.Limit
		if want == 0 {
			want = store.DefaultPageSize
		}
		if p.NextCursor != "" && len(p.Items) != want {
			t.Fatalf("page %d: %d items with a next page, want %d", page, len(p.Items), want)
		}
		for _, it := range p.Items {
			ids = append(ids, id(it))
		}
		if p.NextCursor == "" {
			return ids
		}
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
		if between != nil {
			between(page)
		}
		f.Cursor = p.NextCursor
	}
}

func inRange(at time.Time, f store.AuditFilter) bool {
	return (f.From.IsZero() || !at.Before(f.From)) && (f.To.IsZero() || at.Before(f.To))
}

// actionMatches is the model of the action type and outcome filters.
func actionMatches(a *seedAction, typ, outcome string) bool {
	if typ != "" && a.typ != typ {
		return false
	}
	switch outcome {
	case "":
		return true
	case store.OutcomePending:
		return a.outcome == ""
	case store.OutcomeOverturned:
		return a.overturned
	}
	return a.outcome == outcome
}

func (s *seed) wantEvents(f store.AuditFilter) []int64 {
	var evs []*seedEvent
	for _, e := range s.events {
		if (f.UserID != "" && e.user != f.UserID) || (f.MessageID != "" && e.message != f.MessageID) ||
			(f.ChannelCID != "" && e.channel != f.ChannelCID) || (f.EventType != "" && e.typ != f.EventType) ||
			(f.RuleID != "" && !slices.Contains(e.rules, f.RuleID)) || !inRange(e.at, f) {
			continue
		}
		if f.ActionType != "" || f.Outcome != "" {
			if !slices.ContainsFunc(e.actions, func(a *seedAction) bool { return actionMatches(a, f.ActionType, f.Outcome) }) {
				continue
			}
		}
		evs = append(evs, e)
	}
	newestFirst(evs, func(e *seedEvent) time.Time { return e.at }, func(e *seedEvent) int64 { return e.id })
	return ids(evs, func(e *seedEvent) int64 { return e.id })
}

func ids[T any](xs []T, id func(T) int64) []int64 {
	out := make([]int64, 0, len(xs))
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

// filters are the filters every search is checked with: each alone, some
// together, and the time range edges.
func (s *seed) filters() []store.AuditFilter {
	at := func(i int) time.Time { return s.base.Add(time.Duration(i) * time.Minute) }
	fs := []store.AuditFilter{
		{},
		{UserID: "alice"}, {UserID: "bob"}, {UserID: "nobody"},
		{MessageID: "m004"}, {MessageID: "m010"},
		{ChannelCID: "messaging:random"},
		{RuleID: "links"}, {RuleID: "caps"}, {RuleID: "profanity"},
		{EventType: "message.updated"}, {EventType: "user.banned"},
		{ActionType: "ban"}, {ActionType: "warn"},
		{UserID: "carol", ChannelCID: "messaging:general", RuleID: "links"},
		{ActionType: "ban", Outcome: store.OutcomeApplied},
		{From: at(10), To: at(20)},          // [10, 20): 10 in, 20 out
		{From: at(10).Add(time.Nanosecond)}, // just after 10: 10 out
		{To: at(5).Add(time.Nanosecond)},    // just after 5: 5 in
		{From: at(30), To: at(30)},          // empty
		{UserID: "bob", From: at(3), To: at(40)},
	}
	for _, o := range []string{store.OutcomeApplied, store.OutcomeFailed, store.OutcomeHeld, store.OutcomeDryRun,
		store.OutcomeSuperseded, store.OutcomeSuppressed, store.OutcomePending, store.OutcomeOverturned} {
		fs = append(fs, store.AuditFilter{Outcome: o})
	}
	return fs
}

func TestSearchEventsFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 60)
	for _, f := range s.filters() {
		for _, limit := range []int{0, 7} {
			f.Limit = limit
			got := walk(t, f, func(f store.AuditFilter) (store.Page[store.EventSummary], error) { return st.SearchEvents(ctx, f) },
				func(e store.EventSummary) int64 { return e.ID }, nil)
			if diff := cmp.Diff(s.wantEvents(f), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("filter %+v (-want +got):\n%s", f, diff)
			}
		}
	}
	// The filters the model checks must select something, or they prove little.
	for _, f := range []store.AuditFilter{{RuleID: "caps"}, {Outcome: store.OutcomeOverturned}, {Outcome: store.OutcomePending},
		{Outcome: store.OutcomeSuppressed}, {EventType: "user.banned"}, {MessageID: "m004"}} {
		if len(s.wantEvents(f)) == 0 {
			t.Errorf("seed has no event for %+v", f)
		}
	}
}

func TestSearchEventsRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 20)
	var ev *seedEvent
	for _, e := range s.events {
		if e.parent != "" && e.decisionID != 0 {
			ev = e
			break
		}
	}
	if ev == nil {
		t.Fatal("seed has no reply with a decision")
	}
	p, err := st.SearchEvents(ctx, store.AuditFilter{MessageID: ev.message})
	if err != nil {
		t.Fatal(err)
	}
	at := ev.at
	want := []store.EventSummary{{ID: ev.id, ReceivedAt: ev.at, Type: "message.new", CreatedAt: &at, UserID: ev.user,
		ActorID: ev.user, ChannelCID: ev.channel, MessageID: ev.message, ParentID: ev.parent, Text: ev.text,
		RuleSetVersion: "v1", DecisionID: ev.decisionID, MatchedRules: ev.rules}}
	if diff := cmp.Diff(want, p.Items, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestSearchPaginationWithInserts walks every page of each list while new
// rows arrive between pages: the walk must return exactly the rows that
// existed when it started (new ones are newer, so before the cursor), with
// no gap and no repeat, even when several rows share a time.
func TestSearchPaginationWithInserts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 45)
	next := 45
	insert := func(int) {
		s.addEvent(t, next)
		next++
	}
	for _, limit := range []int{1, 4, 50} {
		f := store.AuditFilter{Limit: limit, To: s.base.Add(45 * time.Minute)}
		want := s.wantEvents(f)
		got := walk(t, f, func(f store.AuditFilter) (store.Page[store.EventSummary], error) { return st.SearchEvents(ctx, f) },
			func(e store.EventSummary) int64 { return e.ID }, insert)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("limit %d, events (-want +got):\n%s", limit, diff)
		}
		// Open-ended: the rows inserted during the walk are newer than
		// its first page, so it sees the list as it was at the start.
		before := s.wantEvents(store.AuditFilter{})
		got = walk(t, store.AuditFilter{Limit: limit}, func(f store.AuditFilter) (store.Page[store.EventSummary], error) { return st.SearchEvents(ctx, f) },
			func(e store.EventSummary) int64 { return e.ID }, insert)
		if diff := cmp.Diff(before, got); diff != "" {
			t.Errorf("limit %d, open-ended walk with inserts (-want +got):\n%s", limit, diff)
		}
		// The same for decisions and actions (each insert adds both).
		before = s.wantDecisions(store.AuditFilter{})
		got = walk(t, store.AuditFilter{Limit: limit}, func(f store.AuditFilter) (store.Page[store.DecisionSummary], error) {
			return st.SearchDecisions(ctx, f)
		},
			func(d store.DecisionSummary) int64 { return d.ID }, insert)
		if diff := cmp.Diff(before, got); diff != "" {
			t.Errorf("limit %d, decisions with inserts (-want +got):\n%s", limit, diff)
		}
		before = s.wantActions(store.AuditFilter{})
		got = walk(t, store.AuditFilter{Limit: limit}, func(f store.AuditFilter) (store.Page[store.ActionDetail], error) { return st.SearchActions(ctx, f) },
			func(a store.ActionDetail) int64 { return a.ID }, insert)
		if diff := cmp.Diff(before, got); diff != "" {
			t.Errorf("limit %d, actions with inserts (-want +got):\n%s", limit, diff)
		}
		// A timeline: its entries, as (kind, id), before and during a walk.
		kinds := map[string]int64{store.KindEvent: 1, store.KindDecision: 2, store.KindAction: 3, store.KindAppeal: 4,
			store.KindAppealDecision: 5, store.KindOverturn: 6}
		key := func(e store.TimelineEntry) int64 { return kinds[e.Kind]<<40 | e.ID }
		full := walk(t, store.AuditFilter{Limit: 200}, func(f store.AuditFilter) (store.Page[store.TimelineEntry], error) {
			return st.Timeline(ctx, "alice", f)
		}, key, nil)
		got = walk(t, store.AuditFilter{Limit: limit}, func(f store.AuditFilter) (store.Page[store.TimelineEntry], error) {
			return st.Timeline(ctx, "alice", f)
		}, key, insert)
		if diff := cmp.Diff(full, got); diff != "" || len(full) < 20 {
			t.Errorf("limit %d, timeline with inserts, %d entries (-want +got):\n%s", limit, len(full), diff)
		}
	}
}

// TestSearchSameTime: rows that share a timestamp are ordered by id and
// split across pages without loss.
func TestSearchSameTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := &seed{st: st, base: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
	for i := range 9 {
		s.addEvent(t, i)
	}
	// Nine more at exactly the same instant as event 4.
	same := &seed{st: st, base: s.base.Add(4 * time.Minute)}
	for range 9 {
		same.addEvent(t, 0)
	}
	all := append(slices.Clone(s.events), same.events...)
	newestFirst(all, func(e *seedEvent) time.Time { return e.at }, func(e *seedEvent) int64 { return e.id })
	for _, limit := range []int{1, 2, 5} {
		got := walk(t, store.AuditFilter{Limit: limit}, func(f store.AuditFilter) (store.Page[store.EventSummary], error) { return st.SearchEvents(ctx, f) },
			func(e store.EventSummary) int64 { return e.ID }, nil)
		if diff := cmp.Diff(ids(all, func(e *seedEvent) int64 { return e.id }), got); diff != "" {
			t.Errorf("limit %d (-want +got):\n%s", limit, diff)
		}
	}
}

func TestSearchPageSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	seedHistory(t, st, 230)
	for _, tt := range []struct{ limit, want int }{{0, 50}, {-5, 1}, {1, 1}, {200, 200}, {201, 200}, {1 << 30, 200}} {
		p, err := st.SearchEvents(ctx, store.AuditFilter{Limit: tt.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) != tt.want || p.NextCursor == "" {
			t.Errorf("limit %d: got %d items (next %q), want %d and a next page", tt.limit, len(p.Items), p.NextCursor, tt.want)
		}
	}
}

func TestSearchBadCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	seedHistory(t, st, 12)
	p, err := st.SearchDecisions(ctx, store.AuditFilter{Limit: 1})
	if err != nil || p.NextCursor == "" {
		t.Fatalf("got %v, %v; want a page with a cursor", p, err)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []string{
		p.NextCursor, // a decisions cursor
		"not base64!", "bm90IGpzb24", enc(`{"k":"events","t":1,"i":0}`), enc(`{"k":"events","t":1,"i":1,"x":2}`),
		enc(`{"k":"events","t":1,"i":1} {}`), enc(`{"k":"events","t":"x","i":1}`), "' OR 1=1 --",
		string(make([]byte, 300)),
	} {
		if _, err := st.SearchEvents(ctx, store.AuditFilter{Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: got %v, want ErrBadCursor", c, err)
		}
	}
	if _, err := st.SearchEvents(ctx, store.AuditFilter{Cursor: enc(`{"k":"events","t":1,"i":1}`)}); err != nil {
		t.Errorf("a well-formed events cursor: %v", err)
	}
	ep, err := st.SearchEvents(ctx, store.AuditFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SearchDecisions(ctx, store.AuditFilter{Cursor: ep.NextCursor}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("an events cursor for decisions: got %v, want ErrBadCursor", err)
	}
	if _, err := st.SearchActions(ctx, store.AuditFilter{Cursor: ep.NextCursor}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("an events cursor for actions: got %v, want ErrBadCursor", err)
	}
}

// hostile are strings an attacker might put in a filter.
var hostile = []string{
	"' OR 1=1 --", "'; DROP TABLE events; --", "%", "_", "alice%", "ali_e", `\`, `"`, "$1", "?", "links' OR 'a'='a",
	"ünïcødé ✓ 🙂", "a\x00b", "\x00", string([]byte{0xff, 0xfe}), "ARRAY['links']", "{links}", `{"type":"ban"}`,
}

func TestSearchHostileFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	seedHistory(t, st, 30)
	before := tableCounts(t, st)
	set := map[string]func(*store.AuditFilter, string){
		"user_id":     func(f *store.AuditFilter, v string) { f.UserID = v },
		"message_id":  func(f *store.AuditFilter, v string) { f.MessageID = v },
		"channel_cid": func(f *store.AuditFilter, v string) { f.ChannelCID = v },
		"rule_id":     func(f *store.AuditFilter, v string) { f.RuleID = v },
		"event_type":  func(f *store.AuditFilter, v string) { f.EventType = v },
		"action_type": func(f *store.AuditFilter, v string) { f.ActionType = v },
		"outcome":     func(f *store.AuditFilter, v string) { f.Outcome = v },
	}
	for name, setter := range set {
		for _, v := range hostile {
			var f store.AuditFilter
			setter(&f, v)
			ev, err := st.SearchEvents(ctx, f)
			if err != nil || len(ev.Items) != 0 {
				t.Errorf("events %s=%q: got %d rows, %v; want none", name, v, len(ev.Items), err)
			}
			de, err := st.SearchDecisions(ctx, f)
			if err != nil || len(de.Items) != 0 {
				t.Errorf("decisions %s=%q: got %d rows, %v; want none", name, v, len(de.Items), err)
			}
			ac, err := st.SearchActions(ctx, f)
			if err != nil || len(ac.Items) != 0 {
				t.Errorf("actions %s=%q: got %d rows, %v; want none", name, v, len(ac.Items), err)
			}
		}
	}
	if diff := cmp.Diff(before, tableCounts(t, st)); diff != "" {
		t.Errorf("hostile filters changed row counts (-before +after):\n%s", diff)
	}
}
