package main

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moderator/appeals"
)

// The staff API's settings, checked like the rest of the configuration: one
// line naming the variable, never the secret.
func TestLoadConfigStaffAuthErrors(t *testing.T) {
	t.Parallel()
	const weak = "weak-secret-value"
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{"short secret", map[string]string{"MODERATOR_ADMIN_JWT_SECRET": weak}, "MODERATOR_ADMIN_JWT_SECRET: must be at least 32 bytes"},
		{"JWKS URL not https", map[string]string{"MODERATOR_ADMIN_JWKS_URL": "http://idp.example.com/jwks", "MODERATOR_ADMIN_JWT_ISSUER": "i", "MODERATOR_ADMIN_JWT_AUDIENCE": "a"}, "MODERATOR_ADMIN_JWKS_URL: must be an https URL"},
		{"JWKS URL not a URL", map[string]string{"MODERATOR_ADMIN_JWKS_URL": "idp.example.com/jwks", "MODERATOR_ADMIN_JWT_ISSUER": "i", "MODERATOR_ADMIN_JWT_AUDIENCE": "a"}, "MODERATOR_ADMIN_JWKS_URL: must be an https URL"},
		{"JWKS without issuer", map[string]string{"MODERATOR_ADMIN_JWKS_URL": "https://idp.example.com/jwks", "MODERATOR_ADMIN_JWT_AUDIENCE": "a"}, "MODERATOR_ADMIN_JWT_ISSUER is required with MODERATOR_ADMIN_JWKS_URL"},
		{"JWKS without audience", map[string]string{"MODERATOR_ADMIN_JWKS_URL": "https://idp.example.com/jwks", "MODERATOR_ADMIN_JWT_ISSUER": "i"}, "MODERATOR_ADMIN_JWT_AUDIENCE is required with MODERATOR_ADMIN_JWKS_URL"},
		{"issuer without JWKS", map[string]string{"MODERATOR_ADMIN_JWT_ISSUER": "https://idp.example.com/"}, "MODERATOR_ADMIN_JWT_ISSUER is set but MODERATOR_ADMIN_JWKS_URL is not"},
		{"audience without JWKS", map[string]string{"MODERATOR_ADMIN_JWT_AUDIENCE": "moderator"}, "MODERATOR_ADMIN_JWT_AUDIENCE is set but MODERATOR_ADMIN_JWKS_URL is not"},
		{"rate not a number", map[string]string{"MODERATOR_ADMIN_RATE_LIMIT": "lots"}, "MODERATOR_ADMIN_RATE_LIMIT: must be a positive whole number"},
		{"rate zero", map[string]string{"MODERATOR_ADMIN_RATE_LIMIT": "0"}, "MODERATOR_ADMIN_RATE_LIMIT: must be a positive whole number"},
		{"OIDC client without issuer", map[string]string{"MODERATOR_OIDC_CLIENT_ID": "moderator"}, "MODERATOR_OIDC_CLIENT_ID is set but MODERATOR_OIDC_ISSUER is not"},
		{"OIDC secret without issuer", map[string]string{"MODERATOR_OIDC_CLIENT_SECRET": weak}, "MODERATOR_OIDC_CLIENT_SECRET is set but MODERATOR_OIDC_ISSUER is not"},
		{"OIDC without JWKS", oidcEnv(map[string]string{"MODERATOR_ADMIN_JWKS_URL": "", "MODERATOR_ADMIN_JWT_ISSUER": "", "MODERATOR_ADMIN_JWT_AUDIENCE": ""}), "MODERATOR_OIDC_ISSUER is set but MODERATOR_ADMIN_JWKS_URL is not"},
		{"OIDC issuer not https", oidcEnv(map[string]string{"MODERATOR_OIDC_ISSUER": "http://idp.example.com"}), "MODERATOR_OIDC_ISSUER: must be an https URL"},
		{"OIDC without client", oidcEnv(map[string]string{"MODERATOR_OIDC_CLIENT_ID": ""}), "MODERATOR_OIDC_CLIENT_ID is required with MODERATOR_OIDC_ISSUER"},
		{"OIDC without redirect", oidcEnv(map[string]string{"MODERATOR_OIDC_REDIRECT_URL": ""}), "MODERATOR_OIDC_REDIRECT_URL: must be this service's https URL"},
		{"OIDC redirect elsewhere", oidcEnv(map[string]string{"MODERATOR_OIDC_REDIRECT_URL": "https://mod.example.com/callback"}), "MODERATOR_OIDC_REDIRECT_URL: must be this service's https URL"},
		{"OIDC role claim with space", oidcEnv(map[string]string{"MODERATOR_OIDC_ROLE_CLAIM": "my role", "MODERATOR_OIDC_CLIENT_SECRET": weak}), "MODERATOR_OIDC_ROLE_CLAIM: must be a claim name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{
				"DATABASE_URL":      "postgres://u@127.0.0.1:5432/db",
				"STREAM_API_KEY":    "key",
				"STREAM_API_SECRET": "secret",
			}
			for k, v := range tt.set {
				env[k] = v
			}
			_, err := loadConfig("serve", nil, func(k string) string { return env[k] }, io.Discard)
			if err == nil {
				t.Fatalf("got nil error, want one naming %q", tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Fatalf("got error %q, want one line saying %q", msg, tt.want)
			}
			if strings.Contains(msg, weak) {
				t.Fatalf("error %q shows the secret", msg)
			}
		})
	}
}

// oidcEnv is a working OpenID Connect configuration, changed by set ("":
// unset).
func oidcEnv(set map[string]string) map[string]string {
	env := map[string]string{
		"MODERATOR_ADMIN_JWKS_URL":     "https://idp.example.com/jwks",
		"MODERATOR_ADMIN_JWT_ISSUER":   "https://idp.example.com",
		"MODERATOR_ADMIN_JWT_AUDIENCE": "moderator",
		"MODERATOR_OIDC_ISSUER":        "https://idp.example.com",
		"MODERATOR_OIDC_CLIENT_ID":     "moderator-console",
		"MODERATOR_OIDC_REDIRECT_URL":  "https://mod.example.com/console/oidc/callback",
	}
	for k, v := range set {
		env[k] = v
	}
	return env
}

// A working OpenID Connect configuration loads, with the role claim's
// default, and its secret is shown redacted.
func TestLoadConfigOIDC(t *testing.T) {
	t.Parallel()
	env := oidcEnv(map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:5432/db", "STREAM_API_KEY": "key",
		"STREAM_API_SECRET": "secret", "MODERATOR_OIDC_CLIENT_SECRET": "oidc-client-secret-value"})
	c, err := loadConfig("serve", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.OIDCRoleClaim != "role" || c.OIDCClientID != "moderator-console" || c.OIDCClientSecret != "oidc-client-secret-value" {
		t.Errorf("config %+v", c)
	}
	for _, s := range (serviceStatus{cfg: c, rules: &liveRules{}}).Settings() {
		if s.Name == "MODERATOR_OIDC_CLIENT_SECRET" && !s.Secret {
			t.Errorf("MODERATOR_OIDC_CLIENT_SECRET is not marked secret")
		}
	}
}

func TestLoadConfigStaffAuth(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"DATABASE_URL":      "postgres://u@127.0.0.1:5432/db",
		"STREAM_API_KEY":    "key",
		"STREAM_API_SECRET": "secret",
	}
	const secret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		set     map[string]string
		want    appeals.AuthConfig
		enabled bool
	}{
		{name: "off by default", enabled: false},
		{name: "HS256", set: map[string]string{"MODERATOR_ADMIN_JWT_SECRET": " " + secret + " "}, enabled: true,
			want: appeals.AuthConfig{HS256Secret: []byte(secret), RatePerMinute: 600}},
		{name: "JWKS", enabled: true, set: map[string]string{
			"MODERATOR_ADMIN_JWKS_URL":     "https://idp.example.com/.well-known/jwks.json",
			"MODERATOR_ADMIN_JWT_ISSUER":   "https://idp.example.com/",
			"MODERATOR_ADMIN_JWT_AUDIENCE": "moderator",
			"MODERATOR_ADMIN_RATE_LIMIT":   "120",
		}, want: appeals.AuthConfig{JWKSURL: "https://idp.example.com/.well-known/jwks.json", Issuer: "https://idp.example.com/", Audience: "moderator", RatePerMinute: 120}},
		{name: "JWKS on localhost over http, and a secret", enabled: true, set: map[string]string{
			"MODERATOR_ADMIN_JWT_SECRET":   secret,
			"MODERATOR_ADMIN_JWKS_URL":     "http://127.0.0.1:8081/jwks",
			"MODERATOR_ADMIN_JWT_ISSUER":   "dev",
			"MODERATOR_ADMIN_JWT_AUDIENCE": "moderator",
		}, want: appeals.AuthConfig{HS256Secret: []byte(secret), JWKSURL: "http://127.0.0.1:8081/jwks", Issuer: "dev", Audience: "moderator", RatePerMinute: 600}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.set {
				env[k] = v
			}
			c, err := loadConfig("serve", nil, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			got, enabled := c.staffAuth(nil, nil)
			if enabled != tt.enabled {
				t.Fatalf("staff API enabled = %v, want %v", enabled, tt.enabled)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("auth config (-want +got):\n%s", diff)
			}
			if enabled && got.JWKSURL == "" { // (a JWKS URL would be fetched)
				if _, err := appeals.NewAuthenticator(t.Context(), got); err != nil {
					t.Errorf("the configuration does not make an authenticator: %v", err)
				}
			}
		})
	}
	// Other commands do not check the staff settings: a short secret does
	// not stop `moderator migrate`.
	env := map[string]string{"DATABASE_URL": base["DATABASE_URL"], "MODERATOR_ADMIN_JWT_SECRET": "short"}
	if _, err := loadConfig("migrate", nil, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Errorf("migrate with a short staff secret: %v", err)
	}
}
