package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"moderator/actions/streamtest"
	"moderator/appeals"
)

// hostileText is a chat message built to break a page that shows it
// carelessly: markup whose script would set window.__pwned, bidirectional
// overrides, zero-width and control characters, and a 5,000-character
// line. The console must show every character as text.
var hostileText = `flagme <script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">` +
	"\u202Eevil\u202C zero\u200Bwidth bell\x07 esc\x1b[31m " + strings.Repeat("W", 5000)

// browser starts a headless Chromium for the test, with a fresh profile,
// and returns its context. Chromium must be installed: the test fails,
// never skips, without it (.ci/run installs Debian's chromium).
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("chromium is not installed: the console's browser tests need it (apt-get install -y chromium; .ci/run installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	return ctx
}

// artifacts is where the browser tests save screenshots (git-ignored).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CONSOLE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".artifacts", "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(artifacts(t), name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// do runs browser steps and fails the test with the page's text on error.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 2000) : ""`))
		t.Fatalf("%s: %v\npage:\n%s", what, err, body)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the page's expression is true (no time limit of its
// own: the test's context bounds it).
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	do(t, ctx, what, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			_, err := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(0))(ctx, tg)
			// A navigation while polling ends the poll: poll the new page.
			if err != nil && ctx.Err() == nil && (strings.Contains(err.Error(), "navigated or closed") || strings.Contains(err.Error(), "context")) {
				continue
			}
			return err
		}
	}))
}

func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	do(t, ctx, "sign in",
		chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`#sign-in button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("queue-stats")),
	)
}

// TestConsoleInBrowser drives the reviewer console in a headless
// Chromium against the whole service (real Postgres, the fake Stream):
// sign in, the queue oldest first, claim, the appeal with its evidence
// and conversation, an overturn with a template reason that reaches
// Stream as exactly one unban, a hostile message shown as text, a
// cross-site form refused, and a viewer who sees no decide button and
// is refused when posting anyway.
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	r := newConsoleRun(t)
	r.signIn(t)
	r.queueAndClaim(t)
	r.overturnFirst(t)
	r.hostile(t)
	consoleScreens(t, r.ctx, r.e)
	r.crossSite(t)
	r.viewerRefused(t)
	r.auditRows(t)
}

// consoleRun is the browser test's service, browser and history: two
// pending appeals, mallory's (first, of a ban) and zed's (second, of the
// flag of a hostile message).
type consoleRun struct {
	e                    *actionsEnv
	ctx                  context.Context
	reviewer, viewer     string
	banID, first, second int64
}

// newConsoleRun starts the service and the browser and writes the
// history: a conversation in which mallory is banned, zed's hostile
// message and carol's, both flagged, and the two appeals.
func newConsoleRun(t *testing.T) *consoleRun {
	t.Helper()
	e := startActions(t, nil, map[string]string{"MODERATOR_ADMIN_JWT_SECRET": e2eAdminSecret})
	reviewer := mint(t, appeals.RoleReviewer)
	e.mustSend(t, "c-1", authoredBy("c-1", "alice", "has anyone seen the new film?"))
	e.mustSend(t, "c-2", authoredBy("c-2", "mallory", "banme if you dare, it's a line from the film"))
	e.mustSend(t, "c-3", authoredBy("c-3", "bob", "ha, classic quote"))
	hostile, err := json.Marshal(map[string]any{"type": "message.new", "cid": "messaging:e2e", "created_at": "2026-11-24T10:00:00Z",
		"message": map[string]any{"id": "c-4", "text": hostileText, "user": map[string]any{"id": "zed"}},
		"user":    map[string]any{"id": "zed", "created_at": "2026-01-01T00:00:00Z"}})
	if err != nil {
		t.Fatal(err)
	}
	e.mustSend(t, "c-4", hostile)
	e.mustSend(t, "c-5", authoredBy("c-5", "carol", "flagme, I dare you"))
	e.waitEnded(t, "c-2", 2)
	e.waitEnded(t, "c-4", 1)
	e.waitEnded(t, "c-5", 1)
	banID := e.idOf(t, `SELECT a.id FROM actions a JOIN events ev ON ev.id = a.event_id WHERE ev.webhook_id = 'c-2' AND a.type = 'ban'`)
	flagID := e.idOf(t, `SELECT a.id FROM actions a JOIN events ev ON ev.id = a.event_id WHERE ev.webhook_id = 'c-4'`)
	code, body := e.staffPost(t, "/api/v1/appeals", reviewer, map[string]any{
		"user_id": "mallory", "action_id": banID, "statement": "I was quoting the film", "source": "email"})
	if code != http.StatusCreated {
		t.Fatalf("record appeal: %d %v", code, body)
	}
	first := int64(body["id"].(float64))
	code, body = e.staffPost(t, "/api/v1/appeals", reviewer, map[string]any{
		"user_id": "zed", "action_id": flagID, "statement": "<script>window.__pwned=3</script>\u202Eplease", "source": "in_app"})
	if code != http.StatusCreated {
		t.Fatalf("record appeal: %d %v", code, body)
	}
	second := int64(body["id"].(float64))

	if m := e.get(t, "/metrics"); !strings.Contains(m, "moderator_appeals_pending 2\n") {
		t.Fatalf("metrics lack two pending appeals:\n%s", grep(m, "moderator_appeals"))
	}
	ctx, cancel := context.WithTimeout(browser(t), 4*time.Minute)
	t.Cleanup(cancel)
	return &consoleRun{e: e, ctx: ctx, reviewer: reviewer, viewer: mint(t, appeals.RoleViewer), banID: banID, first: first, second: second}
}

// signIn signs the reviewer in: a session cookie that script cannot read,
// sent same-site only, ending no later than the token.
func (r *consoleRun) signIn(t *testing.T) {
	t.Helper()
	e, ctx := r.e, r.ctx
	signIn(t, ctx, e.URL, r.reviewer)
	cookies, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return r.Cookies, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cookies) != 1 || !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict ||
		cookies[0].Expires > float64(time.Now().Add(time.Hour+time.Minute).Unix()) {
		t.Fatalf("cookies = %+v, want one HttpOnly SameSite=Strict session ending with the hour-long token", cookies)
	}
	if got := eval[string](t, ctx, `typeof document.cookie === "string" ? document.cookie : ""`); got != "" {
		t.Fatalf("script reads the cookie %q", got)
	}

}

// queueAndClaim checks the queue (oldest first, the count, no inline
// script, j) and claims the first appeal.
func (r *consoleRun) queueAndClaim(t *testing.T) {
	t.Helper()
	ctx, first, second, e := r.ctx, r.first, r.second, r.e
	ids := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("tr.appeal-row")).map(r => r.id)`)
	want := []string{fmt.Sprintf("appeal-%d", first), fmt.Sprintf("appeal-%d", second)}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("queue rows = %v, want %v (oldest first)", ids, want)
	}
	if stats := eval[string](t, ctx, `document.getElementById("queue-stats").innerText`); !strings.HasPrefix(stats, "2 pending") {
		t.Fatalf("queue stats = %q, want 2 pending", stats)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("script:not([src])").length`); n != 0 {
		t.Fatalf("%d inline scripts on the queue", n)
	}
	screenshot(t, ctx, "queue")
	// Keyboard: j selects the first (oldest) appeal.
	do(t, ctx, "press j", chromedp.KeyEvent("j"))
	waitFor(t, ctx, "j selects a row", fmt.Sprintf(`document.querySelector("tr.selected") && document.querySelector("tr.selected").id === "appeal-%d"`, first))

	// Claim the first (htmx swaps the row).
	row := fmt.Sprintf("#appeal-%d", first)
	do(t, ctx, "claim", chromedp.Click(chromedp.CSS(row+` form[action$="/claim"] button`)))
	waitFor(t, ctx, "the claim shows", fmt.Sprintf(`document.querySelector(%q + " .holder").innerText.includes("e2e-reviewer")`, row))
	if holder := e.idOf(t, `SELECT count(*) FROM appeal_assignments WHERE appeal_id = $1 AND assignee = 'e2e-reviewer' AND act = 'claim'`, first); holder != 1 {
		t.Fatalf("got %d claims recorded, want 1", holder)
	}
}

// overturnFirst opens the first appeal (evidence, conversation, o) and
// overturns it with a template reason: exactly one unban reaches Stream.
func (r *consoleRun) overturnFirst(t *testing.T) {
	t.Helper()
	e, ctx, first, banID := r.e, r.ctx, r.first, r.banID
	row := fmt.Sprintf("#appeal-%d", first)
	do(t, ctx, "open the appeal",
		chromedp.Click(chromedp.CSS(row+` a`)),
		chromedp.WaitVisible(chromedp.ID("evidence")),
	)
	evidence := eval[string](t, ctx, `document.getElementById("evidence").innerText`)
	for _, w := range []string{"ban-hour", `message.text contains "banme"`, "actions.yaml:", "Values the expression read"} {
		if !strings.Contains(evidence, w) {
			t.Errorf("evidence lacks %q:\n%s", w, evidence)
		}
	}
	conversation := eval[string](t, ctx, `document.getElementById("conversation").innerText`)
	for _, w := range []string{"has anyone seen the new film?", "banme if you dare", "ha, classic quote"} {
		if !strings.Contains(conversation, w) {
			t.Errorf("conversation lacks %q:\n%s", w, conversation)
		}
	}
	if got := eval[string](t, ctx, `document.getElementById("holder").innerText`); got != "e2e-reviewer" {
		t.Errorf("holder = %q", got)
	}
	screenshot(t, ctx, "appeal")

	// Keyboard: o takes the reviewer to the overturn form.
	do(t, ctx, "press o", chromedp.KeyEvent("o"))
	waitFor(t, ctx, "o focuses the overturn form", `document.activeElement && document.activeElement.closest("#overturn-form") !== null`)

	// Overturn with a template reason: first what will be undone, then
	// done once confirmed.
	do(t, ctx, "overturn",
		chromedp.Click(chromedp.CSS(`#overturn-form input[name=template][value="0"]`)),
		chromedp.Click(chromedp.ID("overturn")),
		chromedp.WaitVisible(chromedp.ID("preview")),
	)
	preview := eval[string](t, ctx, `document.getElementById("preview").innerText`)
	if !strings.Contains(preview, "reversed by unban") {
		t.Fatalf("the preview does not say the ban will be lifted:\n%s", preview)
	}
	if n := e.idOf(t, `SELECT count(*) FROM overturns`); n != 0 {
		t.Fatalf("the preview overturned: %d overturns", n)
	}
	screenshot(t, ctx, "confirm-overturn")
	do(t, ctx, "confirm", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("decision")))
	if got := eval[string](t, ctx, `document.getElementById("appeal-status").innerText`); got != "overturned" {
		t.Fatalf("appeal status = %q, want overturned", got)
	}
	// The reversal's progress: the page follows it (htmx) until the unban
	// has ended.
	waitFor(t, ctx, "the unban shows applied",
		`!document.getElementById("reversing") && document.getElementById("appealed").innerText.includes("unban applied")`)
	reversal := e.idOf(t, `SELECT id FROM actions WHERE reverses_action_id = $1`, banID)
	deadline := time.Now().Add(30 * time.Second)
	for outcome := ""; outcome != "applied"; {
		if time.Now().After(deadline) {
			t.Fatalf("the unban never ended applied (%q); logs:\n%s", outcome, e.logs)
		}
		_ = e.pool.QueryRow(ctx, `SELECT outcome FROM action_outcomes WHERE action_id = $1`, reversal).Scan(&outcome)
		time.Sleep(20 * time.Millisecond)
	}
	if unbans := e.fake.Calls(streamtest.RouteUnban); len(unbans) != 1 || unbans[0].Query.Get("target_user_id") != "mallory" {
		t.Fatalf("got %d unban calls, want exactly one, of mallory", len(unbans))
	}
	var reason string
	if err := e.pool.QueryRow(ctx, `SELECT reason FROM appeal_decisions WHERE appeal_id = $1`, first).Scan(&reason); err != nil {
		t.Fatal(err)
	}
	if reason != "Quoting, reporting or discussing abuse, not abusing." {
		t.Fatalf("the decision's reason = %q, want the first overturn template", reason)
	}
	m := e.get(t, "/metrics")
	for _, w := range []string{"moderator_appeals_pending 1\n",
		`moderator_staff_requests_total{route="/console/appeals/{id}/decide",status="303"} 1`,
		`moderator_staff_requests_total{route="/console/appeals",status="200"}`,
		`moderator_staff_requests_total{route="/api/v1/appeals",status="201"} 2`} {
		if !strings.Contains(m, w) {
			t.Errorf("metrics lack %s:\n%s", w, grep(m, "moderator_appeals")+"\n"+grep(m, "moderator_staff_requests"))
		}
	}
	do(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("decision")))
	screenshot(t, ctx, "appeal-decided")

}

// hostile opens the hostile appeal: its text shown as text, escapes
// visible, no script run, no page widened.
func (r *consoleRun) hostile(t *testing.T) {
	t.Helper()
	e, ctx, second := r.e, r.ctx, r.second
	do(t, ctx, "open the hostile appeal",
		chromedp.Navigate(fmt.Sprintf("%s/console/appeals/%d", e.URL, second)),
		chromedp.WaitVisible(chromedp.ID("judged-text")),
	)
	if got := eval[string](t, ctx, `typeof window.__pwned`); got != "undefined" {
		t.Fatalf("the hostile text ran script: window.__pwned is %s", got)
	}
	judged := eval[string](t, ctx, `document.getElementById("judged-text").innerText`)
	for _, w := range []string{"<script>window.__pwned=1</script>", `onerror="window.__pwned=2"`, `\u{202E}evil`, `zero\u{200B}width`, `bell\x07`, `esc\x1b[31m`, strings.Repeat("W", 5000)} {
		if !strings.Contains(judged, w) {
			t.Errorf("the judged message does not show %q as text", w)
		}
	}
	if strings.ContainsAny(judged, "\u202E\u200B\x07\x1b") {
		t.Error("the judged message carries raw control, bidi or invisible characters")
	}
	if statement := eval[string](t, ctx, `document.getElementById("statement").innerText`); statement != `<script>window.__pwned=3</script>\u{202E}please` {
		t.Errorf("statement shown as %q", statement)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("main script, main img").length`); n != 0 {
		t.Fatalf("the page has %d script or img elements from chat text", n)
	}
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); w > 0 {
		t.Errorf("the 5,000-character line widens the page by %dpx", w)
	}
	screenshot(t, ctx, "appeal-hostile")

}

// crossSite posts a decision from another site: refused, nothing changed.
func (r *consoleRun) crossSite(t *testing.T) {
	t.Helper()
	e, ctx, second := r.e, r.ctx, r.second
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/console/appeals/%d/decide">
			<input type="hidden" name="outcome" value="upheld"><input type="hidden" name="free" value="forged">
			<button id="go">win a prize</button></form>`, e.URL, second)
	}))
	defer attacker.Close()
	attackerURL := strings.Replace(attacker.URL, "127.0.0.1", "localhost", 1) // another site
	do(t, ctx, "cross-site post",
		chromedp.Navigate(attackerURL),
		chromedp.Click(chromedp.ID("go")),
	)
	waitFor(t, ctx, "the refusal", `location.pathname.endsWith("/decide") && document.readyState === "complete" && document.body.innerText.length > 0`)
	if n := e.idOf(t, `SELECT count(*) FROM appeal_decisions WHERE appeal_id = $1`, second); n != 0 {
		t.Fatalf("a cross-site post decided appeal %d", second)
	}
	refusal := eval[string](t, ctx, `document.body.innerText`)
	if !strings.Contains(strings.ToLower(refusal), "cross-origin") {
		t.Fatalf("the cross-site post was not refused as cross-origin: %q", refusal)
	}

}

// viewerRefused signs in as a viewer: no decide button, and a decision
// posted anyway is refused by the server.
func (r *consoleRun) viewerRefused(t *testing.T) {
	t.Helper()
	e, ctx, second, viewer := r.e, r.ctx, r.second, r.viewer
	do(t, ctx, "sign out",
		chromedp.Navigate(e.URL+"/console/appeals"),
		chromedp.Click(chromedp.CSS(`form[action$="/sign-out"] button`)),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	signIn(t, ctx, e.URL, viewer)
	do(t, ctx, "viewer opens the appeal",
		chromedp.Navigate(fmt.Sprintf("%s/console/appeals/%d", e.URL, second)),
		chromedp.WaitVisible(chromedp.ID("statement")),
	)
	if n := eval[int](t, ctx, `document.querySelectorAll("#decide, #uphold, #overturn, form[action$='/claim']").length`); n != 0 {
		t.Fatalf("a viewer sees %d decide or claim controls", n)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`(async () => {
		const csrf = document.querySelector("input[name=csrf]").value;
		const r = await fetch("/console/appeals/%d/decide", {method: "POST", body: new URLSearchParams({csrf, outcome: "upheld", free: "viewer says so"})});
		return r.status; })()`, second), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusForbidden {
		t.Fatalf("a viewer's decision got %d, want 403", status)
	}
	if n := e.idOf(t, `SELECT count(*) FROM appeal_decisions WHERE appeal_id = $1`, second); n != 0 {
		t.Fatalf("a viewer decided appeal %d", second)
	}
	screenshot(t, ctx, "appeal-viewer")

}

// auditRows checks that every view and act left a staff audit row.
func (r *consoleRun) auditRows(t *testing.T) {
	t.Helper()
	e := r.e
	for _, act := range []string{"console_sign_in", "list_appeals", "claim_appeal", "view_appeal", "overturn", "console_sign_out"} {
		if n := e.idOf(t, `SELECT count(*) FROM staff_audit WHERE act = $1 AND (params->>'via' = 'console' OR act = 'overturn')`, act); n == 0 {
			t.Errorf("no staff audit row for %s through the console", act)
		}
	}
}

// consoleScreens drives the search, user, decision, rules and playground
// screens as a reviewer: a full-text search finds the film messages; the
// user screen overturns carol's flag (one unflag reaches Stream); the
// rules screen shows ban-hour's overturn; the playground shows which rules
// a pasted message would meet.
func consoleScreens(t *testing.T, ctx context.Context, e *actionsEnv) {
	t.Helper()
	// The search reads the words the service indexes every second.
	deadline := time.Now().Add(30 * time.Second)
	for e.idOf(t, `SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM event_words w WHERE w.event_id = e.id)`) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("events' words never indexed; logs:\n%s", e.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	do(t, ctx, "search",
		chromedp.Navigate(e.URL+"/console/search"),
		chromedp.WaitVisible(chromedp.ID("search-text")),
		chromedp.SetValue(chromedp.ID("search-text"), "film"),
		chromedp.Click(chromedp.CSS(`form[action$="/search"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("results")),
	)
	results := eval[string](t, ctx, `document.getElementById("results").innerText`)
	if n := eval[int](t, ctx, `document.querySelectorAll("#results tbody tr").length`); n != 2 ||
		!strings.Contains(results, "has anyone seen the new film?") || !strings.Contains(results, "banme if you dare") {
		t.Fatalf("searching for film found %d rows:\n%s", n, results)
	}
	screenshot(t, ctx, "search")

	do(t, ctx, "a decision from the results",
		chromedp.Click(chromedp.CSS(`#results a[href*="/decisions/"]`)),
		chromedp.WaitVisible(chromedp.ID("evidence")),
	)
	if ev := eval[string](t, ctx, `document.getElementById("evidence").innerText`); !strings.Contains(ev, "ban-hour") {
		t.Fatalf("the decision screen lacks its rule:\n%s", ev)
	}

	do(t, ctx, "carol's page",
		chromedp.Navigate(e.URL+"/console/users/carol"),
		chromedp.WaitVisible(chromedp.ID("timeline")),
	)
	screenshot(t, ctx, "user")
	do(t, ctx, "overturn carol's flag",
		chromedp.Click(chromedp.CSS(`#timeline tr.kind-action details.overturn summary`)),
		chromedp.Click(chromedp.CSS(`#timeline tr.kind-action details.overturn select[name=template]`)),
		chromedp.SetValue(chromedp.CSS(`#timeline tr.kind-action details.overturn select[name=template]`), "1"),
		chromedp.Click(chromedp.CSS(`#timeline tr.kind-action details.overturn button`)),
		chromedp.WaitVisible(chromedp.ID("preview")),
	)
	if preview := eval[string](t, ctx, `document.getElementById("preview").innerText`); !strings.Contains(preview, "reversed by unflag") {
		t.Fatalf("the preview does not say the flag will be lifted:\n%s", preview)
	}
	do(t, ctx, "confirm", chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("timeline")))
	waitFor(t, ctx, "back on carol's page", `location.pathname.endsWith("/console/users/carol")`)
	deadline = time.Now().Add(30 * time.Second)
	for len(e.fake.Calls(streamtest.RouteUnflag)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no unflag reached Stream; logs:\n%s", e.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := e.idOf(t, `SELECT count(*) FROM overturns o JOIN actions a ON a.id = o.action_id WHERE a.target_user_id = 'carol' AND o.reason = 'A false match: the words were harmless in context.'`); n != 1 {
		t.Fatalf("got %d overturns of carol's flag with the template reason, want 1", n)
	}

	do(t, ctx, "rules", chromedp.Navigate(e.URL+"/console/rules?sort=overturned"), chromedp.WaitVisible(chromedp.ID("rules")))
	row := eval[string](t, ctx, `document.getElementById("rule-ban-hour").innerText`)
	if !strings.Contains(row, "actions.yaml:") || !strings.Contains(row, "100.0%") {
		t.Fatalf("the rules screen's ban-hour row: %q, want its file and a 100%% overturn rate", row)
	}
	if first := eval[string](t, ctx, `document.querySelector("#rules tbody tr").id`); first != "rule-ban-hour" && first != "rule-flag-word" {
		t.Errorf("sorted by overturned, the first rule is %s", first)
	}
	screenshot(t, ctx, "rules")

	do(t, ctx, "playground",
		chromedp.Navigate(e.URL+"/console/playground"),
		chromedp.WaitVisible(chromedp.ID("pg-text")),
		chromedp.SetValue(chromedp.ID("pg-text"), "banme <b>now</b>"),
		chromedp.Click(chromedp.ID("try")),
		chromedp.WaitVisible(chromedp.ID("result")),
	)
	match := eval[string](t, ctx, `document.getElementById("match-ban-hour").innerText`)
	if !strings.Contains(match, `message.text contains "banme"`) || !strings.Contains(match, `"banme <b>now</b>"`) ||
		!strings.Contains(match, "ban") || !strings.Contains(match, "mute") {
		t.Fatalf("the playground's ban-hour match: %q", match)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#result b").length`); n != 0 {
		t.Fatal("the pasted markup was rendered")
	}
	screenshot(t, ctx, "playground")
}
