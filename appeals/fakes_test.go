package appeals

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"moderator/store"
)

// fakeStore is an in-memory Store for the handlers' unit tests: it records
// what it was asked, answers what the test set, and fails with err when
// set. Tests of the store's own behaviour use the real one (db_test.go).
type fakeStore struct {
	mu       sync.Mutex
	calls    []string // method names, in order
	filters  []store.AuditFilter
	acts     []store.StaffAct
	actErr   error
	err      error // returned by every read and write but RecordStaffAct
	appeal   store.Appeal
	newAppl  []store.NewAppeal
	upheld   []string // reasons
	statsArg [2]time.Time
}

func (f *fakeStore) called(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	return f.err
}

func (f *fakeStore) searched(name string, flt store.AuditFilter) error {
	f.mu.Lock()
	f.filters = append(f.filters, flt)
	f.mu.Unlock()
	return f.called(name)
}

func (f *fakeStore) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeStore) Acts() []store.StaffAct {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.StaffAct(nil), f.acts...)
}

func (f *fakeStore) SearchEvents(ctx context.Context, flt store.AuditFilter) (store.Page[store.EventSummary], error) {
	return store.Page[store.EventSummary]{Items: []store.EventSummary{{ID: 1, UserID: "u1"}}}, f.searched("SearchEvents", flt)
}

func (f *fakeStore) SearchDecisions(ctx context.Context, flt store.AuditFilter) (store.Page[store.DecisionSummary], error) {
	return store.Page[store.DecisionSummary]{Items: []store.DecisionSummary{}}, f.searched("SearchDecisions", flt)
}

func (f *fakeStore) SearchActions(ctx context.Context, flt store.AuditFilter) (store.Page[store.ActionDetail], error) {
	return store.Page[store.ActionDetail]{Items: []store.ActionDetail{}}, f.searched("SearchActions", flt)
}

func (f *fakeStore) Quarantine(ctx context.Context, flt store.AuditFilter) (store.Page[store.Quarantined], error) {
	return store.Page[store.Quarantined]{Items: []store.Quarantined{}}, f.searched("Quarantine", flt)
}

func (f *fakeStore) Timeline(ctx context.Context, userID string, flt store.AuditFilter) (store.Page[store.TimelineEntry], error) {
	return store.Page[store.TimelineEntry]{Items: []store.TimelineEntry{}}, f.searched("Timeline", flt)
}

func (f *fakeStore) DecisionEvidence(ctx context.Context, decisionID int64, around int) (store.Evidence, error) {
	ev := store.Evidence{}
	ev.Decision.ID, ev.Decision.UserID = decisionID, "u1"
	return ev, f.called("DecisionEvidence")
}

func (f *fakeStore) Action(ctx context.Context, actionID int64) (store.ActionDetail, error) {
	return store.ActionDetail{ID: actionID, TargetUserID: "u1"}, f.called("Action")
}

func (f *fakeStore) RuleStats(ctx context.Context, from, to time.Time) ([]store.RuleStat, error) {
	f.mu.Lock()
	f.statsArg = [2]time.Time{from, to}
	f.mu.Unlock()
	return nil, f.called("RuleStats")
}

func (f *fakeStore) RecordAppeal(ctx context.Context, a store.NewAppeal) (store.Appeal, error) {
	f.mu.Lock()
	f.newAppl = append(f.newAppl, a)
	f.mu.Unlock()
	return store.Appeal{ID: 7, UserID: a.UserID, ActionID: a.ActionID, DecisionID: a.DecisionID}, f.called("RecordAppeal")
}

func (f *fakeStore) Appeal(ctx context.Context, id int64) (store.Appeal, error) {
	f.mu.Lock()
	a := f.appeal
	f.mu.Unlock()
	a.ID = id
	return a, f.called("Appeal")
}

func (f *fakeStore) ListAppeals(ctx context.Context, flt store.AppealFilter) (store.Page[store.Appeal], error) {
	return store.Page[store.Appeal]{Items: []store.Appeal{}}, f.called("ListAppeals")
}

func (f *fakeStore) DecideAppealUpheld(ctx context.Context, appealID int64, reviewer, reason string, act store.StaffAct) (store.AppealDecision, error) {
	f.mu.Lock()
	f.upheld = append(f.upheld, reason)
	f.mu.Unlock()
	if err := f.called("DecideAppealUpheld"); err != nil {
		return store.AppealDecision{}, err
	}
	f.mu.Lock()
	f.acts = append(f.acts, act)
	f.mu.Unlock()
	return store.AppealDecision{ID: 1}, nil
}

func (f *fakeStore) AssignAppeal(ctx context.Context, appealID int64, act, assignee, actor string, staff store.StaffAct) (store.Appeal, error) {
	if err := f.called("AssignAppeal"); err != nil {
		return store.Appeal{}, err
	}
	f.mu.Lock()
	f.acts = append(f.acts, staff)
	f.mu.Unlock()
	return store.Appeal{ID: appealID, AssignedTo: assignee}, nil
}

func (f *fakeStore) AddAppealNote(ctx context.Context, appealID int64, author, body string, staff store.StaffAct) (store.AppealNote, error) {
	if err := f.called("AddAppealNote"); err != nil {
		return store.AppealNote{}, err
	}
	f.mu.Lock()
	f.acts = append(f.acts, staff)
	f.mu.Unlock()
	return store.AppealNote{ID: 1, AppealID: appealID, Author: author, Body: body}, nil
}

func (f *fakeStore) AppealNotes(ctx context.Context, appealID int64) ([]store.AppealNote, error) {
	return []store.AppealNote{}, f.called("AppealNotes")
}

func (f *fakeStore) RecordStaffAct(ctx context.Context, a store.StaffAct) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "RecordStaffAct")
	if f.actErr != nil {
		return f.actErr
	}
	f.acts = append(f.acts, a)
	return nil
}

// fakeOverturner records the requests it was given.
type fakeOverturner struct {
	mu   sync.Mutex
	reqs []OverturnRequest
	err  error
}

func (o *fakeOverturner) Overturn(ctx context.Context, req OverturnRequest) (OverturnResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reqs = append(o.reqs, req)
	if o.err != nil {
		return OverturnResult{}, o.err
	}
	return OverturnResult{OverturnID: 3, ImmuneUntil: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), Actions: []ReversalResult{}}, nil
}

// headerAuth is an Authenticator for the handlers' unit tests: the caller
// is named by the X-Test-Staff header, "sub:role". The real authenticator
// is tested in auth_test.go and with every route in authz_test.go.
type headerAuth struct{}

func (headerAuth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, role, ok := strings.Cut(r.Header.Get("X-Test-Staff"), ":")
		if !ok {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "", "no staff")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithStaff(r.Context(), Staff{Subject: sub, Role: Role(role)})))
	})
}

// fakeStatus is a ServiceStatus.
type fakeStatus struct{}

func (fakeStatus) RuleSet() RuleSetStatus {
	return RuleSetStatus{Version: "abc123", Dir: "rules", Rules: []RuleInfo{{ID: "r1", Mode: "enforce", Events: []string{"message.new"}, When: "true", File: "a.yaml", Line: 3}}}
}

func (fakeStatus) Settings() []Setting {
	return []Setting{
		{Name: "MODERATOR_ADDR", Value: ":8080"},
		{Name: "STREAM_API_SECRET", Value: "very-secret-value", Secret: true},
		{Name: "MODERATOR_ADMIN_JWKS_URL", Value: "", Secret: false},
		{Name: "MODERATOR_ADMIN_JWT_SECRET", Value: "", Secret: true},
	}
}

// unitBundle is a server on fakes.
type unitBundle struct {
	store *fakeStore
	over  *fakeOverturner
	logs  *SyncBuffer
	h     http.Handler
}

func newUnit(t *testing.T) *unitBundle {
	t.Helper()
	b := &unitBundle{store: &fakeStore{}, over: &fakeOverturner{}, logs: &SyncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(b.logs, nil))
	b.h = NewServer(ServerConfig{
		Logger:     logger,
		Auth:       headerAuth{},
		Store:      b.store,
		Overturner: b.over,
		Status:     fakeStatus{},
		Now:        func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) },
	})
	return b
}

// do sends one request as who ("sub:role", or "" for none) and returns
// the answer.
func (b *unitBundle) do(t *testing.T, method, target, who, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if who != "" {
		req.Header.Set("X-Test-Staff", who)
	}
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	return rec
}

// apiError decodes an error answer.
func apiError(t *testing.T, rec *httptest.ResponseRecorder) errorDetail {
	t.Helper()
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", rec.Body.String(), err)
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("error body %q lacks code or message", rec.Body.String())
	}
	return body.Error
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
