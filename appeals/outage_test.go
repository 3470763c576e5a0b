package appeals_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"moderator/appeals"
	"moderator/store"
)

// TestDatabaseUnreachableIs503: with the database gone, every route that
// needs it answers 503 with Retry-After, never a 500 or a partial answer.
func TestDatabaseUnreachableIs503(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1; store.Open does not connect until used.
	st, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	a := newAPI(t, st)
	tok := token(t, "ops", appeals.RoleAdmin)
	for _, e := range endpoints(t, a) {
		if e.role == "public" || e.pattern == "/rules" || e.pattern == "/settings" {
			continue // these do not read the database (but are audited: below)
		}
		if strings.HasSuffix(e.pattern, "/overturn") {
			continue // the Overturner here is in memory; the real one is cmd's
		}
		code, raw := a.call(t, e.method, target(e.pattern), tok, bodyFor(e))
		if code != http.StatusServiceUnavailable || decodeErr(t, raw).Error.Code != appeals.CodeUnavailable {
			t.Errorf("%s %s: %d %s, want 503", e.method, e.pattern, code, raw)
		}
	}
	// The admin reads need no query, but their staff audit row cannot be
	// written: refused too.
	for _, path := range []string{"/rules", "/settings"} {
		code, raw := a.call(t, http.MethodGet, path, tok, "")
		if code != http.StatusServiceUnavailable || strings.Contains(string(raw), "links") {
			t.Errorf("GET %s: %d %s, want 503 and nothing shown", path, code, raw)
		}
	}
}

// TestReadRefusedWhenStaffAuditFails: when the staff audit log cannot be
// written (here its table is gone), a read of a user's history is refused
// with 503 and shows nothing of it.
func TestReadRefusedWhenStaffAuditFails(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	seedHistory(t, st, 3)
	a := newAPI(t, st)
	tok := token(t, "snoop", appeals.RoleViewer)
	if code, _ := a.call(t, http.MethodGet, "/users/alice/timeline", tok, ""); code != http.StatusOK {
		t.Fatalf("before: %d", code)
	}
	if _, err := st.Pool().Exec(context.Background(), `ALTER TABLE staff_audit RENAME TO staff_audit_gone`); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/users/alice/timeline", "/events?user_id=alice", "/actions?user_id=alice", "/decisions?user_id=alice"} {
		code, raw := a.call(t, http.MethodGet, path, tok, "")
		if code != http.StatusServiceUnavailable {
			t.Errorf("GET %s: %d, want 503", path, code)
		}
		if strings.Contains(string(raw), "msg-000") || strings.Contains(string(raw), `"items"`) {
			t.Errorf("GET %s shows the history: %s", path, raw)
		}
	}
	if !strings.Contains(a.logs.String(), `"error":"record staff act`) {
		t.Errorf("the failure is not logged:\n%s", a.logs)
	}
}
