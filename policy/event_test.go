package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseEventTimestamps(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		body string
		want time.Time
	}{
		{"rfc3339 nanos", `{"type":"x","created_at":"2026-11-24T10:00:00.123456789Z"}`, want},
		{"rfc3339 offset", `{"type":"x","created_at":"2026-11-24T11:00:00.123456789+01:00"}`, want},
		{"integer nanoseconds", `{"type":"x","created_at":1795514400123456789}`, want},
		{"nanoseconds as string", `{"type":"x","created_at":"1795514400123456789"}`, want},
		{"null", `{"type":"x","created_at":null}`, time.Time{}},
		{"empty string", `{"type":"x","created_at":""}`, time.Time{}},
		{"absent", `{"type":"x"}`, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := ParseEvent([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if !ev.CreatedAt.Equal(tt.want) {
				t.Fatalf("created_at = %v, want %v", ev.CreatedAt.Time, tt.want)
			}
		})
	}
}

func TestParseEventRejects(t *testing.T) {
	t.Parallel()
	for _, body := range []string{``, `{`, `[]`, `"x"`, `null`, `{"type":"x","created_at":true}`, `{"type":"x","created_at":"yesterday"}`, `{"type":1}`} {
		if _, err := ParseEvent([]byte(body)); err == nil {
			t.Errorf("ParseEvent(%q) = nil error, want an error", body)
		}
	}
}

func TestParseEventCustomFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want map[string]any
	}{
		{"flattened", `{"type":"x","user":{"id":"u","role":"user","tier":"gold","score":3}}`, map[string]any{"tier": "gold", "score": 3.0}},
		{"nested", `{"type":"x","user":{"id":"u","custom":{"tier":"gold","score":3}}}`, map[string]any{"tier": "gold", "score": 3.0}},
		{"both, nested wins", `{"type":"x","user":{"id":"u","tier":"flat","custom":{"tier":"gold"},"vip":true}}`, map[string]any{"tier": "gold", "vip": true}},
		{"known stream fields are not custom", `{"type":"x","user":{"id":"u","online":true,"unread_count":2,"image":"i"}}`, nil},
		{"custom null", `{"type":"x","user":{"id":"u","custom":null}}`, nil},
		// Unknown members are kept raw and only custom ones decoded: a
		// custom object or list keeps its shape, invalid UTF-8 in it
		// becomes U+FFFD as in Stream's own fields, a repeated custom key
		// keeps its last value, and a known Stream field is dropped
		// however deep it is.
		{"custom values of every shape", "{\"type\":\"x\",\"user\":{\"id\":\"u\",\"prefs\":{\"a\":[1,{\"b\":null}]},\"bad\":\"x\xffy\"," +
			`"mood":"sad","mood":"glad","devices":[{"id":"d","push_provider":{"name":"p"}}]}}`,
			map[string]any{"prefs": map[string]any{"a": []any{1.0, map[string]any{"b": nil}}}, "bad": "x\ufffdy", "mood": "glad"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := ParseEvent([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if diff := cmp.Diff(tt.want, ev.User.Custom); diff != "" {
				t.Fatalf("custom fields (-want +got):\n%s", diff)
			}
		})
	}
	ev, err := ParseEvent([]byte(`{"type":"message.new","message":{"id":"m","text":"t","priority":"high","custom":{"lang":"nl"}},"channel":{"cid":"a:b","topic":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"priority": "high", "lang": "nl"}, ev.Message.Custom); diff != "" {
		t.Errorf("message custom (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"topic": "x"}, ev.Channel.Custom); diff != "" {
		t.Errorf("channel custom (-want +got):\n%s", diff)
	}
}

func TestEventAccessors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                           string
		body                           string
		subject, actor, cid, messageID string
		byBot                          bool
	}{
		{"message.new", `{"type":"message.new","cid":"m:1","message":{"id":"m1","user":{"id":"alice"}},"user":{"id":"alice"}}`, "alice", "alice", "m:1", "m1", false},
		{"bot warning echo", `{"type":"message.new","channel_type":"m","channel_id":"1","message":{"id":"m2","user":{"id":"bot"}},"user":{"id":"bot"}}`, "bot", "bot", "m:1", "m2", true},
		{"ban by bot", `{"type":"user.banned","user":{"id":"alice"},"created_by":{"id":"bot"}}`, "alice", "bot", "", "", true},
		{"ban by staff", `{"type":"user.banned","user":{"id":"alice"},"created_by":{"id":"carol"}}`, "alice", "carol", "", "", false},
		{"ban without created_by", `{"type":"user.banned","user":{"id":"bot"}}`, "bot", "", "", "", false},
		{"flag by bot", `{"type":"message.flagged","message":{"id":"m3","cid":"m:2","user":{"id":"alice"}},"user":{"id":"bot"}}`, "alice", "bot", "m:2", "m3", true},
		{"mute", `{"type":"user.muted","user":{"id":"bot"},"target_user":{"id":"alice"}}`, "alice", "bot", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := ParseEvent([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got := []any{ev.SubjectUserID(), ev.ActorID(), ev.ChannelCID(), ev.MessageIDOrEmpty(), ev.CausedBy("bot")}
			want := []any{tt.subject, tt.actor, tt.cid, tt.messageID, tt.byBot}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("subject, actor, cid, message id, by bot (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseEventExactFieldNames: a key that differs from one of Stream's
// only in case is a custom field (a user can set those on their own
// profile and messages), never Stream's, wherever it comes in the object.
func TestParseEventExactFieldNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		body        string
		subject     string // SubjectUserID
		text        string
		byBot       bool
		wantUser    map[string]any // the message author's custom fields
		wantMessage map[string]any
	}{
		{"ID after id", `{"type":"message.new","message":{"id":"m","text":"x","user":{"id":"attacker","ID":"victim"}}}`,
			"attacker", "x", false, map[string]any{"ID": "victim"}, nil},
		{"ID before id", `{"type":"message.new","message":{"id":"m","text":"x","user":{"ID":"victim","id":"attacker"}}}`,
			"attacker", "x", false, map[string]any{"ID": "victim"}, nil},
		{"Text beside text", `{"type":"message.new","message":{"id":"m","text":"fuck you","Text":"have a nice day","user":{"id":"a"}}}`,
			"a", "fuck you", false, nil, map[string]any{"Text": "have a nice day"}},
		{"TEXT alone is no text", `{"type":"message.new","message":{"id":"m","TEXT":"fuck you","user":{"id":"a"}}}`,
			"a", "", false, nil, map[string]any{"TEXT": "fuck you"}},
		{"Id = the bot", `{"type":"message.new","message":{"id":"m","text":"x","user":{"id":"attacker2","Id":"bot"}},"user":{"id":"attacker2","Id":"bot"}}`,
			"attacker2", "x", false, map[string]any{"Id": "bot"}, nil},
		{"User beside user", `{"type":"message.new","message":{"id":"m","text":"x","user":{"id":"a"},"User":{"id":"bot"}}}`,
			"a", "x", false, nil, map[string]any{"User": map[string]any{"id": "bot"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := ParseEvent([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if got := ev.SubjectUserID(); got != tt.subject {
				t.Errorf("subject = %q, want %q", got, tt.subject)
			}
			if got := ev.Message.Text; got != tt.text {
				t.Errorf("text = %q, want %q", got, tt.text)
			}
			if got := ev.CausedBy("bot"); got != tt.byBot {
				t.Errorf("caused by the bot = %v, want %v", got, tt.byBot)
			}
			if diff := cmp.Diff(tt.wantUser, ev.Message.User.Custom); diff != "" {
				t.Errorf("author's custom fields (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMessage, ev.Message.Custom); diff != "" {
				t.Errorf("message's custom fields (-want +got):\n%s", diff)
			}
		})
	}
	// Top-level fields too.
	ev, err := ParseEvent([]byte(`{"type":"message.new","TYPE":"user.banned","Type":"x","cid":"a:b","CID":"c:d"}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "message.new" || ev.CID != "a:b" {
		t.Errorf("type, cid = %q, %q; want message.new, a:b", ev.Type, ev.CID)
	}
}

// TestParseEventRepairsText: invalid UTF-8 and lone surrogates become
// U+FFFD rather than refusing a signed event.
func TestParseEventRepairsText(t *testing.T) {
	t.Parallel()
	ev, err := ParseEvent([]byte("{\"type\":\"message.new\",\"message\":{\"id\":\"m\",\"text\":\"a\\ud800b\xffc\"}}"))
	if err != nil {
		t.Fatalf("ParseEvent: %v", err)
	}
	if got, want := ev.Message.Text, "a\uFFFDb\uFFFDc"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
}
