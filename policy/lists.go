package policy

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on word list files, so that a list cannot exhaust memory at load.
const (
	maxListEntries   = 100_000
	maxListLineBytes = 256
	maxPhraseWords   = 5
)

// wordList is a word list file compiled into sets. Entries are stored in
// every form a rule may compare them with, so a lookup is one map access:
// as written, lower-cased and normalised (to match text.words), and as a
// domain (for domain_in).
type wordList struct {
	file      string
	entries   map[string]struct{}
	collapsed map[string]struct{} // single-word entries with every run of a letter cut to one
	phrases   map[string]struct{} // normalised multi-word entries, words joined by one space
	starts    map[string]struct{} // first words of the phrases
	maxPhrase int                 // words in the longest phrase
	domains   map[string]struct{}
	// warnings are entries that load but are likely mistakes (the load
	// report's notes): duplicates, one-letter words, URLs, an empty list.
	warnings []Problem
}

// parseWordList compiles a word list: one entry per line, blank lines and
// lines starting with # ignored, and a trailing " # comment" stripped.
func parseWordList(file string, data []byte) (*wordList, []Problem) {
	l := &wordList{
		file:      file,
		entries:   make(map[string]struct{}),
		collapsed: make(map[string]struct{}),
		phrases:   make(map[string]struct{}),
		starts:    make(map[string]struct{}),
		domains:   make(map[string]struct{}),
	}
	var problems []Problem
	bad := func(line int, format string, args ...any) {
		problems = append(problems, Problem{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	warn := func(line int, format string, args ...any) {
		l.warnings = append(l.warnings, Problem{File: file, Line: line, Msg: "warning: " + fmt.Sprintf(format, args...)})
	}
	seen := make(map[string]int) // entries lower-cased, by line
	count := 0
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.Index(text, " #"); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if len(text) > maxListLineBytes {
			bad(line, "entry is %d bytes long; the limit is %d", len(text), maxListLineBytes)
			continue
		}
		if !utf8.ValidString(text) {
			bad(line, "entry is not valid UTF-8")
			continue
		}
		if count++; count > maxListEntries {
			bad(line, "list has more than %d entries", maxListEntries)
			break
		}
		lower := strings.ToLower(text)
		if prev, dup := seen[lower]; dup {
			warn(line, "%q is also at line %d", text, prev)
			continue
		}
		seen[lower] = line
		l.entries[text] = struct{}{}
		l.entries[lower] = struct{}{}
		norm := Normalize(text)
		words := Words(norm)
		switch {
		case strings.Contains(lower, "://"):
			warn(line, "%q is a URL: it matches only as a domain (domain_in), never as words", text)
		case len(words) == 1 && utf8.RuneCountInString(words[0]) == 1:
			warn(line, "%q is one letter: as a word it matches every %q in every message", text, words[0])
		}
		switch {
		case len(words) == 0:
			bad(line, "entry %q has no letters or digits to match", text)
			continue
		case len(words) == 1:
			l.entries[words[0]] = struct{}{}
			l.collapsed[CollapseRepeats(words[0])] = struct{}{}
		case len(words) > maxPhraseWords:
			bad(line, "phrase %q has %d words; the limit is %d", text, len(words), maxPhraseWords)
			continue
		default:
			l.phrases[strings.Join(words, " ")] = struct{}{}
			l.starts[words[0]] = struct{}{}
			l.maxPhrase = max(l.maxPhrase, len(words))
		}
		for _, d := range domainForms(domainEntry(text)) {
			l.domains[d] = struct{}{}
		}
	}
	if err := sc.Err(); err != nil {
		bad(0, "read list: %v", err)
	}
	if count == 0 && len(problems) == 0 {
		warn(0, "the list is empty: rules that read it never match with it")
	}
	return l, problems
}

// domainEntry returns the domain an entry names, for domain lists written
// loosely ("https://www.Example.com/path" → "example.com"), or "" when the
// entry does not look like a domain.
func domainEntry(s string) string {
	d := strings.ToLower(s)
	d = strings.TrimPrefix(d, "https://")
	d = strings.TrimPrefix(d, "http://")
	d = strings.TrimPrefix(d, "www.")
	if i := strings.IndexAny(d, "/?#:"); i >= 0 {
		d = d[:i]
	}
	d = strings.Trim(d, ".")
	if !strings.Contains(d, ".") || strings.ContainsAny(d, " \t") {
		return ""
	}
	return d
}

// domainForms returns a domain entry in every form a link's domain may
// take: links carry Unicode (an "xn--" label decoded), but rules may also
// pass a domain in punycode, so "xn--80ak6aa92e.com" and "аррӏе.com"
// each match the other.
func domainForms(d string) []string {
	if d == "" {
		return nil
	}
	forms := []string{d}
	if u := textDecodeIDNA(d); u != d {
		forms = append(forms, u)
	}
	if a := textEncodeIDNA(d); a != "" && a != d {
		forms = append(forms, a)
	}
	return forms
}

// has reports whether x is an entry. A word stretched with a run of three
// or more of one letter ("fuuuuck", "asssss", "frreeeee") is also looked up
// with its runs cut to two (Squeeze) and, against the entries' own
// collapsed forms, to one (CollapseRepeats). Only stretched words get the
// second chance, so "good" never matches an entry "god".
func (l *wordList) has(x string) bool {
	if _, ok := l.entries[x]; ok {
		return true
	}
	if !hasLongRun(x) {
		return false
	}
	if _, ok := l.entries[Squeeze(x)]; ok {
		return true
	}
	_, ok := l.collapsed[CollapseRepeats(x)]
	return ok
}

// hits returns the elements of xs that are entries, and the phrases of
// the list that appear as consecutive elements, in order, without
// repeats. It returns nil when there are none.
func (l *wordList) hits(xs []string, first bool) []string {
	var out []string
	add := func(s string) {
		for _, o := range out {
			if o == s {
				return
			}
		}
		out = append(out, s)
	}
	for i, x := range xs {
		if l.has(x) {
			add(x)
			if first {
				return out
			}
		}
		if l.maxPhrase == 0 {
			continue
		}
		if _, ok := l.starts[x]; !ok {
			continue
		}
		for n := 2; n <= l.maxPhrase && i+n <= len(xs); n++ {
			p := strings.Join(xs[i:i+n], " ")
			if _, ok := l.phrases[p]; ok {
				add(p)
				if first {
					return out
				}
			}
		}
	}
	return out
}

// domainHits returns the domains of ds that are in the list or under a
// domain in it.
func (l *wordList) domainHits(ds []string, first bool) []string {
	var out []string
	for _, d := range ds {
		if DomainIn(d, l.domains) {
			out = append(out, d)
			if first {
				return out
			}
		}
	}
	return out
}

// hasLongRun reports whether s repeats one character three or more times
// in a row.
func hasLongRun(s string) bool {
	var prev rune = -1
	run := 0
	for _, r := range s {
		if r == prev {
			if run++; run >= 3 {
				return true
			}
			continue
		}
		prev, run = r, 1
	}
	return false
}
