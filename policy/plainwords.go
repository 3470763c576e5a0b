package policy

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Errors in plain words: the parsers' messages are for engineers
// ("mismatched types time.Duration and int"); staff who write rules need
// to be told what to write instead. Each hint is added after the
// original message, which stays for searching.

var (
	reDurationMismatch = regexp.MustCompile(`mismatched types (time\.Duration and (int|float64|string)|(int|float64|string) and time\.Duration)`)
	reBadNumber        = regexp.MustCompile(`bad number syntax: "(\d+(ms|s|m|h|d|w)[0-9a-z]*)"`)
)

// exprHint returns what to write instead, for an expr-lang message, or "".
func exprHint(msg string) string {
	switch {
	case reDurationMismatch.MatchString(msg):
		return `a duration compares only with a duration: write it as duration("24h") (or "30m", "7d")`
	case reBadNumber.MatchString(msg):
		d := reBadNumber.FindStringSubmatch(msg)[1]
		return fmt.Sprintf(`quote the duration: duration(%q)`, d)
	case strings.Contains(msg, "invalid char escape"):
		return "in double quotes a backslash starts an escape (\\n, \\t); write a pattern with backslashes in backticks, like matches `\\d+`"
	case strings.Contains(msg, `unexpected token Operator("=")`):
		return "to compare, write == (a single = is not an operator)"
	}
	return ""
}

// yamlHint returns what to write instead, for a YAML syntax message, or
// "".
func yamlHint(msg string) string {
	switch {
	case strings.Contains(msg, "'\t'") || strings.Contains(msg, `\t`) || strings.Contains(strings.ToLower(msg), "tab"):
		return "a tab: indent with spaces, not tabs"
	case strings.Contains(msg, "value is not allowed in this context"),
		strings.Contains(msg, "did not find expected key"),
		strings.Contains(msg, "could not find expected ':'"),
		strings.Contains(msg, "unexpected key name"),
		strings.Contains(msg, "non-map value is specified"):
		return "indentation: this line or the next is indented differently from the keys beside it (the keys of one rule line up under its first key; list items start with - at one column)"
	}
	return ""
}

// withHint appends hint to msg, when there is one.
func withHint(msg, hint string) string {
	if hint == "" {
		return msg
	}
	return msg + ": " + hint
}

// placeExprError returns the file line and the message of an error in
// the expression src, the value of the key at keyLine whose text starts
// at valueLine: exprPos's place when it finds one, else the line
// arithmetic of a block scalar (valueLine + the error's line - 1).
func placeExprError(e exprError, lines []string, keyLine, valueLine int, src string) (int, string) {
	line, col := valueLine+e.line-1, e.col
	if l, c, ok := exprPos(lines, keyLine, src, e.from); ok {
		line = l
		if col > 0 {
			col = c
		}
	}
	return line, e.text(col)
}

// exprPos maps a position in an expression to the file. The expression
// is the YAML value of the key at keyLine (1-based) of lines; YAML may
// have folded its lines (>, or a plain scalar over several lines) or kept
// them (|), and stripped their indentation, but each line's text stays
// whole and in order, so each is found in src in turn. from is a rune
// offset in src; it returns the file's line and 1-based column, or false
// when the lines cannot be matched (a quoted scalar with escapes).
func exprPos(lines []string, keyLine int, src string, from int) (int, int, bool) {
	if keyLine < 1 || keyLine > len(lines) || from < 0 {
		return 0, 0, false
	}
	target := runeToByte(src, from)
	keyIndent := indentOf(lines[keyLine-1])
	pos := 0
	type segment struct{ start, end, line, col int }
	var last segment
	found := false
	for i := keyLine - 1; i < len(lines) && pos < len(strings.TrimRight(src, " \n")); i++ {
		text, offset := lines[i], 0
		if i == keyLine-1 {
			if c := strings.Index(text, ":"); c >= 0 {
				text, offset = text[c+1:], c+1
			}
		} else if strings.TrimSpace(text) != "" && indentOf(text) <= keyIndent {
			break // the next key
		}
		t := strings.TrimSpace(text)
		if t == "" || strings.HasPrefix(t, "#") || blockHeader(t) {
			continue
		}
		t = strings.Trim(t, `'"`)
		idx := strings.Index(src[pos:], t)
		if t == "" || idx < 0 {
			continue
		}
		seg := segment{start: pos + idx, end: pos + idx + len(t), line: i + 1,
			col: offset + strings.Index(text, t) + 1}
		if target < seg.end {
			col := seg.col
			if target > seg.start {
				col += utf8.RuneCountInString(src[seg.start:target])
			}
			return seg.line, col, true
		}
		last, found, pos = seg, true, seg.end
	}
	if !found {
		return 0, 0, false
	}
	return last.line, last.col + utf8.RuneCountInString(src[last.start:last.end]), true
}

func runeToByte(s string, runes int) int {
	for i := range s {
		if runes == 0 {
			return i
		}
		runes--
	}
	return len(s)
}

func indentOf(s string) int { return len(s) - len(strings.TrimLeft(s, " \t")) }

// blockHeader reports whether t is a block scalar's header (|, >-, |2+).
func blockHeader(t string) bool {
	return (t[0] == '|' || t[0] == '>') && strings.Trim(t[1:], "-+0123456789") == ""
}
