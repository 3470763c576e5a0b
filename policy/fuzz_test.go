package policy

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"
)

// FuzzEvaluate feeds arbitrary event bodies to the starter pack and to a
// set of rules that exercise every part of the environment: whatever the
// body, ParseEvent either fails or returns an event whose ids and text
// Postgres can store, and Evaluate returns a decision without panicking,
// and the decision encodes as JSON for the audit trail.
func FuzzEvaluate(f *testing.F) {
	starter, err := Load(os.DirFS("../rules"))
	if err != nil {
		f.Fatalf("load starter pack: %v", err)
	}
	wide := loadTestdata(f, "evaluate")
	for _, name := range []string{"message.new-1.json", "user.banned-1.json", "message.deleted-1.json", "before_message_send-1.json"} {
		if b, err := os.ReadFile("../testdata/samples/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"type":"message.new","message":{"text":"FUCK https://discord-nitro.gift/x @a","mentioned_users":[{"id":"a"}]},"user":{"created_at":"2026-01-01T00:00:00Z"},"created_at":"2026-01-01T01:00:00Z"}`))
	f.Add([]byte(`{"type":"message.updated","message":{"text":null,"user":null,"attachments":[null,{"title_link":"http://[::1"}]},"user":{"custom":{"level":"x"}}}`))
	f.Add([]byte(`{"type":"user.banned","user":{"id":"u","teams":null},"created_by":{"id":"m"},"reason":"spam"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"type":"a\u0000","cid":"\ud800","message":{"id":"\udc00x","text":"\u0000","user":{"id":"\u0000","ID":"v"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseEvent(body)
		if err != nil {
			return
		}
		ev.eachID(func(id *string) {
			if len(*id) > MaxIDBytes || !utf8.ValidString(*id) || strings.Contains(*id, "\x00") {
				t.Fatalf("id %q cannot be stored", *id)
			}
		})
		if m := ev.Message; m != nil && (!utf8.ValidString(m.Text) || strings.Contains(m.Text, "\x00")) {
			t.Fatalf("text %q cannot be stored", m.Text)
		}
		for _, rs := range []*RuleSet{starter, wide} {
			d := rs.Evaluate(ev)
			if d.RuleSetVersion != rs.Version() {
				t.Fatalf("decision version %q, want %q", d.RuleSetVersion, rs.Version())
			}
			for _, e := range d.Errors {
				if e.RuleID == "" {
					t.Fatalf("Evaluate recovered a panic: %s", e.Error)
				}
			}
			if _, err := json.Marshal(d); err != nil {
				t.Fatalf("decision does not encode: %v", err)
			}
		}
	})
}

// FuzzCompile compiles arbitrary rule conditions: Load either refuses the
// rule with problems that name a place, or loads it, and the loaded rule
// evaluates on the worst-case events without panicking.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`user.account_age < duration("24h") && len(text.links) > 0`,
		`contains_any(text.words, "w") || domain_in(text.domains, "w")`,
		`any(message.attachments, .type == "image") and message.mention_count > 3`,
		`text.lower matches "(?i)fr[e3]{2}"`,
		`let n = len(text.words); n > 5 ? text.caps_ratio > 0.5 : false`,
		`int(user.custom.level ?? 0) in 1..5`,
		`message.mentions[0] == user.id`,
		`count(split(text.lower, " "), # == "x") > 1`,
		`{"a": 1}.a == 1 && [1, 2][1] == 2`,
		`hits(text.words, "w")[0] == "darn"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, when string) {
		b, err := json.Marshal(when) // a JSON string is a valid YAML double-quoted scalar
		if err != nil {
			return
		}
		yaml := "rules:\n  - id: fuzz\n    description: fuzzed\n    when: " + string(b) +
			"\n    actions: [flag]\n    examples:\n      - {event: {message: {text: \"darn\"}}, expect: {match: true}}\n      - {event: {}, expect: {match: false}}\n"
		fsys := fstest.MapFS{"r.yaml": {Data: []byte(yaml)}, "w.txt": {Data: []byte("darn\nscam.example\n")}}
		rs, err := Load(fsys)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("got %v, want a *LoadError with problems", err)
			}
			for _, p := range le.Problems {
				if p.File != "r.yaml" || p.Msg == "" {
					t.Fatalf("problem %q does not name its place", p)
				}
			}
			return
		}
		for _, ev := range worstCaseEvents("message.new") {
			d := rs.Evaluate(ev)
			for _, e := range d.Errors {
				if e.RuleID == "" {
					t.Fatalf("Evaluate recovered a panic: %s", e.Error)
				}
			}
		}
	})
}
