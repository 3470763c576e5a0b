package policy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestGuideRules loads every rule the rules guide (../rules/README.md)
// shows whole (a yaml block starting with "  - id:"), with the starter
// pack's word lists, so that a documented rule cannot rot: each must
// compile and pass its own examples.
func TestGuideRules(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile("../rules/README.md")
	if err != nil {
		t.Fatal(err)
	}
	lists, err := filepath.Glob("../rules/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, l := range lists {
		data, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		fsys[filepath.Base(l)] = &fstest.MapFile{Data: data}
	}
	var ids []string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(  - id: .*?)```").FindAllStringSubmatch(string(guide), -1) {
		fsys["guide.yaml"] = &fstest.MapFile{Data: []byte("rules:\n" + m[1])}
		rs, err := Load(fsys)
		if err != nil {
			t.Errorf("a rule of the guide does not load:\n%s\n%v", m[1], err)
			continue
		}
		for _, r := range rs.Rules() {
			ids = append(ids, r.ID)
		}
	}
	for _, want := range []string{"flood", "mention-spam", "raid-accounts"} {
		if !strings.Contains(strings.Join(ids, " "), want) {
			t.Errorf("the guide's rules are %v, want %s among them", ids, want)
		}
	}
}

// TestRaidRule: the raid rule of the guide flags a young account's
// message once more than 25 accounts posted in the channel, and follows
// the folder's young-account age.
func TestRaidRule(t *testing.T) {
	t.Parallel()
	const raid = `rules:
  - id: raid-accounts
    description: a young account in a channel many accounts just posted in
    mode: enforce
    when: user.young && counts.channel_users("2m") > 25
    actions: [{flag: {target: user}}]
    examples:
      - history: {'counts.channel_users("2m")': 26}
        event: {user: {created_at: "2026-01-15T11:50:00Z"}}
        expect: {match: true}
      - history: {'counts.channel_users("2m")': 60}
        event: {}
        expect: {match: false}
`
	users := HistoryKey{Name: CountChannelUsers, Window: 2 * time.Minute}
	twoHours := exampleEvent(t, map[string]any{"user": map[string]any{"created_at": "2026-01-15T10:00:00Z"}})
	tests := []struct {
		name     string
		settings string
		n        int
		want     bool
	}{
		{"26 accounts, a 2h-old one", "", 26, true},
		{"25 accounts", "", 25, false},
		{"26 accounts, young is under an hour", "settings: {young_account: 1h}\n", 26, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(tt.settings + raid)}})
			if err != nil {
				t.Fatal(err)
			}
			d := rs.EvaluateWith(twoHours, History{users: tt.n})
			if got := len(d.Matches) == 1; got != tt.want {
				t.Errorf("matched %v, want %v (matches %+v)", got, tt.want, d.Matches)
			}
		})
	}
}
