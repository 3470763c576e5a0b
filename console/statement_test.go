package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"moderator/appeals"
)

// TestStatementPage: the decision page links to the statement of reasons,
// which a viewer reads as text (HTML-escaped), and the read is a staff
// act of the console's.
func TestStatementPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	ap := recordAppeal(t, e.st)
	a, err := e.st.Appeal(ctx, ap)
	if err != nil {
		t.Fatal(err)
	}
	detail, err := e.st.Action(ctx, a.ActionID)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t)
	e.signIn(t, c, token(t, appeals.RoleViewer, time.Hour))
	decision := "/console/decisions/" + itoa(detail.DecisionID)

	resp, body := e.do(t, c, http.MethodGet, decision, nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="`+decision+`/statement"`) {
		t.Fatalf("decision page: %d, want 200 with a link to its statement:\n%s", resp.StatusCode, body)
	}
	resp, body = e.do(t, c, http.MethodGet, decision+"/statement", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("statement page: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{
		"Statement of reasons for decision " + itoa(detail.DecisionID),
		"A ban from posting anywhere in the app, with no end date. Decided, and being carried out.",
		"Your appeal of ",
		"5. How you can seek redress",
		"The platform&#39;s rule r (rule set version v1)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("statement page lacks %q:\n%s", want, body)
		}
	}
	var n int
	if err := e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM staff_audit WHERE act = 'view_statement' AND actor = 'test-viewer'
		AND target = $1 AND params ->> 'via' = 'console'`, "decision:"+itoa(detail.DecisionID)).Scan(&n); err != nil || n != 1 {
		t.Errorf("staff audit rows of the statement page: %d (%v), want 1", n, err)
	}
	if resp, body := e.do(t, c, http.MethodGet, "/console/decisions/999999999/statement", nil, nil); resp.StatusCode != http.StatusNotFound ||
		!strings.Contains(body, "not found") {
		t.Errorf("statement of a missing decision: %d, want 404 saying not found:\n%s", resp.StatusCode, body)
	}
}
