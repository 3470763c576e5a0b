package policy

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/vm"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func mustParse(t *testing.T, body string) *Event {
	t.Helper()
	ev, err := ParseEvent([]byte(body))
	if err != nil {
		t.Fatalf("ParseEvent: %v", err)
	}
	return ev
}

func TestNewEnv(t *testing.T) {
	t.Parallel()
	sample, err := os.ReadFile("../testdata/samples/message.new-1.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body string
		want Env
	}{
		{
			name: "Stream sample message.new",
			body: string(sample),
			want: Env{
				Event: EventEnv{Type: "message.new", CreatedAt: time.Date(2019, 4, 24, 8, 48, 38, 949986000, time.UTC), ActorID: "97b49906-0b98-463b-aa47-0aa945677eb2"},
				Message: MessageEnv{ID: "fff0d7c0-60bd-4835-833b-3843007817bf", Type: "regular", Text: "8b780762-4830-4e2a-aa43-18aabaf1732d",
					CreatedAt: time.Date(2019, 4, 24, 8, 48, 39, 918761000, time.UTC), UpdatedAt: time.Date(2019, 4, 24, 8, 48, 39, 918761000, time.UTC)},
				User: UserEnv{ID: "97b49906-0b98-463b-aa47-0aa945677eb2", Role: "user",
					CreatedAt: time.Date(2019, 4, 24, 8, 48, 38, 440123000, time.UTC), AccountAge: 509863000 * time.Nanosecond, Young: true},
				Channel: ChannelEnv{CID: "messaging:fun", Type: "messaging", ID: "fun"},
				Text: TextEnv{Lower: "8b780762-4830-4e2a-aa43-18aabaf1732d", Normalized: Normalize("8b780762-4830-4e2a-aa43-18aabaf1732d"),
					Words: Words(Normalize("8b780762-4830-4e2a-aa43-18aabaf1732d")), Length: 36, LongestRepeat: 2},
			},
		},
		{
			name: "message author, mentions, attachments, thread, custom fields",
			body: `{"type":"message.updated","created_at":"2026-01-15T12:00:00Z","cid":"livestream:main","team":"blue",
				"request_info":{"type":"client"},
				"message":{"id":"m1","type":"reply","text":"Hi @Ann, SEE https://x.example/a","parent_id":"p1","pinned":true,
					"user":{"id":"author","role":"guest","teams":["blue"],"created_at":"2026-01-15T09:00:00Z","tier":"gold"},
					"mentioned_users":[{"id":"ann"}],"attachments":[{"type":"image","image_url":"https://cdn/x.png"},{"type":"link","title_link":"https://y.example/b"}],
					"custom":{"flagged_before":true}},
				"message_update":{"old_text":"hi"},
				"user":{"id":"editor"},
				"channel":{"member_count":42,"name":"Main","frozen":true}}`,
			want: Env{
				Event: EventEnv{Type: "message.updated", CreatedAt: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), Team: "blue", ActorID: "editor", Source: "client"},
				Message: MessageEnv{ID: "m1", Type: "reply", Text: "Hi @Ann, SEE https://x.example/a", ParentID: "p1", IsReply: true, Pinned: true,
					Mentions: []string{"ann"}, MentionCount: 1, AttachmentCount: 2, OldText: "hi",
					Attachments: []AttachmentEnv{{Type: "image", ImageURL: "https://cdn/x.png"}, {Type: "link", TitleLink: "https://y.example/b"}},
					Custom:      map[string]any{"flagged_before": true}},
				User: UserEnv{ID: "author", Role: "guest", Teams: []string{"blue"}, CreatedAt: time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC),
					AccountAge: 3 * time.Hour, Young: true, Custom: map[string]any{"tier": "gold"}},
				Channel: ChannelEnv{CID: "livestream:main", Type: "livestream", ID: "main", Name: "Main", MemberCount: 42, Frozen: true},
				Text: TextEnv{Lower: "hi @ann, see https://x.example/a", Normalized: Normalize("Hi @Ann, SEE https://x.example/a"),
					Words: Words(Normalize("Hi @Ann, SEE https://x.example/a")), Links: []string{"https://x.example/a", "https://y.example/b"},
					Domains: []string{"x.example", "y.example"}, CapsRatio: CapsRatio("Hi @Ann, SEE https://x.example/a"), LongestRepeat: 2, Length: 32},
			},
		},
		{
			name: "user.banned is about the banned user; unknown age stays unknown",
			body: `{"type":"user.banned","created_at":"2026-01-15T12:00:00Z","user":{"id":"bad"},"created_by":{"id":"mod"},"reason":"spam","channel_type":"messaging","channel_id":"x"}`,
			want: Env{
				Event:   EventEnv{Type: "user.banned", CreatedAt: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), ActorID: "mod", Reason: "spam"},
				User:    UserEnv{ID: "bad", AccountAge: unknownDuration},
				Channel: ChannelEnv{CID: "messaging:x", Type: "messaging", ID: "x"},
			},
		},
		{
			name: "message.flagged: user is the author, not the flagger",
			body: `{"type":"message.flagged","total_flags":3,"user":{"id":"flagger"},"message":{"id":"m","text":"x","user":{"id":"author"}}}`,
			want: Env{
				Event:   EventEnv{Type: "message.flagged", ActorID: "flagger", TotalFlags: 3},
				Message: MessageEnv{ID: "m", Text: "x"},
				User:    UserEnv{ID: "author", AccountAge: unknownDuration},
				Text:    TextEnv{Lower: "x", Normalized: "x", Words: []string{"x"}, Length: 1, LongestRepeat: 1},
			},
		},
		{
			name: "now falls back to the message's time; clock skew is a new account",
			body: `{"type":"message.new","message":{"text":"","created_at":"2026-01-15T12:00:00Z"},"user":{"id":"u","created_at":"2026-01-15T12:00:01Z"}}`,
			want: Env{
				Event:   EventEnv{Type: "message.new", ActorID: "u"},
				Message: MessageEnv{CreatedAt: time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)},
				User:    UserEnv{ID: "u", CreatedAt: time.Date(2026, 1, 15, 12, 0, 1, 0, time.UTC), Young: true},
			},
		},
		{
			name: "user.muted is about the target",
			body: `{"type":"user.muted","user":{"id":"muter"},"target_user":{"id":"target","role":"user"}}`,
			want: Env{
				Event: EventEnv{Type: "user.muted", ActorID: "muter"},
				User:  UserEnv{ID: "target", Role: "user", AccountAge: unknownDuration},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := newEnv(mustParse(t, tt.body), needAll, DefaultYoungAccount)
			if diff := cmp.Diff(&tt.want, got, cmpopts.IgnoreFields(Env{}, "Counts", "Strikes"), cmpopts.IgnoreUnexported(Env{})); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewEnvLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("界", MaxTextRunes-1) + "é and more"
	var mentions, attachments []string
	for i := range 150 {
		mentions = append(mentions, fmt.Sprintf(`{"id":"u%d"}`, i))
		attachments = append(attachments, fmt.Sprintf(`{"type":"link","title_link":"https://l%d.example"}`, i))
	}
	body := fmt.Sprintf(`{"type":"message.new","message":{"text":%q,"mentioned_users":[%s],"attachments":[%s]}}`,
		long, strings.Join(mentions, ","), strings.Join(attachments, ","))
	env := newEnv(mustParse(t, body), needAll, DefaultYoungAccount)

	if got, want := env.Message.Text, strings.Repeat("界", MaxTextRunes-1)+"é"; got != want {
		t.Errorf("evaluated text is %d characters, want the first %d", utf8.RuneCountInString(got), MaxTextRunes)
	}
	if !env.Text.Truncated {
		t.Errorf("text.truncated is false for a text over the limit")
	}
	if got, want := env.Text.Length, MaxTextRunes-1+len([]rune("é and more")); got != want {
		t.Errorf("text.length = %d, want %d (the whole text)", got, want)
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"mentions", len(env.Message.Mentions), maxMentions},
		{"mention_count", env.Message.MentionCount, 150},
		{"attachments", len(env.Message.Attachments), maxAttachments},
		{"attachment_count", env.Message.AttachmentCount, 150},
		{"links", len(env.Text.Links), maxAttachments},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestNewEnvComputesOnlyWhatIsNeeded(t *testing.T) {
	t.Parallel()
	ev := mustParse(t, `{"type":"message.new","message":{"text":"HELLO https://x.example wOrld!!!"}}`)
	tests := []struct {
		nd   needs
		want TextEnv
	}{
		{0, TextEnv{}},
		{needLower, TextEnv{Lower: "hello https://x.example world!!!"}},
		{needNormalized | needWords, TextEnv{Normalized: Normalize("HELLO https://x.example wOrld!!!"), Words: Words(Normalize("HELLO https://x.example wOrld!!!"))}},
		{needLinks, TextEnv{Links: []string{"https://x.example"}, Domains: []string{"x.example"}}},
		{needCaps | needRepeat | needLength, TextEnv{CapsRatio: CapsRatio("HELLO https://x.example wOrld!!!"), LongestRepeat: 3, Length: 32}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.nd), func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, newEnv(ev, tt.nd, DefaultYoungAccount).Text); diff != "" {
				t.Errorf("text (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnvResetKeepsNoReferences(t *testing.T) {
	t.Parallel()
	env := newEnv(mustParse(t, `{"type":"message.new","message":{"text":"x","mentioned_users":[{"id":"a"}],"attachments":[{"type":"image"}]}}`), needAll, DefaultYoungAccount)
	mentions := env.Message.Mentions[:1]
	env.reset()
	env.history = History{{Name: CountUserMessages, Window: time.Minute}: 3}
	env.reset()
	// The history functions are kept (they read env.history, which is
	// cleared): they are made once per pooled Env.
	ignore := []cmp.Option{cmpopts.IgnoreFields(Env{}, "Counts", "Strikes"), cmpopts.IgnoreUnexported(Env{})}
	if diff := cmp.Diff(&Env{Message: MessageEnv{Mentions: []string{}, Attachments: []AttachmentEnv{}}}, env, ignore...); diff != "" {
		t.Errorf("reset env (-want +got):\n%s", diff)
	}
	if env.history != nil {
		t.Errorf("reset kept the history %v", env.history)
	}
	if env.Counts.UserMessages == nil {
		t.Errorf("reset dropped the history functions")
	}
	if mentions[0] != "" {
		t.Errorf("reset kept mention %q in the pooled array", mentions[0])
	}
}

// evalWith compiles src against lists and evaluates it on the event built
// from partial, as rule examples do.
func evalWith(t *testing.T, lists map[string]string, src string, partial map[string]any) any {
	t.Helper()
	compiled := make(map[string]*wordList)
	for name, data := range lists {
		l, problems := parseWordList(name+".txt", []byte(data))
		if len(problems) > 0 {
			t.Fatalf("list %s: %v", name, problems)
		}
		compiled[name] = l
	}
	fields, problems := compileFields([]rawField{
		{key: "user.tier", typ: "string", def: "none", hasDef: true},
		{key: "user.verified", typ: "bool"},
		{key: "user.level", typ: "int"},
		{key: "user.score", typ: "float"},
		{key: "user.badges", typ: "strings"},
		{key: "channel.tags", typ: "strings"},
		{key: "message.source", typ: "string"},
	})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	p, errs := newExprCompiler(compiled, fields).compile(src, kindValue, false)
	if len(errs) > 0 {
		t.Fatalf("compile %q: %v", src, errs)
	}
	ev, err := ExampleEvent(partial)
	if err != nil {
		t.Fatal(err)
	}
	out, err := vm.Run(p.prog, newEnv(ev, needAll, DefaultYoungAccount))
	if err != nil {
		t.Fatalf("run %q: %v", src, err)
	}
	return out
}

func text(s string) map[string]any { return map[string]any{"message": map[string]any{"text": s}} }

func TestFunctions(t *testing.T) {
	t.Parallel()
	lists := map[string]string{
		"swears":  "# comment\ndarn\nheck # trailing comment\nshoot\nFrak\ngo away\n\n",
		"scams":   "https://www.Scam.example/path\nphish.test\nxn--80ak6aa92e.com\nпример.рф\n",
		"teams":   "Red Team\nblue\n",
		"trusted": "VIP-User\n",
	}
	tests := []struct {
		src     string
		partial map[string]any
		want    any
	}{
		{`contains_any(text.words, "swears")`, text("well darn it"), true},
		{`contains_any(text.words, "swears")`, text("well dam it"), false},
		{`contains_any(text.words, "swears")`, text("DARN"), true},
		{`contains_any(text.words, "swears")`, text("d4rn"), true},
		{`contains_any(text.words, "swears")`, text("dаrn"), true}, // Cyrillic а
		{`contains_any(text.words, "swears")`, text("d\u200barn"), true},
		{`contains_any(text.words, "swears")`, text("daaaaarn"), true},
		{`contains_any(text.words, "swears")`, text("shoooooot"), true},
		{`contains_any(text.words, "swears")`, text("frak"), true},
		{`contains_any(text.words, "swears")`, text("darned"), false},
		{`contains_any(text.words, "swears")`, text("just go away now"), true},
		{`contains_any(text.words, "swears")`, text("go on, away"), false},
		{`hits(text.words, "swears")`, text("darn, heck and darn again, go away"), []string{"darn", "heck", "go away"}},
		{`hits(text.words, "swears")`, text("nothing here"), []string(nil)},
		{`in_list(user.id, "trusted")`, map[string]any{"user": map[string]any{"id": "VIP-User"}}, true},
		{`in_list(user.id, "trusted")`, map[string]any{"user": map[string]any{"id": "vip-user"}}, true},
		{`in_list(user.id, "trusted")`, map[string]any{"user": map[string]any{"id": "vip"}}, false},
		{`contains_any(user.teams, "teams")`, map[string]any{"user": map[string]any{"teams": []any{"green", "Red Team"}}}, true},
		{`domain_in(text.domains, "scams")`, text("see https://scam.example/x"), true},
		{`domain_in(text.domains, "scams")`, text("see https://login.scam.example/x"), true},
		{`domain_in(text.domains, "scams")`, text("see https://notscam.example/x"), false},
		// A punycode entry matches its Unicode form, and back.
		{`domain_in(text.domains, "scams")`, text("log in at https://аррӏе.com/login"), true},
		{`domain_in(text.domains, "scams")`, text("log in at https://login.xn--80ak6aa92e.com/"), true},
		{`domain_in(text.domains, "scams")`, text("see https://xn--e1afmkfd.xn--p1ai/"), true},
		{`domain_in("xn--e1afmkfd.xn--p1ai", "scams")`, nil, true},
		{`domain_in(text.domains, "scams")`, text("see https://apple.com/"), false},
		{`domain_in("phish.test", "scams")`, nil, true},
		{`domain_hits(text.domains, "scams")`, text("https://a.phish.test and https://ok.example and https://scam.example"), []string{"a.phish.test", "scam.example"}},
		{`normalize("ＦＲＥＥ Nitro")`, nil, "free nitro"},
		{`words("Héllo, W0rld")`, nil, []string{"hello", "world"}},
		{`duration("7d") == duration("168h")`, nil, true},
		{`user.account_age > duration("364d")`, nil, true},
		{`text.caps_ratio > 0.9`, text("STOP SHOUTING AT ME"), true},
		{`text.longest_repeat`, text("nooooo!!"), 5},
		{`text.lower matches "fr[e3]{2} n[i1]tro"`, text("FREE NITRO"), true},
		{`message.is_reply`, map[string]any{"message": map[string]any{"parent_id": "p"}}, true},
		{`channel.member_count`, nil, 25},
		{`user.custom.tier`, map[string]any{"user": map[string]any{"tier": "gold"}}, "gold"},
		{`user.custom.tier`, nil, "none"},
		{`user.custom["tier"] == "none"`, nil, true},
		// Declared custom fields: the declared type whatever the app
		// sent, and the default when it sent nothing usable.
		{`!user.custom.verified`, nil, true},
		{`!user.custom.verified`, map[string]any{"user": map[string]any{"verified": "true"}}, false},
		{`!user.custom.verified`, map[string]any{"user": map[string]any{"verified": true}}, false},
		{`!user.custom.verified`, map[string]any{"user": map[string]any{"custom": map[string]any{"verified": "FALSE"}}}, true},
		{`!user.custom.verified`, map[string]any{"user": map[string]any{"verified": "maybe"}}, true},
		{`user.custom.level > 2`, map[string]any{"user": map[string]any{"level": "3"}}, true},
		{`user.custom.level`, map[string]any{"user": map[string]any{"level": 4.0}}, 4},
		{`user.custom.level`, map[string]any{"user": map[string]any{"level": 4.5}}, 0},
		{`user.custom.score * 2`, map[string]any{"user": map[string]any{"score": "1.5"}}, 3.0},
		{`user.custom.badges`, map[string]any{"user": map[string]any{"badges": "mod"}}, []string{"mod"}},
		{`"vip" in channel.custom.tags`, map[string]any{"channel": map[string]any{"tags": []any{"vip", "eu"}}}, true},
		{`message.custom.source`, map[string]any{"message": map[string]any{"source": 12}}, "12"},
		{`any(message.attachments, .type == "image")`, map[string]any{"message": map[string]any{"attachments": []any{map[string]any{"type": "image"}}}}, true},
		{`event.created_at.Year()`, nil, 2026},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			got := evalWith(t, lists, tt.src, tt.partial)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s on %v (-want +got):\n%s", tt.src, tt.partial, diff)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"30m", 30 * time.Minute, ""},
		{"24h", 24 * time.Hour, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{" 90s ", 90 * time.Second, ""},
		{"", 0, "empty duration"},
		{"3 days", 0, `duration "3 days": want a whole number of days before "d", like 7d`},
		{"-1h", 0, `duration "-1h" is negative`},
		{"4000d", 0, `duration "4000d" is longer than 10 years`},
		{"3649d48h", 0, `duration "48h" is longer than 10 years`},
		{"1.5d", 0, `duration "1.5d": want a whole number of days before "d", like 7d`},
		{"10", 0, `duration "10": want Go syntax with d for days, like 30m, 24h or 7d`},
		{"99999999999999999h", 0, "is too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDuration(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      any
		zeroOK  bool
		want    int
		wantErr string
	}{
		{"30m", true, 30, ""},
		{"7d", true, 7 * 24 * 60, ""},
		{nil, true, 0, ""},
		{uint64(0), true, 0, ""},
		{"0", true, 0, ""},
		{nil, false, 0, "timeout is required"},
		{"90s", true, 0, "whole minutes"},
		{"30s", true, 0, "at least 1m"},
		{uint64(90), true, 0, "needs a unit"},
		{true, true, 0, "want a duration"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in, tt.zeroOK), func(t *testing.T) {
			t.Parallel()
			got, err := parseTimeout(tt.in, tt.zeroOK)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseTimeout(%v) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseTimeout(%v) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestActionString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a    Action
		want string
	}{
		{Action{Type: ActionFlag}, "flag message"},
		{Action{Type: ActionFlag, Target: "user", Reason: "spam"}, `flag user ("spam")`},
		{Action{Type: ActionMute, TimeoutMinutes: 90}, "mute 90m"},
		{Action{Type: ActionMute}, "mute"},
		{Action{Type: ActionBan, TimeoutMinutes: 7 * 24 * 60, Shadow: true, IPBan: true, ChannelOnly: true, DeleteMessages: "soft", Reason: "scam"},
			`ban 7d shadow ip channel-only delete-messages=soft ("scam")`},
		{Action{Type: ActionBan, TimeoutMinutes: 120}, "ban 2h"},
		{Action{Type: ActionBan}, "ban permanent"},
		{Action{Type: ActionDelete, Hard: true}, "delete hard"},
		{Action{Type: ActionWarn, InThread: true, Text: "be nice"}, `warn in-thread "be nice"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			if got := tt.a.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEvidenceValue(t *testing.T) {
	t.Parallel()
	many := make([]string, 25)
	for i := range many {
		many[i] = fmt.Sprint(i)
	}
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"duration", 3 * time.Hour, "3h0m0s"},
		{"unknown age", unknownDuration, "unknown"},
		{"time", time.Date(2026, 1, 15, 12, 0, 0, 0, time.FixedZone("x", 3600)), "2026-01-15T11:00:00Z"},
		{"zero time", time.Time{}, nil},
		{"long string", strings.Repeat("é", 300), strings.Repeat("é", maxEvidenceRunes-1) + "…"},
		{"long list", many, append(many[:maxEvidenceValues:maxEvidenceValues], "… 5 more")},
		{"number", 12, 12},
		{"attachments", []AttachmentEnv{{Type: "image", ImageURL: "https://i"}, {TitleLink: "https://l"}}, []string{"image https://i", "attachment https://l"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, evidenceValue(tt.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
