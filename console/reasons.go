package console

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// Reasons are the reason templates a reviewer picks from when deciding an
// appeal, by outcome; free text may be added to (or stand instead of)
// one.
type Reasons struct {
	Upheld     []string
	Overturned []string
}

// maxReasonRunes is the longest reason template (the staff API's limit on
// a reason is 2000 characters, template and free text together).
const maxReasonRunes = 500

// DefaultReasons are the templates offered when no file is configured.
func DefaultReasons() *Reasons {
	return &Reasons{
		Upheld: []string{
			"The message breaks the community rules as the rule describes.",
			"The context confirms the rule's reading: the action stands.",
			"Repeated behaviour after earlier warnings.",
		},
		Overturned: []string{
			"Quoting, reporting or discussing abuse, not abusing.",
			"A false match: the words were harmless in context.",
			"The action was out of proportion to what was said.",
		},
	}
}

// LoadReasons reads reason templates from a file
// (MODERATOR_CONSOLE_REASONS): one per line, "upheld: text" or
// "overturned: text"; blank lines and lines starting with # are skipped.
// A bad line is an error naming file:line; each outcome needs at least one
// template.
func LoadReasons(path string) (*Reasons, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reason templates: %w", err)
	}
	return parseReasons(path, b)
}

func parseReasons(name string, b []byte) (*Reasons, error) {
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%s: over 1 MiB: not a list of reason templates", name)
	}
	rs := &Reasons{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		outcome, text, ok := strings.Cut(line, ":")
		text = strings.TrimSpace(text)
		switch {
		case !ok || (outcome != "upheld" && outcome != "overturned"):
			return nil, fmt.Errorf("%s:%d: want \"upheld: text\" or \"overturned: text\"", name, n)
		case text == "":
			return nil, fmt.Errorf("%s:%d: the reason is empty", name, n)
		case !utf8.ValidString(text) || strings.ContainsFunc(text, func(r rune) bool { return r < 0x20 }):
			return nil, fmt.Errorf("%s:%d: the reason must be UTF-8 text without control characters", name, n)
		case utf8.RuneCountInString(text) > maxReasonRunes:
			return nil, fmt.Errorf("%s:%d: the reason has over %d characters", name, n, maxReasonRunes)
		}
		if outcome == "upheld" {
			rs.Upheld = append(rs.Upheld, text)
		} else {
			rs.Overturned = append(rs.Overturned, text)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(rs.Upheld) == 0 || len(rs.Overturned) == 0 {
		return nil, fmt.Errorf("%s: needs at least one upheld and one overturned reason", name)
	}
	return rs, nil
}

// reason builds the decision's reason from the form: the chosen template
// (by its index among the outcome's, "" for none) and the free text,
// joined; one of them is required.
func (rs *Reasons) reason(outcome, template, free string) (string, error) {
	list := rs.Upheld
	if outcome == "overturned" {
		list = rs.Overturned
	}
	free = strings.TrimSpace(free)
	var chosen string
	if template != "" {
		var i int
		if _, err := fmt.Sscan(template, &i); err != nil || i < 0 || i >= len(list) || fmt.Sprint(i) != template {
			return "", fmt.Errorf("reason: not one of the %s reason templates", outcome)
		}
		chosen = list[i]
	}
	switch {
	case chosen == "" && free == "":
		return "", fmt.Errorf("reason: pick a reason or write one: it is kept in the audit trail")
	case chosen == "":
		return free, nil
	case free == "":
		return chosen, nil
	}
	return chosen + " " + free, nil
}
