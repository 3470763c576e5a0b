package appeals

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/MicahParks/jwkset"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Limits and defaults of staff authentication.
const (
	// MinSecretBytes is the shortest HS256 secret accepted: HMAC-SHA256 is
	// only as strong as its key, and RFC 7518 §3.2 asks for at least 256 bits.
	MinSecretBytes = 32
	// MaxTokenTTL caps what MintToken issues: a leaked HS256 token cannot be
	// revoked short of rotating the secret, so it must expire.
	MaxTokenTTL = 30 * 24 * time.Hour
	// DefaultLeeway absorbs clock skew between the token's issuer and us.
	DefaultLeeway = 30 * time.Second
	// DefaultRatePerMinute is the per-subject request budget.
	DefaultRatePerMinute = 600

	maxTokenBytes   = 8 << 10 // far above any real JWT; refused before any parsing
	maxSubjectBytes = 256     // sub goes into the audit trail and the logs
	minRSABits      = 2048

	jwksTimeout         = 10 * time.Second           // one fetch of the identity provider's key set
	jwksMaxBytes        = 1 << 20                    // a key set is a few KiB
	jwksRefreshInterval = 15 * time.Minute           // picks up revoked keys
	jwksUnknownKIDEvery = 30 * time.Second           // at most one fetch per this for unseen kids
	jwksUnknownKIDWait  = 5 * time.Second            // the longest a request waits for that turn and fetch
	realm               = `Bearer realm="moderator"` // the WWW-Authenticate challenge
)

// AuthConfig configures staff authentication. At least one of HS256Secret
// and JWKSURL must be set; cmd leaves the staff API off when neither is.
type AuthConfig struct {
	// HS256Secret verifies HS256 tokens (MODERATOR_ADMIN_JWT_SECRET), such
	// as `moderator token` mints; nil refuses every HS256 token. At least
	// MinSecretBytes long.
	HS256Secret []byte
	// JWKSURL is an identity provider's JSON Web Key Set
	// (MODERATOR_ADMIN_JWKS_URL), whose keys verify RS256 and ES256 tokens
	// chosen by their kid; "" refuses every such token.
	JWKSURL string
	// Issuer and Audience (MODERATOR_ADMIN_JWT_ISSUER, _AUDIENCE) are
	// required with JWKSURL: an identity provider signs tokens for many
	// applications, and only those issued by it for us may pass. They do not
	// apply to HS256 tokens, which only holders of our secret can make.
	Issuer, Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat (0: DefaultLeeway).
	Leeway time.Duration
	// RatePerMinute is each token subject's request budget
	// (MODERATOR_ADMIN_RATE_LIMIT; 0: DefaultRatePerMinute).
	RatePerMinute int
	// HTTPClient fetches the key set (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock for token times and rate limits (nil: time.Now).
	Now func() time.Time
	// Logger receives one line per refused request (nil: discarded).
	Logger *slog.Logger
	// Registerer, when set, gets moderator_staff_auth_refused_total{reason}
	// and moderator_staff_jwks_fetch_errors_total.
	Registerer prometheus.Registerer
}

// Authenticator checks staff bearer tokens and limits each subject's
// request rate. Build it with NewAuthenticator; its key-set refresher lives
// as long as the context given there.
type Authenticator struct {
	secret  []byte
	jwks    *keySet     // nil without JWKSURL
	hs      *jwt.Parser // nil without a secret
	idp     *jwt.Parser // nil without JWKSURL
	logger  *slog.Logger
	limiter *subjectLimiter
	refused *prometheus.CounterVec // nil without a Registerer
}

// refusalReasons are the values of a refusal's reason, in logs and in
// moderator_staff_auth_refused_total.
var refusalReasons = []string{
	"no_token", "malformed", "bad_signature", "unverifiable", "missing_claim", "bad_claim",
	"expired", "not_yet_valid", "issued_in_future", "wrong_issuer", "wrong_audience",
	"alg_not_allowed", "unknown_key", "invalid", "rate_limited",
}

// NewAuthenticator checks cfg and, with a JWKS URL, starts fetching the key
// set without waiting for it: the service starts, and takes webhooks, while
// the identity provider is slow or down (a failed fetch is logged; an
// unknown kid triggers a new one). The key set is refreshed every 15
// minutes until ctx ends.
func NewAuthenticator(ctx context.Context, cfg AuthConfig) (*Authenticator, error) {
	if len(cfg.HS256Secret) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("staff auth: neither an HS256 secret nor a JWKS URL is configured")
	}
	if len(cfg.HS256Secret) > 0 && len(cfg.HS256Secret) < MinSecretBytes {
		return nil, fmt.Errorf("staff auth: the HS256 secret has %d bytes, want at least %d", len(cfg.HS256Secret), MinSecretBytes)
	}
	if cfg.JWKSURL != "" && (cfg.Issuer == "" || cfg.Audience == "") {
		return nil, errors.New("staff auth: a JWKS URL needs an issuer and an audience")
	}
	if cfg.Leeway < 0 || cfg.RatePerMinute < 0 {
		return nil, errors.New("staff auth: leeway and rate must not be negative")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.RatePerMinute == 0 {
		cfg.RatePerMinute = DefaultRatePerMinute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	common := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	}
	a := &Authenticator{
		logger:  cfg.Logger,
		limiter: newSubjectLimiter(cfg.RatePerMinute, cfg.Now),
	}
	var fetchErrors prometheus.Counter
	if cfg.Registerer != nil {
		a.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_staff_auth_refused_total",
			Help: "Staff API requests refused by authentication or the rate limit, by reason (no_token, bad_signature, expired, rate_limited, …).",
		}, []string{"reason"})
		for _, r := range refusalReasons {
			a.refused.WithLabelValues(r)
		}
		fetchErrors = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_staff_jwks_fetch_errors_total",
			Help: "Failed fetches of the identity provider's JWKS (MODERATOR_ADMIN_JWKS_URL).",
		})
	}
	if len(cfg.HS256Secret) > 0 {
		a.secret = append([]byte(nil), cfg.HS256Secret...)
		a.hs = jwt.NewParser(slices.Concat(common, []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"})})...)
	}
	if cfg.JWKSURL != "" {
		if _, err := url.ParseRequestURI(cfg.JWKSURL); err != nil {
			return nil, fmt.Errorf("staff auth: JWKS URL: %w", err)
		}
		a.jwks = loadKeySet(func() (jwkset.Storage, error) {
			return newJWKS(ctx, cfg.JWKSURL, cfg.HTTPClient, cfg.Logger, fetchErrors, jwksUnknownKIDWait)
		}, cfg.Logger)
		a.idp = jwt.NewParser(slices.Concat(common, []jwt.ParserOption{
			jwt.WithValidMethods([]string{"RS256", "ES256"}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
		})...)
	}
	if cfg.Registerer != nil { // last, so that a refused config registers nothing
		for _, c := range []prometheus.Collector{a.refused, fetchErrors} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("staff auth: register metrics: %w", err)
			}
		}
	}
	return a, nil
}

// newJWKS builds the key-set cache with jwkset: a fetch at start, a
// refresh every jwksRefreshInterval (which also forgets revoked keys),
// and on an unknown kid one refresh at most every jwksUnknownKIDEvery (a
// request waits at most wait, jwksUnknownKIDWait in service, for its turn
// and the fetch, else fails at once), each fetch bounded in time and
// size. The refresher ends with ctx.
func newJWKS(ctx context.Context, u string, client *http.Client, logger *slog.Logger, fetchErrors prometheus.Counter, wait time.Duration) (jwkset.Storage, error) {
	c := &http.Client{Timeout: jwksTimeout}
	if client != nil {
		cp := *client
		c = &cp
		if c.Timeout == 0 {
			c.Timeout = jwksTimeout
		}
	}
	c.Transport = limitedBody{base: c.Transport, max: jwksMaxBytes}
	remote, err := jwkset.NewStorageFromHTTP(u, jwkset.HTTPClientStorageOptions{
		Client:                    c,
		Ctx:                       ctx,
		HTTPTimeout:               jwksTimeout,
		NoErrorReturnFirstHTTPReq: true, // start while the IdP is down
		RefreshInterval:           jwksRefreshInterval,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			if fetchErrors != nil {
				fetchErrors.Inc()
			}
			logger.WarnContext(ctx, "staff auth: fetch JWKS", "error", err.Error())
		},
	})
	if err != nil {
		return nil, fmt.Errorf("staff auth: JWKS %s: %w", u, err)
	}
	st, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{u: remote},
		RateLimitWaitMax:  wait,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(jwksUnknownKIDEvery), 1),
	})
	if err != nil {
		return nil, fmt.Errorf("staff auth: JWKS %s: %w", u, err)
	}
	return st, nil
}

// keySet is the identity provider's key set, usable once its first fetch
// has ended (successfully or not), which happens in the background.
type keySet struct {
	ready chan struct{} // closed when st is set
	st    jwkset.Storage
}

func loadKeySet(load func() (jwkset.Storage, error), logger *slog.Logger) *keySet {
	ks := &keySet{ready: make(chan struct{})}
	go func() { // ends with the first fetch, within jwksTimeout
		defer close(ks.ready)
		st, err := load()
		if err != nil {
			logger.Error("staff auth: JWKS", "error", err.Error())
			return
		}
		ks.st = st
	}()
	return ks
}

// keyRead returns kid's key, waiting at most jwksUnknownKIDWait for the
// first fetch.
func (ks *keySet) keyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	t := time.NewTimer(jwksUnknownKIDWait)
	defer t.Stop()
	select {
	case <-ks.ready:
	case <-t.C:
		return jwkset.JWK{}, errors.New("the key set is still loading")
	case <-ctx.Done():
		return jwkset.JWK{}, ctx.Err()
	}
	if ks.st == nil {
		return jwkset.JWK{}, errors.New("no key set")
	}
	return ks.st.KeyRead(ctx, kid)
}

// limitedBody refuses key-set answers larger than max, which jwkset would
// otherwise decode whatever their size.
type limitedBody struct {
	base http.RoundTripper
	max  int64
}

func (l limitedBody) RoundTrip(r *http.Request) (*http.Response, error) {
	base := l.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &capReader{rc: resp.Body, left: l.max}
	return resp, nil
}

type capReader struct {
	rc   io.ReadCloser
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("JWKS answer over %d bytes", jwksMaxBytes)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *capReader) Close() error { return c.rc.Close() }

// staffClaims are the claims of a staff token.
type staffClaims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// UnmarshalJSON reads the claims by their exact names, as RFC 7519 names
// them: encoding/json, which golang-jwt uses, matches names regardless of
// case, so a "ROLE" beside "role" would grant its role and a "SUB" would
// change the subject the audit trail records. A claim given twice is
// refused (RFC 7519 §4), as is a claim that is not UTF-8.
func (c *staffClaims) UnmarshalJSON(b []byte) error {
	type plain staffClaims
	return jsonv2.Unmarshal(b, (*plain)(c))
}

// authError is why a token was refused: Reason is a stable snake_case word
// for logs, err the details (never the token).
type authError struct {
	Reason string
	err    error
}

func (e *authError) Error() string { return e.Reason + ": " + e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

func refuse(reason string, format string, args ...any) *authError {
	return &authError{Reason: reason, err: fmt.Errorf(format, args...)}
}

// Authenticate verifies a bearer token (without the "Bearer " prefix) and
// returns its caller. An error is an *authError naming the reason.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Staff, error) {
	v, err := a.authenticate(ctx, token)
	return v.Staff, err
}

// AuthenticateUntil is Authenticate that also returns when the token
// expires: the console's session made from it ends no later.
func (a *Authenticator) AuthenticateUntil(ctx context.Context, token string) (Staff, time.Time, error) {
	v, err := a.authenticate(ctx, token)
	return v.Staff, v.expires, err
}

// verified is a token that passed: its caller, its rate-limit key (the
// subject within its key source; the issuer is fixed per source, so an
// IdP user and an HS256 token of the same name do not share, or exhaust,
// one budget) and its expiry.
type verified struct {
	Staff
	key     string
	expires time.Time
}

func (a *Authenticator) authenticate(ctx context.Context, token string) (verified, error) {
	if token == "" {
		return verified{}, refuse("malformed", "empty bearer token")
	}
	if len(token) > maxTokenBytes {
		return verified{}, refuse("malformed", "token of %d bytes, over %d", len(token), maxTokenBytes)
	}
	// Go's base64 decoders skip \r and \n, so a token with one inserted
	// would verify as the token without it: only the compact JWT alphabet
	// (base64url and the dots) is accepted, one spelling per token.
	if i := strings.IndexFunc(token, func(c rune) bool { return !isTokenChar(c) }); i >= 0 {
		return verified{}, refuse("malformed", "byte %d of the token is not base64url or '.'", i)
	}
	hdr, err := peekHeader(token)
	if err != nil {
		return verified{}, refuse("malformed", "%w", err)
	}
	// Pin the algorithm to the key source before any key is looked up: an
	// HS256 token is only ever checked with our secret, an RS256/ES256
	// token only with the identity provider's key of its kid and type.
	var (
		parser *jwt.Parser
		kf     jwt.Keyfunc
		source string
	)
	switch hdr.Alg {
	case "HS256":
		if a.secret == nil {
			return verified{}, refuse("alg_not_allowed", "HS256 tokens are not accepted: no secret is configured")
		}
		parser, source = a.hs, "hs256"
		kf = func(*jwt.Token) (any, error) { return a.secret, nil }
	case "RS256", "ES256":
		if a.jwks == nil {
			return verified{}, refuse("alg_not_allowed", "%s tokens are not accepted: no JWKS URL is configured", hdr.Alg)
		}
		if hdr.Kid == "" {
			return verified{}, refuse("unknown_key", "%s token without a kid", hdr.Alg)
		}
		parser, source = a.idp, "jwks"
		kf = a.jwksKey(ctx, hdr.Alg, hdr.Kid)
	default:
		return verified{}, refuse("alg_not_allowed", "alg %q is not accepted", clip(hdr.Alg))
	}

	var claims staffClaims
	if _, err := parser.ParseWithClaims(token, &claims, kf); err != nil {
		return verified{}, classify(err)
	}
	if claims.Subject == "" {
		return verified{}, refuse("missing_claim", "no sub")
	}
	if err := validSubject(claims.Subject); err != nil {
		return verified{}, refuse("bad_claim", "%w", err)
	}
	role := Role(claims.Role)
	if !role.Valid() {
		// A signed token whose role we do not know carries no permission we
		// can read: it is not a valid staff token (401), rather than a
		// valid one lacking a permission (403).
		return verified{}, refuse("bad_claim", "role %q is not viewer, reviewer or admin", clip(claims.Role))
	}
	v := verified{Staff: Staff{Subject: claims.Subject, Role: role}, key: source + "\x00" + claims.Subject}
	if claims.ExpiresAt != nil {
		v.expires = claims.ExpiresAt.Time
	}
	return v, nil
}

// jwksKey returns the keyfunc for an identity provider's token: the key of
// kid from the key set (refreshed when kid is new to it), which must be
// published for signatures (use "sig" or none), for alg (alg alg or none),
// and of the type alg needs (RSA of at least 2048 bits for RS256, P-256
// for ES256), whatever else the key set says.
func (a *Authenticator) jwksKey(ctx context.Context, alg, kid string) jwt.Keyfunc {
	return a.jwks.keyfunc(ctx, alg, kid)
}

// keyfunc is jwksKey for the key set ks.
func (ks *keySet) keyfunc(ctx context.Context, alg, kid string) jwt.Keyfunc {
	return func(*jwt.Token) (any, error) {
		jwk, err := ks.keyRead(ctx, kid)
		if err != nil {
			if errors.Is(err, jwkset.ErrKeyNotFound) {
				return nil, refuse("unknown_key", "kid %q is not in the key set", clip(kid))
			}
			return nil, refuse("unknown_key", "kid %q: %w", clip(kid), err)
		}
		m := jwk.Marshal()
		if m.USE != "" && m.USE != jwkset.UseSig {
			return nil, refuse("alg_not_allowed", "kid %q is published for use %q, not signatures", clip(kid), m.USE)
		}
		if m.ALG != "" && string(m.ALG) != alg {
			return nil, refuse("alg_not_allowed", "kid %q is published for %s, the token says %s", clip(kid), m.ALG, alg)
		}
		key := jwk.Key()
		switch k := key.(type) {
		case *rsa.PrivateKey: // a key set should never hold these, but use only the public half
			key = &k.PublicKey
		case *ecdsa.PrivateKey:
			key = &k.PublicKey
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			if alg == "RS256" && k.N.BitLen() >= minRSABits {
				return k, nil
			}
		case *ecdsa.PublicKey:
			if alg == "ES256" && k.Curve == elliptic.P256() {
				return k, nil
			}
		}
		return nil, refuse("alg_not_allowed", "kid %q is a %s key, not one for %s", clip(kid), keyKind(key), alg)
	}
}

// keyKind names a key's type and size for a log line.
func keyKind(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("%d-bit RSA", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case []byte:
		return "symmetric"
	}
	return fmt.Sprintf("%T", key)
}

// classify turns golang-jwt's error into an authError, keeping our own.
func classify(err error) *authError {
	var ae *authError
	if errors.As(err, &ae) {
		return ae
	}
	for _, c := range []struct {
		target error
		reason string
	}{
		{jwt.ErrTokenMalformed, "malformed"},
		{jwt.ErrTokenSignatureInvalid, "bad_signature"},
		{jwt.ErrTokenUnverifiable, "unverifiable"},
		{jwt.ErrTokenRequiredClaimMissing, "missing_claim"},
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not_yet_valid"},
		{jwt.ErrTokenUsedBeforeIssued, "issued_in_future"},
		{jwt.ErrTokenInvalidIssuer, "wrong_issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong_audience"},
	} {
		if errors.Is(err, c.target) {
			return &authError{Reason: c.reason, err: err}
		}
	}
	return &authError{Reason: "invalid", err: err}
}

// tokenHeader is the part of a JWT header read before verification, only
// to pick the key source.
type tokenHeader struct {
	Alg, Kid string
}

// peekHeader reads alg and kid from the header by their exact names, as
// golang-jwt does (encoding/json would also match "ALG" into a struct
// field), so both read the same alg.
func peekHeader(token string) (tokenHeader, error) {
	seg, _, ok := strings.Cut(token, ".")
	if !ok || strings.Count(token, ".") != 2 {
		return tokenHeader{}, errors.New("not three dot-separated segments")
	}
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return tokenHeader{}, errors.New("header is not base64url")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return tokenHeader{}, errors.New("header is not a JSON object")
	}
	if _, ok := fields["crit"]; ok {
		// RFC 7515 §4.1.11: extensions marked critical must be understood;
		// we understand none.
		return tokenHeader{}, errors.New("header has crit, which is not supported")
	}
	var h tokenHeader
	for name, dst := range map[string]*string{"alg": &h.Alg, "kid": &h.Kid} {
		if v, ok := fields[name]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return tokenHeader{}, fmt.Errorf("header %s is not a string", name)
			}
		}
	}
	return h, nil
}

// isTokenChar reports whether c may appear in a compact JWT: base64url
// (RFC 4648 §5, unpadded) or the dot between the parts.
func isTokenChar(c rune) bool {
	return isBase64URL(c) || c == '.'
}

// validSubject reports whether sub can stand for a person in the audit
// trail: printable, without surrounding space, at most maxSubjectBytes.
func validSubject(sub string) error {
	switch {
	case sub == "":
		return errors.New("sub is empty")
	case len(sub) > maxSubjectBytes:
		return fmt.Errorf("sub has %d bytes, over %d", len(sub), maxSubjectBytes)
	case !utf8.ValidString(sub):
		return errors.New("sub is not UTF-8")
	case strings.TrimSpace(sub) != sub:
		return errors.New("sub has surrounding space")
	}
	for _, r := range sub {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("sub contains the unprintable %U", r)
		}
	}
	return nil
}

// clip shortens attacker-chosen text before it goes into a log line.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

// Middleware authenticates every request: without a valid bearer token it
// answers 401 with a WWW-Authenticate challenge (RFC 6750), past the
// subject's rate 429 with Retry-After; otherwise it calls next with the
// caller in the context (StaffFrom). Each refusal is logged once, with why
// (never the token): as a line of its own, or, under NoteAuthRefusals, on
// the request logger's line. Accepted requests are left to that logger.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, present := bearerToken(r)
		if !present {
			// RFC 6750 §3.1: no error code when no credentials were sent.
			w.Header().Set("WWW-Authenticate", realm)
			a.logRefusal(r, http.StatusUnauthorized, AuthRefusal{Reason: "no_token", Detail: "no Authorization: Bearer header"})
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "", "a staff bearer token is required (Authorization: Bearer <token>)")
			return
		}
		var (
			v   verified
			err error
		)
		if n := len(r.Header.Values("Authorization")); n > 1 {
			err = refuse("malformed", "%d Authorization headers", n)
		} else {
			v, err = a.authenticate(r.Context(), token)
		}
		staff, key := v.Staff, v.key
		if err != nil {
			ae := classify(err)
			desc := "the token is invalid"
			if ae.Reason == "expired" {
				desc = "the token has expired"
			}
			w.Header().Set("WWW-Authenticate", realm+`, error="invalid_token", error_description="`+desc+`"`)
			a.logRefusal(r, http.StatusUnauthorized, AuthRefusal{Reason: ae.Reason, Detail: ae.err.Error()})
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "", desc)
			return
		}
		if ok, retry := a.limiter.allow(key); !ok {
			secs := int((retry + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			a.logRefusal(r, http.StatusTooManyRequests, AuthRefusal{Reason: "rate_limited", Detail: "subject over its rate", Subject: staff.Subject, Role: string(staff.Role)})
			writeError(w, http.StatusTooManyRequests, CodeRateLimited, "", "too many requests for this token; retry later")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithStaff(r.Context(), staff)))
	})
}

func (a *Authenticator) logRefusal(r *http.Request, status int, why AuthRefusal) {
	if a.refused != nil {
		a.refused.WithLabelValues(why.Reason).Inc()
	}
	if n, ok := r.Context().Value(refusalKey{}).(*AuthRefusal); ok {
		*n = why
		return
	}
	args := []any{
		"method", r.Method,
		"path", r.URL.Path,
		"status", status,
		"reason", why.Reason,
		"detail", why.Detail,
	}
	if why.Subject != "" {
		args = append(args, "staff_sub", why.Subject, "role", why.Role)
	}
	a.logger.InfoContext(r.Context(), "staff request refused", args...)
}

// AuthRefusal is why Middleware refused a request, for a request logger
// that writes one canonical line per request (see NoteAuthRefusals).
type AuthRefusal struct {
	Reason  string // no_token, malformed, bad_signature, expired, …, rate_limited
	Detail  string // what exactly; never the token
	Subject string // the caller, when known (rate_limited)
	Role    string
}

type refusalKey struct{}

// NoteAuthRefusals returns ctx in which Middleware records why it refused
// the request in the returned AuthRefusal (left zero when it did not)
// instead of logging a line of its own, so that a request logger wrapping
// the middleware can put the reason on its one line per request.
func NoteAuthRefusals(ctx context.Context) (context.Context, *AuthRefusal) {
	n := &AuthRefusal{}
	return context.WithValue(ctx, refusalKey{}, n), n
}

// bearerToken returns the credentials of the (first) "Authorization:
// Bearer" header. present is false when there is no such header (or
// another scheme); a Bearer header with an empty value is present, and
// fails verification.
func bearerToken(r *http.Request) (token string, present bool) {
	scheme, cred, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(cred), true
}

// RequireRole lets a request through only when its caller's role includes
// need (admin ⊃ reviewer ⊃ viewer); otherwise 403. It goes inside
// Middleware; a request that reached it without a caller gets 401, so a
// route mounted without authentication fails closed.
func RequireRole(need Role) func(http.Handler) http.Handler {
	if !need.Valid() {
		panic(fmt.Sprintf("appeals.RequireRole(%q): not a role", need)) // a wiring bug, caught at start-up
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, ok := StaffFrom(r.Context())
			if !ok {
				w.Header().Set("WWW-Authenticate", realm)
				writeError(w, http.StatusUnauthorized, CodeUnauthorized, "", "a staff bearer token is required (Authorization: Bearer <token>)")
				return
			}
			if !s.Role.Allows(need) {
				w.Header().Set("WWW-Authenticate", realm+`, error="insufficient_scope"`)
				writeError(w, http.StatusForbidden, CodeForbidden, "", fmt.Sprintf("this needs the %s role; the token has %s", need, s.Role))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// MintToken makes an HS256 staff token for sub with role, valid from now
// for ttl (positive, at most MaxTokenTTL): what `moderator token` prints.
func MintToken(secret []byte, sub string, role Role, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < MinSecretBytes {
		return "", fmt.Errorf("mint token: the secret has %d bytes, want at least %d", len(secret), MinSecretBytes)
	}
	if err := validSubject(sub); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if !role.Valid() {
		return "", fmt.Errorf("mint token: role %q is not viewer, reviewer or admin", role)
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", fmt.Errorf("mint token: ttl %s must be positive and at most %s", ttl, MaxTokenTTL)
	}
	claims := staffClaims{
		Role: string(role),
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return s, nil
}
