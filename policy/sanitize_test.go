package policy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("u", 4096)
	cjk := strings.Repeat("界", 1000)
	tests := []struct {
		name, id string
		same     bool // returned unchanged
	}{
		{"stream id", "alice-01@example.com", true},
		{"255 bytes", strings.Repeat("a", 255), true},
		{"256 bytes", strings.Repeat("a", 256), false},
		{"4 KB", long, false},
		{"4 KB differing at the end", long[:4095] + "v", false},
		{"multi-byte", cjk, false},
		{"NUL", "a\x00b", false},
		{"invalid UTF-8", "a\xffb", false},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := SafeID(tt.id)
		if tt.same != (got == tt.id) {
			t.Errorf("%s: SafeID changed it = %v, want %v", tt.name, got != tt.id, !tt.same)
		}
		if len(got) > MaxIDBytes || !utf8.ValidString(got) || strings.Contains(got, "\x00") {
			t.Errorf("%s: SafeID = %q (%d bytes), not storable", tt.name, got, len(got))
		}
		if SafeID(tt.id) != got {
			t.Errorf("%s: SafeID is not deterministic", tt.name)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("%s and %s give the same id %q", prev, tt.name, got)
		}
		seen[got] = tt.name
	}
	if got := SafeID(long); !strings.HasPrefix(got, "uuuu") {
		t.Errorf("SafeID(4 KB) = %q, want the id's start kept", got)
	}
}

// TestParseEventMakesEveryStringStorable: the poison values of issue 11
// (NUL through \u0000, 4 KB ids) are made storable at parse time; the
// rules then see what will be stored.
func TestParseEventMakesEveryStringStorable(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 4096)
	body := `{"type":"message.new\u0000","cid":"messaging:a\u0000b","message":{"id":"` + long + `","text":"hi\u0000there",` +
		`"user":{"id":"u\u0000","bio\u0000":"a\u0000b","tags":["t\u0000"]}},"user":{"id":"` + long + `"},` +
		`"channel":{"cid":"messaging:a\u0000b","name":"n\u0000"}}`
	ev, err := ParseEvent([]byte(body))
	if err != nil {
		t.Fatalf("ParseEvent: %v", err)
	}
	ids := map[string]string{
		"type": ev.Type, "cid": ev.CID, "message.id": ev.Message.ID, "message.user.id": ev.Message.User.ID,
		"user.id": ev.User.ID, "channel.cid": ev.Channel.CID,
	}
	for name, id := range ids {
		if len(id) > MaxIDBytes || strings.Contains(id, "\x00") || !utf8.ValidString(id) {
			t.Errorf("%s = %q: not storable", name, id)
		}
	}
	if ev.CID != ev.Channel.CID {
		t.Errorf("the same cid gave %q and %q", ev.CID, ev.Channel.CID)
	}
	if ev.Message.ID != SafeID(long) || ev.User.ID != SafeID(long) {
		t.Errorf("long ids = %q, %q; want SafeID of the id", ev.Message.ID, ev.User.ID)
	}
	if got, want := ev.Message.Text, "hi\uFFFDthere"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	if got := ev.Channel.Name; got != "n\uFFFD" {
		t.Errorf("channel name = %q", got)
	}
	custom := ev.Message.User.Custom
	if custom["bio\uFFFD"] != "a\uFFFDb" {
		t.Errorf("custom fields = %#v, want NUL replaced in keys and values", custom)
	}
	if tags, _ := custom["tags"].([]any); len(tags) != 1 || tags[0] != "t\uFFFD" {
		t.Errorf("custom list = %#v, want NUL replaced", custom["tags"])
	}
}
