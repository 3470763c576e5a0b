package backtest_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"moderator/backtest"
	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// history records events through the store's real recording path, judged
// by a live rule set as the service judges them (counters and strikes read
// in the recording transaction), with their actions written as the
// service's planner would leave them pending.
type history struct {
	t    *testing.T
	st   *store.Store
	live *policy.RuleSet
	n    int
	ids  map[string]int64 // message id → event id
	acts map[string][]int64
}

func loadDir(t *testing.T, dir string, draft bool) *policy.RuleSet {
	t.Helper()
	load := policy.Load
	if draft {
		load = policy.LoadDraft
	}
	rs, err := load(os.DirFS(dir))
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return rs
}

func newHistory(t *testing.T, st *store.Store, live *policy.RuleSet) *history {
	return &history{t: t, st: st, live: live, ids: map[string]int64{}, acts: map[string][]int64{}}
}

// post records a new message by user in channel at time at.
func (h *history) post(user, channel, msgID, text string, at time.Time) int64 {
	h.t.Helper()
	h.n++
	body, _ := json.Marshal(map[string]any{
		"type": "message.new", "created_at": at.UTC().Format(time.RFC3339Nano), "cid": channel,
		"message": map[string]any{"id": msgID, "text": text,
			"user": map[string]any{"id": user, "created_at": "2020-01-01T00:00:00Z"}},
		"user": map[string]any{"id": user, "created_at": "2020-01-01T00:00:00Z"},
	})
	ev, err := policy.ParseEvent(body)
	if err != nil {
		h.t.Fatal(err)
	}
	rec := store.EventRecord{WebhookID: fmt.Sprintf("bt-%d", h.n), BodySHA256: sha256.Sum256(body), Attempt: 1,
		APIKey: "k", Payload: body, Event: ev}
	d, def := h.live.EvaluateOrDefer(ev)
	if def != nil {
		rec.Judge = def
	} else {
		rec.Decision = &d
	}
	res, err := h.st.RecordEvents(context.Background(), []store.EventRecord{rec}, func(ctx context.Context, tx pgx.Tx, evs []store.NewEvent) error {
		for _, ne := range evs {
			var rows []store.ActionRow
			for i, a := range ne.Record.Decision.Actions {
				p, _ := json.Marshal(a)
				rows = append(rows, store.ActionRow{EventID: ne.EventID, Position: i, RuleID: a.RuleID, Type: string(a.Type),
					TargetUserID: user, MessageID: msgID, ChannelCID: channel, Params: p, Key: fmt.Sprintf("e%d-%d", ne.EventID, i)})
			}
			ids, err := store.InsertActions(ctx, tx, rows)
			if err != nil {
				return err
			}
			h.acts[msgID] = ids
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.ids[msgID] = res[0].EventID
	return res[0].EventID
}

// overturn overturns the actions recorded on message msgID.
func (h *history) overturn(msgID string) {
	h.t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, h.st.Pool(), func(tx pgx.Tx) error {
		for _, id := range h.acts[msgID] {
			oid, _, err := store.InsertOverturnTx(ctx, tx, store.NewOverturn{ActionID: id, Reviewer: "rita", Reason: "a quote"})
			if err != nil {
				return err
			}
			if err := store.InsertReversalsTx(ctx, tx, []store.ReversalRow{{OverturnID: oid, ActionID: id,
				Disposition: store.DispositionNothingToUndo}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// seed writes the test's history: a burst, a ladder climbed, a ladder
// whose first rung was overturned, a link and a shout. It returns the
// time just before the ladder's second rung.
func seed(t *testing.T, h *history) (secondRung time.Time) {
	t.Helper()
	now := func() time.Time { return time.Now() }
	// A burst of six messages in 25 s: the live flood rule mutes at the
	// fourth, the candidate at the third; both once per burst.
	base := now()
	for i := range 6 {
		h.post("bursty", "messaging:general", fmt.Sprintf("burst-%d", i+1), fmt.Sprintf("message number %d", i+1), base.Add(time.Duration(i)*5*time.Second))
	}
	// A ladder: warned, then muted (the candidate bans).
	h.post("potty", "messaging:general", "potty-1", "darn it", now())
	// "sorry" is warned, the warning is overturned, so the next swear is a
	// first offence again, live and in the candidate alike.
	h.post("sorry", "messaging:random", "sorry-1", "oh heck", now())
	h.overturn("sorry-1")
	secondRung = now()
	time.Sleep(5 * time.Millisecond) // received_at strictly after secondRung
	h.post("potty", "messaging:general", "potty-2", "darn darn", now())
	h.post("sorry", "messaging:random", "sorry-2", "heck again", now())
	h.post("linker", "messaging:random", "link-1", "see https://example.com/deal", now())
	h.post("loud", "messaging:general", "loud-1", "HELLO EVERYONE THIS IS LOUD", now())
	h.post("quiet", "messaging:general", "quiet-1", "hello all", now())
	return secondRung
}

func TestBacktestDiff(t *testing.T) {
	st := storetest.OwnStore(t)
	h := newHistory(t, st, loadDir(t, "testdata/live", false))
	start := time.Now().Add(-time.Minute)
	seed(t, h)
	cand := loadDir(t, "testdata/candidate", true)
	rep, err := backtest.Run(context.Background(), st, cand, backtest.Options{From: start, To: time.Now().Add(time.Minute), Samples: 5})
	if err != nil {
		t.Fatal(err)
	}

	if rep.Events != 13 || rep.Evaluated != 13 {
		t.Errorf("events %d, evaluated %d; want 13 and 13", rep.Events, rep.Evaluated)
	}
	if len(rep.Candidate.FailingExamples) != 1 {
		t.Errorf("failing examples %q, want the caps rule's one", rep.Candidate.FailingExamples)
	}
	if want := "would ban 1 more user, would mute 1 fewer user, would delete 1 fewer message"; rep.Summary != want {
		t.Errorf("summary %q\nwant    %q", rep.Summary, want)
	}

	type diff struct {
		Mode                               policy.Mode
		Recorded, Candidate                backtest.Tally
		Added, Removed, Changed            []int64 // sample event ids
		AddedActs, RemovedActs, ChangedTo  []string
		MatchesAdded, MatchesRemoved, Fail int64
	}
	got := map[string]diff{}
	for _, r := range rep.Rules {
		d := diff{Mode: r.Mode, Recorded: r.Recorded, Candidate: r.Candidate, MatchesAdded: r.MatchesAdded,
			MatchesRemoved: r.MatchesRemoved, Fail: int64(r.FailingExamples)}
		for _, s := range r.Added.Samples {
			d.Added = append(d.Added, s.EventID)
			d.AddedActs = append(d.AddedActs, s.Candidate...)
		}
		for _, s := range r.Removed.Samples {
			d.Removed = append(d.Removed, s.EventID)
			d.RemovedActs = append(d.RemovedActs, s.Recorded...)
		}
		for _, s := range r.Changed.Samples {
			d.Changed = append(d.Changed, s.EventID)
			d.ChangedTo = append(d.ChangedTo, fmt.Sprint(s.Recorded, "→", s.Candidate))
		}
		got[r.RuleID] = d
	}
	want := map[string]diff{
		// Counter- and strike-dependent: the candidate mutes at the third
		// message, and its own strike keeps it from muting at the fourth.
		"flood": {Mode: policy.ModeEnforce, Recorded: backtest.Tally{Matches: 1, Acted: 1}, Candidate: backtest.Tally{Matches: 1, Acted: 1},
			Added: []int64{h.ids["burst-3"]}, AddedActs: []string{"mute 15m"},
			Removed: []int64{h.ids["burst-4"]}, RemovedActs: []string{"mute 15m"}, MatchesAdded: 1, MatchesRemoved: 1},
		// The overturned warning is no strike for the candidate either:
		// sorry is warned twice on both sides.
		"swear-warn": {Mode: policy.ModeEnforce, Recorded: backtest.Tally{Matches: 3, Acted: 3}, Candidate: backtest.Tally{Matches: 3, Acted: 3}},
		"swear-mute": {Mode: policy.ModeEnforce, Recorded: backtest.Tally{Matches: 1, Acted: 1}, Candidate: backtest.Tally{Matches: 1, Acted: 1},
			Changed: []int64{h.ids["potty-2"]}, ChangedTo: []string{"[mute 1h]→[ban 1d]"}},
		"links": {Recorded: backtest.Tally{Matches: 1, Acted: 1},
			Removed: []int64{h.ids["link-1"]}, RemovedActs: []string{"delete"}, MatchesRemoved: 1},
		"caps": {Mode: policy.ModeShadow, Candidate: backtest.Tally{Matches: 1}, MatchesAdded: 1, Fail: 1},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("per-rule diff (-want +got):\n%s", d)
	}
	var removed backtest.Change
	for _, r := range rep.Rules {
		if r.RuleID == "links" {
			removed = r.Removed
		}
	}
	if removed.Users != 1 || removed.Messages != 1 || len(removed.Samples) != 1 ||
		removed.Samples[0].Text != "see https://example.com/deal" || removed.Samples[0].UserID != "linker" ||
		string(removed.Samples[0].Evidence) == "" {
		t.Errorf("links removed: %+v", removed)
	}
}

// A window that opens after the ladder's first rung starts from the
// strikes recorded before it.
func TestBacktestWindowStartsWithRecordedStrikes(t *testing.T) {
	st := storetest.OwnStore(t)
	h := newHistory(t, st, loadDir(t, "testdata/live", false))
	second := seed(t, h)
	cand := loadDir(t, "testdata/candidate", true)
	rep, err := backtest.Run(context.Background(), st, cand, backtest.Options{From: second, To: time.Now().Add(time.Minute),
		Rules: []string{"swear-mute", "swear-warn"}, Samples: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rules) != 2 {
		t.Fatalf("rules %v, want only the two asked for", rep.Rules)
	}
	for _, r := range rep.Rules {
		switch r.RuleID {
		case "swear-mute":
			if r.Changed.Events != 1 || r.Candidate.Acted != 1 {
				t.Errorf("swear-mute: %+v; want potty's second swear banned instead of muted", r)
			}
		case "swear-warn":
			if r.Recorded.Acted != 1 || r.Candidate.Acted != 1 || r.Added.Events+r.Removed.Events+r.Changed.Events != 0 {
				t.Errorf("swear-warn: %+v; want sorry's second warning on both sides", r)
			}
		}
	}
}

// A shadow rule keeps a would-be strike lineage of its own: the shadow
// ladder climbs as it would enforced, and the shadow flood guard fires
// once per burst.
func TestBacktestShadowLineage(t *testing.T) {
	st := storetest.OwnStore(t)
	h := newHistory(t, st, loadDir(t, "testdata/live", false))
	start := time.Now().Add(-time.Minute)
	seed(t, h)
	cand := loadDir(t, "testdata/shadow", false)
	rep, err := backtest.Run(context.Background(), st, cand, backtest.Options{From: start, To: time.Now().Add(time.Minute), Samples: 10})
	if err != nil {
		t.Fatal(err)
	}
	matched := map[string][]int64{}
	for _, r := range rep.Rules {
		// Every recorded match was enforced, every candidate match is
		// shadow: the matches show as removed and added, by event.
		for _, s := range r.Removed.Samples {
			matched[r.RuleID+" recorded"] = append(matched[r.RuleID+" recorded"], s.EventID)
		}
		if r.Candidate.Acted != 0 {
			t.Errorf("%s: a shadow rule acted %d times", r.RuleID, r.Candidate.Acted)
		}
		matched[r.RuleID] = append(matched[r.RuleID], int64(r.Candidate.Matches))
	}
	want := map[string][]int64{
		"flood": {1}, "flood recorded": {h.ids["burst-4"]},
		"swear-warn": {3}, "swear-warn recorded": {h.ids["potty-1"], h.ids["sorry-1"], h.ids["sorry-2"]},
		"swear-mute": {1}, "swear-mute recorded": {h.ids["potty-2"]},
		"links": {0}, "links recorded": {h.ids["link-1"]},
	}
	if d := cmp.Diff(want, matched); d != "" {
		t.Errorf("shadow matches (-want +got):\n%s", d)
	}
}

// TestBacktestSpillsIDs: a report whose distinct users and messages spill
// to disk at every new id is the report kept in memory, field for field.
// Not parallel: it lowers the package's budget.
func TestBacktestSpillsIDs(t *testing.T) {
	st := storetest.OwnStore(t)
	h := newHistory(t, st, loadDir(t, "testdata/live", false))
	start := time.Now().Add(-time.Minute)
	seed(t, h)
	cand := loadDir(t, "testdata/candidate", true)
	opt := backtest.Options{From: start, To: time.Now().Add(time.Minute), Samples: 5}
	held, err := backtest.Run(context.Background(), st, cand, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer backtest.SetIDBudget(backtest.SetIDBudget(1))
	spilled, err := backtest.Run(context.Background(), st, cand, opt)
	if err != nil {
		t.Fatal(err)
	}
	held.Elapsed, spilled.Elapsed = 0, 0
	if d := cmp.Diff(held, spilled); d != "" {
		t.Errorf("the report changed when its ids spilled (-held +spilled):\n%s", d)
	}
	users := 0
	for _, r := range spilled.Rules {
		users += r.Added.Users + r.Removed.Users + r.Changed.Users
	}
	if users < 3 {
		t.Errorf("%d affected users in all: the comparison proves little", users)
	}
}
