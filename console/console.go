package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"moderator/appeals"
	"moderator/policy"
	"moderator/store"
)

// Prefix is where cmd mounts the console.
const Prefix = "/console"

// Store is what the console reads and writes: the audit trail, the
// appeals and their claims and notes, the staff audit log and the
// sessions. *store.Store satisfies it.
type Store interface {
	ListAppeals(ctx context.Context, f store.AppealFilter) (store.Page[store.Appeal], error)
	Appeal(ctx context.Context, id int64) (store.Appeal, error)
	AppealQueueStats(ctx context.Context) (store.AppealQueue, error)
	AssignAppeal(ctx context.Context, appealID int64, act, assignee, actor string, staff store.StaffAct) (store.Appeal, error)
	AddAppealNote(ctx context.Context, appealID int64, author, body string, staff store.StaffAct) (store.AppealNote, error)
	AppealNotes(ctx context.Context, appealID int64) ([]store.AppealNote, error)
	DecideAppealUpheld(ctx context.Context, appealID int64, reviewer, reason string, act store.StaffAct) (store.AppealDecision, error)
	DecisionEvidence(ctx context.Context, decisionID int64, around int) (store.Evidence, error)
	Action(ctx context.Context, actionID int64) (store.ActionDetail, error)
	Timeline(ctx context.Context, userID string, f store.AuditFilter) (store.Page[store.TimelineEntry], error)
	SearchEvents(ctx context.Context, f store.AuditFilter) (store.Page[store.EventSummary], error)
	SearchDecisions(ctx context.Context, f store.AuditFilter) (store.Page[store.DecisionSummary], error)
	SearchActions(ctx context.Context, f store.AuditFilter) (store.Page[store.ActionDetail], error)
	Event(ctx context.Context, id int64) (store.EventSnapshot, error)
	RuleStats(ctx context.Context, from, to time.Time) ([]store.RuleStat, error)
	RecordStaffAct(ctx context.Context, act store.StaffAct) error

	CreateConsoleSession(ctx context.Context, idHash []byte, sess store.ConsoleSession) error
	ConsoleSession(ctx context.Context, idHash []byte) (store.ConsoleSession, error)
	DeleteConsoleSession(ctx context.Context, idHash []byte) error
}

// Authenticator verifies the staff token pasted at sign-in, as the staff
// API verifies bearer tokens. *appeals.Authenticator satisfies it.
type Authenticator interface {
	AuthenticateUntil(ctx context.Context, token string) (appeals.Staff, time.Time, error)
}

// Overturner carries out an appeal's overturn (appeals.Overturner) and
// says beforehand what it would undo, so that the reviewer confirms
// knowing it.
type Overturner interface {
	appeals.Overturner
	// PreviewOverturn plans, without doing anything, the overturn of
	// action actionID or of every action of decision decisionID.
	PreviewOverturn(ctx context.Context, actionID, decisionID int64) ([]appeals.ReversalResult, error)
}

// Rules is the rule set in force, as the rules screen shows it and the
// playground evaluates it; cmd provides it.
type Rules interface {
	// RuleSet describes the set in force and its reloads (as GET
	// /api/v1/rules).
	RuleSet() appeals.RuleSetStatus
	// Live is the set in force (nil before one is loaded).
	Live() *policy.RuleSet
}

// Config is what New needs.
type Config struct {
	Logger *slog.Logger
	Store  Store
	Auth   Authenticator
	// Overturner carries out overturns; nil: deciding "overturned"
	// answers 503.
	Overturner Overturner
	// Rules is the rule set in force; nil: the rules screen and the
	// playground answer 503.
	Rules Rules
	// Reasons are the reason templates offered when deciding (nil:
	// DefaultReasons).
	Reasons *Reasons
	// CountRequest, when set, counts each answered request by route
	// pattern and status (moderator_staff_requests_total).
	CountRequest func(route string, status int)
	// OIDC, when set, offers the sign-in with the identity provider.
	OIDC *OIDCConfig
	// SessionTTL bounds a session (default 12h); it never outlives the
	// token it was made from.
	SessionTTL time.Duration
	// Timeout bounds each request's work (default 10s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console is the reviewers' web UI.
type Console struct {
	logger     *slog.Logger
	store      Store
	auth       Authenticator
	overturner Overturner
	rules      Rules
	reasons    *Reasons
	count      func(route string, status int)
	sessionTTL time.Duration
	timeout    time.Duration
	now        func() time.Time
	assets     *assets
	pages      *pages
	oidc       *oidcProvider // nil without OIDC
}

// New returns the console's handler, to be mounted at Prefix.
func New(cfg Config) (http.Handler, error) {
	if cfg.Store == nil || cfg.Auth == nil {
		return nil, errors.New("console: a store and an authenticator are required")
	}
	c := &Console{
		logger:     cfg.Logger,
		store:      cfg.Store,
		auth:       cfg.Auth,
		overturner: cfg.Overturner,
		rules:      cfg.Rules,
		reasons:    cfg.Reasons,
		count:      cfg.CountRequest,
		sessionTTL: cfg.SessionTTL,
		timeout:    cfg.Timeout,
		now:        cfg.Now,
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.reasons == nil {
		c.reasons = DefaultReasons()
	}
	if c.sessionTTL <= 0 {
		c.sessionTTL = DefaultSessionTTL
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.now == nil {
		c.now = time.Now
	}
	var err error
	if cfg.OIDC != nil {
		if c.oidc, err = newOIDC(*cfg.OIDC, c.logger); err != nil {
			return nil, err
		}
	}
	if c.assets, err = loadAssets(Prefix); err != nil {
		return nil, err
	}
	if c.pages, err = parsePages(c.assets); err != nil {
		return nil, err
	}
	return c.routes(), nil
}

// routes lists every page and form of the console, with the role each
// needs (pages: viewer; forms that change something: reviewer).
func (c *Console) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(securityHeaders, c.logRequests, crossOrigin)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, &httpError{status: http.StatusNotFound, msg: "There is no such page."})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, &httpError{status: http.StatusMethodNotAllowed, msg: "This page does not take that request."})
	})
	r.Get("/assets/{file}", c.assets.serve)
	r.Get("/", c.handle(c.home))
	r.Get("/sign-in", c.handle(c.signInPage))
	r.Post("/sign-in", c.handle(c.signIn))
	if c.oidc != nil {
		r.Get("/oidc/login", c.handle(c.oidcLogin))
		r.Get("/oidc/callback", c.handle(c.oidcCallback))
	}

	r.Group(func(r chi.Router) {
		r.Use(c.requireSession)
		r.Post("/sign-out", c.handle(c.signOut))

		r.Get("/appeals", c.handle(c.queue))
		r.Get("/appeals/{id}", c.handle(c.appealPage))
		r.Get("/appeals/{id}/actions", c.handle(c.appealedActions))
		r.With(c.requireRole(appeals.RoleReviewer)).Post("/appeals/{id}/claim", c.handle(c.assign(store.AssignClaim)))
		r.With(c.requireRole(appeals.RoleReviewer)).Post("/appeals/{id}/release", c.handle(c.assign(store.AssignRelease)))
		r.With(c.requireRole(appeals.RoleReviewer)).Post("/appeals/{id}/assign", c.handle(c.assign(store.AssignAssign)))
		r.With(c.requireRole(appeals.RoleReviewer)).Post("/appeals/{id}/notes", c.handle(c.addNote))
		r.With(c.requireRole(appeals.RoleReviewer)).Post("/appeals/{id}/decide", c.handle(c.decide))

		r.Get("/users/{user_id}", c.handle(c.userPage))
		r.Get("/decisions/{id}", c.handle(c.decisionPage))
		r.Get("/decisions/{id}/statement", c.handle(c.statementPage))
		r.With(c.requireRole(appeals.RoleReviewer)).Post("/actions/{id}/overturn", c.handle(c.overturnFrom("action")))
		r.With(c.requireRole(appeals.RoleReviewer)).Post("/decisions/{id}/overturn", c.handle(c.overturnFrom("decision")))
		r.Get("/search", c.handle(c.search))
		r.Get("/rules", c.handle(c.rulesScreen))
		r.Get("/playground", c.handle(c.playground))
		r.Post("/playground", c.handle(c.playground))
	})
	return r
}

// handlerFunc is a console handler: it writes the page, or returns the
// error that fail turns into an error page.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (c *Console) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			c.fail(w, r, err)
		}
	}
}

// home sends a signed-in reviewer to the queue, anyone else to sign in.
func (c *Console) home(w http.ResponseWriter, r *http.Request) error {
	if _, ok := c.session(r); ok {
		http.Redirect(w, r, Prefix+"/appeals", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, Prefix+"/sign-in", http.StatusSeeOther)
	return nil
}

// record writes the staff act of r before its answer is sent; a page
// whose act cannot be recorded is not shown (as in the staff API).
func (c *Console) record(r *http.Request, act store.StaffAct) error {
	sess := sessionFrom(r.Context())
	act.Actor, act.Role = sess.Subject, sess.Role
	act.Params = withVia(act.Params)
	if err := c.store.RecordStaffAct(r.Context(), act); err != nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "The staff audit log could not be written, so this is refused; try again shortly.", err: err}
	}
	return nil
}

// withVia marks a staff act's parameters as done through the console.
func withVia(params any) any {
	m, ok := params.(map[string]any)
	if params == nil {
		m, ok = map[string]any{}, true
	}
	if !ok {
		return params
	}
	m["via"] = "console"
	return m
}

// requestLog is filled in while a request is handled and written as its
// one log line.
type requestLog struct {
	sub, role string
	err       error
}

type requestLogKey struct{}

func logOf(ctx context.Context) *requestLog {
	if l, ok := ctx.Value(requestLogKey{}).(*requestLog); ok {
		return l
	}
	return &requestLog{}
}

// logRequests writes one line per request (method, route pattern, status,
// who, how long; never a form value, a cookie or a path's ids), counts it,
// and bounds its work by the timeout.
func (c *Console) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rl := &requestLog{}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), requestLogKey{}, rl), c.timeout)
		defer cancel()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(ctx))

		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			// Mounted at Prefix, the pattern has it; alone (in tests), not.
			route = rc.RoutePattern()
			if !strings.HasPrefix(route, Prefix+"/") {
				route = Prefix + route
			}
		}
		status := cmpStatus(ww.Status())
		if c.count != nil {
			c.count(route, status)
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		}
		if rl.sub != "" {
			attrs = append(attrs, slog.String("staff_sub", rl.sub), slog.String("role", rl.role))
		}
		appeals.LogRequest(r.Context(), c.logger, "console request", status, rl.err, attrs)
	})
}

func cmpStatus(s int) int {
	if s == 0 {
		return http.StatusOK
	}
	return s
}

// httpError is an answer other than 200 with a message for the reviewer
// (err, when set, is logged and never shown).
type httpError struct {
	status int
	msg    string
	err    error
}

func (e *httpError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%d %s: %v", e.status, e.msg, e.err)
	}
	return fmt.Sprintf("%d %s", e.status, e.msg)
}

func (e *httpError) Unwrap() error { return e.err }

// statusOf maps an error to its answer's status and a message a reviewer
// can read; the details of a 5xx go to the log only.
func statusOf(err error) (int, string) {
	var he *httpError
	var held *store.HeldError
	if errors.As(err, &he) {
		return he.status, he.msg
	}
	if ie, ok := store.IsInputError(err); ok {
		return http.StatusBadRequest, ie.Error()
	}
	switch {
	case errors.As(err, &held):
		return http.StatusConflict, fmt.Sprintf("Appeal %d is held by %s: they release it, or someone assigns it, first.", held.AppealID, held.Holder)
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "Not found: " + err.Error()
	case errors.Is(err, store.ErrAlreadyDecided):
		return http.StatusConflict, "This appeal has already been decided."
	case errors.Is(err, store.ErrAlreadyOverturned):
		return http.StatusConflict, "What this appeal is about has already been overturned."
	case errors.Is(err, store.ErrBadCursor):
		return http.StatusBadRequest, "That page link is not valid any more: start from the first page."
	case appeals.IsUnavailable(err):
		return http.StatusServiceUnavailable, "The database did not answer; try again shortly."
	}
	return http.StatusInternalServerError, "Something went wrong on our side; it has been logged."
}

// fail answers err with an error page (or, for an htmx request, the
// message alone, which htmx shows in place).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := statusOf(err)
	if status >= 500 || status == http.StatusConflict {
		logOf(r.Context()).err = err
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	c.render(w, r, status, "error", errorPage{basePage: c.base(r, "Error"), Status: status, StatusText: http.StatusText(status), Message: msg})
}
