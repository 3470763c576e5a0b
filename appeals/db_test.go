package appeals_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/appeals"
	"moderator/backtest"
	"moderator/erasure"
	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const testSecret = "appeals-api-test-secret-0123456789abcdef"

// api is the staff API on a real store, behind the real authenticator
// (HS256), with an in-memory Overturner (the real one lives in cmd and is
// tested end to end there).
type api struct {
	st   *store.Store
	h    http.Handler
	over *recordingOverturner
	logs *appeals.SyncBuffer
}

func newAPI(t testing.TB, st *store.Store) *api {
	t.Helper()
	logs := &appeals.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	auth, err := appeals.NewAuthenticator(context.Background(), appeals.AuthConfig{
		HS256Secret:   []byte(testSecret),
		RatePerMinute: 1_000_000, // the rate limit has its own tests
		Logger:        logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := &api{st: st, over: &recordingOverturner{}, logs: logs}
	runner := backtest.NewRunner(st, logger)
	t.Cleanup(runner.Close)
	a.h = appeals.NewServer(appeals.ServerConfig{Logger: logger, Auth: auth, Store: st, Overturner: a.over, Status: staticStatus{},
		Backtests: runner, Restorer: storeRestorer{st}, Eraser: erasure.New(st, logger)})
	return a
}

// storeRestorer restores rules in the store alone (the service also puts
// the rule back in force).
type storeRestorer struct{ st *store.Store }

func (r storeRestorer) RestoreRule(ctx context.Context, ruleID, reason string, act store.StaffAct) error {
	return r.st.RestoreRule(ctx, ruleID, reason, act)
}

// ownStore returns a store on a migrated database of the test's own, so
// that row counts and full lists see only what the test wrote.
func ownStore(t testing.TB) *store.Store {
	t.Helper()
	// Each test sends one request at a time; a small pool keeps the
	// parallel tests well inside the server's max_connections.
	return storetest.OwnStoreWith(t, func(cfg *pgxpool.Config) { cfg.MaxConns = 2 })
}

// staticStatus is a ServiceStatus with one rule and one secret.
type staticStatus struct{}

func (staticStatus) RuleSet() appeals.RuleSetStatus {
	return appeals.RuleSetStatus{Version: "v1", Dir: "rules", Rules: []appeals.RuleInfo{{ID: "links", Mode: "enforce", Events: []string{"message.new"}, When: "true", File: "links.yaml", Line: 2}}}
}

func (staticStatus) Settings() []appeals.Setting {
	return []appeals.Setting{{Name: "MODERATOR_ADMIN_JWT_SECRET", Value: testSecret, Secret: true}}
}

type recordingOverturner struct {
	mu   sync.Mutex
	reqs []appeals.OverturnRequest
}

func (o *recordingOverturner) Overturn(ctx context.Context, req appeals.OverturnRequest) (appeals.OverturnResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reqs = append(o.reqs, req)
	return appeals.OverturnResult{OverturnID: int64(len(o.reqs)), ImmuneUntil: time.Now().Add(24 * time.Hour), Actions: []appeals.ReversalResult{}}, nil
}

func token(t testing.TB, sub string, role appeals.Role) string {
	t.Helper()
	tok, err := appeals.MintToken([]byte(testSecret), sub, role, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call sends one request with tok ("" for none) and returns the status
// and the body.
func (a *api) call(t *testing.T, method, target, tok, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	// chi routes within a route context it is given, which then tells
	// which route answered (for the check against openapi.yaml).
	rctx := chi.NewRouteContext()
	req = req.WithContext(context.WithValue(req.Context(), chi.RouteCtxKey, rctx))
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	a.conforms(t, req, rctx, rec)
	return rec.Code, rec.Body.Bytes()
}

// getJSON GETs target as tok and decodes a 200 answer into v.
func (a *api) getJSON(t *testing.T, target, tok string, v any) {
	t.Helper()
	code, body := a.call(t, http.MethodGet, target, tok, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", target, err, body)
	}
}

type errBody struct {
	Error struct{ Code, Field, Message string } `json:"error"`
}

func decodeErr(t *testing.T, body []byte) errBody {
	t.Helper()
	var e errBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not an error body: %s", body)
	}
	return e
}

// seedEvent is one event of a seeded history, with what the rules decided
// and did about it: the model the searches are checked against.
type seedEvent struct {
	id, decisionID, actionID int64
	typ, user, channel, msg  string
	rule, actionType         string // "" without a decision
	outcome                  string // the action's outcome; "pending" without one
}

var (
	seedUsers    = []string{"alice", "bob", "carol.x@example.com"}
	seedChannels = []string{"messaging:general", "livestream:match-1"}
	seedRules    = []string{"links", "profanity"}
	seedTypes    = []string{"ban", "flag", "mute"}
	seedOutcomes = []string{"applied", "failed", "pending"}
)

// seedHistory records n events through the store's write path (as the
// webhook does): a decision on two events of three, each with one action
// whose outcome cycles through applied, failed and pending.
func seedHistory(t testing.TB, st *store.Store, n int) []*seedEvent {
	t.Helper()
	ctx := context.Background()
	var out []*seedEvent
	for i := range n {
		ev := &seedEvent{
			typ:     "message.new",
			user:    seedUsers[i%len(seedUsers)],
			channel: seedChannels[(i/3)%len(seedChannels)],
			msg:     fmt.Sprintf("msg-%03d", i),
			outcome: "pending",
		}
		if i%5 == 4 {
			ev.typ = "message.updated"
		}
		if i%3 != 2 {
			ev.rule = seedRules[i%2]
			ev.actionType = seedTypes[(i/2)%3]
			ev.outcome = seedOutcomes[(i/3)%3]
		}
		recordSeed(t, st, ev, i)
		if ev.actionID != 0 && ev.outcome != "pending" {
			if _, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: ev.actionID, Outcome: ev.outcome, Reason: "seeded"}); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, ev)
	}
	return out
}

func recordSeed(t testing.TB, st *store.Store, ev *seedEvent, i int) {
	t.Helper()
	ctx := context.Background()
	chType, chID, _ := strings.Cut(ev.channel, ":")
	body := fmt.Appendf(nil, `{"type":%q,"cid":%q,"channel_type":%q,"channel_id":%q,"created_at":"2026-11-24T10:00:00Z",`+
		`"message":{"id":%q,"text":"seeded message %d","user":{"id":%q}},"user":{"id":%q}}`,
		ev.typ, ev.channel, chType, chID, ev.msg, i, ev.user, ev.user)
	pe, err := policy.ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	rec := store.EventRecord{
		WebhookID:  "seed-" + ev.msg,
		BodySHA256: sha256.Sum256(body),
		Attempt:    1,
		APIKey:     "key",
		Payload:    body,
		Event:      pe,
	}
	var action policy.Action
	if ev.rule != "" {
		action = policy.Action{Type: policy.ActionType(ev.actionType), RuleID: ev.rule}
		rec.Decision = &policy.Decision{
			RuleSetVersion: "v1",
			Matches:        []policy.Match{{RuleID: ev.rule, Mode: policy.ModeEnforce, Evidence: map[string]any{"text.links": []string{}}, Actions: []policy.Action{action}}},
			Actions:        []policy.Action{action},
		}
	}
	hook := func(ctx context.Context, tx pgx.Tx, evs []store.NewEvent) error {
		if ev.rule == "" {
			return nil
		}
		params, _ := json.Marshal(action)
		ids, err := store.InsertActions(ctx, tx, []store.ActionRow{{
			EventID: evs[0].EventID, Position: 0, RuleID: ev.rule, Type: ev.actionType,
			TargetUserID: ev.user, MessageID: ev.msg, ChannelCID: ev.channel, Params: params,
			Key: fmt.Sprintf("seed:%d:0", evs[0].EventID),
		}})
		if err == nil {
			ev.actionID = ids[0]
		}
		return err
	}
	res, err := st.RecordEvents(ctx, []store.EventRecord{rec}, hook)
	if err != nil {
		t.Fatal(err)
	}
	ev.id = res[0].EventID
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
