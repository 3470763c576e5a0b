package policy

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/unicode/norm"
)

// This file holds the text helpers that rules use to see through evasion:
// Normalize and Words for word lists, Squeeze and CollapseRepeats for
// stretched words, ExtractLinks and DomainIn for links, CapsRatio and
// LongestRepeat for shouting and spam. They run once per message on the hot
// path, so each has an ASCII fast path and allocates little.

// Normalize folds text the way evasion-resistant matching needs. It is meant
// for matching, not for display: apply it to both the message and every word
// list entry (at load), then compare.
//
// In order, it
//   - decomposes compatibility forms with NFKD (fullwidth "ＦＲＥＥ",
//     mathematical "𝐟𝐫𝐞𝐞", circled "ⓕ", ligatures "ﬁ", "①" → "1"); pure ASCII
//     input skips this step;
//   - drops combining marks, so diacritics and "Zalgo" text go ("frée",
//     "f̸r̷e̵e̶" → "free"). Marks are kept where they are part of the letter
//     rather than decoration: after a letter of a script other than Latin,
//     Greek, Cyrillic, Arabic and Hebrew (kana voicing marks, Indic vowel
//     signs, Thai tone marks), unless they come from the generic
//     combining-diacritics blocks that Zalgo text uses;
//   - removes invisible characters: every format character (category Cf,
//     which includes U+200B-U+200F, U+2060-U+2064, U+FEFF, the U+00AD soft
//     hyphen, bidi controls and tag characters), variation selectors and
//     control characters;
//   - maps look-alike characters to ASCII (see textConfusable: Cyrillic,
//     Greek, Armenian homoglyphs, small capitals, "ƒяєє" → "free") and
//     lower-cases everything else (ToLower, which for text already in NFKD
//     agrees with Unicode simple case folding except for a few letters
//     such as ß, which the look-alike table folds to "ss");
//   - maps leetspeak inside each run of letters, digits and the symbols
//     @ $ ! | that contains at least one letter: 0→o 1→i 3→e 4→a 5→s 7→t
//     8→b @→a $→s |→l, and !→i only between other characters of the run
//     ("sh!t" → "shit", but "hi!" and "!ban" keep their "!"). Runs without
//     a letter ("2026", "$100", "1488") and ordinals ("1st", "21st", "4th")
//     are kept. Hyphens, dots and apostrophes end a run, so "covid-19" and
//     "90's" keep their digits;
//   - collapses every whitespace run (including NBSP, ideographic space and
//     blank-looking fillers such as U+2800 and U+3164) to one space and
//     trims both ends.
//
// Homoglyphs are mapped in every script, as in Unicode's confusable
// skeletons: Russian "сор" becomes "cop". That is what makes a Cyrillic
// word list match a word with a Latin letter slipped in; the price is that
// normalized Cyrillic and Greek text is unreadable and may rarely collide
// with a Latin word.
//
// Normalize is idempotent: Normalize(Normalize(s)) == Normalize(s). Its
// output is valid UTF-8: each run of invalid input bytes becomes one U+FFFD.
func Normalize(s string) string {
	f := textFolder{b: make([]byte, 0, len(s)+len(s)/8)}
	var it *norm.Iter // allocated for non-ASCII text only (it escapes)
	ascii := true
	for i := 0; i < len(s); {
		// ASCII characters are starters without decompositions, so
		// text splits before each of them into parts that NFKD handles
		// independently: ASCII is folded directly and only the runs of
		// other characters are decomposed.
		if c := s[i]; c < utf8.RuneSelf {
			f.ascii(c)
			i++
			continue
		}
		ascii = false
		j := i + 1
		for j < len(s) && s[j] >= utf8.RuneSelf {
			j++
		}
		run := s[i:j]
		if !utf8.ValidString(run) {
			// norm may pass an invalid byte through together with the
			// characters after it, undecomposed; replace it first.
			run = strings.ToValidUTF8(run, "\uFFFD")
		}
		if it == nil {
			it = new(norm.Iter)
		}
		it.InitString(norm.NFKD, run) // an Iter decomposes in its own buffer
		for !it.Done() {
			for _, r := range string(it.Next()) { // no copy: the compiler ranges over the bytes
				f.rune(r)
			}
		}
		i = j
	}
	return f.finish(s, ascii)
}

// finish completes Normalize after the first pass over s.
func (f *textFolder) finish(s string, ascii bool) string {
	b := f.b
	if n := len(b); n > 0 && b[n-1] == ' ' {
		b = b[:n-1]
	}
	textLeet(b)
	if ascii && string(b) == s {
		return s
	}
	if f.recompose {
		// Kept marks and Hangul jamo were split by NFKD; put them back so
		// the output reads normally. NFKD(NFC(x)) == NFKD(x), so this does
		// not affect idempotence.
		return norm.NFC.String(string(b))
	}
	return string(b)
}

// textFolder accumulates Normalize's first pass: decomposition, mark and
// invisible removal, look-alike mapping, lower-casing and whitespace
// collapsing. Leetspeak needs whole runs and is done afterwards in place.
type textFolder struct {
	b []byte
	// base is the last character written (or ' '), the base a following
	// combining mark attaches to.
	base rune
	// recompose records that the output holds kept combining marks or
	// conjoining jamo, which NFC should compose again.
	recompose bool
}

func (f *textFolder) space() {
	if n := len(f.b); n > 0 && f.b[n-1] != ' ' {
		f.b = append(f.b, ' ')
	}
	f.base = ' '
}

func (f *textFolder) ascii(c byte) {
	switch {
	case 'A' <= c && c <= 'Z':
		c += 'a' - 'A'
	case c == ' ' || ('\t' <= c && c <= '\r'):
		f.space()
		return
	case c < 0x20 || c == 0x7f:
		return // other control characters are invisible
	}
	f.b = append(f.b, c)
	f.base = rune(c)
}

func (f *textFolder) str(s string) {
	f.b = append(f.b, s...)
	f.base = rune(s[len(s)-1])
}

func (f *textFolder) rune(r rune) {
	if r < utf8.RuneSelf {
		f.ascii(byte(r))
		return
	}
	switch {
	case textIsSpace(r):
		f.space()
		return
	case textIsInvisible(r):
		return
	case unicode.In(r, unicode.Mn, unicode.Me):
		if textKeepsMark(f.base, r) {
			f.b = utf8.AppendRune(f.b, r)
			f.recompose = true
		}
		return
	}
	if m := textConfusable(r); m != "" {
		f.str(m)
		return
	}
	lr := unicode.ToLower(r)
	if lr != r {
		if m := textConfusable(lr); m != "" {
			f.str(m)
			return
		}
		// A lower-case form may itself decompose; decompose it so that
		// the output is a fixed point.
		var buf [utf8.UTFMax]byte
		n := utf8.EncodeRune(buf[:], lr)
		if norm.NFKD.Properties(buf[:n]).Decomposition() != nil {
			for _, c := range norm.NFKD.String(string(lr)) {
				f.rune(c)
			}
			return
		}
	}
	if 0x1100 <= lr && lr <= 0x11FF {
		f.recompose = true // Hangul jamo from a decomposed syllable
	}
	f.b = utf8.AppendRune(f.b, lr)
	f.base = lr
}

// textIsSpace reports whether r is white space for Normalize: Unicode white
// space plus characters that render as a blank cell and are used as spaces
// that escape \s (Braille blank, Hangul fillers).
func textIsSpace(r rune) bool {
	switch r {
	case 0x2800, 0x3164, 0xFFA0, 0x115F, 0x1160:
		return true
	}
	return unicode.IsSpace(r)
}

// textIsInvisible reports whether r renders as nothing: format characters
// (zero-width spaces and joiners, bidi controls, soft hyphen, BOM, tags),
// variation selectors and C1 controls.
func textIsInvisible(r rune) bool {
	if r < utf8.RuneSelf {
		return false // ASCII controls are handled as white space or dropped by the callers
	}
	return (0x80 <= r && r < 0xA0) || textIsVariationSelector(r) || unicode.Is(unicode.Cf, r)
}

func textIsVariationSelector(r rune) bool {
	return (0xFE00 <= r && r <= 0xFE0F) || (0xE0100 <= r && r <= 0xE01EF) || (0x180B <= r && r <= 0x180F)
}

// textKeepsMark reports whether a combining mark after base is part of the
// letter (kept) rather than a diacritic or decoration (dropped). See
// Normalize.
func textKeepsMark(base, mark rune) bool {
	switch {
	case 0x0300 <= mark && mark <= 0x036F, // combining diacritical marks
		0x1AB0 <= mark && mark <= 0x1AFF, // ... extended
		0x1DC0 <= mark && mark <= 0x1DFF, // ... supplement
		0x20D0 <= mark && mark <= 0x20FF, // ... for symbols
		0xFE20 <= mark && mark <= 0xFE2F, // half marks
		textIsVariationSelector(mark):
		return false
	}
	// Everything below U+0900 is Latin, Greek, Cyrillic, Armenian, Hebrew,
	// Arabic and their relatives, whose marks are optional diacritics.
	return base >= 0x0900 && unicode.IsLetter(base) &&
		!unicode.In(base, unicode.Latin, unicode.Greek, unicode.Cyrillic)
}

// textLeet maps leetspeak in place in the output of the first pass of
// Normalize. Every character it reads or writes is ASCII, so working on
// bytes is safe inside UTF-8.
func textLeet(b []byte) {
	for i := 0; i < len(b); {
		if c := b[i]; c < utf8.RuneSelf {
			if textASCIIClass[c]&textClassLeet == 0 {
				i++
				continue
			}
		} else if r, n := utf8.DecodeRune(b[i:]); !textIsLeetRunRune(r) {
			i += n
			continue
		}
		// A run starts at i. Most runs are plain words (letters only),
		// which need no second look.
		start, letter, other := i, false, false
		for i < len(b) {
			if c := b[i]; c < utf8.RuneSelf {
				class := textASCIIClass[c]
				if class&textClassLeet == 0 {
					break
				}
				if class&textClassLetter != 0 {
					letter = true
				} else {
					other = true
				}
				i++
				continue
			}
			r, n := utf8.DecodeRune(b[i:])
			if !textIsLeetRunRune(r) {
				break
			}
			if unicode.IsLetter(r) {
				letter = true
			}
			i += n
		}
		if letter && other && !textIsOrdinal(b[start:i]) {
			textLeetRun(b[start:i])
		}
	}
}

// textASCIIClass classifies ASCII bytes for the hot loops, as a constant
// string so that the table is immutable: bit textClassLeet marks the
// characters of a leetspeak run (a-z, 0-9, @ $ ! |), textClassLetter the
// lower-case letters, textClassHost the characters of a host name (letters
// of either case, digits, '-' and '.'), textClassWord those of a word
// (letters of either case and digits). TestTextASCIIClass checks it.
const textASCIIClass = "" +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" + // 0x00
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" + // 0x10
	"\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x04\x04\x00" + // 0x20
	"\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x0d\x00\x00\x00\x00\x00\x00" + // 0x30
	"\x01\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c" + // 0x40
	"\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x0c\x00\x00\x00\x00\x00" + // 0x50
	"\x00\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f" + // 0x60
	"\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x0f\x00\x01\x00\x00\x00" // 0x70

const (
	textClassLeet = 1 << iota
	textClassLetter
	textClassHost
	textClassWord
)

// textIsLeetRunRune reports whether r belongs to a run that leetspeak
// mapping considers as one word: letters, digits, marks and the leet
// symbols. Input is lower-case.
func textIsLeetRunRune(r rune) bool {
	if r < utf8.RuneSelf {
		return textASCIIClass[r]&textClassLeet != 0
	}
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r)
}

// textIsOrdinal reports whether run is digits followed by an English ordinal
// suffix ("1st", "22nd", "3rd", "4th"), which leetspeak mapping leaves alone.
func textIsOrdinal(run []byte) bool {
	n := len(run)
	if n < 3 {
		return false
	}
	switch string(run[n-2:]) {
	case "st", "nd", "rd", "th":
	default:
		return false
	}
	for _, c := range run[:n-2] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// textLeetRun maps the leet characters of one run that contains a letter.
func textLeetRun(run []byte) {
	first, last := -1, -1
	for i, c := range run {
		if c != '!' {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	for i, c := range run {
		switch c {
		case '0':
			run[i] = 'o'
		case '1':
			run[i] = 'i'
		case '3':
			run[i] = 'e'
		case '4', '@':
			run[i] = 'a'
		case '5', '$':
			run[i] = 's'
		case '7':
			run[i] = 't'
		case '8':
			run[i] = 'b'
		case '|':
			run[i] = 'l'
		case '!':
			if first < i && i < last {
				run[i] = 'i'
			}
		}
	}
}

// Words splits normalized text (the output of Normalize) into word tokens:
// maximal runs of letters, digits and combining marks. An apostrophe
// between two word characters is dropped and the parts joined, so "don't"
// gives "dont" and "rock'n'roll" gives "rocknroll" (normalize word list
// entries the same way, with Words(Normalize(entry))); any other character,
// including a leading or trailing apostrophe, separates words. Scripts
// written without spaces (Chinese, Japanese, Thai) come out as one token per
// run; match those with a substring test on the normalized text instead.
//
// Tokens without an apostrophe share memory with normalized. Text without
// words gives nil.
func Words(normalized string) []string {
	if normalized == "" {
		return nil
	}
	words := make([]string, 0, strings.Count(normalized, " ")+1)
	for i := 0; i < len(normalized); {
		if c := normalized[i]; c < utf8.RuneSelf && textASCIIClass[c]&textClassWord == 0 {
			i++ // the common separators, inline
			continue
		}
		if n := textWordRuneLen(normalized, i); n == 0 {
			_, n = textDecode(normalized, i)
			i += n
			continue
		}
		start, apostrophe := i, false
		for i < len(normalized) {
			if c := normalized[i]; c < utf8.RuneSelf && textASCIIClass[c]&textClassWord != 0 {
				i++ // the common letters, inline
				continue
			}
			if n := textWordRuneLen(normalized, i); n > 0 {
				i += n
				continue
			}
			// An apostrophe joins two word characters.
			n := 0
			switch {
			case normalized[i] == '\'':
				n = 1
			case strings.HasPrefix(normalized[i:], "\u2019"):
				n = len("\u2019")
			}
			if n > 0 && i+n < len(normalized) && textWordRuneLen(normalized, i+n) > 0 {
				apostrophe = true
				i += n
				continue
			}
			break
		}
		w := normalized[start:i]
		if apostrophe {
			w = textDropApostrophes(w)
		}
		words = append(words, w)
	}
	if len(words) == 0 {
		return nil
	}
	return words
}

// textWordRuneLen returns the length of the rune at s[i] (i < len(s)) if it
// is a word character (a letter, digit or mark), else 0.
func textWordRuneLen(s string, i int) int {
	if c := s[i]; c < utf8.RuneSelf {
		if textASCIIClass[c]&textClassWord != 0 {
			return 1
		}
		return 0
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) {
		return n
	}
	return 0
}

// textDropApostrophes returns w without its apostrophes.
func textDropApostrophes(w string) string {
	b := make([]byte, 0, len(w))
	for _, r := range w {
		if r != '\'' && r != '\u2019' {
			b = utf8.AppendRune(b, r)
		}
	}
	return string(b)
}

// textDecode decodes the rune at s[i:] (i < len(s)), with an ASCII fast
// path.
func textDecode(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// Squeeze shortens every run of one repeated letter to at most two
// ("fuuuuck" → "fuuck", "soooo" → "soo"), keeping the double letters real
// words have ("book", "free"). Digits and other characters are left alone,
// so numbers are not changed.
//
// Neither form alone matches every stretched word, so match a word list in
// both: index each entry under Squeeze(entry) and CollapseRepeats(entry),
// and look a token up under Squeeze(token) (exact: "freeeee" → "free" finds
// "free") and CollapseRepeats(token) (catches "fuuuuck" → "fuck", at the
// cost of conflating "good" with "god"; use it for lists where that is
// acceptable). Apply both after Normalize.
func Squeeze(s string) string { return textLimitRuns(s, 2) }

// CollapseRepeats shortens every run of one repeated letter to one
// ("fuuuuck" → "fuck", "book" → "bok"). See Squeeze for how to match word
// lists with it.
func CollapseRepeats(s string) string { return textLimitRuns(s, 1) }

// textLimitRuns shortens runs of one repeated letter to at most limit
// characters. It returns s itself, without allocating, when no run is too
// long.
func textLimitRuns(s string, limit int) string {
	var (
		b    []byte // nil until something is dropped
		prev rune   = -1
		run  int
	)
	for i := 0; i < len(s); {
		r, n := textDecode(s, i)
		if r == prev {
			run++
		} else {
			prev, run = r, 1
		}
		if run > limit && textIsLetter(r) {
			if b == nil {
				b = make([]byte, i, len(s))
				copy(b, s[:i])
			}
		} else if b != nil {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	if b == nil {
		return s
	}
	return string(b)
}

func textIsLetter(r rune) bool {
	if r < utf8.RuneSelf {
		return ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return unicode.IsLetter(r)
}

// textCapsMinLetters is the number of cased letters below which CapsRatio
// reports 0: "OK", "LOL" and "OMG WTF" are not shouting.
const textCapsMinLetters = 10

// CapsRatio returns the share of upper-case letters among the letters that
// have case (Latin, Greek, Cyrillic …; Chinese characters and digits are
// ignored), or 0 when the text has fewer than 10 such letters, so short
// acronyms and interjections do not count as shouting. Pass the raw text:
// Normalize lower-cases.
func CapsRatio(text string) float64 {
	upper, cased := 0, 0
	for _, r := range text {
		switch {
		case 'A' <= r && r <= 'Z':
			upper++
			cased++
		case 'a' <= r && r <= 'z':
			cased++
		case r < utf8.RuneSelf:
		case unicode.IsUpper(r) || unicode.IsTitle(r):
			upper++
			cased++
		case unicode.IsLower(r):
			cased++
		}
	}
	if cased < textCapsMinLetters {
		return 0
	}
	return float64(upper) / float64(cased)
}

// LongestRepeat returns the length of the longest run of one repeated
// character ("!!!!!" → 5, "heyyyy" → 4, "😂😂😂" → 3), 0 for empty text. White
// space never counts as a run, so indentation or a pasted table does not
// look like spam. It compares characters exactly: pass Normalize's output to
// count "AaAaA" as 5 and to see through zero-width characters between the
// repeats.
func LongestRepeat(text string) int {
	longest, run := 0, 0
	prev := rune(-1)
	for _, r := range text {
		if r == prev {
			run++
		} else {
			prev, run = r, 1
		}
		if textIsSpace(r) || r < ' ' {
			continue
		}
		longest = max(longest, run)
	}
	return longest
}

// Link is a URL found in message text.
type Link struct {
	// URL is the link exactly as written in the text (so a rewrite can
	// find it), without trailing punctuation; it may lack a scheme
	// ("discord.gg/abc").
	URL string
	// Domain is the host in canonical form: lower-case, IDNA-decoded to
	// Unicode (an "xn--" label is shown as the letters it encodes, so
	// "xn--80ak6aa92e.com" is "аррӏе.com"), compatibility forms folded
	// (fullwidth letters and dots), zero-width characters removed, without
	// a leading "www.", a port, user information or a trailing dot.
	// Unicode was chosen over punycode because staff read it and because
	// Normalize(Domain) then reveals a look-alike of a known domain.
	Domain string
}

// ExtractLinks returns the links in text, de-duplicated by URL in order of
// appearance, or nil when there are none. It finds
//   - URLs with an http or https scheme (any case), whatever the host;
//   - bare host names whose last label is a well-known top-level domain
//     (see textKnownTLD), optionally with a port and a path: "discord.gg/abc",
//     "www.example.com", "bit.ly". A host right after "@" is an e-mail
//     address and is not a link.
//
// Trailing punctuation that usually ends a sentence is not part of a URL
// (".,:;!?'\"*_~" and their CJK forms), nor is a closing bracket without a
// matching opening one in the URL, so "(see https://x.com/a)." yields
// "https://x.com/a" while "https://en.wikipedia.org/wiki/Go_(game)" is
// kept whole. Zero-width characters inside a host name do not break it.
// For "https://user@host/" the host is the part after the last "@", as
// browsers read it, and a backslash ends the host as in browsers.
//
// It is a hand-written scanner with no regular expressions: linear in the
// length of text. Extract from the raw text, not from Normalize's output,
// whose leetspeak mapping changes paths; IP addresses are found only with a
// scheme.
func ExtractLinks(text string) []Link {
	var (
		links []Link
		seen  map[string]struct{} // for long lists only; see textAppendLink
	)
	// Every link has a full stop or "://", so the scan jumps from one to
	// the next and looks back for where the link would start: most of the
	// text is only searched with IndexByte. pos is the end of the last link
	// (nothing before it is looked at again); from is where to search next.
	marks := textLinkMarks{dot: -2, colon: -2, e3: -2, ef: -2}
	for pos, from := 0, 0; from < len(text); {
		k := marks.next(text, from)
		if k < 0 {
			break
		}
		var (
			start, next int
			prev        rune
			ok          bool
		)
		if text[k] == ':' {
			if !strings.HasPrefix(text[k:], "://") {
				from = k + 1
				continue
			}
			start, prev, ok = textSchemeStart(text, pos, k)
			next = k + 3
		} else {
			start, prev, ok = textRunStart(text, pos, k)
			next = textHostEnd(text, k)
		}
		if ok {
			if l, end, ok := textLinkAt(text, start, prev); ok {
				links, seen = textAppendLink(links, seen, l)
				pos, next = end, end
			}
		}
		from = max(next, k+1) // always progress
	}
	return links
}

// textLinkMarks finds the characters a link must contain: '.', ':' and the
// IDNA full stops "。", "．" and "｡" (which start with the bytes 0xE3 and
// 0xEF). It remembers the next index of each, so that searching from a
// position that only grows stays linear. -1 means none left, -2 not
// searched yet.
type textLinkMarks struct {
	dot, colon, e3, ef int
}

// next returns the index of the first mark at or after from, or -1.
func (m *textLinkMarks) next(text string, from int) int {
	k := -1
	take := func(i int) {
		if i >= 0 && (k < 0 || i < k) {
			k = i
		}
	}
	take(textNextByte(text, &m.dot, from, '.'))
	take(textNextByte(text, &m.colon, from, ':'))
	for f := from; ; {
		i := textNextByte(text, &m.e3, f, 0xE3)
		if i < 0 || strings.HasPrefix(text[i:], "。") {
			take(i)
			break
		}
		f = i + 1
	}
	for f := from; ; {
		i := textNextByte(text, &m.ef, f, 0xEF)
		if i < 0 || strings.HasPrefix(text[i:], "．") || strings.HasPrefix(text[i:], "｡") {
			take(i)
			break
		}
		f = i + 1
	}
	return k
}

// textNextByte returns the index of the first c at or after from, using and
// updating the cached answer *at.
func textNextByte(text string, at *int, from int, c byte) int {
	if *at == -1 || *at >= from {
		return *at
	}
	*at = strings.IndexByte(text[from:], c)
	if *at >= 0 {
		*at += from
	}
	return *at
}

// textSchemeStart returns where the "http://" or "https://" whose "://" is at
// text[k] starts, and the character before it. A scheme may follow any
// character but an ASCII letter or digit, so that Chinese or Japanese text
// glued to a URL does not hide it, but "xhttp://" is not a URL.
func textSchemeStart(text string, pos, k int) (start int, prev rune, ok bool) {
	switch {
	case k-5 >= pos && strings.EqualFold(text[k-5:k], "https"):
		start = k - 5
	case k-4 >= pos && strings.EqualFold(text[k-4:k], "http"):
		start = k - 4
	default:
		return 0, 0, false
	}
	prev = ' '
	if start > 0 {
		prev, _ = utf8.DecodeLastRuneInString(text[:start])
	}
	return start, prev, !textIsASCIIAlnum(prev)
}

// textRunStart returns the start of the run of host characters around the
// full stop at text[k], and the visible character before it. It reports
// false when the run began before pos, inside the previous link.
func textRunStart(text string, pos, k int) (start int, prev rune, ok bool) {
	start, prev = k, ' '
	for start > pos {
		r, n := utf8.DecodeLastRuneInString(text[pos:start])
		if !textIsHostRune(r) && !textIsInvisible(r) {
			prev = r
			break
		}
		start -= n
	}
	if start == pos && pos > 0 {
		// Look further back for the character before, which must not
		// continue the run.
		for j := pos; j > 0; {
			r, n := utf8.DecodeLastRuneInString(text[:j])
			if textIsHostRune(r) {
				return 0, 0, false
			}
			if !textIsInvisible(r) {
				prev = r
				break
			}
			j -= n
		}
	}
	for start < k { // a link does not start with invisible characters
		r, n := utf8.DecodeRuneInString(text[start:])
		if !textIsInvisible(r) {
			break
		}
		start += n
	}
	return start, prev, true
}

func textIsASCIIAlnum(r rune) bool {
	return ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
}

// textAppendLink appends l unless a link with the same URL is already
// there. Messages hold few links, so a linear scan is used until there are
// textLinkScanMax of them; then a set keeps hostile input linear.
func textAppendLink(links []Link, seen map[string]struct{}, l Link) ([]Link, map[string]struct{}) {
	const textLinkScanMax = 16
	if seen == nil && len(links) >= textLinkScanMax {
		seen = make(map[string]struct{}, 2*len(links))
		for _, have := range links {
			seen[have.URL] = struct{}{}
		}
	}
	if seen != nil {
		if _, dup := seen[l.URL]; dup {
			return links, seen
		}
		seen[l.URL] = struct{}{}
		return append(links, l), seen
	}
	for _, have := range links {
		if have.URL == l.URL {
			return links, seen
		}
	}
	return append(links, l), seen
}

// textIsHostRune reports whether r may appear in a host name as written in
// chat: letters, digits, marks, hyphens and full stops (ASCII or IDNA).
func textIsHostRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 0 && textASCIIClass[r]&textClassHost != 0
	}
	return textIsIDNDot(r) || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// textIsIDNDot reports whether r is a full stop that IDNA treats as a label
// separator.
func textIsIDNDot(r rune) bool { return r == '。' || r == '．' || r == '｡' }

// textHostEnd returns the end of the run of host characters starting at i;
// invisible characters inside the run do not end it.
func textHostEnd(text string, i int) int {
	for i < len(text) {
		r, n := textDecode(text, i)
		if !textIsHostRune(r) && !textIsInvisible(r) {
			break
		}
		i += n
	}
	return i
}

// textLinkAt tries to read a link starting at text[i], a scheme or the start
// of a run of host characters; prev is the visible character before it.
func textLinkAt(text string, i int, prev rune) (l Link, end int, ok bool) {
	if n := textSchemeLen(text[i:]); n > 0 {
		// Read and check the authority before the rest of the URL, so
		// that a failed attempt costs only the authority's length and the
		// scan stays linear.
		start := i + n
		authEnd := textURLEnd(text, start, true)
		hasPath := authEnd < len(text) && strings.IndexByte("/?#\\", text[authEnd]) >= 0
		end = authEnd
		if !hasPath {
			end = textTrimURL(text, start, authEnd)
		}
		auth := text[start:end]
		if k := strings.LastIndexByte(auth, '@'); k >= 0 {
			auth = auth[k+1:]
		}
		host, ok := textStripPort(auth)
		if !ok {
			return Link{}, 0, false
		}
		domain, ok := textCanonicalHost(host, false)
		if !ok {
			return Link{}, 0, false
		}
		if hasPath {
			end = textTrimURL(text, i, textURLEnd(text, authEnd, false))
		}
		return Link{URL: text[i:end], Domain: domain}, end, true
	}
	if prev == '@' {
		return Link{}, 0, false // an e-mail address
	}
	h := textHostEnd(text, i)
	for h > i { // a full stop after a host ends the sentence
		r, n := utf8.DecodeLastRuneInString(text[i:h])
		if r != '.' && !textIsIDNDot(r) && !textIsInvisible(r) {
			break
		}
		h -= n
	}
	if !textHasDot(text[i:h]) {
		return Link{}, 0, false // most words: no need to fold them
	}
	domain, ok := textCanonicalHost(text[i:h], true)
	if !ok {
		return Link{}, 0, false
	}
	end = h
	if end < len(text) && text[end] == ':' { // port
		k := end + 1
		for k < len(text) && k-end <= 5 && '0' <= text[k] && text[k] <= '9' {
			k++
		}
		if k > end+1 && (k == len(text) || text[k] < '0' || text[k] > '9') {
			end = k
		}
	}
	if end < len(text) && (text[end] == '/' || text[end] == '?' || text[end] == '#') {
		end = max(textTrimURL(text, i, textURLEnd(text, end, false)), h)
	}
	return Link{URL: text[i:end], Domain: domain}, end, true
}

// textHasDot reports whether host holds a full stop, ASCII or IDNA.
func textHasDot(host string) bool {
	if strings.IndexByte(host, '.') >= 0 {
		return true
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			return strings.ContainsAny(host, "。．｡")
		}
	}
	return false
}

// textSchemeLen returns the length of a leading "http://" or "https://"
// (any case), or 0.
func textSchemeLen(s string) int {
	switch {
	case len(s) >= 8 && strings.EqualFold(s[:8], "https://"):
		return 8
	case len(s) >= 7 && strings.EqualFold(s[:7], "http://"):
		return 7
	}
	return 0
}

// textURLEnd returns where a URL that continues at text[i] ends: at white
// space, a control character or one of the delimiters <>"` that never
// appear unescaped in a URL; with authority set, also where the host and
// port end (at / ? # or a backslash, which browsers read as /).
func textURLEnd(text string, i int, authority bool) int {
	for i < len(text) {
		r, n := textDecode(text, i)
		switch {
		case r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == '"' || r == '`':
			return i
		case authority && (r == '/' || r == '?' || r == '#' || r == '\\'):
			return i
		case r >= utf8.RuneSelf && textIsSpace(r):
			return i
		}
		i += n
	}
	return i
}

// textTrimURL drops trailing punctuation from text[start:end] and returns the
// new end. A closing bracket is dropped only when the URL holds more
// closing than opening ones of its kind.
func textTrimURL(text string, start, end int) int {
	var paren, square, curly int // opening minus closing
	for _, c := range []byte(text[start:end]) {
		switch c {
		case '(':
			paren++
		case ')':
			paren--
		case '[':
			square++
		case ']':
			square--
		case '{':
			curly++
		case '}':
			curly--
		}
	}
	for end > start {
		r, n := utf8.DecodeLastRuneInString(text[start:end])
		switch r {
		case '.', ',', ':', ';', '!', '?', '\'', '"', '*', '_', '~',
			'’', '”', '»', '…', '。', '、', '，', '．', '！', '？', '：', '；', '」', '』', '】', '）', '｡':
		case ')':
			if paren >= 0 {
				return end
			}
			paren++
		case ']':
			if square >= 0 {
				return end
			}
			square++
		case '}':
			if curly >= 0 {
				return end
			}
			curly++
		default:
			if !textIsInvisible(r) {
				return end
			}
		}
		end -= n
	}
	return end
}

// textStripPort removes a ":port" from a host and the brackets from an IPv6
// literal.
func textStripPort(hostport string) (string, bool) {
	if strings.HasPrefix(hostport, "[") {
		k := strings.IndexByte(hostport, ']')
		if k < 0 {
			return "", false
		}
		rest := hostport[k+1:]
		if rest != "" && rest[0] != ':' {
			return "", false
		}
		return hostport[1:k], true
	}
	if k := strings.IndexByte(hostport, ':'); k >= 0 {
		hostport = hostport[:k]
	}
	return hostport, true
}

// textCanonicalHost returns the canonical form of a host as Link.Domain
// describes, and whether it is acceptable: for a bare host (no scheme) at
// least two well-formed labels and a known top-level domain; with a scheme
// any non-empty host of host characters.
func textCanonicalHost(host string, bare bool) (string, bool) {
	d, ok := textFoldHost(host)
	if !ok {
		return "", false
	}
	d = strings.TrimSuffix(d, ".")
	if strings.Trim(d, ".-_:") == "" {
		return "", false
	}
	dot := strings.LastIndexByte(d, '.')
	if bare {
		if dot < 0 || !textKnownTLD(d[dot+1:]) {
			return "", false
		}
		for label := range strings.SplitSeq(d, ".") {
			if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
				return "", false
			}
		}
	}
	if strings.HasPrefix(d, "www.") && strings.IndexByte(d[4:], '.') >= 0 {
		d = d[4:]
	}
	if strings.Contains(d, "xn--") {
		d = textDecodeIDNA(d)
	}
	return d, true
}

// textFoldHost lower-cases host, folds compatibility forms and IDNA full
// stops, drops invisible characters and checks that every character may
// appear in a host. Plain lower-case ASCII is returned as is, without
// allocating.
func textFoldHost(host string) (string, bool) {
	plain := true
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.':
		case c == '_' || c == ':': // seen in hosts with a scheme and IPv6
		default:
			plain = false
		}
	}
	if plain {
		return host, true
	}
	var b strings.Builder
	b.Grow(len(host))
	ascii := true
	for _, r := range host {
		switch {
		case textIsInvisible(r):
		case textIsIDNDot(r):
			b.WriteByte('.')
		case r == '_' || r == ':' || textIsHostRune(r):
			if r >= utf8.RuneSelf {
				ascii = false
			}
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	d := b.String()
	if !ascii {
		d = norm.NFKC.String(d)
		d = strings.Map(func(r rune) rune {
			if textIsIDNDot(r) {
				return '.'
			}
			return r
		}, d)
	}
	return strings.ToLower(d), true
}

// textDecodeIDNA replaces each "xn--" label of a lower-case domain with the
// Unicode it encodes (RFC 3492 punycode, by golang.org/x/net/idna); a label
// that does not decode, or decodes to nothing, is kept as written.
func textDecodeIDNA(domain string) string {
	labels := strings.Split(domain, ".")
	for i, label := range labels {
		if !strings.HasPrefix(label, "xn--") {
			continue
		}
		if u, err := idna.Punycode.ToUnicode(label); err == nil && u != "" && u != label {
			labels[i] = strings.ToLower(u)
		}
	}
	return strings.Join(labels, ".")
}

// textEncodeIDNA returns domain with each non-ASCII label in its "xn--"
// form, or "" when a label cannot be encoded.
func textEncodeIDNA(domain string) string {
	a, err := idna.Punycode.ToASCII(domain)
	if err != nil {
		return ""
	}
	return a
}

// textKnownTLD reports whether tld (lower-case, without the dot) is a
// top-level domain, so that a bare "name.tld" in chat is taken for a
// link: the ICANN section of the Public Suffix List (golang.org/x/net/
// publicsuffix, maintained upstream, so new TLDs such as .pics, .lat and
// .beauty are known), plus .onion and .eth, which are not ICANN's. It is
// consulted only for links written without a scheme; "https://anything"
// is always a link.
//
// A few TLDs that are far more often file extensions in chat (.md, .py,
// .rs, .ps, .zip, .mov) are left out, so "see main.rs" is not a link;
// they are still found with a scheme, "www." or a path.
func textKnownTLD(tld string) bool {
	switch tld {
	case "md", "py", "rs", "ps", "zip", "mov":
		return false
	case "onion", "eth":
		return true
	case "":
		return false
	}
	for i := 0; i < len(tld); i++ {
		if tld[i] >= utf8.RuneSelf {
			if tld = textEncodeIDNA(tld); tld == "" {
				return false
			}
			break
		}
	}
	_, icann := publicsuffix.PublicSuffix(tld)
	return icann
}

// DomainIn reports whether domain or one of its parent domains is in set:
// "sub.evil.com" is in a set holding "evil.com" (and, if a set holds a
// bare top-level domain such as "zip", every domain under it). Set keys must
// be in Link.Domain's canonical form: lower-case, without "www." or a
// trailing dot. To catch look-alike domains, also test
// Normalize(domain) against a set of normalized keys.
func DomainIn(domain string, set map[string]struct{}) bool {
	if len(set) == 0 {
		return false
	}
	domain = strings.TrimSuffix(domain, ".")
	for i := 0; i < len(domain); i++ {
		if c := domain[i]; 'A' <= c && c <= 'Z' {
			domain = strings.ToLower(domain)
			break
		}
	}
	for domain != "" {
		if _, ok := set[domain]; ok {
			return true
		}
		k := strings.IndexByte(domain, '.')
		if k < 0 {
			break
		}
		domain = domain[k+1:]
	}
	return false
}
