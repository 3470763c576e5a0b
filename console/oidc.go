package console

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"moderator/appeals"
)

// OIDCConfig turns on the OpenID Connect sign-in (authorization code with
// PKCE) with the identity provider at Issuer.
type OIDCConfig struct {
	// Context bounds the background discovery and the key-set refresher.
	Context context.Context
	// Issuer is the provider's issuer URL; its discovery document is at
	// Issuer + "/.well-known/openid-configuration".
	Issuer string
	// ClientID is this console's client at the provider (the ID token's
	// aud); ClientSecret is "" for a public client, which PKCE protects.
	ClientID, ClientSecret string
	// RedirectURL is the console's callback, as registered at the
	// provider: https://host/console/oidc/callback.
	RedirectURL string
	// RoleClaim names the ID token claim holding viewer, reviewer or admin
	// (default "role").
	RoleClaim string
	// HTTPClient talks to the provider (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
}

const (
	oidcTimeout       = 10 * time.Second // one discovery fetch or code exchange
	oidcMaxDiscovery  = 1 << 20          // a discovery document is a few KiB
	oidcRetryEvery    = 30 * time.Second // after a failed discovery
	oidcFirstWait     = 5 * time.Second  // the longest a sign-in waits for the first discovery
	oidcFlowTTL       = 10 * time.Minute // from the redirect to the provider to the callback
	maxIDTokenBytes   = 16 << 10
	defaultRoleClaim  = "role"
	actMethodOIDC     = "oidc"
	actMethodPasteTok = "token"
)

// oidcProvider is the identity provider, as discovered in the background.
type oidcProvider struct {
	cfg    OIDCConfig
	client *http.Client
	logger *slog.Logger
	first  chan struct{}              // closed when the first discovery has ended
	found  atomic.Pointer[discovered] // nil until a discovery succeeds
}

// discovered is what the sign-in needs from the discovery document.
type discovered struct {
	oauth oauth2.Config
	keys  *appeals.IDPKeys
}

// discoveryDoc is the part of the discovery document we read (OpenID
// Connect Discovery 1.0 §3).
type discoveryDoc struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
}

func newOIDC(cfg OIDCConfig, logger *slog.Logger) (*oidcProvider, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("console: OpenID Connect needs an issuer, a client id and a redirect URL")
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = defaultRoleClaim
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	p := &oidcProvider{cfg: cfg, client: cfg.HTTPClient, logger: logger, first: make(chan struct{})}
	if p.client == nil {
		p.client = &http.Client{Timeout: oidcTimeout}
	}
	go p.discoverLoop()
	return p, nil
}

// discoverLoop fetches the discovery document until it has it (every
// oidcRetryEvery after a failure), so that the service starts while the
// provider is down.
func (p *oidcProvider) discoverLoop() {
	ctx := p.cfg.Context
	for {
		d, err := p.discover(ctx)
		if err == nil {
			p.found.Store(d)
		} else {
			p.logger.WarnContext(ctx, "console: OpenID Connect discovery", "issuer", p.cfg.Issuer, "error", err.Error())
		}
		select {
		case <-p.first:
		default:
			close(p.first)
		}
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(oidcRetryEvery):
		}
	}
}

func (p *oidcProvider) discover(ctx context.Context) (*discovered, error) {
	ctx, cancel := context.WithTimeout(ctx, oidcTimeout)
	defer cancel()
	u := strings.TrimSuffix(p.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, oidcMaxDiscovery+1))
	if err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	if len(body) > oidcMaxDiscovery {
		return nil, fmt.Errorf("discovery %s: over %d bytes", u, oidcMaxDiscovery)
	}
	var doc discoveryDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("discovery %s: %w", u, err)
	}
	// Discovery §4.3: the document must name the issuer we asked.
	if doc.Issuer != p.cfg.Issuer {
		return nil, fmt.Errorf("discovery %s: issuer %q, want %q", u, doc.Issuer, p.cfg.Issuer)
	}
	for name, v := range map[string]string{"authorization_endpoint": doc.AuthorizationEndpoint, "token_endpoint": doc.TokenEndpoint, "jwks_uri": doc.JWKSURI} {
		if e, err := url.Parse(v); err != nil || e.Host == "" || (e.Scheme != "https" && e.Scheme != "http") {
			return nil, fmt.Errorf("discovery %s: %s %q is not an absolute URL", u, name, v)
		}
	}
	style := oauth2.AuthStyleInHeader // client_secret_basic, OIDC's default
	if p.cfg.ClientSecret == "" {
		style = oauth2.AuthStyleInParams // a public client sends only client_id
	}
	return &discovered{
		oauth: oauth2.Config{
			ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, RedirectURL: p.cfg.RedirectURL,
			Endpoint: oauth2.Endpoint{AuthURL: doc.AuthorizationEndpoint, TokenURL: doc.TokenEndpoint, AuthStyle: style},
			Scopes:   []string{"openid"},
		},
		keys: appeals.NewIDPKeys(p.cfg.Context, doc.JWKSURI, p.client, p.logger),
	}, nil
}

// provider returns the discovered provider, waiting at most oidcFirstWait
// for the first discovery.
func (p *oidcProvider) provider(ctx context.Context) (*discovered, error) {
	t := time.NewTimer(oidcFirstWait)
	defer t.Stop()
	select {
	case <-p.first:
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d := p.found.Load(); d != nil {
		return d, nil
	}
	return nil, errors.New("the identity provider's discovery document is not loaded")
}

// oidcCookie holds the flow's state, nonce and PKCE verifier from the
// redirect to the provider to the callback. SameSite=Lax: the callback is
// a top-level navigation from the provider's site.
func oidcCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	name := "__Host-moderator_oidc"
	if isLoopback(r.Host) {
		name = "moderator_oidc"
	}
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: !isLoopback(r.Host), SameSite: http.SameSiteLaxMode}
}

// oidcLogin sends the browser to the provider's authorization endpoint.
func (c *Console) oidcLogin(w http.ResponseWriter, r *http.Request) error {
	d, err := c.oidc.provider(r.Context())
	if err != nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "The identity provider cannot be reached just now: try again shortly, or paste a staff token.", err: err}
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	http.SetCookie(w, oidcCookie(r, state+"."+nonce+"."+verifier, int(oidcFlowTTL.Seconds())))
	http.Redirect(w, r, d.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce)), http.StatusSeeOther)
	return nil
}

// oidcCallback takes the provider's answer: the state must be the one
// this browser was given, the code is exchanged with the PKCE verifier,
// and the ID token verified before the session is opened.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) error {
	refuse := func(msg string, err error) error {
		logOf(r.Context()).err = err
		c.render(w, r, http.StatusUnauthorized, "sign-in", c.signInData(r, msg))
		return nil
	}
	var flow []string
	if ck, err := r.Cookie(oidcCookie(r, "", 0).Name); err == nil {
		flow = strings.Split(ck.Value, ".")
	}
	http.SetCookie(w, oidcCookie(r, "", -1)) // one use
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return refuse("The identity provider did not sign you in: try again, or ask your administrator.", fmt.Errorf("oidc: provider error %q", clipText(e)))
	}
	if len(flow) != 3 || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(flow[0])) != 1 {
		return refuse("This sign-in did not start here, or took too long: start again.", errors.New("oidc: state does not match the flow cookie"))
	}
	if q.Get("code") == "" {
		return refuse("The identity provider sent no authorization code: start again.", errors.New("oidc: no code"))
	}
	d, err := c.oidc.provider(r.Context())
	if err != nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "The identity provider cannot be reached just now: try again shortly.", err: err}
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, c.oidc.client)
	tok, err := d.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(flow[2]))
	if err != nil {
		return refuse("The identity provider did not accept the sign-in: start again.", fmt.Errorf("oidc: exchange code: %w", errors.New(exchangeError(err))))
	}
	raw, _ := tok.Extra("id_token").(string)
	st, exp, err := c.oidc.verify(ctx, d, raw, flow[1], c.now)
	if err != nil {
		return refuse("Your identity provider's answer does not let you in here (see the service's log).", err)
	}
	return c.openSession(w, r, st, exp, actMethodOIDC)
}

// exchangeError describes a failed exchange without the provider's body,
// which could echo a token.
func exchangeError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return fmt.Sprintf("token endpoint: status %d, error %q", re.Response.StatusCode, clipText(re.ErrorCode))
	}
	return err.Error()
}

// verify checks the ID token (OIDC Core §3.1.3.7): signed by the
// provider's key, for us (aud, azp), by the issuer, unexpired, with our
// nonce; and reads the staff member from it.
func (p *oidcProvider) verify(ctx context.Context, d *discovered, raw, nonce string, now func() time.Time) (appeals.Staff, time.Time, error) {
	if raw == "" {
		return appeals.Staff{}, time.Time{}, errors.New("oidc: the token answer has no id_token")
	}
	if len(raw) > maxIDTokenBytes {
		return appeals.Staff{}, time.Time{}, fmt.Errorf("oidc: id_token of %d bytes, over %d", len(raw), maxIDTokenBytes)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "ES256"}),
		jwt.WithIssuer(p.cfg.Issuer), jwt.WithAudience(p.cfg.ClientID),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(appeals.DefaultLeeway), jwt.WithTimeFunc(now),
	)
	claims := jwt.MapClaims{}
	if _, err := parser.ParseWithClaims(raw, claims, d.keys.Keyfunc(ctx)); err != nil {
		return appeals.Staff{}, time.Time{}, fmt.Errorf("oidc: id_token: %w", err)
	}
	got, _ := claims["nonce"].(string)
	if subtle.ConstantTimeCompare([]byte(got), []byte(nonce)) != 1 {
		return appeals.Staff{}, time.Time{}, errors.New("oidc: id_token nonce does not match this sign-in")
	}
	if azp, ok := claims["azp"].(string); ok && azp != p.cfg.ClientID {
		return appeals.Staff{}, time.Time{}, fmt.Errorf("oidc: id_token azp %q is not our client", clipText(azp))
	}
	sub, _ := claims.GetSubject()
	if err := appeals.ValidSubject(sub); err != nil {
		return appeals.Staff{}, time.Time{}, fmt.Errorf("oidc: id_token: %w", err)
	}
	role, _ := claims[p.cfg.RoleClaim].(string)
	if !appeals.Role(role).Valid() {
		return appeals.Staff{}, time.Time{}, fmt.Errorf("oidc: id_token claim %s is %q, not viewer, reviewer or admin", p.cfg.RoleClaim, clipText(role))
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return appeals.Staff{}, time.Time{}, errors.New("oidc: id_token without exp")
	}
	return appeals.Staff{Subject: sub, Role: appeals.Role(role)}, exp.Time, nil
}

// clipText shortens provider-chosen text before it goes into a log line.
func clipText(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}
