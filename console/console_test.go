package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"moderator/appeals"
	"moderator/console"
	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const secret = "console-test-secret-0123456789abcdef"

type env struct {
	srv *httptest.Server
	st  *store.Store
}

// newEnv serves the console at /console on a real database, with the
// staff API's real authenticator.
func newEnv(t *testing.T) *env {
	t.Helper()
	auth, err := appeals.NewAuthenticator(context.Background(), appeals.AuthConfig{HS256Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.Store(t)
	h, err := console.New(console.Config{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Store: st, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Mount(console.Prefix, h)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{srv: srv, st: st}
}

func token(t *testing.T, role appeals.Role, ttl time.Duration) string {
	t.Helper()
	tok, err := appeals.MintToken([]byte(secret), "test-"+string(role), role, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client is a browser-like client: cookies kept, redirects not followed.
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) do(t *testing.T, c *http.Client, method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// signIn signs c in with tok and returns the session's CSRF token.
func (e *env) signIn(t *testing.T, c *http.Client, tok string) string {
	t.Helper()
	resp, body := e.do(t, c, http.MethodPost, "/console/sign-in", url.Values{"token": {tok}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
	_, page := e.do(t, c, http.MethodGet, "/console/appeals", nil, nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the queue:\n%s", page)
	}
	return m[1]
}

// TestSecurityHeaders: every answer, pages, errors, redirects and assets,
// carries the strict policy and the other headers.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := client(t)
	_, page := e.do(t, c, http.MethodGet, "/console/sign-in", nil, nil)
	css := regexp.MustCompile(`href="(/console/assets/console\.[0-9a-f]{12}\.css)"`).FindStringSubmatch(page)
	if css == nil {
		t.Fatalf("no hashed stylesheet link on the sign-in page:\n%s", page)
	}
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/console/sign-in", 200}, {"GET", "/console/", 303}, {"GET", "/console/appeals", 303},
		{"GET", "/console/nowhere", 404}, {"POST", "/console/sign-in", 401}, {"POST", "/console/appeals/1/claim", 401},
		{"GET", css[1], 200}, {"GET", "/console/assets/console.css", 404}, {"DELETE", "/console/sign-in", 405},
	} {
		resp, body := e.do(t, c, tt.method, tt.path, url.Values{}, nil)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: %d, want %d: %s", tt.method, tt.path, resp.StatusCode, tt.status, body)
		}
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s %s: CSP %q lacks %s", tt.method, tt.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s %s: CSP allows unsafe sources: %s", tt.method, tt.path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" {
			t.Errorf("%s %s: headers %v", tt.method, tt.path, h)
		}
		if strings.Count(body, "<script") != strings.Count(body, "<script src=") {
			t.Errorf("%s %s: inline script in the page", tt.method, tt.path)
		}
	}
}

// TestAssets: the vendored htmx is served as committed, at a hashed URL,
// cached for a year.
func TestAssets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := client(t)
	_, page := e.do(t, c, http.MethodGet, "/console/sign-in", nil, nil)
	m := regexp.MustCompile(`src="(/console/assets/htmx\.min\.([0-9a-f]{12})\.js)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no hashed htmx on the page:\n%s", page)
	}
	resp, body := e.do(t, c, http.MethodGet, m[1], nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("htmx: %d %v", resp.StatusCode, resp.Header)
	}
	want, err := os.ReadFile("static/htmx.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want)
	if body != string(want) || hex.EncodeToString(sum[:6]) != m[2] {
		t.Fatal("the served htmx is not the committed file, or its URL is not its hash")
	}
	if !strings.Contains(body, `version:"2.0.11"`) {
		t.Error("static/htmx.min.js is not htmx 2.0.11, as assets.go says")
	}
	if resp, _ := e.do(t, c, http.MethodGet, strings.Replace(m[1], m[2], "000000000000", 1), nil, nil); resp.StatusCode != 404 {
		t.Errorf("a stale hash: %d, want 404", resp.StatusCode)
	}
}

// TestSignIn: a bad, blank or expired token gets the form again with 401
// and no session; a good one a session cookie (HttpOnly, SameSite=Strict,
// Secure and __Host- unless on loopback) ending with the token.
func TestSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	expired, err := appeals.MintToken([]byte(secret), "late", appeals.RoleReviewer, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, token, want string }{
		{"blank", "  ", "Paste your staff token"},
		{"garbage", "not.a.token", "not valid"},
		{"other secret", func() string {
			s, _ := appeals.MintToken([]byte("another-secret-0123456789abcdef-xyz"), "m", appeals.RoleAdmin, time.Hour, time.Now())
			return s
		}(), "not valid"},
		{"expired", expired, "expired"},
		{"huge", strings.Repeat("a", 20<<10), "could not be read"},
	} {
		resp, body := e.do(t, client(t), http.MethodPost, "/console/sign-in", url.Values{"token": {tt.token}}, nil)
		if (resp.StatusCode != 401 && resp.StatusCode != 400) || !strings.Contains(body, tt.want) || len(resp.Cookies()) != 0 {
			t.Errorf("%s: %d, cookies %v, page lacks %q", tt.name, resp.StatusCode, resp.Cookies(), tt.want)
		}
	}

	tok := token(t, appeals.RoleReviewer, 30*time.Minute)
	resp, _ := e.do(t, client(t), http.MethodPost, "/console/sign-in", url.Values{"token": {tok}}, nil)
	ck := resp.Cookies()
	if resp.StatusCode != 303 || len(ck) != 1 || ck[0].Name != "moderator_console" || !ck[0].HttpOnly ||
		ck[0].SameSite != http.SameSiteStrictMode || ck[0].Secure || ck[0].MaxAge > 1800 || ck[0].MaxAge < 1700 {
		t.Fatalf("loopback sign-in: %d %+v", resp.StatusCode, ck)
	}
	if strings.Contains(ck[0].Value, tok) {
		t.Fatal("the cookie carries the token")
	}

	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/console/sign-in", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Host = "console.example.com"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ck := resp.Cookies(); len(ck) != 1 || ck[0].Name != "__Host-moderator_console" || !ck[0].Secure {
		t.Fatalf("sign-in on a public host: %+v, want a Secure __Host- cookie", ck)
	}
}

// TestForms: a form without the session's CSRF token, with another, or
// posted cross-origin is refused and changes nothing; a viewer's form is
// refused (403); sign-out ends the session.
func TestForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ap := recordAppeal(t, e.st)
	c := client(t)
	csrf := e.signIn(t, c, token(t, appeals.RoleReviewer, time.Hour))
	claim := "/console/appeals/" + itoa(ap) + "/claim"
	for _, tt := range []struct {
		name   string
		form   url.Values
		header map[string]string
		status int
	}{
		{"no token", url.Values{}, nil, 403},
		{"another token", url.Values{"csrf": {otherToken(csrf)}}, nil, 403},
		{"cross-site", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"another origin", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}, 403},
	} {
		resp, body := e.do(t, c, http.MethodPost, claim, tt.form, tt.header)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d, want %d: %s", tt.name, resp.StatusCode, tt.status, body)
		}
	}
	if a, err := e.st.Appeal(ctx, ap); err != nil || a.AssignedTo != "" {
		t.Fatalf("refused claims claimed: %+v %v", a, err)
	}
	resp, _ := e.do(t, c, http.MethodPost, claim, url.Values{"csrf": {csrf}, "back": {"https://evil.example/"}},
		map[string]string{"Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/appeals" {
		t.Fatalf("claim: %d to %q, want 303 to the queue (never off-site)", resp.StatusCode, resp.Header.Get("Location"))
	}
	if a, _ := e.st.Appeal(ctx, ap); a.AssignedTo != "test-reviewer" {
		t.Fatalf("claim: held by %q", a.AssignedTo)
	}
	for path, want := range map[string]string{
		"/console/appeals?status=open":                        "status: must be",
		"/console/search?kind=users":                          "kind: must be",
		"/console/search?kind=actions&text=x":                 "text: searches the messages",
		"/console/search?from=yesterday":                      "from: want a date",
		"/console/search?outcome=won":                         "outcome: is not",
		"/console/search?user_id=" + url.QueryEscape("a\x01"): "user_id: must be an id",
		"/console/rules?window=1y":                            "window: must be",
		"/console/playground?x=1":                             "",
	} {
		resp, body := e.do(t, c, http.MethodGet, path, nil, nil)
		if want == "" {
			continue
		}
		if resp.StatusCode != 400 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want 400 naming %q", path, resp.StatusCode, want)
		}
	}
	resp, body := e.do(t, c, http.MethodGet, "/console/search?kind=events&text="+url.QueryEscape("' OR 1=1 --"), nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "Nothing matches.") {
		t.Errorf("a hostile text search: %d", resp.StatusCode)
	}

	v := client(t)
	vcsrf := e.signIn(t, v, token(t, appeals.RoleViewer, time.Hour))
	_, page := e.do(t, v, http.MethodGet, "/console/appeals", nil, nil)
	if strings.Contains(page, "/claim") {
		t.Error("a viewer is offered claim buttons")
	}
	for _, path := range []string{"/release", "/decide", "/notes"} {
		resp, _ := e.do(t, v, http.MethodPost, "/console/appeals/"+itoa(ap)+path, url.Values{"csrf": {vcsrf}, "outcome": {"upheld"}, "free": {"x"}, "body": {"x"}}, nil)
		if resp.StatusCode != 403 {
			t.Errorf("viewer POST %s: %d, want 403", path, resp.StatusCode)
		}
	}

	resp, _ = e.do(t, c, http.MethodPost, "/console/sign-out", url.Values{"csrf": {csrf}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, c, http.MethodGet, "/console/appeals", nil, nil); resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/sign-in" {
		t.Fatalf("after sign-out: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var acts int
	if err := e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM staff_audit WHERE actor = 'test-reviewer' AND act IN ('console_sign_in', 'list_appeals', 'claim_appeal', 'console_sign_out')`).Scan(&acts); err != nil || acts < 4 {
		t.Fatalf("staff audit rows of the reviewer: %d (%v), want at least 4", acts, err)
	}
}

// TestAssignAndDecide: a reviewer assigns an appeal from its page, is
// refused a decision without a reason, upholds it with a template reason
// and words of their own, and gets 409 deciding twice.
func TestAssignAndDecide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ap := recordAppeal(t, e.st)
	c := client(t)
	csrf := e.signIn(t, c, token(t, appeals.RoleReviewer, time.Hour))
	// Assign it to rita, then uphold it with a template reason and words
	// of one's own.
	resp, _ := e.do(t, c, http.MethodPost, "/console/appeals/"+itoa(ap)+"/assign",
		url.Values{"csrf": {csrf}, "assignee": {"rita"}, "back": {"/console/appeals/" + itoa(ap)}}, nil)
	if a, _ := e.st.Appeal(ctx, ap); resp.StatusCode != 303 || a.AssignedTo != "rita" {
		t.Fatalf("assign: %d, held by %q", resp.StatusCode, a.AssignedTo)
	}
	resp, body := e.do(t, c, http.MethodPost, "/console/appeals/"+itoa(ap)+"/decide", url.Values{"csrf": {csrf}, "outcome": {"upheld"}}, nil)
	if resp.StatusCode != 400 || !strings.Contains(body, "pick a reason or write one") {
		t.Fatalf("uphold without a reason: %d", resp.StatusCode)
	}
	resp, _ = e.do(t, c, http.MethodPost, "/console/appeals/"+itoa(ap)+"/decide",
		url.Values{"csrf": {csrf}, "outcome": {"upheld"}, "template": {"1"}, "free": {"Checked the thread."}}, nil)
	a, err := e.st.Appeal(ctx, ap)
	if err != nil || resp.StatusCode != 303 || a.Decision == nil || a.Decision.Outcome != "upheld" ||
		a.Decision.Reason != console.DefaultReasons().Upheld[1]+" Checked the thread." || a.Decision.Reviewer != "test-reviewer" {
		t.Fatalf("uphold: %d, %+v (%v)", resp.StatusCode, a.Decision, err)
	}
	if resp, _ := e.do(t, c, http.MethodPost, "/console/appeals/"+itoa(ap)+"/decide",
		url.Values{"csrf": {csrf}, "outcome": {"upheld"}, "free": {"again"}}, nil); resp.StatusCode != 409 {
		t.Fatalf("deciding twice: %d, want 409", resp.StatusCode)
	}

}

// recordAppeal records an event, its decision and a ban through the
// store, and an appeal of the ban, and returns the appeal's id.
func recordAppeal(t *testing.T, st *store.Store) int64 {
	t.Helper()
	ctx := context.Background()
	n := time.Now().UnixNano()
	body := fmt.Sprintf(`{"type":"message.new","cid":"messaging:x","message":{"id":"m-%d","text":"hi","user":{"id":"u1"}},"user":{"id":"u1"}}`, n)
	ev, err := policy.ParseEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	rec := store.EventRecord{WebhookID: fmt.Sprintf("w-%d", n), BodySHA256: sha256.Sum256([]byte(body)), Attempt: 1, APIKey: "k",
		Payload: []byte(body), Event: ev, Decision: &policy.Decision{RuleSetVersion: "v1",
			Matches: []policy.Match{{RuleID: "r", Mode: policy.ModeEnforce}},
			Actions: []policy.Action{{Type: policy.ActionBan, RuleID: "r"}}}}
	var actionID int64
	_, err = st.RecordEvents(ctx, []store.EventRecord{rec}, func(ctx context.Context, tx pgx.Tx, evs []store.NewEvent) error {
		if len(evs) != 1 {
			return fmt.Errorf("recorded %d events, want 1", len(evs))
		}
		ids, err := store.InsertActions(ctx, tx, []store.ActionRow{{EventID: evs[0].EventID, RuleID: "r", Type: "ban", TargetUserID: "u1",
			Params: []byte(`{"type":"ban","rule_id":"r"}`), Key: fmt.Sprintf("k-%d", evs[0].EventID)}})
		actionID = ids[0]
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: "u1", ActionID: actionID, Statement: "s", Source: "email", RecordedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	return ap.ID
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// otherToken is tok with its first character changed.
func otherToken(tok string) string {
	if tok[0] == 'x' {
		return "y" + tok[1:]
	}
	return "x" + tok[1:]
}

// TestSearchMarksShadowActions: the decisions list shows what a shadow
// rule would have asked for, marked as such, after what was asked for.
func TestSearchMarksShadowActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	user := fmt.Sprintf("shadowed-%d", time.Now().UnixNano())
	body := fmt.Sprintf(`{"type":"message.new","cid":"messaging:x","message":{"id":"%s-m","text":"HI ALL","user":{"id":%q}},"user":{"id":%q}}`,
		user, user, user)
	ev, err := policy.ParseEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	rec := store.EventRecord{WebhookID: user, BodySHA256: sha256.Sum256([]byte(body)), Attempt: 1, APIKey: "k",
		Payload: []byte(body), Event: ev, Decision: &policy.Decision{RuleSetVersion: "v1",
			Matches: []policy.Match{{RuleID: "r", Mode: policy.ModeEnforce, Actions: []policy.Action{{Type: policy.ActionFlag, RuleID: "r"}}},
				{RuleID: "caps", Mode: policy.ModeShadow, Actions: []policy.Action{{Type: policy.ActionWarn, RuleID: "caps"}, {Type: policy.ActionMute, RuleID: "caps"}}}},
			Actions: []policy.Action{{Type: policy.ActionFlag, RuleID: "r"}}}}
	if _, err := e.st.RecordEvents(ctx, []store.EventRecord{rec}, nil); err != nil {
		t.Fatal(err)
	}
	c := client(t)
	e.signIn(t, c, token(t, appeals.RoleReviewer, time.Hour))
	resp, page := e.do(t, c, http.MethodGet, "/console/search?kind=decisions&user_id="+url.QueryEscape(user), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("search: %d %s", resp.StatusCode, page)
	}
	want := `<td>flag, <span class="muted shadow" title="a shadow rule would have asked for it: nothing was done">warn (shadow)</span>, ` +
		`<span class="muted shadow" title="a shadow rule would have asked for it: nothing was done">mute (shadow)</span></td>`
	if !strings.Contains(page, want) {
		t.Errorf("the decision's actions: want\n%s\nin\n%s", want, page)
	}
}
