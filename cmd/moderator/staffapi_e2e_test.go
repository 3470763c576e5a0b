package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"moderator/appeals"
)

const e2eAdminSecret = "e2e-admin-secret-0123456789abcdef-do-not-log"

// staffGet calls the staff API with token ("" for none) and decodes the
// JSON answer.
func (s *testServer) staffGet(t *testing.T, path, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func mint(t *testing.T, role appeals.Role) string {
	t.Helper()
	tok, err := appeals.MintToken([]byte(e2eAdminSecret), "e2e-"+string(role), role, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestStaffAPIOff: without MODERATOR_ADMIN_JWT_SECRET or _JWKS_URL the
// staff API is not served: every path below /api/v1 is a JSON 404.
func TestStaffAPIOff(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	for _, path := range []string{"/api/v1/events", "/api/v1/openapi.yaml", "/api/v1/", "/api/v1"} {
		code, body := s.staffGet(t, path, "")
		e, _ := body["error"].(map[string]any)
		if code != http.StatusNotFound || e["code"] != appeals.CodeNotFound {
			t.Errorf("GET %s: %d %v, want 404 not_found", path, code, body)
		}
	}
}

// TestStaffAPIOn: with a secret, the staff API is mounted at /api/v1: it
// finds an event that arrived by webhook, shows admins the live rule set
// and the settings without secrets, refuses a missing token, and logs one
// line per request with its route.
func TestStaffAPIOn(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{env: map[string]string{"MODERATOR_ADMIN_JWT_SECRET": e2eAdminSecret}})
	t.Cleanup(func() {
		if strings.Contains(s.logs.String(), e2eAdminSecret) {
			t.Errorf("logs contain the admin secret")
		}
	})
	if code, _ := s.send(t, delivery{body: messageEvent("staff-e2e-1", "hello there"), webhookID: "staff-e2e-1"}); code != http.StatusOK {
		t.Fatalf("webhook: %d", code)
	}

	if code, _ := s.staffGet(t, "/api/v1/events?message_id=staff-e2e-1", ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	code, body := s.staffGet(t, "/api/v1/events?message_id=staff-e2e-1", mint(t, appeals.RoleViewer))
	items, _ := body["items"].([]any)
	if code != http.StatusOK || len(items) != 1 {
		t.Fatalf("search: %d %v, want the one event", code, body)
	}
	if ev := items[0].(map[string]any); ev["message_id"] != "staff-e2e-1" || ev["user_id"] != "alice" {
		t.Errorf("event %v", ev)
	}
	if code, _ := s.staffGet(t, "/api/v1/settings", mint(t, appeals.RoleReviewer)); code != http.StatusForbidden {
		t.Errorf("settings as reviewer: %d, want 403", code)
	}

	code, body = s.staffGet(t, "/api/v1/rules", mint(t, appeals.RoleAdmin))
	if code != http.StatusOK || body["version"] == "" || body["loaded_at"] == nil {
		t.Errorf("rules: %d %v", code, body)
	}
	if rules, _ := body["rules"].([]any); len(rules) == 0 {
		t.Errorf("rules: no rules listed: %v", body)
	}
	// The starter pack sets no young-account age: the default day.
	if body["young_account"] != "1d" {
		t.Errorf("rules: young_account %v, want 1d", body["young_account"])
	}
	// The first load added every rule, against nothing.
	if ch, _ := body["changes"].(map[string]any); ch == nil || ch["from_version"] != "" || ch["to_version"] != body["version"] ||
		len(ch["added"].([]any)) != len(body["rules"].([]any)) {
		t.Errorf("rules: changes %v", body["changes"])
	}

	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/settings", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, appeals.RoleAdmin))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("settings: %d %s", resp.StatusCode, raw)
	}
	for _, secret := range []string{e2eAdminSecret, e2eSecret, "old-secret"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("settings show a secret: %s", raw)
		}
	}
	if !strings.Contains(string(raw), `"name":"MODERATOR_ADMIN_JWT_SECRET","value":"[redacted]","secret":true`) {
		t.Errorf("settings do not say the admin secret is set: %s", raw)
	}

	line := grep(s.logs.String(), `"route":"/api/v1/events"`)
	if !strings.Contains(line, `"staff_sub":"e2e-viewer"`) || !strings.Contains(line, `"status":200`) {
		t.Errorf("no canonical log line for the search:\n%s", line)
	}
}
