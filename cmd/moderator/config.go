package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"moderator/actions"
	"moderator/appeals"
	"moderator/guard"
	"moderator/policy"
	"moderator/store"
)

// config is the service's configuration: environment variables, which
// flags may override. Names and defaults are an interface operators script
// against (DESIGN.md): change them only with care.
type config struct {
	DatabaseURL     string
	StreamAPIKey    string
	StreamAPISecret string
	StreamAPIKeys   string // extra "key:secret,key:secret" pairs accepted on webhooks (rotation)
	StreamBaseURL   string
	Addr            string
	// MetricsAddr, when set, serves /metrics on a listener of its own and
	// not on Addr, so metrics need not be exposed where Stream reaches.
	MetricsAddr    string
	RulesDir       string
	BotUserID      string
	DryRun         bool
	AdminJWTSecret string // the staff API's HS256 secret; with the Admin* fields below
	MaxBodyBytes   int64
	MaxGunzipBytes int64
	// SpoolDir and SpoolMaxBytes: the local spool that holds verified
	// webhooks while Postgres cannot commit them.
	SpoolDir        string
	SpoolMaxBytes   int64
	ShutdownTimeout time.Duration
	LogLevel        slog.Level
	// RateLimits and DailyCaps are per action type; nil keeps the
	// defaults of package actions.
	RateLimits    map[policy.ActionType]int
	DailyCaps     map[policy.ActionType]int
	ActionWorkers int
	// ImmunityWindow is how long after an overturn the rules that acted
	// may not act against the same user again.
	ImmunityWindow time.Duration
	// Guard is the rule guard's defaults (MODERATOR_GUARD_*): a rule whose
	// own guard does not say otherwise is demoted to shadow when reviewers
	// overturn this share of at least this many of its taken actions
	// within the window.
	Guard policy.Guard
	// Retention is how long audit data is kept: whole months of events
	// and decisions past it are dropped daily (MODERATOR_RETENTION).
	Retention time.Duration
	// MigrateDatabaseURL, when set, is the owner role's connection string:
	// serve migrates with it and runs as DATABASE_URL's (service) role.
	MigrateDatabaseURL string
	needStream         bool
	needDatabase       bool
	// MigrateStatus makes `moderator migrate` list the migrations instead
	// of applying them.
	MigrateStatus bool

	// The staff API's authentication (package appeals): off unless
	// AdminJWTSecret or AdminJWKSURL is set.
	AdminJWKSURL     string
	AdminJWTIssuer   string
	AdminJWTAudience string
	AdminRateLimit   int // requests per minute per token subject
	needAdmin        bool

	// The console's OpenID Connect sign-in: off unless OIDCIssuer is set,
	// which needs AdminJWKSURL.
	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret string
	OIDCRedirectURL  string
	OIDCRoleClaim    string

	// ConsoleReasons is the reviewer console's file of reason templates
	// ("": the built-in ones).
	ConsoleReasons string
}

// configError is a configuration problem: one line naming the variable,
// or several such lines when several variables are wrong, so that one run
// reports them all.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// configErrors joins the problems found, one line each; nil when there
// are none.
func configErrors(errs ...error) error {
	var lines []string
	for _, err := range errs {
		if err != nil {
			lines = append(lines, err.Error())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return &configError{msg: strings.Join(lines, "\n")}
}

// envSource reads variables and remembers the malformed ones.
type envSource struct {
	getenv func(string) string
	errs   []error
}

func (e *envSource) str(name, def string) string {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		return v
	}
	return def
}

func (e *envSource) fail(name, format string, args ...any) {
	e.errs = append(e.errs, &configError{msg: name + ": " + fmt.Sprintf(format, args...)})
}

func (e *envSource) boolean(name string, def bool) bool {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, "must be true or false, got %q", v)
		return def
	}
	return b
}

func (e *envSource) bytes(name string, def int64) int64 {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := parseBytes(v)
	if err != nil || n <= 0 {
		e.fail(name, "must be a positive size such as 1048576, 512KiB or 8MiB, got %q", v)
		return def
	}
	return n
}

func (e *envSource) duration(name string, def time.Duration) time.Duration {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.fail(name, "must be a positive duration such as 20s, got %q", v)
		return def
	}
	return d
}

// guard reads the rule guard's defaults: MODERATOR_GUARD_MAX_OVERTURN_RATE
// (a share, 0 < r ≤ 1), MODERATOR_GUARD_MIN_ACTIONS and
// MODERATOR_GUARD_WINDOW (1h to 30d, with d for days).
func (e *envSource) guard(rate string, minActions int, window string) policy.Guard {
	g := guard.Defaults
	g.MinActions = minActions
	if v := rate; v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 || r > 1 {
			e.fail("MODERATOR_GUARD_MAX_OVERTURN_RATE", "must be a share above 0 and at most 1, such as 0.3, got %q", v)
		} else {
			g.MaxOverturnRate = r
		}
	}
	if v := window; v != "" {
		w, err := policy.ParseDuration(v)
		if err != nil || w < time.Hour || w > policy.MaxHistoryWindow {
			e.fail("MODERATOR_GUARD_WINDOW", "must be a duration from 1h to 30d, such as 7d, got %q", v)
		} else {
			g.Window = w
		}
	}
	return g
}

// DefaultRetention is MODERATOR_RETENTION's default: 400 days, the six
// months users have to appeal under the EU DSA and ample margin.
const DefaultRetention = 400 * 24 * time.Hour

// retention reads a retention such as 400d or 9600h, refusing one under
// store.MinRetention unless the variable named force is true.
func (e *envSource) retention(name, force string) time.Duration {
	v := e.str(name, "")
	if v == "" {
		return DefaultRetention
	}
	d, err := policy.ParseDuration(v)
	if err != nil || d <= 0 {
		e.fail(name, "must be a duration such as 400d or 9600h, got %q", v)
		return DefaultRetention
	}
	if failed := len(e.errs); d < store.MinRetention && !e.boolean(force, false) && len(e.errs) == failed {
		e.fail(name, "%s is shorter than %d days, the six months users have to appeal under the EU Digital Services Act; "+
			"set %s=true to keep data for less anyway", v, int(store.MinRetention.Hours()/24), force)
		return DefaultRetention
	}
	return d
}

// The action types MODERATOR_DAILY_CAPS names, and the endpoints
// MODERATOR_RATE_LIMITS also paces: the reversals' (a warning's reversal
// deletes a message, within delete's budget). Reversals are not capped: a
// person asked for them.
var (
	cappedTypes  = []policy.ActionType{policy.ActionBan, policy.ActionFlag, policy.ActionMute, policy.ActionDelete, policy.ActionWarn}
	limitedTypes = append(slices.Clone(cappedTypes), actions.Unban, actions.Unflag, actions.Unmute, actions.Undelete)
)

// perAction reads "ban=300,flag=300": a number per action type of types,
// each at least least.
func (e *envSource) perAction(name string, least int, types []policy.ActionType) map[policy.ActionType]int {
	v := e.str(name, "")
	if v == "" {
		return nil
	}
	out := map[policy.ActionType]int{}
	for _, pair := range strings.Split(v, ",") {
		k, n, ok := strings.Cut(strings.TrimSpace(pair), "=")
		typ := policy.ActionType(strings.TrimSpace(k))
		if !slices.Contains(types, typ) {
			names := make([]string, len(types))
			for i, t := range types {
				names[i] = string(t)
			}
			e.fail(name, "want type=number pairs separated by commas, types %s; got %q", strings.Join(names, ", "), pair)
			return nil
		}
		num, err := strconv.Atoi(strings.TrimSpace(n))
		if !ok || err != nil || num < least {
			e.fail(name, "%s: want a whole number of at least %d, got %q", typ, least, strings.TrimSpace(n))
			return nil
		}
		out[typ] = num
	}
	return out
}

// positive reads a positive whole number.
func (e *envSource) positive(name string, def int) int {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		e.fail(name, "must be a positive whole number, got %q", v)
		return def
	}
	return n
}

func (e *envSource) level(name string, def slog.Level) slog.Level {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		e.fail(name, "must be debug, info, warn or error, got %q", v)
		return def
	}
	return l
}

// parseBytes reads 1048576, 512KiB, 1MiB, 1MB (as MiB: nobody means 10^6 here).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
}

// loadConfig reads the environment, then the command's flags (which
// override it), and validates what the command needs.
func loadConfig(command string, args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	env := &envSource{getenv: getenv}
	c := config{
		DatabaseURL:     env.str("DATABASE_URL", ""),
		StreamAPIKey:    env.str("STREAM_API_KEY", ""),
		StreamAPISecret: env.str("STREAM_API_SECRET", ""),
		StreamAPIKeys:   env.str("STREAM_API_KEYS", ""),
		StreamBaseURL:   env.str("STREAM_BASE_URL", "https://chat.stream-io-api.com"),
		Addr:            env.str("MODERATOR_ADDR", ":8080"),
		MetricsAddr:     env.str("MODERATOR_METRICS_ADDR", ""),
		RulesDir:        env.str("MODERATOR_RULES_DIR", "rules"),
		BotUserID:       env.str("MODERATOR_BOT_USER_ID", "moderator-bot"),
		DryRun:          env.boolean("MODERATOR_DRY_RUN", false),
		AdminJWTSecret:  env.str("MODERATOR_ADMIN_JWT_SECRET", ""),
		MaxBodyBytes:    env.bytes("MODERATOR_MAX_BODY_BYTES", 1<<20),
		MaxGunzipBytes:  env.bytes("MODERATOR_MAX_DECOMPRESSED_BYTES", 8<<20),
		SpoolDir:        env.str("MODERATOR_SPOOL_DIR", ".data/spool"),
		SpoolMaxBytes:   env.bytes("MODERATOR_SPOOL_MAX_BYTES", 1<<30),
		ShutdownTimeout: env.duration("MODERATOR_SHUTDOWN_TIMEOUT", 20*time.Second),
		LogLevel:        env.level("MODERATOR_LOG_LEVEL", slog.LevelInfo),
		RateLimits:      env.perAction("MODERATOR_RATE_LIMITS", 1, limitedTypes),
		DailyCaps:       env.perAction("MODERATOR_DAILY_CAPS", 0, cappedTypes),
		ActionWorkers:   env.positive("MODERATOR_ACTION_WORKERS", 0),
		ImmunityWindow:  env.duration("MODERATOR_IMMUNITY_WINDOW", DefaultImmunityWindow),
		Guard: env.guard(env.str("MODERATOR_GUARD_MAX_OVERTURN_RATE", ""),
			env.positive("MODERATOR_GUARD_MIN_ACTIONS", guard.Defaults.MinActions), env.str("MODERATOR_GUARD_WINDOW", "")),
		Retention: env.retention("MODERATOR_RETENTION", "MODERATOR_RETENTION_FORCE"),

		MigrateDatabaseURL: env.str("MODERATOR_MIGRATE_DATABASE_URL", ""),

		AdminJWKSURL:     env.str("MODERATOR_ADMIN_JWKS_URL", ""),
		AdminJWTIssuer:   env.str("MODERATOR_ADMIN_JWT_ISSUER", ""),
		AdminJWTAudience: env.str("MODERATOR_ADMIN_JWT_AUDIENCE", ""),
		AdminRateLimit:   env.positive("MODERATOR_ADMIN_RATE_LIMIT", appeals.DefaultRatePerMinute),
		ConsoleReasons:   env.str("MODERATOR_CONSOLE_REASONS", ""),
		OIDCIssuer:       env.str("MODERATOR_OIDC_ISSUER", ""),
		OIDCClientID:     env.str("MODERATOR_OIDC_CLIENT_ID", ""),
		OIDCClientSecret: env.str("MODERATOR_OIDC_CLIENT_SECRET", ""),
		OIDCRedirectURL:  env.str("MODERATOR_OIDC_REDIRECT_URL", ""),
		OIDCRoleClaim:    env.str("MODERATOR_OIDC_ROLE_CLAIM", "role"),
	}

	fs := flag.NewFlagSet("moderator "+command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printConfigUsage(fs, command, c) }
	switch command {
	case "serve":
		c.needStream, c.needDatabase, c.needAdmin = true, true, true
		fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (MODERATOR_ADDR)")
		fs.StringVar(&c.RulesDir, "rules", c.RulesDir, "rules folder (MODERATOR_RULES_DIR)")
		fs.BoolVar(&c.DryRun, "dry-run", c.DryRun, "decide and audit, send nothing to Stream (MODERATOR_DRY_RUN)")
	case "migrate":
		c.needDatabase = true
		fs.BoolVar(&c.MigrateStatus, "status", false, "list applied and pending migrations; apply nothing")
	case "audit":
		c.needDatabase = true
	}
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "Postgres connection string (DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("moderator %s: unexpected argument %q", command, fs.Arg(0))
	}
	// Every malformed and every missing variable, in one run.
	return c, configErrors(append(env.errs, c.validate())...)
}

// printConfigUsage is `serve --help` and `migrate --help`: the flags, then
// for serve every environment variable with the value it has now (secrets
// only as set or not set).
func printConfigUsage(fs *flag.FlagSet, command string, c config) {
	w := fs.Output()
	switch command {
	case "serve":
		fmt.Fprint(w, "usage: moderator serve [--addr ADDR] [--rules DIR] [--dry-run] [--database-url URL]\n\n"+
			"run the HTTP service; pending migrations are applied first\n\n")
	case "migrate":
		fmt.Fprint(w, "usage: moderator migrate [--status] [--database-url URL]\n\n"+
			"apply pending database migrations and exit; --status lists them instead\n\n")
	default:
		fmt.Fprintf(w, "usage: moderator %s [flags]\n\n", command)
	}
	fs.PrintDefaults()
	if command != "serve" {
		return
	}
	fmt.Fprint(w, "\nenvironment (README.md's Configuration section explains each), with the values in force now:\n")
	for _, s := range (serviceStatus{cfg: c}).Settings() {
		v := s.Value
		switch {
		case s.Secret && v != "":
			v = "(set)"
		case v == "":
			v = "(not set)"
		}
		fmt.Fprintf(w, "  %-34s %s\n", s.Name, v)
	}
}

// validate checks what the command needs, naming every bad variable.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, &configError{msg: fmt.Sprintf(format, args...)}) }
	if c.needDatabase {
		if c.DatabaseURL == "" {
			bad("DATABASE_URL is required (for example postgres://user@127.0.0.1:5432/moderator)")
		} else if _, err := pgconn.ParseConfig(c.DatabaseURL); err != nil {
			bad("DATABASE_URL: not a valid Postgres connection string")
		}
		if c.MigrateDatabaseURL != "" {
			if _, err := pgconn.ParseConfig(c.MigrateDatabaseURL); err != nil {
				bad("MODERATOR_MIGRATE_DATABASE_URL: not a valid Postgres connection string")
			}
		}
	}
	if c.needAdmin {
		errs = append(errs, c.validateAdmin(), c.validateOIDC())
	}
	if c.needStream {
		errs = append(errs, c.validateService())
	}
	return configErrors(errs...)
}

// validateService checks what serve needs besides the database.
func (c *config) validateService() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, &configError{msg: fmt.Sprintf(format, args...)}) }
	if c.StreamAPIKey == "" {
		bad("STREAM_API_KEY is required")
	}
	if c.StreamAPISecret == "" {
		bad("STREAM_API_SECRET is required")
	}
	if c.StreamAPIKey != "" && c.StreamAPISecret != "" {
		if _, err := c.webhookKeys(); err != nil {
			errs = append(errs, err)
		}
	}
	u, err := url.Parse(c.StreamBaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("STREAM_BASE_URL: must be an http(s) URL such as https://chat.stream-io-api.com, got %q", c.StreamBaseURL)
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		bad("MODERATOR_ADDR: must be host:port or :port, got %q", c.Addr)
	}
	if c.MetricsAddr != "" {
		_, port, err := net.SplitHostPort(c.MetricsAddr)
		if err != nil || port == "" {
			bad("MODERATOR_METRICS_ADDR: must be host:port or :port, got %q", c.MetricsAddr)
		} else if c.MetricsAddr == c.Addr && port != "0" {
			bad("MODERATOR_METRICS_ADDR: must differ from MODERATOR_ADDR (%s)", c.Addr)
		}
	}
	if c.BotUserID == "" {
		bad("MODERATOR_BOT_USER_ID must not be empty")
	}
	return configErrors(errs...)
}

// validateAdmin checks the staff API's authentication settings. All of them
// may be unset (the staff API is then off); what is set must be usable.
func (c *config) validateAdmin() error {
	bad := func(format string, args ...any) error { return &configError{msg: fmt.Sprintf(format, args...)} }
	if c.AdminJWTSecret != "" {
		if err := checkAdminSecret(c.AdminJWTSecret); err != nil {
			return err
		}
	}
	if c.AdminJWKSURL == "" {
		if c.AdminJWTIssuer != "" {
			return bad("MODERATOR_ADMIN_JWT_ISSUER is set but MODERATOR_ADMIN_JWKS_URL is not: the issuer applies only to identity-provider tokens")
		}
		if c.AdminJWTAudience != "" {
			return bad("MODERATOR_ADMIN_JWT_AUDIENCE is set but MODERATOR_ADMIN_JWKS_URL is not: the audience applies only to identity-provider tokens")
		}
		return nil
	}
	if !httpsURL(c.AdminJWKSURL) {
		return bad("MODERATOR_ADMIN_JWKS_URL: must be an https URL such as https://idp.example.com/.well-known/jwks.json (http only on localhost), got %q", c.AdminJWKSURL)
	}
	if c.AdminJWTIssuer == "" {
		return bad("MODERATOR_ADMIN_JWT_ISSUER is required with MODERATOR_ADMIN_JWKS_URL: the identity provider's iss, e.g. https://idp.example.com/")
	}
	if c.AdminJWTAudience == "" {
		return bad("MODERATOR_ADMIN_JWT_AUDIENCE is required with MODERATOR_ADMIN_JWKS_URL: the aud the identity provider puts in tokens for this service")
	}
	return nil
}

// validateOIDC checks the console's OpenID Connect settings: all unset
// (off), or an issuer, a client id and a redirect URL, with the identity
// provider's tokens accepted (MODERATOR_ADMIN_JWKS_URL).
func (c *config) validateOIDC() error {
	bad := func(format string, args ...any) error { return &configError{msg: fmt.Sprintf(format, args...)} }
	if c.OIDCIssuer == "" {
		for name, v := range map[string]string{"MODERATOR_OIDC_CLIENT_ID": c.OIDCClientID, "MODERATOR_OIDC_CLIENT_SECRET": c.OIDCClientSecret, "MODERATOR_OIDC_REDIRECT_URL": c.OIDCRedirectURL} {
			if v != "" {
				return bad("%s is set but MODERATOR_OIDC_ISSUER is not: the console's identity-provider sign-in needs the provider's issuer URL", name)
			}
		}
		return nil
	}
	if !httpsURL(c.OIDCIssuer) {
		return bad("MODERATOR_OIDC_ISSUER: must be an https URL such as https://idp.example.com (http only on localhost), got %q", c.OIDCIssuer)
	}
	if c.AdminJWKSURL == "" {
		return bad("MODERATOR_OIDC_ISSUER is set but MODERATOR_ADMIN_JWKS_URL is not: the identity-provider sign-in needs the staff API to accept the provider's tokens")
	}
	if c.OIDCClientID == "" {
		return bad("MODERATOR_OIDC_CLIENT_ID is required with MODERATOR_OIDC_ISSUER: the client id registered at the identity provider")
	}
	if u, err := url.Parse(c.OIDCRedirectURL); c.OIDCRedirectURL == "" || err != nil || !httpsURL(c.OIDCRedirectURL) || u.Path != "/console/oidc/callback" {
		return bad("MODERATOR_OIDC_REDIRECT_URL: must be this service's https URL ending in /console/oidc/callback (as registered at the identity provider), got %q", c.OIDCRedirectURL)
	}
	if c.OIDCRoleClaim == "" || strings.ContainsFunc(c.OIDCRoleClaim, unicode.IsSpace) {
		return bad("MODERATOR_OIDC_ROLE_CLAIM: must be a claim name such as role, got %q", c.OIDCRoleClaim)
	}
	return nil
}

// httpsURL reports whether s is an absolute https URL (or http on
// localhost).
func httpsURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Host != "" && (u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname())))
}

// checkAdminSecret refuses an HS256 secret too short to be safe; the error
// names the variable and never shows the secret.
func checkAdminSecret(secret string) error {
	if n := len(secret); n < appeals.MinSecretBytes {
		return &configError{msg: fmt.Sprintf("MODERATOR_ADMIN_JWT_SECRET: must be at least %d bytes (HS256 is only as strong as its key; make one with openssl rand -base64 32), got %d", appeals.MinSecretBytes, n)}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// staffAuth returns the staff API's authentication settings, its metrics
// going to reg (nil: none); ok is false when neither a secret nor a JWKS
// URL is set, and the staff API is off.
func (c *config) staffAuth(logger *slog.Logger, reg prometheus.Registerer) (cfg appeals.AuthConfig, ok bool) {
	if c.AdminJWTSecret == "" && c.AdminJWKSURL == "" {
		return appeals.AuthConfig{}, false
	}
	cfg = appeals.AuthConfig{
		JWKSURL:       c.AdminJWKSURL,
		Issuer:        c.AdminJWTIssuer,
		Audience:      c.AdminJWTAudience,
		RatePerMinute: c.AdminRateLimit,
		Logger:        logger,
		Registerer:    reg,
	}
	if c.AdminJWTSecret != "" {
		cfg.HS256Secret = []byte(c.AdminJWTSecret)
	}
	return cfg, true
}

// webhookKeys returns every API key whose signature the webhook accepts:
// the primary STREAM_API_KEY/STREAM_API_SECRET and the STREAM_API_KEYS pairs.
func (c *config) webhookKeys() (map[string]string, error) {
	keys := map[string]string{c.StreamAPIKey: c.StreamAPISecret}
	if c.StreamAPIKeys == "" {
		return keys, nil
	}
	for i, pair := range strings.Split(c.StreamAPIKeys, ",") {
		key, secret, ok := strings.Cut(strings.TrimSpace(pair), ":")
		key, secret = strings.TrimSpace(key), strings.TrimSpace(secret)
		if !ok || key == "" || secret == "" {
			// Never echo the pair: it holds a secret.
			return nil, &configError{msg: fmt.Sprintf("STREAM_API_KEYS: entry %d must be key:secret (entries separated by commas)", i+1)}
		}
		if prev, dup := keys[key]; dup && prev != secret {
			return nil, &configError{msg: fmt.Sprintf("STREAM_API_KEYS: key %q is configured twice with different secrets", key)}
		}
		keys[key] = secret
	}
	return keys, nil
}

var errUsage = errors.New("usage")
