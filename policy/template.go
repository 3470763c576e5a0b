package policy

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Limits on templates (reasons and warnings).
const (
	maxTemplateBytes  = 2000
	maxPlaceholders   = 10
	maxRenderedRunes  = 2000
	maxEvidenceRunes  = 200
	maxEvidenceValues = 20
)

// template is a text with {{ expression }} placeholders, filled with the
// values a matched rule saw: "link from an account {{user.account_age}}
// old". Each placeholder is type-checked at load like a rule's condition.
type template struct {
	parts []templatePart
}

type templatePart struct {
	lit  string
	prog *program
}

// parseTemplate compiles src. An error's line is relative to src.
func (c *exprCompiler) parseTemplate(src string) (*template, []exprError) {
	if len(src) > maxTemplateBytes {
		return nil, []exprError{lineError(1, fmt.Sprintf("text is %d bytes long; the limit is %d", len(src), maxTemplateBytes))}
	}
	t := &template{}
	rest := src
	line := 1
	for rest != "" {
		open := strings.Index(rest, "{{")
		if open < 0 {
			t.parts = append(t.parts, templatePart{lit: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, templatePart{lit: rest[:open]})
		}
		line += strings.Count(rest[:open], "\n")
		end := strings.Index(rest[open:], "}}")
		if end < 0 {
			return nil, []exprError{lineError(line, "{{ without a closing }}")}
		}
		inner := rest[open+2 : open+end]
		if len(t.parts) >= 2*maxPlaceholders {
			return nil, []exprError{lineError(line, fmt.Sprintf("more than %d placeholders", maxPlaceholders))}
		}
		p, errs := c.compile(strings.TrimSpace(inner), kindValue, false)
		if len(errs) > 0 {
			for i := range errs {
				errs[i].line += line - 1
				errs[i].from = -1 // an offset in the placeholder, not the text
				errs[i].msg = "in {{" + strings.TrimSpace(inner) + "}}: " + errs[i].msg
			}
			return nil, errs
		}
		t.parts = append(t.parts, templatePart{prog: p})
		line += strings.Count(rest[open:open+end], "\n")
		rest = rest[open+end+2:]
	}
	return t, nil
}

// literal returns the template's fixed text.
func (t *template) literal() string {
	var b strings.Builder
	for _, p := range t.parts {
		b.WriteString(p.lit)
	}
	return b.String()
}

// needs returns the derived values the placeholders read.
func (t *template) needs() needs {
	var nd needs
	if t != nil {
		for _, p := range t.parts {
			if p.prog != nil {
				nd |= p.prog.needs
			}
		}
	}
	return nd
}

// historyKeys returns the history values the placeholders read.
func (t *template) historyKeys() []HistoryKey {
	var keys []HistoryKey
	if t != nil {
		for _, p := range t.parts {
			if p.prog != nil {
				for _, u := range p.prog.history {
					keys = append(keys, u.key)
				}
			}
		}
	}
	return keys
}

// render fills the template. A placeholder that fails shows as "?" rather
// than losing the whole text.
func (t *template) render(m *vm.VM, env *Env) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := m.Run(p.prog.prog, env)
		if err != nil {
			b.WriteString("?")
			continue
		}
		b.WriteString(formatText(v))
	}
	return truncateRunes(b.String(), maxRenderedRunes)
}

// formatText writes a value for people: durations rounded to what matters
// ("3h0m0s"), lists joined with commas, times in RFC 3339.
func formatText(v any) string {
	switch v := evidenceValue(v).(type) {
	case nil:
		return ""
	case string:
		return v
	case []string:
		return strings.Join(v, ", ")
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = formatText(e)
		}
		return strings.Join(parts, ", ")
	default:
		return fmt.Sprint(v)
	}
}

// evidenceValue turns a value an expression read into what the audit
// trail stores: JSON-friendly, and bounded (long texts and lists are cut,
// with "…" marking the cut).
func evidenceValue(v any) any {
	switch v := v.(type) {
	case time.Duration:
		if v == unknownDuration {
			return "unknown"
		}
		return v.String()
	case time.Time:
		if v.IsZero() {
			return nil
		}
		return v.UTC().Format(time.RFC3339)
	case string:
		return truncateRunes(v, maxEvidenceRunes)
	case []string:
		n := min(len(v), maxEvidenceValues)
		out := make([]string, n, n+1)
		for i := range n {
			out[i] = truncateRunes(v[i], maxEvidenceRunes)
		}
		if len(v) > n {
			out = append(out, fmt.Sprintf("… %d more", len(v)-n))
		}
		return out
	case []any:
		n := min(len(v), maxEvidenceValues)
		out := make([]any, n, n+1)
		for i := range n {
			out[i] = evidenceValue(v[i])
		}
		if len(v) > n {
			out = append(out, fmt.Sprintf("… %d more", len(v)-n))
		}
		return out
	case []AttachmentEnv:
		out := make([]string, 0, len(v))
		for _, a := range v[:min(len(v), maxEvidenceValues)] {
			out = append(out, cmp.Or(a.Type, "attachment")+" "+truncateRunes(cmp.Or(a.TitleLink, a.AssetURL, a.ImageURL), maxEvidenceRunes))
		}
		return out
	}
	return v
}
