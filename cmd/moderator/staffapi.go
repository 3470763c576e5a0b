package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/appeals"
	"moderator/backtest"
	"moderator/console"
	"moderator/guard"
	"moderator/policy"
	"moderator/store"
)

// staffAPI builds the handlers mounted at /api/v1 and /console: the staff
// API and the reviewer console when a way to authenticate staff is
// configured (MODERATOR_ADMIN_JWT_SECRET or MODERATOR_ADMIN_JWKS_URL),
// else handlers that answer 404 to all. overturner carries out the
// overturns (nil: they answer 503), backtests runs the backtests, eraser
// the erasures.
func staffAPI(ctx context.Context, cfg config, logger *slog.Logger, reg prometheus.Registerer, st *store.Store, rules *liveRules,
	overturner *overturner, backtests *backtest.Runner, ruleGuard *ruleGuard, eraser appeals.Eraser) (api, ui http.Handler, err error) {
	authCfg, ok := cfg.staffAuth(logger, reg)
	if !ok {
		logger.Info("staff API and console off: set MODERATOR_ADMIN_JWT_SECRET or MODERATOR_ADMIN_JWKS_URL to enable /api/v1 and /console")
		return appeals.Disabled(), consoleDisabled(), nil
	}
	auth, err := appeals.NewAuthenticator(ctx, authCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("staff API: %w", err)
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "moderator_staff_requests_total",
		Help: "Requests to the staff API and the reviewer console, by route pattern and status.",
	}, []string{"route", "status"})
	reg.MustRegister(requests)
	count := func(route string, status int) { requests.WithLabelValues(route, strconv.Itoa(status)).Inc() }
	var ov appeals.Overturner
	if overturner != nil {
		ov = overturner
	}
	api = appeals.NewServer(appeals.ServerConfig{
		Logger:       logger,
		Auth:         auth,
		Store:        st,
		Overturner:   ov,
		Status:       serviceStatus{cfg: cfg, rules: rules},
		Backtests:    backtests,
		Restorer:     ruleGuard,
		Eraser:       eraser,
		CountRequest: count,
	})
	reasons := console.DefaultReasons()
	if cfg.ConsoleReasons != "" {
		if reasons, err = console.LoadReasons(cfg.ConsoleReasons); err != nil {
			return nil, nil, &configError{msg: "MODERATOR_CONSOLE_REASONS: " + err.Error()}
		}
	}
	ccfg := console.Config{Logger: logger, Store: st, Auth: auth, Reasons: reasons, CountRequest: count,
		Rules: serviceStatus{cfg: cfg, rules: rules}}
	if overturner != nil {
		ccfg.Overturner = overturner
	}
	if cfg.OIDCIssuer != "" {
		ccfg.OIDC = &console.OIDCConfig{Context: ctx, Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCClientID,
			ClientSecret: cfg.OIDCClientSecret, RedirectURL: cfg.OIDCRedirectURL, RoleClaim: cfg.OIDCRoleClaim}
	}
	if ui, err = console.New(ccfg); err != nil {
		return nil, nil, err
	}
	return api, ui, nil
}

// consoleDisabled answers every console request with 404 while staff
// authentication is not configured.
func consoleDisabled() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.Error(w, "the reviewer console is not enabled: set MODERATOR_ADMIN_JWT_SECRET or MODERATOR_ADMIN_JWKS_URL", http.StatusNotFound)
	})
}

// serviceStatus is what admins see of the running service through the
// staff API (GET /api/v1/rules and /settings).
type serviceStatus struct {
	cfg   config
	rules *liveRules
}

// Live is the rule set in force, for the console's playground (nil before
// one is loaded).
func (s serviceStatus) Live() *policy.RuleSet { return s.rules.current.Load() }

func (s serviceStatus) RuleSet() appeals.RuleSetStatus {
	out := appeals.RuleSetStatus{Dir: s.rules.dir, Rules: []appeals.RuleInfo{}}
	if st := s.rules.status.Load(); st != nil {
		out.LoadedAt, out.LastReloadError, out.LastReloadAt = st.loadedAt, st.lastErr, st.lastErrAt
		out.Notes = st.notes
		ch := st.changes
		out.Changes = &ch
	}
	out.StuckReloads = s.rules.stuck()
	rs := s.rules.current.Load()
	if rs == nil {
		return out
	}
	out.Version = rs.Version()
	out.YoungAccount = policy.FormatDuration(rs.YoungAccount())
	demoted := map[string]store.Demotion{}
	for _, d := range s.rules.activeDemotions() {
		demoted[d.RuleID] = d
	}
	var inForce map[string]bool
	if loaded := s.rules.loaded.Load(); loaded != nil {
		inForce = guard.InForce(loaded, s.rules.activeDemotions())
	}
	for _, r := range rs.Rules() {
		info := appeals.RuleInfo{
			ID:          r.ID,
			Description: r.Description,
			Mode:        string(r.Mode),
			Events:      r.Events,
			When:        r.When,
			Actions:     actionNames(r.Actions),
			File:        r.File,
			Line:        r.Line,
		}
		if d, ok := demoted[r.ID]; ok && inForce[r.ID] {
			info.Demoted = &appeals.RuleDemotion{At: d.At, Reason: d.Reason, OverturnRate: d.OverturnRate, Taken: d.Taken, Overturned: d.Overturned}
		}
		out.Rules = append(out.Rules, info)
	}
	return out
}

func actionNames(types []policy.ActionType) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = string(t)
	}
	return out
}

// Settings lists every configuration variable with the value in force
// (a test holds the list to the variables config.go reads). Secrets are
// marked so: the staff API shows only whether they are set.
func (s serviceStatus) Settings() []appeals.Setting {
	c := s.cfg
	return []appeals.Setting{
		{Name: "DATABASE_URL", Value: c.DatabaseURL, Secret: true}, // may hold a password
		{Name: "STREAM_API_KEY", Value: c.StreamAPIKey},
		{Name: "STREAM_API_SECRET", Value: c.StreamAPISecret, Secret: true},
		{Name: "STREAM_API_KEYS", Value: c.StreamAPIKeys, Secret: true},
		{Name: "STREAM_BASE_URL", Value: c.StreamBaseURL},
		{Name: "MODERATOR_ADDR", Value: c.Addr},
		{Name: "MODERATOR_METRICS_ADDR", Value: c.MetricsAddr},
		{Name: "MODERATOR_RULES_DIR", Value: c.RulesDir},
		{Name: "MODERATOR_BOT_USER_ID", Value: c.BotUserID},
		{Name: "MODERATOR_DRY_RUN", Value: strconv.FormatBool(c.DryRun)},
		{Name: "MODERATOR_ADMIN_JWT_SECRET", Value: c.AdminJWTSecret, Secret: true},
		{Name: "MODERATOR_ADMIN_JWKS_URL", Value: c.AdminJWKSURL},
		{Name: "MODERATOR_ADMIN_JWT_ISSUER", Value: c.AdminJWTIssuer},
		{Name: "MODERATOR_ADMIN_JWT_AUDIENCE", Value: c.AdminJWTAudience},
		{Name: "MODERATOR_ADMIN_RATE_LIMIT", Value: strconv.Itoa(c.AdminRateLimit)},
		{Name: "MODERATOR_MAX_BODY_BYTES", Value: strconv.FormatInt(c.MaxBodyBytes, 10)},
		{Name: "MODERATOR_MAX_DECOMPRESSED_BYTES", Value: strconv.FormatInt(c.MaxGunzipBytes, 10)},
		{Name: "MODERATOR_SPOOL_DIR", Value: c.SpoolDir},
		{Name: "MODERATOR_SPOOL_MAX_BYTES", Value: strconv.FormatInt(c.SpoolMaxBytes, 10)},
		{Name: "MODERATOR_SHUTDOWN_TIMEOUT", Value: c.ShutdownTimeout.String()},
		{Name: "MODERATOR_LOG_LEVEL", Value: strings.ToLower(c.LogLevel.String())},
		{Name: "MODERATOR_RATE_LIMITS", Value: perActionValue(c.RateLimits)},
		{Name: "MODERATOR_DAILY_CAPS", Value: perActionValue(c.DailyCaps)},
		{Name: "MODERATOR_ACTION_WORKERS", Value: workersValue(c.ActionWorkers)},
		{Name: "MODERATOR_IMMUNITY_WINDOW", Value: c.ImmunityWindow.String()},
		{Name: "MODERATOR_GUARD_MAX_OVERTURN_RATE", Value: strconv.FormatFloat(c.Guard.MaxOverturnRate, 'f', -1, 64)},
		{Name: "MODERATOR_GUARD_MIN_ACTIONS", Value: strconv.Itoa(c.Guard.MinActions)},
		{Name: "MODERATOR_GUARD_WINDOW", Value: c.Guard.Window.String()},
		{Name: "MODERATOR_RETENTION", Value: retentionValue(c.Retention)},
		{Name: "MODERATOR_MIGRATE_DATABASE_URL", Value: c.MigrateDatabaseURL, Secret: true},
		{Name: "MODERATOR_CONSOLE_REASONS", Value: c.ConsoleReasons},
		{Name: "MODERATOR_OIDC_ISSUER", Value: c.OIDCIssuer},
		{Name: "MODERATOR_OIDC_CLIENT_ID", Value: c.OIDCClientID},
		{Name: "MODERATOR_OIDC_CLIENT_SECRET", Value: c.OIDCClientSecret, Secret: true},
		{Name: "MODERATOR_OIDC_REDIRECT_URL", Value: c.OIDCRedirectURL},
		{Name: "MODERATOR_OIDC_ROLE_CLAIM", Value: c.OIDCRoleClaim},
	}
}

// perActionValue writes a per-type map as the variable takes it
// ("ban=300,flag=300"); "default" when unset.
func perActionValue(m map[policy.ActionType]int) string {
	if len(m) == 0 {
		return "default"
	}
	parts := make([]string, 0, len(m))
	for _, t := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", t, m[t]))
	}
	return strings.Join(parts, ",")
}

func workersValue(n int) string {
	if n == 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

// retentionValue shows a retention in days when it is whole days, as it
// is usually written.
func retentionValue(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}
