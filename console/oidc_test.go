package console_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"moderator/appeals"
	"moderator/console"
	"moderator/store/storetest"
)

const oidcClientID = "moderator-console"

// fakeIdP is an OpenID Connect provider on httptest: discovery, JWKS, an
// authorization endpoint that signs anyone in at once (redirecting back
// with a code), and a token endpoint that checks the PKCE verifier
// against the code's challenge as a real provider must. The fields after
// mu bend its answers, to see the console refuse them.
type fakeIdP struct {
	srv *httptest.Server
	key *rsa.PrivateKey

	mu        sync.Mutex
	codes     map[string]grant
	tokenHits int
	refusal   string // why the token endpoint last refused
	// signer signs the ID token instead of key (a key not in the JWKS).
	signer *rsa.PrivateKey
	// Knobs: the ID token's claims and the state sent back.
	sub, role, aud, nonce, state string
	exp                          time.Time
}

// grant is what the authorization endpoint remembers of a code.
type grant struct{ challenge, nonce, redirect string }

var (
	idpKeyOnce sync.Once
	idpKey     *rsa.PrivateKey
)

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	idpKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		idpKey = k
	})
	p := &fakeIdP{key: idpKey, codes: map[string]grant{}, sub: "rita@example.com", role: "reviewer"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize",
			"token_endpoint": p.srv.URL + "/token", "jwks_uri": p.srv.URL + "/jwks",
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
		writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": b64(p.key.N.Bytes()), "e": b64(big.NewInt(int64(p.key.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *fakeIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("client_id") != oidcClientID || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" || !strings.Contains(q.Get("scope"), "openid") {
		http.Error(w, "bad authorization request: "+q.Encode(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	code := base64.RawURLEncoding.EncodeToString([]byte(q.Get("state")))[:16]
	p.codes[code] = grant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
	state := q.Get("state")
	if p.state != "" {
		state = p.state
	}
	p.mu.Unlock()
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {state}}.Encode(), http.StatusFound)
}

func (p *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokenHits++
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	f := r.PostForm
	g, ok := p.codes[f.Get("code")]
	delete(p.codes, f.Get("code")) // a code is good once
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case !ok || f.Get("grant_type") != "authorization_code" || f.Get("redirect_uri") != g.redirect || f.Get("client_id") != oidcClientID:
		p.refusal = "grant"
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	case f.Get("code_verifier") == "" || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		p.refusal = "PKCE"
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "PKCE verification failed"})
		return
	}
	claims := jwt.MapClaims{
		"iss": p.srv.URL, "sub": p.sub, "aud": oidcClientID, "nonce": g.nonce, "role": p.role,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}
	if p.aud != "" {
		claims["aud"] = p.aud
	}
	if p.nonce != "" {
		claims["nonce"] = p.nonce
	}
	if !p.exp.IsZero() {
		claims["exp"], claims["iat"] = p.exp.Unix(), p.exp.Add(-time.Hour).Unix()
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	signer := p.key
	if p.signer != nil {
		signer = p.signer
	}
	signed, err := tok.SignedString(signer)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": "at-unused", "token_type": "Bearer", "expires_in": 3600, "id_token": signed})
}

// newOIDCEnv serves the console with the OpenID Connect sign-in against
// idp (and the token paste, which stays).
func newOIDCEnv(t *testing.T, idp *fakeIdP) *env {
	t.Helper()
	auth, err := appeals.NewAuthenticator(context.Background(), appeals.AuthConfig{HS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.Store(t)
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ui, err := console.New(console.Config{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Store: st, Auth: auth,
		OIDC: &console.OIDCConfig{Context: ctx, Issuer: idp.srv.URL, ClientID: oidcClientID, RedirectURL: srv.URL + "/console/oidc/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Mount(console.Prefix, ui)
	h = r
	return &env{srv: srv, st: st}
}

// signInOIDC runs the flow with c step by step: login, the provider's
// authorization endpoint, then (after tamper, which may change c's
// cookies) the callback, whose answer it returns.
func (e *env) signInOIDC(t *testing.T, c *http.Client, tamper func(u *url.URL)) (*http.Response, string) {
	t.Helper()
	resp, body := e.do(t, c, http.MethodGet, "/console/oidc/login", nil, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	authz, err := c.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	authz.Body.Close()
	if authz.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d", authz.StatusCode)
	}
	cb, err := url.Parse(authz.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		tamper(cb)
	}
	return e.do(t, c, http.MethodGet, cb.RequestURI(), nil, nil)
}

// signedInAs is who the queue page says is signed in ("" when c is sent
// to sign in).
func (e *env) signedInAs(t *testing.T, c *http.Client) string {
	t.Helper()
	resp, body := e.do(t, c, http.MethodGet, "/console/appeals", nil, nil)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return body
}

func (e *env) signInActs(t *testing.T, sub string) (n int, params string) {
	t.Helper()
	if err := e.st.Pool().QueryRow(context.Background(),
		`SELECT count(*), coalesce(max(params::text), '') FROM staff_audit WHERE actor = $1 AND act = 'console_sign_in'`, sub).Scan(&n, &params); err != nil {
		t.Fatal(err)
	}
	return n, params
}

// TestOIDCSignIn: the whole flow, following redirects as a browser does,
// ends signed in as the ID token's sub with its role, with a sign-in row
// in the staff audit as for a pasted token.
func TestOIDCSignIn(t *testing.T) {
	idp := newFakeIdP(t)
	// The package's database outlives a run (-count): a subject of this run's own.
	sub := fmt.Sprintf("rita-%d@example.com", time.Now().UnixNano())
	idp.sub = sub
	e := newOIDCEnv(t, idp)
	c := client(t)
	c.CheckRedirect = nil // follow, as a browser

	_, page := e.do(t, c, http.MethodGet, "/console/sign-in", nil, nil)
	if !strings.Contains(page, `href="/console/oidc/login"`) || !strings.Contains(page, "Sign in with your identity provider") {
		t.Fatalf("the sign-in page offers no identity provider sign-in:\n%s", page)
	}
	resp, body := e.do(t, c, http.MethodGet, "/console/oidc/login", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/oidc/callback" || !strings.Contains(body, "Signed in") {
		t.Fatalf("flow ended at %s with %d:\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	if got := resp.Header.Get("Refresh"); got != "0; url=/console/appeals" {
		t.Errorf("Refresh = %q", got)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "moderator_console" && (!ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge > 3600) {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not beyond the ID token's hour", ck)
		}
	}
	queue := e.signedInAs(t, c)
	if !strings.Contains(queue, sub) || !strings.Contains(queue, "reviewer") || !strings.Contains(queue, `name="csrf"`) {
		t.Fatalf("not signed in as rita the reviewer:\n%s", queue)
	}
	if n, params := e.signInActs(t, sub); n != 1 || !strings.Contains(params, `"method": "oidc"`) || !strings.Contains(params, `"via": "console"`) {
		t.Errorf("staff_audit: %d sign-ins, params %s", n, params)
	}
	var role string
	if err := e.st.Pool().QueryRow(context.Background(), `SELECT role FROM staff_audit WHERE actor = $1 AND act = 'console_sign_in'`, sub).Scan(&role); err != nil || role != "reviewer" {
		t.Errorf("audited role %q, %v", role, err)
	}
}

// TestOIDCRefusals: every bent answer ends on the sign-in page with a
// plain message, no session and no sign-in in the staff audit.
func TestOIDCRefusals(t *testing.T) {
	idp := newFakeIdP(t)
	e := newOIDCEnv(t, idp)
	setFlowCookie := func(c *http.Client, cut func(parts []string) string) func(*url.URL) {
		return func(*url.URL) {
			u, _ := url.Parse(e.srv.URL + "/")
			for _, ck := range c.Jar.Cookies(u) {
				if ck.Name == "moderator_oidc" {
					c.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: cut(strings.Split(ck.Value, ".")), Path: "/"}})
				}
			}
		}
	}
	cases := []struct {
		name  string
		bend  func(p *fakeIdP)
		flow  func(c *http.Client) func(*url.URL)
		want  string
		token bool // whether the code reaches the token endpoint
		pkce  bool // whether the token endpoint refuses it for PKCE
	}{
		{name: "wrong state", bend: func(p *fakeIdP) { p.state = "forged" }, want: "did not start here"},
		{name: "state changed on the way", flow: func(*http.Client) func(*url.URL) {
			return func(u *url.URL) { q := u.Query(); q.Set("state", "forged"); u.RawQuery = q.Encode() }
		}, want: "did not start here"},
		{name: "missing PKCE verifier", token: true, flow: func(c *http.Client) func(*url.URL) {
			return setFlowCookie(c, func(p []string) string { return p[0] + "." + p[1] + "." })
		}, pkce: true, want: "did not accept"},
		{name: "incorrect PKCE verifier", token: true, flow: func(c *http.Client) func(*url.URL) {
			return setFlowCookie(c, func(p []string) string { return p[0] + "." + p[1] + "." + oauth2.GenerateVerifier() })
		}, pkce: true, want: "did not accept"},
		{name: "signed by a key not in the JWKS", token: true, bend: func(p *fakeIdP) {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			p.signer = k
		}, want: "does not let you in"},
		{name: "wrong nonce", token: true, bend: func(p *fakeIdP) { p.nonce = "replayed" }, want: "does not let you in"},
		{name: "wrong audience", token: true, bend: func(p *fakeIdP) { p.aud = "another-app" }, want: "does not let you in"},
		{name: "expired", token: true, bend: func(p *fakeIdP) { p.exp = time.Now().Add(-time.Hour) }, want: "does not let you in"},
		{name: "unknown role", token: true, bend: func(p *fakeIdP) { p.role = "superuser" }, want: "does not let you in"},
		{name: "no role", token: true, bend: func(p *fakeIdP) { p.role = "" }, want: "does not let you in"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idp.mu.Lock()
			idp.sub, idp.role, idp.aud, idp.nonce, idp.state, idp.exp = "mallory-"+string(rune('a'+i)), "reviewer", "", "", "", time.Time{}
			idp.signer, idp.refusal = nil, ""
			if tc.bend != nil {
				tc.bend(idp)
			}
			sub, hits := idp.sub, idp.tokenHits
			idp.mu.Unlock()
			c := client(t)
			var tamper func(*url.URL)
			if tc.flow != nil {
				tamper = tc.flow(c)
			}
			resp, body := e.signInOIDC(t, c, tamper)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, tc.want) {
				t.Fatalf("callback: %d, want 401 saying %q:\n%s", resp.StatusCode, tc.want, body)
			}
			if strings.Contains(body, "eyJ") || strings.Contains(body, "goroutine") {
				t.Errorf("the error page shows a token or a stack:\n%s", body)
			}
			if who := e.signedInAs(t, c); who != "" {
				t.Errorf("signed in after a refusal")
			}
			if n, _ := e.signInActs(t, sub); n != 0 {
				t.Errorf("%d sign-ins audited for %s", n, sub)
			}
			idp.mu.Lock()
			reached, refusal := idp.tokenHits > hits, idp.refusal
			idp.mu.Unlock()
			if tc.pkce != (refusal == "PKCE") {
				t.Errorf("token endpoint refusal %q, want PKCE: %v", refusal, tc.pkce)
			}
			if reached != tc.token {
				t.Errorf("token endpoint reached: %v, want %v", reached, tc.token)
			}
		})
	}
}

// TestOIDCFlowCookieOnce: a callback replayed with the same state is
// refused, as the flow cookie is spent by the first.
func TestOIDCFlowCookieOnce(t *testing.T) {
	idp := newFakeIdP(t)
	e := newOIDCEnv(t, idp)
	c := client(t)
	var cb *url.URL
	resp, _ := e.signInOIDC(t, c, func(u *url.URL) { cb = u })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first callback: %d", resp.StatusCode)
	}
	resp, body := e.do(t, c, http.MethodGet, cb.RequestURI(), nil, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "did not start here") {
		t.Fatalf("replayed callback: %d\n%s", resp.StatusCode, body)
	}
}
