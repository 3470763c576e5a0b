package policy

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// muteRule is a rule file whose one rule asks for the actions in flow
// style (the text after "actions: ").
func muteRule(actions string) fstest.MapFS {
	return fstest.MapFS{"r.yaml": {Data: []byte("rules:\n  - id: m\n    description: test\n    reason: too many mentions\n" +
		"    mode: enforce\n    when: message.mention_count > 1\n    actions: " + actions + "\n    examples:\n" +
		"      - {event: {message: {mentioned_users: [{id: a}, {id: b}]}}, expect: {match: true}}\n" +
		"      - {event: {}, expect: {match: false}}\n")}}
}

// TestMuteLoads: a mute silences the user for a while, so it takes a
// timeout (required), a reason, shadow and channel; the decision carries
// them as a ban does.
func TestMuteLoads(t *testing.T) {
	t.Parallel()
	tests := []struct {
		actions string
		want    Action
	}{
		{"[{mute: {timeout: 15m}}]", Action{Type: ActionMute, RuleID: "m", TimeoutMinutes: 15, Reason: "too many mentions"}},
		{`[{mute: {timeout: 2h, channel: true, shadow: true, reason: "{{message.mention_count}} mentions"}}]`,
			Action{Type: ActionMute, RuleID: "m", TimeoutMinutes: 120, ChannelOnly: true, Shadow: true, Reason: "2 mentions"}},
		{"[{mute: {timeout: 1d}}]", Action{Type: ActionMute, RuleID: "m", TimeoutMinutes: 24 * 60, Reason: "too many mentions"}},
	}
	for _, tt := range tests {
		t.Run(tt.actions, func(t *testing.T) {
			t.Parallel()
			rs, err := Load(muteRule(tt.actions))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var ev Event
			ev.Type = "message.new"
			ev.Message = &Message{ID: "m1", Text: "hi @a @b", MentionedUsers: []User{{ID: "a"}, {ID: "b"}}}
			d := rs.Evaluate(&ev)
			if diff := cmp.Diff([]Action{tt.want}, d.Actions); diff != "" {
				t.Fatalf("actions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMuteLoadErrors: a mute without a timeout, or with ban's name for
// the channel scope, is refused at its line, in plain words.
func TestMuteLoadErrors(t *testing.T) {
	t.Parallel()
	const noTimeout = "r.yaml:7: mute needs a timeout, like - mute: {timeout: 15m}: a mute silences the user for a while, and a permanent silence is a ban"
	tests := []struct {
		actions string
		want    string
	}{
		{"[mute]", noTimeout},
		{"[{mute: {timeout: 0}}]", noTimeout},
		{`[{mute: {timeout: "0"}}]`, noTimeout},
		{"[{mute: {shadow: true}}]", noTimeout},
		{"[{mute: {timeout: 30s}}]", "r.yaml:7: mute timeout 30s: Stream counts whole minutes, so use at least 1m and whole minutes"},
		{"[{mute: {timeout: 1h, channel_only: true}}]", "r.yaml:7: mute takes channel: true to mute in the event's channel only (channel_only is ban's word for it)"},
		{"[{mute: {timeout: 1h, ip_ban: true}}]", `r.yaml:7: mute: unknown field "ip_ban"`},
	}
	for _, tt := range tests {
		t.Run(tt.actions, func(t *testing.T) {
			t.Parallel()
			_, err := Load(muteRule(tt.actions))
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LoadError", err)
			}
			if got := le.Error(); !strings.Contains(got, tt.want) {
				t.Fatalf("got\n%s\nwant it to contain\n%s", got, tt.want)
			}
		})
	}
}
