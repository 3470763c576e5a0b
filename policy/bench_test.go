package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// benchText is a 250-character message of the usual kind: a link, two
// mentions, mixed case, punctuation.
const benchText = "Hey everyone, check out this amazing deal at https://shop.example.net/deal?ref=42 - only today! " +
	"I can't believe how cheap it is, seriously go look now before it's gone. @alice @bob what do you think? " +
	"Also the meeting moved to 3pm, ok? Bring snacks!"

// benchKind is one of the starter pack's kinds of rule, with a matching
// and a non-matching example, parameterised by the rule's number so that
// fifty rules are fifty different rules.
type benchKind struct {
	when     string
	match    string
	nonMatch string
}

func benchKinds() []benchKind {
	return []benchKind{
		{`user.account_age < duration("%dh") && len(text.links) > 0`,
			`{user: {created_at: "2026-01-15T11:59:00Z"}, message: {text: "https://x.example.com"}}`, `{message: {text: "hi"}}`},
		{`message.mention_count >= %d + 8`,
			`{message: {mentioned_users: [{id: a},{id: b},{id: c},{id: d},{id: e},{id: f},{id: g},{id: h},{id: i},{id: j},{id: k},{id: l},{id: m},{id: n},{id: o},{id: p},{id: q},{id: r},{id: s},{id: t},{id: u},{id: v},{id: w},{id: x},{id: y},{id: z},{id: aa},{id: ab},{id: ac},{id: ad},{id: ae},{id: af},{id: ag},{id: ah},{id: ai},{id: aj},{id: ak},{id: al},{id: am},{id: an},{id: ao},{id: ap},{id: aq},{id: ar},{id: as},{id: at},{id: au},{id: av},{id: aw},{id: ax},{id: ay},{id: az},{id: ba},{id: bb},{id: bc},{id: bd},{id: be},{id: bf},{id: bg},{id: bh}]}}`, `{message: {text: "hi"}}`},
		{`contains_any(text.words, "profanity") && %d >= 0`,
			`{message: {text: "oh sh1t"}}`, `{message: {text: "hi"}}`},
		{`text.caps_ratio >= 0.8 && text.length >= %d + 10`,
			`{message: {text: "WHY DOES NOBODY EVER ANSWER MY QUESTIONS IN THIS CHANNEL AT ALL, SERIOUSLY NOBODY"}}`, `{message: {text: "hi"}}`},
		{`text.longest_repeat >= %d + 10`,
			`{message: {text: "hiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii"}}`, `{message: {text: "hi"}}`},
		{`domain_in(text.domains, "scam_domains") && %d >= 0`,
			`{message: {text: "https://discord-nitro.gift/x"}}`, `{message: {text: "hi"}}`},
		{`domain_in(text.domains, "invite_domains") && user.account_age < duration("%dd")`,
			`{user: {created_at: "2026-01-15T11:00:00Z"}, message: {text: "discord.gg/abc"}}`, `{message: {text: "hi"}}`},
	}
}

// benchRules builds a folder of n rules cycling through benchKinds, with
// the starter pack's word lists.
func benchRules(tb testing.TB, n int) *RuleSet {
	tb.Helper()
	var b strings.Builder
	b.WriteString("rules:\n")
	kinds := benchKinds()
	for i := range n {
		k := kinds[i%len(kinds)]
		fmt.Fprintf(&b, "  - id: rule-%d\n    description: bench rule %d\n    mode: enforce\n    when: '%s'\n    actions: [flag]\n", i, i, fmt.Sprintf(k.when, i+1))
		fmt.Fprintf(&b, "    examples:\n      - {event: %s, expect: {match: true}}\n      - {event: %s, expect: {match: false}}\n", k.match, k.nonMatch)
	}
	fsys := fstest.MapFS{"bench.yaml": {Data: []byte(b.String())}}
	for _, list := range []string{"profanity.txt", "scam_domains.txt", "invite_domains.txt"} {
		data, err := os.ReadFile("../rules/" + list)
		if err != nil {
			tb.Fatal(err)
		}
		fsys[list] = &fstest.MapFile{Data: data}
	}
	rs, err := Load(fsys)
	if err != nil {
		tb.Fatalf("load %d bench rules: %v", n, err)
	}
	return rs
}

func benchEvent(tb testing.TB) *Event {
	tb.Helper()
	ev, err := ExampleEvent(map[string]any{
		"user":    map[string]any{"created_at": "2026-01-12T12:00:00Z"},
		"message": map[string]any{"text": benchText, "mentioned_users": []any{map[string]any{"id": "alice"}, map[string]any{"id": "bob"}}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

// BenchmarkEvaluate50Rules is the 50-rule case: target ≤ 60 µs
// per 250-character message.
func BenchmarkEvaluate50Rules(b *testing.B) {
	if n := len(benchText); n < 240 || n > 260 {
		b.Fatalf("bench text is %d bytes, want about 250", n)
	}
	rs := benchRules(b, 50)
	ev := benchEvent(b)
	if d := rs.Evaluate(ev); len(d.Errors) > 0 {
		b.Fatalf("errors: %v", d.Errors)
	}
	b.ReportAllocs()
	for b.Loop() {
		rs.Evaluate(ev)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/50, "ns/rule")
}

// BenchmarkEvaluateSimpleRule is one field comparison: target ≤ 1 µs.
func BenchmarkEvaluateSimpleRule(b *testing.B) {
	rs := benchRules(b, 2)
	rs.rules = rs.rules[1:2] // message.mention_count >= 10
	rs.needs = rs.rules[0].needs()
	ev := benchEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		rs.Evaluate(ev)
	}
}

// BenchmarkEvaluateStarterPack is the starter pack on the same message.
func BenchmarkEvaluateStarterPack(b *testing.B) {
	rs, err := Load(os.DirFS("../rules"))
	if err != nil {
		b.Fatal(err)
	}
	ev := benchEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		rs.Evaluate(ev)
	}
}

// BenchmarkEvaluateStarterPackLongText is the starter pack on a message at
// Stream's limit, 5,000 CJK characters (15,000 bytes), all of it judged:
// plain (every rule runs), and ending in a scam link (which stops the
// evaluation).
func BenchmarkEvaluateStarterPackLongText(b *testing.B) {
	rs, err := Load(os.DirFS("../rules"))
	if err != nil {
		b.Fatal(err)
	}
	for _, tail := range []string{"", " https://discord-nitro.gift/claim"} {
		name := "plain"
		if tail != "" {
			name = "link-at-end"
		}
		b.Run(name, func(b *testing.B) {
			ev := benchEvent(b)
			cjk := []rune(strings.Repeat("今天天气很好，我们下午去公园散步吧。", 400))
			ev.Message.Text = string(cjk[:5000-len(tail)]) + tail
			b.SetBytes(int64(len(ev.Message.Text)))
			b.ReportAllocs()
			for b.Loop() {
				rs.Evaluate(ev)
			}
		})
	}
}

// BenchmarkEnv is the per-message work before any rule runs: the
// environment with every derived value.
func BenchmarkEnv(b *testing.B) {
	ev := benchEvent(b)
	var env Env
	b.ReportAllocs()
	for b.Loop() {
		env.fill(ev, needAll, DefaultYoungAccount)
		env.reset()
	}
}

// BenchmarkLoadStarterPack is what a hot reload costs.
func BenchmarkLoadStarterPack(b *testing.B) {
	fsys := os.DirFS("../rules")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(fsys); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadHostile is what refusing a hostile 1 MiB rule file costs:
// the shape check refuses it before the YAML parser sees it (the parser
// alone took 2.5 s and 640 MB on 40 KB of brackets).
func BenchmarkLoadHostile(b *testing.B) {
	for _, tt := range []struct{ name, data string }{
		{"nested", "rules: " + strings.Repeat("[", 1<<19-8) + strings.Repeat("]", 1<<19-8) + "\n"},
		{"values", "rules: [" + strings.Repeat("1,", 1<<19-8) + "1]\n"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			fsys := fstest.MapFS{"bomb.yaml": {Data: []byte(tt.data)}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Load(fsys); err == nil {
					b.Fatal("loaded a hostile file")
				}
			}
		})
	}
}

// BenchmarkLoadLegal1MiB is a pathological but legal folder: 1 MiB of
// rule files near the shape limits (values, depth), every rule
// compiled, measured and its examples run.
func BenchmarkLoadLegal1MiB(b *testing.B) {
	fsys := legalFolder(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(fsys); err != nil {
			b.Fatal(err)
		}
	}
}

// legalFolder returns a folder of about size bytes of rule files, each
// file under the shape limits: rules whose examples carry custom data
// nested 20 levels deep and long lists of values.
func legalFolder(size int) fstest.MapFS {
	nested := strings.Repeat("{k: ", 20) + "[" + strings.Repeat("1, ", 200) + "1]" + strings.Repeat("}", 20)
	fsys := fstest.MapFS{"fields.yaml": {Data: []byte("fields:\n  user.k: {type: object}\n")}}
	var b strings.Builder
	file, rules := 0, 0
	flush := func() {
		fsys[fmt.Sprintf("f%02d.yaml", file)] = &fstest.MapFile{Data: []byte(b.String())}
		file++
		b.Reset()
	}
	for total := 0; total < size; {
		if b.Len() == 0 {
			b.WriteString("rules:\n")
		}
		n := b.Len()
		fmt.Fprintf(&b, "  - id: r%d\n    description: rule %d\n    when: user.custom.k != nil && message.text == \"x%d\"\n    actions: [flag]\n    examples:\n", rules, rules, rules)
		fmt.Fprintf(&b, "      - {event: {message: {text: \"x%d\"}, user: {custom: {k: 1}}}, expect: {match: true}}\n", rules)
		for range 4 {
			fmt.Fprintf(&b, "      - {event: {message: {text: \"y\"}, user: {custom: %s}}, expect: {match: false}}\n", nested)
		}
		total += b.Len() - n
		rules++
		if b.Len() > 150<<10 {
			flush()
		}
	}
	if b.Len() > 0 {
		flush()
	}
	return fsys
}

// BenchmarkDeferStarterPack is the intake's policy work for one message
// with the starter pack, which reads history: Defer (its mark, and since
// f3d5d4a the environment and the values its rules may read), then
// Decide with the history values.
func BenchmarkDeferStarterPack(b *testing.B) {
	rs, err := Load(os.DirFS("../rules"))
	if err != nil {
		b.Fatal(err)
	}
	ev := benchEvent(b)
	h := History{}
	for _, k := range rs.History() {
		h[k] = 1
	}
	b.ReportAllocs()
	for b.Loop() {
		rs.Defer(ev).Decide(h, nil)
	}
}

// BenchmarkParseEvent decodes a message.new as Stream sends it (the
// sample), and one carrying its channel with the channel's config, as the
// load tool's bodies do: most of such a body is Stream fields the rules
// never read.
func BenchmarkParseEvent(b *testing.B) {
	for _, path := range []string{"../testdata/samples/message.new-1.json", "testdata/message.new-channel.json"} {
		body, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(path), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseEvent(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
