package appeals

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"moderator/policy"
	"moderator/store"
)

// AuditReader is the audit trail's read side that the staff API searches.
// *store.Store satisfies it.
type AuditReader interface {
	SearchEvents(ctx context.Context, f store.AuditFilter) (store.Page[store.EventSummary], error)
	SearchDecisions(ctx context.Context, f store.AuditFilter) (store.Page[store.DecisionSummary], error)
	SearchActions(ctx context.Context, f store.AuditFilter) (store.Page[store.ActionDetail], error)
	Timeline(ctx context.Context, userID string, f store.AuditFilter) (store.Page[store.TimelineEntry], error)
	DecisionEvidence(ctx context.Context, decisionID int64, around int) (store.Evidence, error)
	Action(ctx context.Context, actionID int64) (store.ActionDetail, error)
	RuleStats(ctx context.Context, from, to time.Time) ([]store.RuleStat, error)
	Quarantine(ctx context.Context, f store.AuditFilter) (store.Page[store.Quarantined], error)
}

// AppealStore records appeals and their 'upheld' decisions (an
// 'overturned' decision goes through the Overturner). *store.Store
// satisfies it.
type AppealStore interface {
	RecordAppeal(ctx context.Context, a store.NewAppeal) (store.Appeal, error)
	Appeal(ctx context.Context, id int64) (store.Appeal, error)
	ListAppeals(ctx context.Context, f store.AppealFilter) (store.Page[store.Appeal], error)
	DecideAppealUpheld(ctx context.Context, appealID int64, reviewer, reason string, act store.StaffAct) (store.AppealDecision, error)
}

// StaffLog records staff acts: who read whose history. *store.Store
// satisfies it.
type StaffLog interface {
	RecordStaffAct(ctx context.Context, a store.StaffAct) error
}

// Store is everything the staff API needs from the database.
type Store interface {
	AuditReader
	AppealStore
	AppealWork
	StaffLog
}

// AuthMiddleware authenticates a staff request: it answers 401 (or 429)
// itself, or calls next with the caller in the context (WithStaff).
// *Authenticator satisfies it; the handlers' unit tests use a fake.
type AuthMiddleware interface {
	Middleware(next http.Handler) http.Handler
}

// ServiceStatus is what admins see of the running service; cmd/moderator
// provides it.
type ServiceStatus interface {
	// RuleSet describes the rule set in force and the last reload.
	RuleSet() RuleSetStatus
	// Settings lists the service's configuration. Values of settings
	// marked Secret are never shown: the API answers only whether they
	// are set.
	Settings() []Setting
}

// RuleSetStatus is the live rule set as GET /rules shows it.
type RuleSetStatus struct {
	Version  string    `json:"version"` // content hash; "" when none is loaded
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	Dir      string    `json:"dir"`
	// Rules are in evaluation order.
	Rules []RuleInfo `json:"rules"`
	// LastReloadError is why the last reload was refused ("" when it was
	// not), with LastReloadAt the time of that reload.
	LastReloadError string    `json:"last_reload_error,omitempty"`
	LastReloadAt    time.Time `json:"last_reload_at,omitzero"`
	// Notes are the load report of the set in force: files with no rules,
	// drafts ignored for their leading "_".
	Notes []string `json:"notes,omitempty"`
	// StuckReloads counts reloads still running past their deadline; they
	// were abandoned and the set in force stays.
	StuckReloads int `json:"stuck_reloads,omitempty"`
	// YoungAccount is the set's young-account age (settings:
	// young_account), as rules write durations: "1d", "7d".
	YoungAccount string `json:"young_account,omitempty"`
	// Changes says which rules the last load added, removed or changed
	// (and which fields), against the set it replaced.
	Changes *policy.Changes `json:"changes,omitempty"`
}

// RuleInfo describes one rule of the live set.
type RuleInfo struct {
	ID          string   `json:"id"`
	Description string   `json:"description,omitempty"`
	Mode        string   `json:"mode"`
	Events      []string `json:"events"`
	When        string   `json:"when"`
	Actions     []string `json:"actions,omitempty"`
	File        string   `json:"file"`
	Line        int      `json:"line"`
	// Demoted is set while the rule's guard holds it in shadow mode (Mode
	// then says shadow, whatever its file says).
	Demoted *RuleDemotion `json:"demoted,omitempty"`
}

// RuleDemotion is why and since when a rule is demoted to shadow.
type RuleDemotion struct {
	At           time.Time `json:"at"`
	Reason       string    `json:"reason"`
	OverturnRate float64   `json:"overturn_rate"`
	Taken        int       `json:"taken"`
	Overturned   int       `json:"overturned"`
}

// RuleRestorer ends a rule's demotion (cmd/moderator provides it, over
// package guard): store.ErrNotDemoted when it is not demoted.
type RuleRestorer interface {
	RestoreRule(ctx context.Context, ruleID, reason string, act store.StaffAct) error
}

// Eraser erases a user's content (cmd/moderator provides it, over package
// erasure) and records the act; a bad user id is a *store.InputError.
type Eraser interface {
	Erase(ctx context.Context, userID string, act store.StaffAct) (store.Erasure, error)
}

// Setting is one configuration value.
type Setting struct {
	Name   string `json:"name"` // the environment variable
	Value  string `json:"value"`
	Secret bool   `json:"secret,omitempty"`
}

// ServerConfig is what NewServer needs.
type ServerConfig struct {
	Logger *slog.Logger
	// Auth authenticates every route but the OpenAPI document. Required:
	// without it every such route answers 401.
	Auth  AuthMiddleware
	Store Store
	// Overturner carries out overturns; nil: they answer 503.
	Overturner Overturner
	// Status is shown to admins; nil: GET /rules and /settings answer 503.
	Status ServiceStatus
	// Backtests runs and keeps backtests; nil: /backtests answers 503.
	Backtests Backtests
	// Restorer restores demoted rules; nil: POST /rules/{id}/restore
	// answers 503.
	Restorer RuleRestorer
	// Eraser erases users' content; nil: POST /users/{id}/erase answers
	// 503.
	Eraser Eraser
	// Timeout bounds each request's work (default 10s).
	Timeout time.Duration
	// Now is the clock for the default time ranges (default time.Now).
	Now func() time.Time
	// CountRequest, when set, counts each answered request by route
	// pattern and status (moderator_staff_requests_total).
	CountRequest func(route string, status int)
}

type server struct {
	logger     *slog.Logger
	store      Store
	overturner Overturner
	status     ServiceStatus
	backtests  Backtests
	restorer   RuleRestorer
	eraser     Eraser
	timeout    time.Duration
	now        func() time.Time
	count      func(route string, status int)
}

// NewServer returns the staff API. It owns every path below where it is
// mounted (cmd mounts it at /api/v1): the routes of routes(), each behind
// authentication and its role, and JSON 404 and 405 answers for the rest.
func NewServer(cfg ServerConfig) http.Handler {
	s := &server{
		logger:     cfg.Logger,
		store:      cfg.Store,
		overturner: cfg.Overturner,
		status:     cfg.Status,
		backtests:  cfg.Backtests,
		restorer:   cfg.Restorer,
		eraser:     cfg.Eraser,
		timeout:    cfg.Timeout,
		now:        cfg.Now,
		count:      cfg.CountRequest,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	authenticate := func(http.Handler) http.Handler { return refuseAll{} }
	if cfg.Auth != nil {
		authenticate = cfg.Auth.Middleware
	}

	r := chi.NewRouter()
	r.Use(s.logRequests, s.recoverPanics)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "", "no such endpoint: see /api/v1/openapi.yaml")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "", "method not allowed on this endpoint")
	})
	for _, rt := range s.routes() {
		h := s.onlyQuery(rt.query, rt.handler)
		if rt.role != "" {
			h = authenticate(noteStaff(RequireRole(rt.role)(h)))
		}
		r.Method(rt.method, rt.pattern, h)
	}
	return r
}

// refuseAll answers 401 to everything: the staff API without an
// authenticator fails closed.
type refuseAll struct{}

func (refuseAll) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusUnauthorized, CodeUnauthorized, "", "staff authentication is not configured")
}

// Disabled answers every request below /api/v1 with 404 and the JSON
// error body: the staff API is off when no way to authenticate staff is
// configured.
func Disabled() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "",
			"the staff API is not enabled: set MODERATOR_ADMIN_JWT_SECRET or MODERATOR_ADMIN_JWKS_URL")
	})
}

// requestLog is filled in while a request is handled and written as its
// one canonical log line.
type requestLog struct {
	sub  string
	role Role
	err  error // an internal error: logged, never shown
}

type requestLogKey struct{}

func logFrom(ctx context.Context) *requestLog {
	l, _ := ctx.Value(requestLogKey{}).(*requestLog)
	if l == nil {
		return &requestLog{}
	}
	return l
}

// logRequests writes one line per request: method, route pattern, status,
// the caller's sub and role, duration, and why authentication refused it
// (NoteAuthRefusals). Never a token, a query value or a body.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rl := &requestLog{}
		ctx, refusal := NoteAuthRefusals(context.WithValue(r.Context(), requestLogKey{}, rl))
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(ctx))

		pattern := ""
		if rc := chi.RouteContext(r.Context()); rc != nil {
			pattern = rc.RoutePattern()
		}
		if pattern == "" {
			pattern = "unmatched"
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		if s.count != nil {
			s.count(pattern, status)
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("route", pattern),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.Int("bytes", ww.BytesWritten()),
		}
		if rl.sub != "" {
			attrs = append(attrs, slog.String("staff_sub", rl.sub), slog.String("role", string(rl.role)))
		}
		if refusal.Reason != "" {
			// The authenticator refused it: why, never the token.
			attrs = append(attrs, slog.String("auth_reason", refusal.Reason), slog.String("auth_detail", refusal.Detail))
			if refusal.Subject != "" {
				attrs = append(attrs, slog.String("staff_sub", refusal.Subject), slog.String("role", refusal.Role))
			}
		}
		LogRequest(r.Context(), s.logger, "staff request", status, rl.err, attrs)
	})
}

// LogRequest writes a request's one log line: at info, or at error for a
// 5xx with an internal error, which is added to the line (never shown to
// the caller). The console's request lines are written by it too.
func LogRequest(ctx context.Context, logger *slog.Logger, msg string, status int, err error, attrs []slog.Attr) {
	level := slog.LevelInfo
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		if status >= 500 {
			level = slog.LevelError
		}
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
}

// noteStaff copies the authenticated caller into the request's log line.
func noteStaff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st, ok := StaffFrom(r.Context()); ok {
			rl := logFrom(r.Context())
			rl.sub, rl.role = st.Subject, st.Role
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler's panic into a 500 with the JSON body, the
// panic going to the request's log line.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logFrom(r.Context()).err = panicError{v}
				writeError(w, http.StatusInternalServerError, CodeInternal, "", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type panicError struct{ v any }

func (p panicError) Error() string { return "panic: " + slog.AnyValue(p.v).String() }
