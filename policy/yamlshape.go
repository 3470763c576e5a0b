package policy

import (
	"cmp"
	"fmt"
)

// Bounds on the shape of a rule file, checked before the YAML parser sees
// it. The parser's cost grows with the square of the nesting depth (a
// 40 KB "[[[[…" took 2.5 s and 640 MB) and about 1 KB of memory per
// value, so a hostile file is refused by a single linear pass instead.
// Real rule files nest about 8 deep and hold a few hundred values.
const (
	maxYAMLDepth  = 32
	maxYAMLValues = 50_000
)

// shapeScanner is the state of checkYAMLShape's pass over a file. It is
// not a YAML parser: it knows just enough (quotes, comments, block
// scalars, flow brackets, indentation, "- " and ": ") to over-estimate
// depth and value count, never to under-estimate them.
type shapeScanner struct {
	line       int
	values     int
	indents    []int // indentation of the open block levels
	flow       int   // open [ and { brackets
	quote      byte  // the open quote, or 0
	blockUntil int   // inside a block scalar: lines indented more than this belong to it; -1 otherwise
}

// checkYAMLShape returns "" when data nests at most maxYAMLDepth levels
// and holds at most maxYAMLValues values, else a problem and its line.
func checkYAMLShape(data []byte) (int, string) {
	s := &shapeScanner{blockUntil: -1}
	for start := 0; start < len(data); {
		end := start
		for end < len(data) && data[end] != '\n' {
			end++
		}
		s.line++
		if msg := s.scanLine(data[start:end]); msg != "" {
			return s.line, msg
		}
		start = end + 1
	}
	return 0, ""
}

func (s *shapeScanner) tooDeep(extra int) string {
	if len(s.indents)+s.flow+extra > maxYAMLDepth {
		return fmt.Sprintf("nested more than %d levels deep (a rule file needs about 8; is a bracket left open?)", maxYAMLDepth)
	}
	return ""
}

func (s *shapeScanner) value() string {
	if s.values++; s.values > maxYAMLValues {
		return fmt.Sprintf("more than %d YAML values in one file: split the rules over several files", maxYAMLValues)
	}
	return ""
}

// scanLine scans one line (without its newline).
func (s *shapeScanner) scanLine(b []byte) string {
	indent := 0
	for indent < len(b) && (b[indent] == ' ' || b[indent] == '\t') {
		indent++
	}
	blank := indent == len(b) || (s.quote == 0 && b[indent] == '#')
	if s.blockUntil >= 0 {
		if blank || indent > s.blockUntil {
			return "" // text of a block scalar (when: |)
		}
		s.blockUntil = -1
	}
	if blank && s.quote == 0 {
		return ""
	}
	if s.quote == 0 && s.flow == 0 {
		for len(s.indents) > 0 && s.indents[len(s.indents)-1] > indent {
			s.indents = s.indents[:len(s.indents)-1]
		}
		if len(s.indents) == 0 || s.indents[len(s.indents)-1] < indent {
			s.indents = append(s.indents, indent)
		}
	}
	if msg := s.value(); msg != "" {
		return msg
	}
	dashes := 0 // "- - x": sequences nested on one line
	valueStart := s.quote == 0
	for i := indent; i < len(b); i++ {
		c := b[i]
		if s.quote != 0 {
			i = s.skipQuoted(b, i)
			continue
		}
		if c == ' ' || c == '\t' {
			continue
		}
		if c == '#' && (i == 0 || b[i-1] == ' ' || b[i-1] == '\t') {
			return "" // a comment
		}
		atValue := valueStart
		valueStart = false
		switch {
		case c == '"' || c == '\'':
			if atValue {
				s.quote = c
			}
		case c == '[' || c == '{':
			if atValue || s.flow > 0 {
				s.flow++
				if msg := cmp.Or(s.tooDeep(dashes), s.value()); msg != "" {
					return msg
				}
				valueStart = true
			}
		case (c == ']' || c == '}') && s.flow > 0:
			s.flow--
		case c == ',' && s.flow > 0:
			if msg := s.value(); msg != "" {
				return msg
			}
			valueStart = true
		case (c == '-' || c == '?') && atValue && s.flow == 0 && (i+1 == len(b) || b[i+1] == ' '):
			dashes++
			if msg := cmp.Or(s.tooDeep(dashes), s.value()); msg != "" {
				return msg
			}
			valueStart = true
		case c == ':' && (i+1 == len(b) || b[i+1] == ' ' || s.flow > 0):
			if msg := s.value(); msg != "" {
				return msg
			}
			valueStart = true
		case (c == '|' || c == '>') && atValue && s.flow == 0 && blockIndicator(b[i+1:]):
			s.blockUntil = indent
			return ""
		}
	}
	return s.tooDeep(dashes)
}

// skipQuoted scans a quoted scalar from b[i], closing s.quote at its end,
// and returns the index of the last byte it consumed.
func (s *shapeScanner) skipQuoted(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch {
		case s.quote == '"' && b[i] == '\\':
			i++ // an escape: the next byte is not the end
		case b[i] == s.quote && s.quote == '\'' && i+1 < len(b) && b[i+1] == '\'':
			i++ // '' is a quote inside a single-quoted scalar
		case b[i] == s.quote:
			s.quote = 0
			return i
		}
	}
	return i
}

// blockIndicator reports whether rest (what follows | or >) is a block
// scalar header: chomping and indentation indicators, then nothing or a
// comment.
func blockIndicator(rest []byte) bool {
	for i, c := range rest {
		switch {
		case c == '-' || c == '+' || c >= '0' && c <= '9':
		case c == ' ' || c == '\t':
			for _, d := range rest[i:] {
				if d == '#' {
					return true
				}
				if d != ' ' && d != '\t' {
					return false
				}
			}
			return true
		default:
			return false
		}
	}
	return true
}
