package appeals

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	testIssuer   = "https://idp.example.com/"
	testAudience = "moderator-staff"
)

var (
	testSecret = []byte("test-secret-0123456789abcdef-0123456789")
	testEpoch  = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
)

// Keys are generated once per test binary: RSA generation is slow, and the
// keys carry no state.
var (
	keysOnce                              sync.Once
	rsaKey, rsaKey2, rsaAttacker, rsa1024 *rsa.PrivateKey
	ecKey, ecP384                         *ecdsa.PrivateKey
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		must := func(k *rsa.PrivateKey, err error) *rsa.PrivateKey {
			if err != nil {
				panic(err)
			}
			return k
		}
		rsaKey = must(rsa.GenerateKey(rand.Reader, 2048))
		rsaKey2 = must(rsa.GenerateKey(rand.Reader, 2048))
		rsaAttacker = must(rsa.GenerateKey(rand.Reader, 2048))
		rsa1024 = must(rsa.GenerateKey(rand.Reader, 1024))
		var err error
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if ecP384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

// clock is a settable time for tokens and rate limits.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeIdP serves a JWKS, written by hand from the keys so that the test does
// not trust the library it checks to encode them.
type fakeIdP struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []map[string]string
	status  int
	body    []byte // served instead of keys when set
	fetches atomic.Int32
}

func newFakeIdP(t testing.TB) *fakeIdP {
	t.Helper()
	idp := &fakeIdP{status: http.StatusOK}
	idp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idp.fetches.Add(1)
		idp.mu.Lock()
		defer idp.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(idp.status)
		if idp.body != nil {
			_, _ = w.Write(idp.body)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": idp.keys})
	}))
	t.Cleanup(idp.Close)
	return idp
}

func (idp *fakeIdP) serve(status int, keys ...map[string]string) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.status, idp.keys, idp.body = status, keys, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]string {
	size := (k.Curve.Params().BitSize + 7) / 8
	crv := map[int]string{32: "P-256", 48: "P-384"}[size]
	raw, err := k.Bytes() // uncompressed point: 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	return map[string]string{"kty": "EC", "kid": kid, "use": "sig", "crv": crv,
		"x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:])}
}

// with sets (or, with "", removes) one member of a JWK.
func with(m map[string]string, k, v string) map[string]string {
	if v == "" {
		delete(m, k)
	} else {
		m[k] = v
	}
	return m
}

// octSecret is a symmetric key that a careless IdP published in its set:
// it must never verify anything.
var octSecret = []byte("symmetric-key-in-the-jwks-0123456789")

// noAlg drops the JWK's alg, as many identity providers publish them, so
// that the key-type check is ours rather than keyfunc's.
func noAlg(m map[string]string) map[string]string {
	delete(m, "alg")
	return m
}

// sign makes a token with method, key and header kid ("" for none).
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// signRawHS256 signs payload, a claims object written by hand (with a
// repeated name, say), with the test secret.
func signRawHS256(t testing.TB, payload string) string {
	t.Helper()
	unsigned := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(unsigned, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return unsigned + "." + b64(sig)
}

// claims are valid staff claims at testEpoch, changed by the edits: a nil
// value removes the claim.
func claims(edits map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":  "alice",
		"role": "reviewer",
		"iat":  testEpoch.Add(-time.Minute).Unix(),
		"exp":  testEpoch.Add(time.Hour).Unix(),
	}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func idpClaims(edits map[string]any) jwt.MapClaims {
	base := map[string]any{"iss": testIssuer, "aud": testAudience}
	for k, v := range edits {
		base[k] = v
	}
	return claims(base)
}

type bundle struct {
	auth  *Authenticator
	clock *clock
	idp   *fakeIdP
	logs  *SyncBuffer
	// reached counts the requests that got past the middleware.
	reached atomic.Int32
	handler http.Handler
}

// SyncBuffer is a log sink safe for concurrent writes and reads; the
// appeals_test files use it too.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lines returns the JSON log lines.
func (s *SyncBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type setupOpts struct {
	secret []byte // nil: no HS256
	jwks   bool
	rate   int
	// noWait makes an unknown kid past the refresh limiter fail at once.
	noWait bool
}

func setup(t testing.TB, o setupOpts) *bundle {
	t.Helper()
	keys(t)
	b := &bundle{clock: &clock{t: testEpoch}, logs: &SyncBuffer{}}
	cfg := AuthConfig{
		HS256Secret:   o.secret,
		RatePerMinute: o.rate,
		Now:           b.clock.Now,
		Logger:        slog.New(slog.NewJSONHandler(b.logs, nil)),
	}
	if o.jwks {
		b.idp = newFakeIdP(t)
		b.idp.serve(http.StatusOK, rsaJWK("rsa-1", &rsaKey.PublicKey), ecJWK("ec-1", &ecKey.PublicKey),
			noAlg(rsaJWK("rsa-noalg", &rsaKey2.PublicKey)), noAlg(ecJWK("ec-384", &ecP384.PublicKey)),
			noAlg(rsaJWK("rsa-1024", &rsa1024.PublicKey)),
			map[string]string{"kty": "oct", "kid": "oct-1", "k": b64(octSecret)},
			with(rsaJWK("rsa-enc", &rsaKey.PublicKey), "use", "enc"),
			with(rsaJWK("rsa-ps256", &rsaKey.PublicKey), "alg", "PS256"),
			with(ecJWK("ec-nouse", &ecKey.PublicKey), "use", ""))
		cfg.JWKSURL, cfg.Issuer, cfg.Audience = b.idp.URL+"/jwks.json", testIssuer, testAudience
		cfg.HTTPClient = b.idp.Client()
	}
	a, err := NewAuthenticator(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o.jwks {
		<-a.jwks.ready // the first fetch is done: counts and key reads are deterministic
	}
	if o.noWait {
		st, err := newJWKS(t.Context(), cfg.JWKSURL, cfg.HTTPClient, cfg.Logger, nil, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		close(ready)
		a.jwks = &keySet{ready: ready, st: st}
	}
	b.auth = a
	b.handler = a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.reached.Add(1)
		s, ok := StaffFrom(r.Context())
		if !ok {
			t.Error("handler reached without a caller in the context")
		}
		writeJSON(w, http.StatusOK, map[string]string{"sub": s.Subject, "role": string(s.Role)})
	}))
	return b
}

// do sends GET /api/v1/x with the Authorization headers given.
func (b *bundle) do(t testing.TB, authz ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/v1/x", nil)
	for _, a := range authz {
		r.Header.Add("Authorization", a)
	}
	w := httptest.NewRecorder()
	b.handler.ServeHTTP(w, r)
	return w
}

func errorCode(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	if body.Error.Message == "" {
		t.Fatalf("error body %q has no message", w.Body.String())
	}
	return body.Error.Code
}

func publicPEM(t testing.TB, k *rsa.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestMiddlewareRefusesBadTokens(t *testing.T) {
	t.Parallel()
	keys(t)
	hs := func(c jwt.MapClaims) func(t testing.TB) string {
		return func(t testing.TB) string { return sign(t, jwt.SigningMethodHS256, testSecret, "", c) }
	}
	const challenge = `Bearer realm="moderator", error="invalid_token", error_description="the token is invalid"`
	tests := []struct {
		name      string
		opts      setupOpts
		header    func(t testing.TB) []string // the Authorization headers; nil: "Bearer " + token
		token     func(t testing.TB) string
		reason    string // logged
		challenge string // WWW-Authenticate; "" means challenge above
	}{
		{name: "no header", header: func(testing.TB) []string { return nil }, reason: "no_token", challenge: `Bearer realm="moderator"`},
		{name: "wrong scheme", header: func(testing.TB) []string { return []string{"Basic YWxpY2U6cHc="} }, reason: "no_token", challenge: `Bearer realm="moderator"`},
		{name: "scheme without space", header: func(testing.TB) []string { return []string{"Bearertoken"} }, reason: "no_token", challenge: `Bearer realm="moderator"`},
		{name: "empty bearer", header: func(testing.TB) []string { return []string{"Bearer "} }, reason: "malformed"},
		{name: "garbage", header: func(testing.TB) []string { return []string{"Bearer garbage"} }, reason: "malformed"},
		{name: "three garbage segments", header: func(testing.TB) []string { return []string{"Bearer a.b.c"} }, reason: "malformed"},
		{name: "header not json", header: func(testing.TB) []string { return []string{"Bearer " + b64([]byte("nope")) + ".e30.sig"} }, reason: "malformed"},
		{name: "two authorization headers", header: func(t testing.TB) []string {
			tok := hs(claims(nil))(t)
			return []string{"Bearer " + tok, "Bearer " + tok}
		}, reason: "malformed"},
		{name: "oversized token", header: func(testing.TB) []string { return []string{"Bearer " + strings.Repeat("a", 9000)} }, reason: "malformed"},
		{name: "bad signature", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef-0123"), "", claims(nil))
		}, reason: "bad_signature"},
		{name: "tampered claims", token: func(t testing.TB) string {
			parts := strings.Split(hs(claims(nil))(t), ".")
			parts[1] = b64([]byte(`{"sub":"alice","role":"admin","exp":` + strconv.FormatInt(testEpoch.Add(time.Hour).Unix(), 10) + `}`))
			return strings.Join(parts, ".")
		}, reason: "bad_signature"},
		{name: "expired and bad signature says signature", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef-0123"), "", claims(map[string]any{"exp": testEpoch.Add(-time.Hour).Unix()}))
		}, reason: "bad_signature"},
		{name: "expired", token: hs(claims(map[string]any{"exp": testEpoch.Add(-31 * time.Second).Unix()})), reason: "expired",
			challenge: `Bearer realm="moderator", error="invalid_token", error_description="the token has expired"`},
		{name: "not valid yet", token: hs(claims(map[string]any{"nbf": testEpoch.Add(5 * time.Minute).Unix()})), reason: "not_yet_valid"},
		{name: "issued in the future", token: hs(claims(map[string]any{"iat": testEpoch.Add(5 * time.Minute).Unix()})), reason: "issued_in_future"},
		{name: "missing exp", token: hs(claims(map[string]any{"exp": nil})), reason: "missing_claim"},
		{name: "exp not a number", token: hs(claims(map[string]any{"exp": "tomorrow"})), reason: "malformed"},
		{name: "missing sub", token: hs(claims(map[string]any{"sub": nil})), reason: "missing_claim"},
		{name: "empty sub", token: hs(claims(map[string]any{"sub": ""})), reason: "missing_claim"},
		{name: "sub with a control character", token: hs(claims(map[string]any{"sub": "alice\nlevel=admin"})), reason: "bad_claim"},
		{name: "sub too long", token: hs(claims(map[string]any{"sub": strings.Repeat("a", 257)})), reason: "bad_claim"},
		{name: "missing role", token: hs(claims(map[string]any{"role": nil})), reason: "bad_claim"},
		{name: "unknown role", token: hs(claims(map[string]any{"role": "superuser"})), reason: "bad_claim"},
		{name: "role in another case", token: hs(claims(map[string]any{"role": "Admin"})), reason: "bad_claim"},
		{name: "ROLE instead of role", token: hs(claims(map[string]any{"role": nil, "ROLE": "admin"})), reason: "bad_claim"},
		{name: "Sub instead of sub", token: hs(claims(map[string]any{"sub": nil, "Sub": "alice"})), reason: "missing_claim"},
		{name: "role given twice", token: func(t testing.TB) string {
			return signRawHS256(t, `{"sub":"alice","role":"viewer","role":"admin","exp":`+strconv.FormatInt(testEpoch.Add(time.Hour).Unix(), 10)+`}`)
		}, reason: "malformed"},
		{name: "alg none", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims(nil))
		}, reason: "alg_not_allowed"},
		{name: "alg none without the trailing dot", token: func(t testing.TB) string {
			s := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims(nil))
			return strings.TrimSuffix(s, ".")
		}, reason: "malformed"},
		{name: "HS384", token: func(t testing.TB) string { return sign(t, jwt.SigningMethodHS384, testSecret, "", claims(nil)) }, reason: "alg_not_allowed"},
		{name: "HS512", token: func(t testing.TB) string { return sign(t, jwt.SigningMethodHS512, testSecret, "", claims(nil)) }, reason: "alg_not_allowed"},
		{name: "PS256", opts: setupOpts{secret: testSecret, jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodPS256, rsaKey, "rsa-1", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "RS256 against an HS256-only service", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "confusion: HS256 signed with the IdP's public key", opts: setupOpts{secret: testSecret, jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, publicPEM(t, &rsaKey.PublicKey), "rsa-1", idpClaims(nil))
		}, reason: "bad_signature"},
		{name: "confusion: HS256 signed with the public key, no secret configured", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, publicPEM(t, &rsaKey.PublicKey), "rsa-1", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "confusion: HS256 signed with the raw modulus", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, rsaKey.PublicKey.N.Bytes(), "rsa-1", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "wrong issuer", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", idpClaims(map[string]any{"iss": "https://evil.example.com/"}))
		}, reason: "wrong_issuer"},
		{name: "missing issuer", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", idpClaims(map[string]any{"iss": nil}))
		}, reason: "missing_claim"},
		{name: "wrong audience", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", idpClaims(map[string]any{"aud": "another-app"}))
		}, reason: "wrong_audience"},
		{name: "wrong audiences", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKey, "ec-1", idpClaims(map[string]any{"aud": []string{"a", "b"}}))
		}, reason: "wrong_audience"},
		{name: "missing audience", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", idpClaims(map[string]any{"aud": nil}))
		}, reason: "missing_claim"},
		{name: "expired IdP token", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKey, "ec-1", idpClaims(map[string]any{"exp": testEpoch.Add(-time.Hour).Unix()}))
		}, reason: "expired", challenge: `Bearer realm="moderator", error="invalid_token", error_description="the token has expired"`},
		{name: "unknown kid", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaAttacker, "who-knows", idpClaims(nil))
		}, reason: "unknown_key"},
		{name: "no kid", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "", idpClaims(nil))
		}, reason: "unknown_key"},
		{name: "attacker's key under the IdP's kid", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaAttacker, "rsa-1", idpClaims(nil))
		}, reason: "bad_signature"},
		{name: "RS256 naming an EC key", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "ec-1", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "ES256 naming an RSA key without alg", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKey, "rsa-noalg", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "ES256 naming a P-384 key", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKey, "ec-384", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "RS256 with a 1024-bit key", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsa1024, "rsa-1024", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "confusion: HS256 with a symmetric key from the JWKS", opts: setupOpts{secret: testSecret, jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, octSecret, "oct-1", idpClaims(nil))
		}, reason: "bad_signature"},
		{name: "RS256 naming a symmetric key", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "oct-1", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "key published for encryption", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-enc", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "key published for another alg", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-ps256", idpClaims(nil))
		}, reason: "alg_not_allowed"},
		{name: "crit header", token: func(t testing.TB) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
			tok.Header["crit"] = []string{"exp"}
			s, err := tok.SignedString(testSecret)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, reason: "malformed"},
		{name: "alg in two cases", token: func(t testing.TB) string {
			return rawHS256(t, `{"alg":"RS256","ALG":"HS256","typ":"JWT"}`, claims(nil))
		}, reason: "alg_not_allowed"},
		{name: "alg only in upper case", token: func(t testing.TB) string {
			return rawHS256(t, `{"ALG":"HS256","typ":"JWT"}`, claims(nil))
		}, reason: "alg_not_allowed"},
		{name: "alg not a string", token: func(t testing.TB) string {
			return rawHS256(t, `{"alg":256}`, claims(nil))
		}, reason: "malformed"},
		{name: "header null", token: func(t testing.TB) string {
			return rawHS256(t, `null`, claims(nil))
		}, reason: "malformed"},
		{name: "IdP token without a role", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKey, "ec-1", idpClaims(map[string]any{"role": nil}))
		}, reason: "bad_claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			if opts.secret == nil && !opts.jwks {
				opts.secret = testSecret
			}
			b := setup(t, opts)
			var headers []string
			var token string
			if tt.header != nil {
				headers = tt.header(t)
			} else {
				token = tt.token(t)
				headers = []string{"Bearer " + token}
			}
			w := b.do(t, headers...)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("got status %d (%s), want 401", w.Code, w.Body.String())
			}
			if got := errorCode(t, w); got != CodeUnauthorized {
				t.Errorf("got error code %q, want %q", got, CodeUnauthorized)
			}
			want := tt.challenge
			if want == "" {
				want = challenge
			}
			if got := w.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("got WWW-Authenticate %q, want %q", got, want)
			}
			if n := b.reached.Load(); n != 0 {
				t.Errorf("the handler ran %d times, want 0", n)
			}
			lines := b.logs.lines(t)
			var refused []map[string]any
			for _, l := range lines {
				if l["msg"] == "staff request refused" {
					refused = append(refused, l)
				}
			}
			if len(refused) != 1 {
				t.Fatalf("got %d refusal log lines, want 1: %v", len(refused), lines)
			}
			if !slices.Contains(refusalReasons, tt.reason) {
				t.Errorf("reason %q is not in refusalReasons", tt.reason)
			}
			if got := refused[0]["reason"]; got != tt.reason {
				t.Errorf("logged reason %q (detail %q), want %q", got, refused[0]["detail"], tt.reason)
			}
			if got := refused[0]["status"]; got != float64(401) {
				t.Errorf("logged status %v, want 401", got)
			}
			if token != "" && strings.Contains(b.logs.String(), token) {
				t.Errorf("the log holds the token: %s", b.logs.String())
			}
			if strings.Contains(b.logs.String(), string(testSecret)) {
				t.Errorf("the log holds the secret")
			}
		})
	}
}

// rawHS256 signs header and claims with testSecret as given, for headers
// that golang-jwt would not write.
func rawHS256(t testing.TB, header string, c jwt.MapClaims) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	signing := b64([]byte(header)) + "." + b64(payload)
	sig, err := jwt.SigningMethodHS256.Sign(signing, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64(sig)
}

func TestMiddlewareAcceptsGoodTokens(t *testing.T) {
	t.Parallel()
	keys(t)
	tests := []struct {
		name   string
		opts   setupOpts
		scheme string
		token  func(t testing.TB) string
		want   map[string]string
	}{
		{name: "HS256", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, "", claims(nil))
		}, want: map[string]string{"sub": "alice", "role": "reviewer"}},
		// The variants come after the real claims, where encoding/json
		// would let them win.
		{name: "ROLE beside role grants nothing", token: func(t testing.TB) string {
			return signRawHS256(t, `{"sub":"alice","role":"viewer","ROLE":"admin","Role":"admin","exp":`+strconv.FormatInt(testEpoch.Add(time.Hour).Unix(), 10)+`}`)
		}, want: map[string]string{"sub": "alice", "role": "viewer"}},
		{name: "SUB beside sub changes no subject", token: func(t testing.TB) string {
			return signRawHS256(t, `{"sub":"alice","SUB":"mallory","Sub":"mallory","role":"reviewer","exp":`+strconv.FormatInt(testEpoch.Add(time.Hour).Unix(), 10)+`}`)
		}, want: map[string]string{"sub": "alice", "role": "reviewer"}},
		{name: "lowercase scheme", scheme: "bearer ", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"role": "viewer"}))
		}, want: map[string]string{"sub": "alice", "role": "viewer"}},
		{name: "expired within the leeway", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"exp": testEpoch.Add(-20 * time.Second).Unix()}))
		}, want: map[string]string{"sub": "alice", "role": "reviewer"}},
		{name: "nbf within the leeway", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"nbf": testEpoch.Add(20 * time.Second).Unix()}))
		}, want: map[string]string{"sub": "alice", "role": "reviewer"}},
		{name: "iat within the leeway, nbf past", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{
				"iat": testEpoch.Add(20 * time.Second).Unix(), "nbf": testEpoch.Add(-time.Hour).Unix()}))
		}, want: map[string]string{"sub": "alice", "role": "reviewer"}},
		{name: "HS256 ignores iss and aud", opts: setupOpts{secret: testSecret, jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"role": "admin", "iss": "anyone", "aud": "anything"}))
		}, want: map[string]string{"sub": "alice", "role": "admin"}},
		{name: "JWKS RS256", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", idpClaims(map[string]any{"sub": "auth0|bob", "role": "admin"}))
		}, want: map[string]string{"sub": "auth0|bob", "role": "admin"}},
		{name: "JWKS RS256, key without alg", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey2, "rsa-noalg", idpClaims(nil))
		}, want: map[string]string{"sub": "alice", "role": "reviewer"}},
		{name: "JWKS ES256", opts: setupOpts{secret: testSecret, jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKey, "ec-1", idpClaims(map[string]any{"role": "viewer"}))
		}, want: map[string]string{"sub": "alice", "role": "viewer"}},
		{name: "JWKS ES256, key without use", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKey, "ec-nouse", idpClaims(nil))
		}, want: map[string]string{"sub": "alice", "role": "reviewer"}},
		{name: "JWKS audience among several", opts: setupOpts{jwks: true}, token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKey, "ec-1", idpClaims(map[string]any{"aud": []string{"other", testAudience}}))
		}, want: map[string]string{"sub": "alice", "role": "reviewer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			if opts.secret == nil && !opts.jwks {
				opts.secret = testSecret
			}
			b := setup(t, opts)
			scheme := tt.scheme
			if scheme == "" {
				scheme = "Bearer "
			}
			w := b.do(t, scheme+tt.token(t))
			if w.Code != http.StatusOK {
				t.Fatalf("got status %d (%s), want 200; log: %s", w.Code, w.Body.String(), b.logs.String())
			}
			var got map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("caller (-want +got):\n%s", diff)
			}
			if s := b.logs.String(); s != "" {
				t.Errorf("an accepted request was logged: %s", s)
			}
		})
	}
}

func TestRequireRoleMatrix(t *testing.T) {
	t.Parallel()
	roles := []Role{RoleViewer, RoleReviewer, RoleAdmin}
	allowed := map[[2]Role]bool{
		{RoleViewer, RoleViewer}:     true,
		{RoleReviewer, RoleViewer}:   true,
		{RoleReviewer, RoleReviewer}: true,
		{RoleAdmin, RoleViewer}:      true,
		{RoleAdmin, RoleReviewer}:    true,
		{RoleAdmin, RoleAdmin}:       true,
	}
	b := setup(t, setupOpts{secret: testSecret})
	for _, have := range roles {
		for _, need := range roles {
			t.Run(string(have)+" needs "+string(need), func(t *testing.T) {
				t.Parallel()
				var reached atomic.Bool
				h := b.auth.Middleware(RequireRole(need)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					reached.Store(true)
					w.WriteHeader(http.StatusNoContent)
				})))
				tok, err := MintToken(testSecret, "sub-"+string(have)+"-"+string(need), have, time.Hour, testEpoch)
				if err != nil {
					t.Fatal(err)
				}
				r := httptest.NewRequest(http.MethodPost, "/api/v1/overturns", nil)
				r.Header.Set("Authorization", "Bearer "+tok)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if allowed[[2]Role{have, need}] {
					if w.Code != http.StatusNoContent || !reached.Load() {
						t.Fatalf("got status %d, reached %v; want 204 and the handler reached", w.Code, reached.Load())
					}
					return
				}
				if w.Code != http.StatusForbidden {
					t.Fatalf("got status %d (%s), want 403", w.Code, w.Body.String())
				}
				if reached.Load() {
					t.Error("the handler ran for a forbidden request")
				}
				if got := errorCode(t, w); got != CodeForbidden {
					t.Errorf("got code %q, want %q", got, CodeForbidden)
				}
				if got, want := w.Header().Get("WWW-Authenticate"), `Bearer realm="moderator", error="insufficient_scope"`; got != want {
					t.Errorf("got WWW-Authenticate %q, want %q", got, want)
				}
				if !strings.Contains(w.Body.String(), string(need)) {
					t.Errorf("body %s does not name the role needed", w.Body.String())
				}
			})
		}
	}
}

func TestRequireRoleWithoutMiddlewareFailsClosed(t *testing.T) {
	t.Parallel()
	h := RequireRole(RoleViewer)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler reached without authentication")
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/v1/x", nil))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("got status %d, want 401", w.Code)
	}
}

func TestRateLimitPerSubject(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{secret: testSecret, rate: 3}) // one request per 20 s, bursts of 3
	alice, err := MintToken(testSecret, "alice", RoleViewer, time.Hour, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := MintToken(testSecret, "bob", RoleViewer, time.Hour, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if w := b.do(t, "Bearer "+alice); w.Code != http.StatusOK {
			t.Fatalf("request %d: got status %d, want 200", i+1, w.Code)
		}
	}
	w := b.do(t, "Bearer "+alice)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("request 4: got status %d, want 429", w.Code)
	}
	if got := errorCode(t, w); got != CodeRateLimited {
		t.Errorf("got code %q, want %q", got, CodeRateLimited)
	}
	if got := w.Header().Get("Retry-After"); got != "20" {
		t.Errorf("got Retry-After %q, want 20", got)
	}
	if n := b.reached.Load(); n != 3 {
		t.Errorf("the handler ran %d times, want 3", n)
	}
	// Another subject has its own budget.
	if w := b.do(t, "Bearer "+bob); w.Code != http.StatusOK {
		t.Fatalf("bob: got status %d, want 200", w.Code)
	}
	// A new token for the same subject shares the budget.
	alice2, err := MintToken(testSecret, "alice", RoleAdmin, time.Hour, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if w := b.do(t, "Bearer "+alice2); w.Code != http.StatusTooManyRequests {
		t.Fatalf("alice's second token: got status %d, want 429", w.Code)
	}

	b.clock.Advance(15 * time.Second)
	w = b.do(t, "Bearer "+alice)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("after 15 s: got status %d, want 429", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "5" {
		t.Errorf("after 15 s: got Retry-After %q, want 5", got)
	}
	b.clock.Advance(5 * time.Second)
	if w := b.do(t, "Bearer "+alice); w.Code != http.StatusOK {
		t.Fatalf("after 20 s: got status %d, want 200", w.Code)
	}
	if w := b.do(t, "Bearer "+alice); w.Code != http.StatusTooManyRequests {
		t.Fatalf("the refilled token is spent: got status %d, want 429", w.Code)
	}
	b.clock.Advance(time.Minute)
	for i := range 3 {
		if w := b.do(t, "Bearer "+alice); w.Code != http.StatusOK {
			t.Fatalf("after a minute, request %d: got status %d, want 200", i+1, w.Code)
		}
	}

	var limited int
	for _, l := range b.logs.lines(t) {
		if l["reason"] == "rate_limited" {
			limited++
			if l["staff_sub"] != "alice" || l["role"] == nil || l["status"] != float64(429) {
				t.Errorf("rate-limit log line %v, want sub alice and status 429", l)
			}
		}
	}
	if limited != 4 {
		t.Errorf("got %d rate-limit log lines, want 4", limited)
	}
}

func TestSubjectLimiterEvictsIdleBuckets(t *testing.T) {
	t.Parallel()
	c := &clock{t: testEpoch}
	l := newSubjectLimiter(60, c.Now)
	for _, k := range []string{"a", "b", "c"} {
		if ok, _ := l.allow(k); !ok {
			t.Fatalf("%s refused", k)
		}
	}
	c.Advance(30 * time.Second)
	l.allow("a")
	c.Advance(31 * time.Second) // b and c idle for 61 s, a for 31 s: the sweep is due
	l.allow("d")
	if got := l.size(); got != 2 {
		t.Fatalf("got %d buckets after the sweep, want 2 (a and d)", got)
	}
	if _, ok := l.buckets["a"]; !ok {
		t.Error("a, used 31 s ago, was evicted")
	}
}

func TestSubjectLimiterIsBounded(t *testing.T) {
	t.Parallel()
	c := &clock{t: testEpoch}
	l := newSubjectLimiter(60, c.Now)
	l.allow("first")
	c.Advance(time.Millisecond)
	for i := range maxBuckets + 10 {
		l.allow("k" + strconv.Itoa(i))
	}
	if got := l.size(); got != maxBuckets {
		t.Fatalf("got %d buckets, want the bound %d", got, maxBuckets)
	}
	if _, ok := l.buckets["first"]; ok {
		t.Error("the least recently seen bucket was kept")
	}
}

func TestJWKSRefreshesOnUnknownKidAtMostOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{jwks: true})
	if got := b.idp.fetches.Load(); got != 1 {
		t.Fatalf("got %d fetches at start, want 1", got)
	}
	// The IdP rotates rsa-1 out and rsa-2 in; the first rsa-2 token
	// triggers one fetch.
	b.idp.serve(http.StatusOK, rsaJWK("rsa-2", &rsaKey2.PublicKey))
	tok := sign(t, jwt.SigningMethodRS256, rsaKey2, "rsa-2", idpClaims(nil))
	if w := b.do(t, "Bearer "+tok); w.Code != http.StatusOK {
		t.Fatalf("rotated key: got status %d (%s), want 200; log %s", w.Code, w.Body.String(), b.logs.String())
	}
	if got := b.idp.fetches.Load(); got != 2 {
		t.Fatalf("got %d fetches after the rotation, want 2", got)
	}
	// Made-up kids cannot make us hammer the IdP: the next refresh is
	// rate-limited, so these fail at once without a fetch.
	for i := range 5 {
		ghost := sign(t, jwt.SigningMethodRS256, rsaAttacker, "ghost-"+strconv.Itoa(i), idpClaims(nil))
		if w := b.do(t, "Bearer "+ghost); w.Code != http.StatusUnauthorized {
			t.Fatalf("ghost kid: got status %d, want 401", w.Code)
		}
	}
	if got := b.idp.fetches.Load(); got != 2 {
		t.Fatalf("got %d fetches after unknown kids, want still 2", got)
	}
	// The key rotated out is forgotten with that fetch (revocation).
	if w := b.do(t, "Bearer "+sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", idpClaims(nil))); w.Code != http.StatusUnauthorized {
		t.Fatalf("rsa-1 after the rotation: got status %d, want 401", w.Code)
	}
}

func TestJWKSDownAtStart(t *testing.T) {
	t.Parallel()
	keys(t)
	idp := newFakeIdP(t)
	idp.serve(http.StatusServiceUnavailable)
	logs := &SyncBuffer{}
	a, err := NewAuthenticator(t.Context(), AuthConfig{
		JWKSURL: idp.URL, Issuer: testIssuer, Audience: testAudience,
		HTTPClient: idp.Client(), Now: func() time.Time { return testEpoch },
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatalf("an IdP down at start must not stop the service: %v", err)
	}
	<-a.jwks.ready
	if !strings.Contains(logs.String(), "fetch JWKS") {
		t.Errorf("the failed fetch was not logged: %q", logs.String())
	}
	idp.serve(http.StatusOK, ecJWK("ec-1", &ecKey.PublicKey))
	s, err := a.Authenticate(t.Context(), sign(t, jwt.SigningMethodES256, ecKey, "ec-1", idpClaims(nil)))
	if err != nil {
		t.Fatalf("once the IdP answers: %v", err)
	}
	if diff := cmp.Diff(Staff{Subject: "alice", Role: RoleReviewer}, s); diff != "" {
		t.Errorf("caller (-want +got):\n%s", diff)
	}
}

// The first fetch of the key set runs in the background: an identity
// provider that hangs does not hold up start-up (and so the webhooks), and
// its tokens pass once it answers.
func TestNewAuthenticatorDoesNotWaitForTheIdP(t *testing.T) {
	t.Parallel()
	keys(t)
	release := make(chan struct{})
	var answered atomic.Bool
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{ecJWK("ec-1", &ecKey.PublicKey)}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = w.Write(jwks)
		answered.Store(true)
	}))
	t.Cleanup(idp.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	a, err := NewAuthenticator(t.Context(), AuthConfig{
		HS256Secret: testSecret, JWKSURL: idp.URL, Issuer: testIssuer, Audience: testAudience,
		HTTPClient: idp.Client(), Now: func() time.Time { return testEpoch },
	})
	if err != nil {
		t.Fatal(err)
	}
	if answered.Load() {
		t.Fatal("the IdP answered before it was released: the test proves nothing")
	}
	// HS256 tokens work meanwhile.
	if _, err := a.Authenticate(t.Context(), sign(t, jwt.SigningMethodHS256, testSecret, "", claims(nil))); err != nil {
		t.Fatalf("HS256 while the key set loads: %v", err)
	}
	close(release)
	s, err := a.Authenticate(t.Context(), sign(t, jwt.SigningMethodES256, ecKey, "ec-1", idpClaims(nil)))
	if err != nil {
		t.Fatalf("once the IdP answers: %v", err)
	}
	if s.Subject != "alice" {
		t.Errorf("got subject %q, want alice", s.Subject)
	}
}

func TestJWKSOversizedAnswerIsRefused(t *testing.T) {
	t.Parallel()
	keys(t)
	idp := newFakeIdP(t)
	big := []byte(`{"keys":[` + strings.Repeat(`{"kty":"oct","k":"AAAA"},`, 60_000) + `{"kty":"oct","k":"AAAA"}]}`)
	idp.mu.Lock()
	idp.body = big
	idp.mu.Unlock()
	logs := &SyncBuffer{}
	a, err := NewAuthenticator(t.Context(), AuthConfig{
		JWKSURL: idp.URL, Issuer: testIssuer, Audience: testAudience,
		HTTPClient: idp.Client(), Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	<-a.jwks.ready
	if !strings.Contains(logs.String(), "over 1048576 bytes") {
		t.Errorf("log %q does not say the answer was too large", logs.String())
	}
	_, err = a.Authenticate(t.Context(), sign(t, jwt.SigningMethodES256, ecKey, "ec-1", idpClaims(map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})))
	var ae *authError
	if !errors.As(err, &ae) || ae.Reason != "unknown_key" {
		t.Fatalf("got %v, want an unknown_key refusal", err)
	}
}

func TestNewAuthenticatorRefusesBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  AuthConfig
		want string
	}{
		{"nothing", AuthConfig{}, "neither an HS256 secret nor a JWKS URL"},
		{"short secret", AuthConfig{HS256Secret: []byte("short")}, "has 5 bytes, want at least 32"},
		{"JWKS without issuer", AuthConfig{JWKSURL: "https://idp.example.com/jwks", Audience: "a"}, "needs an issuer and an audience"},
		{"JWKS without audience", AuthConfig{JWKSURL: "https://idp.example.com/jwks", Issuer: "i"}, "needs an issuer and an audience"},
		{"negative rate", AuthConfig{HS256Secret: testSecret, RatePerMinute: -1}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewAuthenticator(t.Context(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestMintToken(t *testing.T) {
	t.Parallel()
	a, err := NewAuthenticator(t.Context(), AuthConfig{HS256Secret: testSecret, Now: func() time.Time { return testEpoch.Add(8*time.Hour - time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := MintToken(testSecret, "carol@example.com", RoleAdmin, 8*time.Hour, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Staff{Subject: "carol@example.com", Role: RoleAdmin}, s); diff != "" {
		t.Errorf("caller (-want +got):\n%s", diff)
	}
	// The token says exactly this, and expires after the TTL.
	var got jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &got); err != nil {
		t.Fatal(err)
	}
	want := jwt.MapClaims{"sub": "carol@example.com", "role": "admin",
		"iat": float64(testEpoch.Unix()), "exp": float64(testEpoch.Add(8 * time.Hour).Unix())}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	late, err := NewAuthenticator(t.Context(), AuthConfig{HS256Secret: testSecret, Now: func() time.Time { return testEpoch.Add(8*time.Hour + time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Authenticate(context.Background(), tok); err == nil {
		t.Error("the token is accepted after its TTL")
	}

	for _, bad := range []struct {
		name   string
		secret []byte
		sub    string
		role   Role
		ttl    time.Duration
		want   string
	}{
		{"short secret", []byte("0123456789"), "a", RoleViewer, time.Hour, "at least 32"},
		{"no sub", testSecret, "", RoleViewer, time.Hour, "sub is empty"},
		{"sub with newline", testSecret, "a\nb", RoleViewer, time.Hour, "unprintable"},
		{"unknown role", testSecret, "a", "root", time.Hour, `role "root"`},
		{"zero ttl", testSecret, "a", RoleViewer, 0, "must be positive"},
		{"negative ttl", testSecret, "a", RoleViewer, -time.Hour, "must be positive"},
		{"ttl too long", testSecret, "a", RoleViewer, MaxTokenTTL + time.Second, "at most 720h"},
	} {
		if _, err := MintToken(bad.secret, bad.sub, bad.role, bad.ttl, testEpoch); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: got error %v, want one saying %q", bad.name, err, bad.want)
		}
	}
}

// A token cannot send us to fetch keys elsewhere: jku, x5u and jwk headers
// are ignored, and the key comes only from the configured set.
func TestTokenHeadersCannotChooseTheKeySource(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{jwks: true})
	var hits atomic.Int32
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{rsaJWK("evil", &rsaAttacker.PublicKey)}})
	}))
	t.Cleanup(attacker.Close)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, idpClaims(nil))
	tok.Header["kid"] = "evil"
	tok.Header["jku"] = attacker.URL
	tok.Header["x5u"] = attacker.URL
	tok.Header["jwk"] = rsaJWK("evil", &rsaAttacker.PublicKey)
	s, err := tok.SignedString(rsaAttacker)
	if err != nil {
		t.Fatal(err)
	}
	if w := b.do(t, "Bearer "+s); w.Code != http.StatusUnauthorized {
		t.Fatalf("got status %d, want 401", w.Code)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the attacker's server was fetched %d times", n)
	}
}

// Concurrent requests of one subject share one bucket: exactly its burst
// gets through, however they interleave.
func TestRateLimitConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{secret: testSecret, rate: 10})
	tok, err := MintToken(testSecret, "alice", RoleViewer, time.Hour, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ok, limited atomic.Int32
	for range 50 {
		wg.Go(func() {
			switch w := b.do(t, "Bearer "+tok); w.Code {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
			default:
				t.Errorf("got status %d", w.Code)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 || limited.Load() != 40 {
		t.Fatalf("got %d allowed and %d limited, want 10 and 40", ok.Load(), limited.Load())
	}
}

// Under NoteAuthRefusals the reason goes to the request logger's note
// instead of a line of the middleware's own: one line per request.
func TestNoteAuthRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{secret: testSecret, rate: 1})
	var got []AuthRefusal
	var mu sync.Mutex
	h := func(w http.ResponseWriter, r *http.Request) {
		ctx, note := NoteAuthRefusals(r.Context())
		b.handler.ServeHTTP(w, r.WithContext(ctx))
		mu.Lock()
		got = append(got, *note)
		mu.Unlock()
	}
	good, err := MintToken(testSecret, "alice", RoleReviewer, time.Hour, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := MintToken(testSecret, "alice", RoleReviewer, time.Hour, testEpoch.Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := []int{http.StatusOK, http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusUnauthorized}
	for i, authz := range []string{"Bearer " + good, "Bearer " + expired, "Bearer " + good, ""} {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/x", nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		h(w, r)
		if w.Code != wantStatus[i] {
			t.Fatalf("request %d: got status %d, want %d", i+1, w.Code, wantStatus[i])
		}
	}
	want := []AuthRefusal{
		{},
		{Reason: "expired", Detail: "token has invalid claims: token is expired"},
		{Reason: "rate_limited", Detail: "subject over its rate", Subject: "alice", Role: "reviewer"},
		{Reason: "no_token", Detail: "no Authorization: Bearer header"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
	if s := b.logs.String(); s != "" {
		t.Errorf("the middleware logged a line of its own: %s", s)
	}
}

func TestAuthMetrics(t *testing.T) {
	t.Parallel()
	keys(t)
	idp := newFakeIdP(t)
	idp.serve(http.StatusInternalServerError)
	reg := prometheus.NewRegistry()
	a, err := NewAuthenticator(t.Context(), AuthConfig{
		HS256Secret: testSecret, JWKSURL: idp.URL, Issuer: testIssuer, Audience: testAudience,
		HTTPClient: idp.Client(), Now: func() time.Time { return testEpoch }, RatePerMinute: 1, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	<-a.jwks.ready
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	good, err := MintToken(testSecret, "alice", RoleViewer, time.Hour, testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := MintToken(testSecret, "alice", RoleViewer, time.Hour, testEpoch.Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, authz := range []string{"", "Bearer " + expired, "Bearer " + expired, "Bearer " + good, "Bearer " + good} {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/x", nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	got := counters(t, reg)
	want := map[string]float64{
		`moderator_staff_auth_refused_total{reason="no_token"}`:     1,
		`moderator_staff_auth_refused_total{reason="expired"}`:      2,
		`moderator_staff_auth_refused_total{reason="rate_limited"}`: 1,
		`moderator_staff_jwks_fetch_errors_total`:                   1,
	}
	for _, r := range refusalReasons { // every reason is there from the start
		k := `moderator_staff_auth_refused_total{reason="` + r + `"}`
		if _, ok := want[k]; !ok {
			want[k] = 0
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	// A second authenticator on the same registry is a wiring error.
	if _, err := NewAuthenticator(t.Context(), AuthConfig{HS256Secret: testSecret, Registerer: reg}); err == nil {
		t.Error("registering the metrics twice went unnoticed")
	}
}

// counters gathers reg's counters as name{label="value"} → value.
func counters(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if lp := m.GetLabel(); len(lp) > 0 {
				var labels []string
				for _, l := range lp {
					labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
				}
				name += "{" + strings.Join(labels, ",") + "}"
			}
			out[name] = m.GetCounter().GetValue()
		}
	}
	return out
}
