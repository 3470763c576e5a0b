package appeals_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/goccy/go-yaml"
	"github.com/golang-jwt/jwt/v5"

	"moderator/appeals"
	"moderator/store/storetest"
)

// endpoint is one route the router serves, with the role openapi.yaml
// says it needs (the spec test holds the spec and the route table equal).
type endpoint struct {
	method, pattern string
	role            string // viewer, reviewer, admin, or public
}

// endpoints walks the router for every route, so that a new route cannot
// escape the matrix, and takes each one's role from the served spec.
func endpoints(t *testing.T, a *api) []endpoint {
	t.Helper()
	code, raw := a.call(t, http.MethodGet, "/openapi.yaml", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d", code)
	}
	var spec struct {
		Paths map[string]map[string]struct {
			Role string `yaml:"x-role"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	var out []endpoint
	err := chi.Walk(a.h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		role := spec.Paths[route][strings.ToLower(method)].Role
		if role == "" {
			t.Errorf("%s %s: no x-role in openapi.yaml", method, route)
		}
		out = append(out, endpoint{method, route, role})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 16 {
		t.Fatalf("walked %d routes; the router is not what the test expects", len(out))
	}
	return out
}

// target fills a route's parameters; bodyFor gives a POST a body that
// would pass validation, so that the answer is about authorisation alone.
func target(pattern string) string {
	return strings.NewReplacer("{id}", "1", "{user_id}", "matrix-user", "{rule_id}", "matrix-rule").Replace(pattern)
}

func bodyFor(e endpoint) string {
	if e.method != http.MethodPost {
		return ""
	}
	switch e.pattern {
	case "/appeals":
		return `{"user_id":"matrix-user","action_id":1,"statement":"please","source":"in_app"}`
	case "/appeals/{id}/decision":
		return `{"outcome":"upheld","reason":"it stands"}`
	case "/appeals/{id}/assign":
		return `{"assignee":"matrix-reviewer"}`
	case "/appeals/{id}/notes":
		return `{"body":"a note"}`
	case "/appeals/{id}/claim", "/appeals/{id}/release":
		return ""
	case "/backtests":
		return `{"since":"1h","files":{"r.yaml":"rules:\n  - id: r\n    description: d\n    when: message.text == \"x\"\n    actions: [flag]\n    examples:\n      - {event: {message: {text: x}}, expect: {match: true}}\n      - {event: {message: {text: y}}, expect: {match: false}}\n"}}`
	}
	return `{"reason":"matrix"}`
}

var rolesBelow = map[string][]appeals.Role{
	"viewer":   nil,
	"reviewer": {appeals.RoleViewer},
	"admin":    {appeals.RoleViewer, appeals.RoleReviewer},
}

var rolesFrom = map[string][]appeals.Role{
	"viewer":   {appeals.RoleViewer, appeals.RoleReviewer, appeals.RoleAdmin},
	"reviewer": {appeals.RoleReviewer, appeals.RoleAdmin},
	"admin":    {appeals.RoleAdmin},
}

// TestAuthorisationMatrix: every endpoint × no token, bad signature,
// expired, alg none, an unknown role, each role below the one needed
// (403), and each role that suffices (neither 401 nor 403).
func TestAuthorisationMatrix(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.Store(t))
	now := time.Now()

	badSig, err := appeals.MintToken([]byte("another-secret-0123456789abcdef-xyz"), "mallory", appeals.RoleAdmin, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := appeals.MintToken([]byte(testSecret), "old", appeals.RoleAdmin, time.Hour, now.Add(-3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	algNone, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"sub": "mallory", "role": "admin", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	unknownRole, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "guest", "role": "superuser", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	invalid := []struct{ name, tok string }{
		{"no token", ""}, {"bad signature", badSig}, {"expired", expired}, {"alg none", algNone}, {"unknown role", unknownRole},
	}

	for _, e := range endpoints(t, a) {
		t.Run(e.method+" "+e.pattern, func(t *testing.T) {
			t.Parallel()
			path, body := target(e.pattern), bodyFor(e)
			if e.role == "public" {
				for _, c := range invalid {
					if code, _ := a.call(t, e.method, path, c.tok, body); code != http.StatusOK {
						t.Errorf("%s: %d, want 200 (public)", c.name, code)
					}
				}
				return
			}
			for _, c := range invalid {
				code, raw := a.call(t, e.method, path, c.tok, body)
				if code != http.StatusUnauthorized {
					t.Errorf("%s: %d, want 401", c.name, code)
					continue
				}
				if decodeErr(t, raw).Error.Code != appeals.CodeUnauthorized {
					t.Errorf("%s: body %s", c.name, raw)
				}
			}
			for _, r := range rolesBelow[e.role] {
				code, raw := a.call(t, e.method, path, token(t, "below-"+string(r), r), body)
				if code != http.StatusForbidden || decodeErr(t, raw).Error.Code != appeals.CodeForbidden {
					t.Errorf("role %s: %d %s, want 403", r, code, raw)
				}
			}
			allowed, ok := rolesFrom[e.role]
			if !ok {
				t.Fatalf("x-role %q is not a role", e.role)
			}
			for _, r := range allowed {
				sub := "ok-" + string(r) + "-" + e.method + e.pattern // unique per call, for the audit check
				code, raw := a.call(t, e.method, path, token(t, sub, r), body)
				if code == http.StatusUnauthorized || code == http.StatusForbidden || code >= 500 {
					t.Errorf("role %s: %d %s, want 2xx or a 4xx about the request", r, code, raw)
				}
				// A read that was answered left its one staff audit row.
				if e.method == http.MethodGet && code == http.StatusOK {
					var n int
					err := a.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM staff_audit WHERE actor = $1 AND role = $2`, sub, string(r)).Scan(&n)
					if err != nil {
						t.Fatal(err)
					}
					if n != 1 {
						t.Errorf("role %s: %d staff audit rows for the read, want 1", r, n)
					}
				}
			}
		})
	}
}

// TestRefusalIsOneLogLine: a refused request is logged once, on the
// request's canonical line, with why, and never with the token.
func TestRefusalIsOneLogLine(t *testing.T) {
	t.Parallel()
	a := newAPI(t, storetest.Store(t))
	expired, err := appeals.MintToken([]byte(testSecret), "old-timer", appeals.RoleAdmin, time.Hour, time.Now().Add(-3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := a.call(t, http.MethodGet, "/events?user_id=alice", expired, ""); code != http.StatusUnauthorized {
		t.Fatalf("expired: %d", code)
	}
	lines := strings.Split(strings.TrimSpace(a.logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), a.logs)
	}
	for _, want := range []string{`"route":"/events"`, `"status":401`, `"auth_reason":"expired"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line lacks %s: %s", want, lines[0])
		}
	}
	_, sig, _ := strings.Cut(expired, ".")
	if strings.Contains(lines[0], sig[:20]) || strings.Contains(lines[0], "alice") {
		t.Errorf("log line holds the token or a query value: %s", lines[0])
	}
}
