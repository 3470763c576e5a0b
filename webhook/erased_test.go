package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"moderator/policy"
)

type erasedSet map[string]bool

func (s erasedSet) Erased(id string) bool { return s[id] }

// TestErasedUsersRedactedBeforeRecording: once a user is erased, a
// delivery about them (their late message, another's reaction to their
// message, a message quoting theirs) is recorded with the marker where
// their text was, the others' content as it was, the ids and types kept,
// and the hash of the signed bytes (so a retry is still a duplicate); a
// delivery about no erased user is recorded as signed; one spooled while
// the database is down is spooled redacted.
func TestErasedUsersRedactedBeforeRecording(t *testing.T) {
	t.Parallel()
	b := newIntakeBundle(t, 0)
	b.in.cfg.Erased = erasedSet{"eve": true}
	eve := `{"id":"eve","name":"Eve Secret"}`
	bodies := map[string]string{
		"late":  `{"type":"message.new","cid":"messaging:z","message":{"id":"m1","text":"eve secret","user":` + eve + `},"user":` + eve + `}`,
		"react": `{"type":"reaction.updated","cid":"messaging:z","reaction":{"type":"love","user":{"id":"bob"}},"message":{"id":"m1","text":"eve secret","user":` + eve + `},"user":{"id":"bob","name":"Bob"}}`,
		"quote": `{"type":"message.new","cid":"messaging:z","message":{"id":"m2","text":"bob says","user":{"id":"bob"},"quoted_message_id":"m1","quoted_message":{"id":"m1","text":"eve secret","user":` + eve + `}},"user":{"id":"bob"}}`,
		"other": `{"type":"message.new","cid":"messaging:z","message":{"id":"m3","text":"carol secret","user":{"id":"carol"}},"user":{"id":"carol"}}`,
	}
	for _, id := range []string{"late", "react", "quote", "other"} {
		if code, body := b.send(t, id, []byte(bodies[id]), []byte(bodies[id])); code != 200 {
			t.Fatalf("%s: %d %s", id, code, body)
		}
	}
	got := map[string]map[string]any{}
	for _, d := range b.audit.recorded {
		var v map[string]any
		if err := json.Unmarshal(d.Body, &v); err != nil {
			t.Fatal(err)
		}
		got[d.WebhookID] = v
		if d.SHA256 != sha256.Sum256([]byte(bodies[d.WebhookID])) {
			t.Errorf("%s: the hash is not that of the signed bytes", d.WebhookID)
		}
		if strings.Contains(string(d.Body), "Secret") || (d.WebhookID != "other" && strings.Contains(string(d.Body), "eve secret")) {
			t.Errorf("%s: recorded %s, want eve's text redacted", d.WebhookID, d.Body)
		}
		if d.Event.Message == nil || d.Event.Message.ID == "" {
			t.Errorf("%s: the recorded event lost its message id", d.WebhookID)
		}
	}
	msg := func(id string) map[string]any { return got[id]["message"].(map[string]any) }
	checks := []struct {
		name      string
		got, want any
	}{
		{"late text", msg("late")["text"], policy.Redacted},
		{"late user id", got["late"]["user"].(map[string]any)["id"], "eve"},
		{"reaction's message text", msg("react")["text"], policy.Redacted},
		{"reaction type", got["react"]["reaction"].(map[string]any)["type"], "love"},
		{"reactor's name", got["react"]["user"].(map[string]any)["name"], "Bob"},
		{"quoted text", msg("quote")["quoted_message"].(map[string]any)["text"], policy.Redacted},
		{"quoting text", msg("quote")["text"], "bob says"},
		{"other text", msg("other")["text"], "carol secret"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	var m dto.Metric
	if err := b.in.m.erasedRedacted.Write(&m); err != nil || m.GetCounter().GetValue() != 3 {
		n := m.GetCounter().GetValue()
		t.Errorf("moderator_webhook_erased_redacted_total = %v (%v), want 3", n, err)
	}

	b.audit.setDown(true)
	spooled := `{"type":"message.new","cid":"messaging:z","message":{"id":"m4","text":"eve spooled","user":{"id":"eve"}},"user":{"id":"eve"}}`
	if code, body := b.send(t, "spooled", []byte(spooled), []byte(spooled)); code != 200 || !strings.Contains(body, "spooled") {
		t.Fatalf("while down: %d %s, want spooled", code, body)
	}
	if files := filesHolding(t, b.dir, "eve spooled"); len(files) != 0 {
		t.Errorf("the spool holds eve's text in %v", files)
	}
	b.audit.setDown(false)
	b.in.drain(context.Background())
	last := b.audit.recorded[len(b.audit.recorded)-1]
	if last.WebhookID != "spooled" || last.Event.Message.Text != policy.Redacted {
		t.Errorf("replayed %s with text %q, want the marker", last.WebhookID, last.Event.Message.Text)
	}
}
