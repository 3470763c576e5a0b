package policy

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/text/unicode/norm"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		// Plain text and the ASCII fast path.
		{"empty", "", ""},
		{"already normal", "free money", "free money"},
		{"upper case", "FREE Money", "free money"},
		{"whitespace collapsed and trimmed", " \t free\n\n  money \r\n", "free money"},
		{"ascii control removed", "fr\x00e\x1be", "free"},
		{"punctuation kept", "hello, world! how's it going?", "hello, world! how's it going?"},

		// Compatibility forms (NFKD).
		{"fullwidth", "ＦＲＥＥ ｍｏｎｅｙ", "free money"},
		{"mathematical bold", "𝐅𝐑𝐄𝐄 𝐦𝐨𝐧𝐞𝐲", "free money"},
		{"mathematical script", "𝓯𝓻𝓮𝓮", "free"},
		{"circled letters", "ⓕⓡⓔⓔ", "free"},
		{"squared letters", "🄵🅁🄴🄴", "free"},
		{"ligature", "ﬁnd", "find"},
		{"superscript digits", "x²", "x2"},

		// Diacritics and case folding.
		{"accents", "Frée Mönëy", "free money"},
		{"zalgo", "f̸̛r̷̢e̵̓e̶͠", "free"},
		{"dotted capital I", "İSTANBUL", "istanbul"},
		{"sharp s", "STRAßE straẞe", "strasse strasse"},
		{"long s", "ſpam", "spam"},

		// Look-alikes.
		{"cyrillic e", "frее", "free"},
		{"cyrillic capitals", "РАУРАL", "paypal"},
		{"fancy mix", "ƒяєє", "free"},
		{"greek", "ϜRΕΕ ΜΟΝΕΥ", "free money"},
		{"greek small", "ροοr", "poor"},
		{"small capitals", "ꜰʀᴇᴇ", "free"},
		{"negative squared", "🅵🆁🅴🅴", "free"},
		{"negative circled", "🅕🅡🅔🅔", "free"},
		{"regional indicators", "🇫🇷🇪🇪", "free"},
		{"latin look-alikes", "ƒøøł", "fool"},
		{"typographic apostrophe", "don’t", "don't"},

		// Leetspeak.
		{"leet word", "h4ck3r", "hacker"},
		{"leet all digits map", "1d10t", "idiot"},
		{"leet symbols", "$p@m", "spam"},
		{"leet bang inside", "sh!t", "shit"},
		{"leet pipe", "|oser", "loser"},
		{"leet seven eight", "7a8le", "table"},
		{"leet five", "fr33 5tuff", "free stuff"},
		{"year untouched", "in 2026", "in 2026"},
		{"price untouched", "$100 now", "$100 now"},
		{"number list untouched", "1488 88", "1488 88"},
		{"ordinals untouched", "1st 22nd 3rd 4th", "1st 22nd 3rd 4th"},
		{"trailing bang kept", "hi!! wow!", "hi!! wow!"},
		{"leading bang kept", "!ban me", "!ban me"},
		{"hyphen splits runs", "covid-19", "covid-19"},
		{"apostrophe splits runs", "90's kids", "90's kids"},
		{"leet with homoglyph", "fr3е", "free"},
		{"leet with fullwidth digit", "ｆｒ３３", "free"},

		// Invisible characters.
		{"zero width space", "f\u200bree", "free"},
		{"zero width joiners", "f\u200cr\u200de\u2060e", "free"},
		{"soft hyphen", "fr\u00adee", "free"},
		{"bom", "\ufefffree", "free"},
		{"bidi override", "free\u202emoney\u202c", "freemoney"},
		{"bidi isolate", "\u2066free\u2069", "free"},
		{"variation selector", "f\ufe0fr\U000E0100ee", "free"},
		{"tag characters", "fr\U000E0041ee", "free"},
		{"invisible math operators", "f\u2062r\u2063e\u2064e", "free"},
		{"c1 control", "fr\u009bee", "free"},
		{"next line is white space", "fr\u0085ee", "fr ee"},

		// Whitespace look-alikes.
		{"nbsp and ideographic space", "free\u00a0\u3000money", "free money"},
		{"braille blank as space", "free\u2800money", "free money"},
		{"hangul filler as space", "free\u3164money", "free money"},
		{"only invisible", "\u200b \u2800 \ufeff", ""},

		// Other scripts keep what matters.
		{"kana voicing mark kept", "ガギグ", "ガギグ"},
		{"hangul recomposed", "안녕하세요", "안녕하세요"},
		{"devanagari kept", "नमस्ते", "नमस्ते"},
		{"thai tone marks kept", "สวัสดี", "สวัสดี"},
		{"zalgo on kana dropped", "カ\u0336", "カ"},
		{"arabic harakat dropped", "مَرْحَبًا", "مرحبا"},
		{"hebrew niqqud dropped", "שָׁלוֹם", "שלום"},
		{"chinese untouched", "你好世界", "你好世界"},
		{"emoji kept", "free 🎁 money", "free 🎁 money"},
		{"keycap digit", "1\ufe0f\u20e3", "1"},

		{"invalid utf-8", "fr\xffee", "fr\ufffdee"},
		{"invalid utf-8 run", "fr\xff\xfe\xfdee", "fr\ufffdee"},
		{"invalid byte before a decomposable letter", "\xf4\u03ac", "\ufffda"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Normalize(tt.in); got != tt.want {
				t.Errorf("Normalize(%+q) = %+q, want %+q", tt.in, got, tt.want)
			}
		})
	}
}

// TestNormalizeEveryRune checks the properties FuzzNormalize checks for
// every assigned code point, alone and between letters and leet digits, so that the
// tables and the Unicode data cannot hide a non-idempotent character from a
// fuzzer that did not happen to find it.
func TestNormalizeEveryRune(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for r := rune(0); r <= unicode.MaxRune; r++ {
		// Unassigned and private-use code points have no properties and
		// behave alike; skipping them keeps the test fast under -race.
		if !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.Cc, unicode.Cf) {
			continue
		}
		b.Reset()
		b.WriteRune(r)
		alone := b.String()
		for _, in := range []string{alone, "a" + alone + "3", "1" + alone + "a" + alone + "!b", "क" + alone} {
			once := Normalize(in)
			if !utf8.ValidString(once) {
				t.Fatalf("Normalize(%+q) = %+q, not valid UTF-8", in, once)
			}
			if twice := Normalize(once); twice != once {
				t.Fatalf("Normalize(Normalize(%+q)) = %+q, want %+q (U+%04X)", in, twice, once, r)
			}
			if ref := textNormalizeReference(in); ref != once {
				t.Fatalf("Normalize(%+q) = %+q, want %+q as when decomposed at once", in, once, ref)
			}
		}
	}
}

func TestNormalizeReturnsInputWhenUnchanged(t *testing.T) {
	// Not parallel: testing.AllocsPerRun refuses to run in parallel tests.
	in := "already normalized text, nothing to do"
	if allocs := testing.AllocsPerRun(100, func() { _ = Normalize(in) }); allocs > 1 {
		t.Errorf("Normalize of normalized ASCII: got %v allocations, want at most 1", allocs)
	}
}

func TestWords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"only punctuation", "!!! ... ???", nil},
		{"simple", "free money now", []string{"free", "money", "now"}},
		{"punctuation separates", "free,money!now?", []string{"free", "money", "now"}},
		{"hyphen separates", "e-mail covid-19", []string{"e", "mail", "covid", "19"}},
		{"apostrophe joins", "don't rock'n'roll", []string{"dont", "rocknroll"}},
		{"typographic apostrophe joins", "don\u2019t", []string{"dont"}},
		{"edge apostrophes separate", "'quoted' kids'", []string{"quoted", "kids"}},
		{"double apostrophe separates", "a''b", []string{"a", "b"}},
		{"digits are words", "in 2026 1st", []string{"in", "2026", "1st"}},
		{"non-latin", "привет мир ガギ", []string{"привет", "мир", "ガギ"}},
		{"kept marks stay in word", "नमस्ते दोस्त", []string{"नमस्ते", "दोस्त"}},
		{"emoji separates", "free🎁money", []string{"free", "money"}},
		{"leftover symbols separate", "$100 @ 5", []string{"100", "5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Words(tt.in)); diff != "" {
				t.Errorf("Words(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestWordsOfNormalize(t *testing.T) {
	t.Parallel()
	// The way rules use them: a word list entry and an evasive message
	// give the same tokens.
	got := Words(Normalize("Ｆ\u200bR33 m0ney!!! (n0w)"))
	want := []string{"free", "money", "now"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Words(Normalize(...)) mismatch (-want +got):\n%s", diff)
	}
}

func TestSqueezeAndCollapseRepeats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, squeeze, collapse string
	}{
		{"", "", ""},
		{"free", "free", "fre"},
		{"freeeeee", "free", "fre"},
		{"fuuuuck", "fuuck", "fuck"},
		{"book", "book", "bok"},
		{"soooo gooood", "soo good", "so god"},
		{"1000000", "1000000", "1000000"},
		{"!!!!!!", "!!!!!!", "!!!!!!"},
		{"ааааа", "аа", "а"}, // Cyrillic letters
		{"ガガガガ", "ガガ", "ガ"},
		{"aaAAaa", "aaAAaa", "aAa"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := Squeeze(tt.in); got != tt.squeeze {
				t.Errorf("Squeeze(%q) = %q, want %q", tt.in, got, tt.squeeze)
			}
			if got := CollapseRepeats(tt.in); got != tt.collapse {
				t.Errorf("CollapseRepeats(%q) = %q, want %q", tt.in, got, tt.collapse)
			}
		})
	}
}

func TestSqueezeDoesNotAllocateWhenUnchanged(t *testing.T) {
	// Not parallel: testing.AllocsPerRun refuses to run in parallel tests.
	in := "nothing repeated three times here"
	if allocs := testing.AllocsPerRun(100, func() { _ = Squeeze(in) }); allocs != 0 {
		t.Errorf("Squeeze of unchanged text: got %v allocations, want 0", allocs)
	}
}

func TestCapsRatio(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want float64
	}{
		{"", 0},
		{"LOL OMG WTF", 0},          // 9 letters: below the minimum
		{"STOP SPAMMING", 1},        // 12 letters
		{"Stop spamming", 1.0 / 12}, // one capital
		{"STOP spamming", 4.0 / 12}, // digits and spaces ignored
		{"ПРЕКРАТИ СПАМ!", 1},       // Cyrillic has case
		{"你好世界你好世界你好世界 HI", 0},      // uncased letters ignored
		{"ＳＴＯＰ ＳＰＡＭＭＩＮＧ", 1},        // fullwidth capitals
		{"1234567890 !!!", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := CapsRatio(tt.in); got != tt.want {
				t.Errorf("CapsRatio(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLongestRepeat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 1},
		{"heyyyy", 4},
		{"!!!!! and ???", 5},
		{"😂😂😂 lol", 3},
		{"a          b", 1}, // white space is not a run
		{"\t\t\t\t", 0},
		{"aaAAaa", 2},  // exact comparison; Normalize first to fold case
		{"ааааааа", 7}, // Cyrillic
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := LongestRepeat(tt.in); got != tt.want {
				t.Errorf("LongestRepeat(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestExtractLinks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []Link
	}{
		{"none", "no links here, just text.", nil},
		{"empty", "", nil},
		{"https", "go to https://example.com/path?q=1#frag now",
			[]Link{{"https://example.com/path?q=1#frag", "example.com"}}},
		{"http upper-case scheme and host", "HTTP://WWW.Example.COM/A",
			[]Link{{"HTTP://WWW.Example.COM/A", "example.com"}}},
		{"trailing paren and dot", "see https://x.com/a).",
			[]Link{{"https://x.com/a", "x.com"}}},
		{"wrapped in parens", "(see https://x.com/a)",
			[]Link{{"https://x.com/a", "x.com"}}},
		{"balanced parens kept", "https://en.wikipedia.org/wiki/Go_(game), ok",
			[]Link{{"https://en.wikipedia.org/wiki/Go_(game)", "en.wikipedia.org"}}},
		{"quotes and brackets", `"https://x.com/q" <https://y.com/> [https://z.com]`,
			[]Link{{"https://x.com/q", "x.com"}, {"https://y.com/", "y.com"}, {"https://z.com", "z.com"}}},
		{"host only with dot", "visit https://x.com.", []Link{{"https://x.com", "x.com"}}},
		{"question mark ends sentence", "did you see https://x.com/a?", []Link{{"https://x.com/a", "x.com"}}},
		{"port and userinfo", "https://user:pw@Evil.com:8443/x",
			[]Link{{"https://user:pw@Evil.com:8443/x", "evil.com"}}},
		{"userinfo disguise", "https://google.com@evil.com/login",
			[]Link{{"https://google.com@evil.com/login", "evil.com"}}},
		{"backslash ends host", `https://evil.com\@good.com`,
			[]Link{{`https://evil.com\@good.com`, "evil.com"}}},
		{"ip with scheme", "http://192.168.0.1:8080/admin",
			[]Link{{"http://192.168.0.1:8080/admin", "192.168.0.1"}}},
		{"ipv6 with scheme", "http://[::1]:80/", []Link{{"http://[::1]:80/", "::1"}}},
		{"single-label host with scheme", "http://localhost:3000", []Link{{"http://localhost:3000", "localhost"}}},
		{"scheme without host", "https:// nothing", nil},
		{"bare with path", "join discord.gg/abc123!", []Link{{"discord.gg/abc123", "discord.gg"}}},
		{"bare www", "www.example.com is down", []Link{{"www.example.com", "example.com"}}},
		{"bare short", "bit.ly/xyz and t.co", []Link{{"bit.ly/xyz", "bit.ly"}, {"t.co", "t.co"}}},
		{"bare subdomain and port", "mail.evil.ru:8080/login.", []Link{{"mail.evil.ru:8080/login", "mail.evil.ru"}}},
		{"bare end of sentence", "I use example.com.", []Link{{"example.com", "example.com"}}},
		{"bare markdown emphasis", "_example.com_ and *x.io*", []Link{{"example.com", "example.com"}, {"x.io", "x.io"}}},
		{"bare upper-case", "Visit EXAMPLE.COM", []Link{{"EXAMPLE.COM", "example.com"}}},
		{"unknown tld is not a link", "file.txt and v1.2.3 and 3.14", nil},
		{"file extension tld is not a link", "see main.rs and setup.py, README.md, archive.zip, clip.mov", nil},
		{"new gTLDs from the public suffix list", "free nitro at nitro-free.pics, nitro-free.lat or nitro.beauty",
			[]Link{{"nitro-free.pics", "nitro-free.pics"}, {"nitro-free.lat", "nitro-free.lat"}, {"nitro.beauty", "nitro.beauty"}}},
		{"non-ICANN tlds kept", "see duckduck.onion and vitalik.eth", []Link{{"duckduck.onion", "duckduck.onion"}, {"vitalik.eth", "vitalik.eth"}}},
		{"a private suffix is not a tld", "see x.blogspot and y.localhost", nil},
		{"e-mail is not a link", "mail bob@example.com please", nil},
		{"abbreviations", "e.g. i.e. U.S. a.m.", nil},
		{"duplicates removed", "x.com x.com https://x.com x.com/a",
			[]Link{{"x.com", "x.com"}, {"https://x.com", "x.com"}, {"x.com/a", "x.com"}}},
		{"zero width inside host", "disc\u200bord.gg/abc", []Link{{"disc\u200bord.gg/abc", "discord.gg"}}},
		{"zero width before dot", "discord\u200b.gg", []Link{{"discord\u200b.gg", "discord.gg"}}},
		{"fullwidth host", "ｅｘａｍｐｌｅ．ｃｏｍ", []Link{{"ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"}}},
		{"ideographic full stop", "example。com", []Link{{"example。com", "example.com"}}},
		{"punycode decoded", "https://xn--80ak6aa92e.com/login",
			[]Link{{"https://xn--80ak6aa92e.com/login", "аррӏе.com"}}},
		{"empty punycode label kept", "http://Xn--", []Link{{"http://Xn--", "xn--"}}},
		{"invalid punycode label kept", "https://xn--99999999999999.com", []Link{{"https://xn--99999999999999.com", "xn--99999999999999.com"}}},
		{"unicode host lower-cased", "https://ПРИМЕР.рф/", []Link{{"https://ПРИМЕР.рф/", "пример.рф"}}},
		{"bare unicode host", "go to пример.рф now", []Link{{"пример.рф", "пример.рф"}}},
		{"homoglyph host kept", "https://pаypal.com", []Link{{"https://pаypal.com", "pаypal.com"}}},
		{"scheme glued to text", "click:https://x.com", []Link{{"https://x.com", "x.com"}}},
		{"trailing cjk punctuation", "链接https://x.com/a。", []Link{{"https://x.com/a", "x.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, ExtractLinks(tt.in)); diff != "" {
				t.Errorf("ExtractLinks(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestExtractLinksManyDistinct(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	var want []Link
	for i := range 40 {
		u := fmt.Sprintf("x%d.com", i)
		fmt.Fprintf(&b, "%s %s ", u, u)
		want = append(want, Link{u, u})
	}
	if diff := cmp.Diff(want, ExtractLinks(b.String())); diff != "" {
		t.Errorf("ExtractLinks of 40 duplicated links mismatch (-want +got):\n%s", diff)
	}
}

func TestDecodeIDNA(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"xn--80ak6aa92e.com", "аррӏе.com"},
		{"xn--mnchen-3ya.de", "münchen.de"},
		{"xn--bcher-kva.example", "bücher.example"},
		{"xn--ihqwcrb4cv8a8dqg056pqjye.cn", "他们为什么不说中文.cn"},
		{"xn--e1afmkfd.xn--p1ai", "пример.рф"},
		{"plain.example", "plain.example"},
		{"xn--99999999999999.com", "xn--99999999999999.com"}, // does not decode: kept
		{"xn--.com", "xn--.com"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := textDecodeIDNA(tt.in); got != tt.want {
				t.Errorf("textDecodeIDNA(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDomainIn(t *testing.T) {
	t.Parallel()
	set := map[string]struct{}{"evil.com": {}, "discord.gg": {}, "zip": {}}
	tests := []struct {
		domain string
		want   bool
	}{
		{"evil.com", true},
		{"sub.evil.com", true},
		{"a.b.evil.com", true},
		{"EVIL.com.", true},
		{"notevil.com", false},
		{"evil.com.au", false},
		{"com", false},
		{"", false},
		{"discord.gg", true},
		{"discord.gift", false},
		{"anything.zip", true},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			t.Parallel()
			if got := DomainIn(tt.domain, set); got != tt.want {
				t.Errorf("DomainIn(%q) = %v, want %v", tt.domain, got, tt.want)
			}
		})
	}
	t.Run("empty set", func(t *testing.T) {
		t.Parallel()
		if DomainIn("evil.com", nil) {
			t.Error("DomainIn(evil.com, nil) = true, want false")
		}
	})
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"", "free money", "ＦＲＥＥ ｍｏｎｅｙ", "frее", "f\u200bree", "ƒяєє", "h4ck3r 2026 1st",
		"sh!t hi! !ban", "ガギグ 안녕 नमस्ते", "f̸̛r̷̢e̵̓e̶͠", "\xff\xfe", "ΗΕLLΟ", "a\u0301\u0308",
		"\xf4\u03ac",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := Normalize(s)
		if !utf8.ValidString(once) {
			t.Fatalf("Normalize(%+q) = %+q, not valid UTF-8", s, once)
		}
		if twice := Normalize(once); twice != once {
			t.Fatalf("Normalize(Normalize(%+q)) = %+q, want %+q", s, twice, once)
		}
		if ref := textNormalizeReference(s); ref != once {
			t.Fatalf("Normalize(%+q) = %+q, want %+q as when decomposed at once", s, once, ref)
		}
		if strings.HasPrefix(once, " ") || strings.HasSuffix(once, " ") || strings.Contains(once, "  ") {
			t.Fatalf("Normalize(%+q) = %+q, has untrimmed or doubled spaces", s, once)
		}
		for _, w := range Words(once) {
			if w == "" {
				t.Fatalf("Words(%+q) has an empty word", once)
			}
		}
	})
}

func FuzzExtractLinks(f *testing.F) {
	for _, s := range []string{
		"see https://x.com/a).", "discord.gg/abc", "https://u@h:1/p", "http://[::1]:80/",
		"ｅｘａｍｐｌｅ．ｃｏｍ", "https://xn--80ak6aa92e.com", "((((https://x.com))))", "a.com.b.com",
		"http://Xn--",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seen := map[string]bool{}
		for _, l := range ExtractLinks(s) {
			if !strings.Contains(s, l.URL) {
				t.Fatalf("ExtractLinks(%+q): URL %+q is not in the text", s, l.URL)
			}
			if l.URL == "" || l.Domain == "" {
				t.Fatalf("ExtractLinks(%+q): empty URL or domain in %+v", s, l)
			}
			if seen[l.URL] {
				t.Fatalf("ExtractLinks(%+q): duplicate URL %+q", s, l.URL)
			}
			seen[l.URL] = true
			if l.Domain != strings.ToLower(l.Domain) {
				t.Fatalf("ExtractLinks(%+q): domain %+q is not lower-case", s, l.Domain)
			}
		}
	})
}

// textBenchMessage is a 250-character (259-byte) chat message mixing the
// cases Normalize and ExtractLinks handle: capitals, leetspeak, a
// look-alike, a zero-width space, an accent, an emoji and two links.
const textBenchMessage = "Hey EVERYONE!! Check out this FR33 n1tro giveaway 🎁 at https://discord.gift/aBcD1234 " +
	"before it's gone — only 50 left! Also join discord.gg/freestuff, it's сool and the café " +
	"crew is waiting... don't miss out, seriously, go g\u200bo go now!!! See you there."

func BenchmarkNormalize(b *testing.B) {
	for _, bm := range []struct{ name, in string }{
		{"ascii", "Hey everyone, check out this FR33 giveaway at the usual place, don't miss out! " +
			"It's going to be great and there will be prizes for the first 50 people who join. " +
			"See you there, and bring your friends along too; the more the merrier, as they say!! Bye."},
		{"mixed", textBenchMessage},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(bm.in)))
			b.ReportAllocs()
			for b.Loop() {
				_ = Normalize(bm.in)
			}
		})
	}
}

func BenchmarkWords(b *testing.B) {
	n := Normalize(textBenchMessage)
	b.ReportAllocs()
	for b.Loop() {
		_ = Words(n)
	}
}

func BenchmarkExtractLinks(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ExtractLinks(textBenchMessage)
	}
}

func BenchmarkExtractLinksNone(b *testing.B) {
	in := strings.Repeat("no links in this message at all ", 8)
	b.ReportAllocs()
	for b.Loop() {
		_ = ExtractLinks(in)
	}
}

// BenchmarkDerived is the per-message cost the rules engine pays for the
// derived text values: target 15 µs for a 250-character mixed message.
func BenchmarkDerived(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		n := Normalize(textBenchMessage)
		_ = Words(n)
		_ = ExtractLinks(textBenchMessage)
		_ = CapsRatio(textBenchMessage)
		_ = LongestRepeat(textBenchMessage)
	}
}

func BenchmarkSqueeze(b *testing.B) {
	n := Normalize(textBenchMessage)
	b.ReportAllocs()
	for b.Loop() {
		_ = Squeeze(n)
		_ = CollapseRepeats(n)
	}
}

// TestTextASCIIClass checks the hand-written class table against the
// definitions it encodes.
func TestTextASCIIClass(t *testing.T) {
	t.Parallel()
	if len(textASCIIClass) != utf8.RuneSelf {
		t.Fatalf("len(textASCIIClass) = %d, want %d", len(textASCIIClass), utf8.RuneSelf)
	}
	for c := range rune(utf8.RuneSelf) {
		lower := 'a' <= c && c <= 'z'
		alnum := lower || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
		leet := lower || ('0' <= c && c <= '9') || strings.ContainsRune("@$!|", c)
		host := alnum || c == '-' || c == '.'
		class := textASCIIClass[c]
		if got := class&textClassWord != 0; got != alnum {
			t.Errorf("word class of %q = %v, want %v", c, got, alnum)
		}
		if got := class&textClassLeet != 0; got != leet {
			t.Errorf("leet class of %q = %v, want %v", c, got, leet)
		}
		if got := class&textClassLetter != 0; got != lower {
			t.Errorf("letter class of %q = %v, want %v", c, got, lower)
		}
		if got := class&textClassHost != 0; got != host {
			t.Errorf("host class of %q = %v, want %v", c, got, host)
		}
	}
}

// textNormalizeReference is Normalize with the whole input decomposed at
// once, the obviously correct but slower way, to check Normalize's
// segment-at-a-time decomposition against.
func textNormalizeReference(s string) string {
	var f textFolder
	for _, r := range norm.NFKD.String(strings.ToValidUTF8(s, "\uFFFD")) {
		f.rune(r)
	}
	return f.finish(s, false)
}
