package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestStaffAuthEndToEnd runs `moderator serve` with both key sources, an
// identity provider's JWKS (a local fake) and an HS256 secret, and calls
// the staff API as an operator would: with a token printed by `moderator
// token`, with IdP tokens, and with tokens that must be refused.
func TestStaffAuthEndToEnd(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "idp-1", "use": "sig", "alg": "ES256",
		"x": b64(raw[1:33]), "y": b64(raw[33:]),
	}}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(idp.Close)

	const issuer, audience = "https://idp.example.com/", "moderator-e2e"
	s := startServer(t, serverOptions{env: map[string]string{
		"MODERATOR_ADMIN_JWT_SECRET":   e2eAdminSecret,
		"MODERATOR_ADMIN_JWKS_URL":     idp.URL + "/.well-known/jwks.json",
		"MODERATOR_ADMIN_JWT_ISSUER":   issuer,
		"MODERATOR_ADMIN_JWT_AUDIENCE": audience,
		"MODERATOR_ADMIN_RATE_LIMIT":   "1000",
	}})

	// A token from `moderator token`, as the README shows it.
	var out, errOut bytes.Buffer
	env := map[string]string{"MODERATOR_ADMIN_JWT_SECRET": e2eAdminSecret}
	if err := run(context.Background(), []string{"token", "--role", "viewer", "--sub", "dana@example.com", "--ttl", "1h"},
		func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("moderator token: %v (%s)", err, errOut.String())
	}
	minted := strings.TrimSpace(out.String())

	idpToken := func(edits jwt.MapClaims) string {
		c := jwt.MapClaims{"sub": "okta|erin", "role": "admin", "iss": issuer, "aud": audience,
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		for k, v := range edits {
			c[k] = v
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["kid"] = "idp-1"
		signed, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}

	tests := []struct {
		name, path, token string
		want              int
	}{
		{"moderator token's output", "/api/v1/events", minted, http.StatusOK},
		{"its role is enforced", "/api/v1/settings", minted, http.StatusForbidden},
		{"IdP admin token", "/api/v1/settings", idpToken(nil), http.StatusOK},
		{"IdP token for another audience", "/api/v1/events", idpToken(jwt.MapClaims{"aud": "someone-else"}), http.StatusUnauthorized},
		{"IdP token from another issuer", "/api/v1/events", idpToken(jwt.MapClaims{"iss": "https://evil.example.com/"}), http.StatusUnauthorized},
		{"expired IdP token", "/api/v1/events", idpToken(jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}), http.StatusUnauthorized},
		{"no token", "/api/v1/events", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		code, body := s.staffGet(t, tt.path, tt.token)
		if code != tt.want {
			t.Errorf("%s: GET %s: got %d %v, want %d", tt.name, tt.path, code, body, tt.want)
		}
	}
	logs := s.logs.String()
	if strings.Contains(logs, minted) || strings.Contains(logs, e2eAdminSecret) {
		t.Error("the log holds a token or the secret")
	}
	m := s.get(t, "/metrics")
	for _, want := range []string{
		`moderator_staff_auth_refused_total{reason="wrong_audience"} 1`,
		`moderator_staff_auth_refused_total{reason="wrong_issuer"} 1`,
		`moderator_staff_auth_refused_total{reason="expired"} 1`,
		`moderator_staff_auth_refused_total{reason="no_token"} 1`,
		`moderator_staff_auth_refused_total{reason="bad_signature"} 0`,
		`moderator_staff_jwks_fetch_errors_total 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(logs, `"wrong_audience"`) || !strings.Contains(logs, `"expired"`) {
		t.Errorf("the log does not say why tokens were refused:\n%s", logs)
	}
}
