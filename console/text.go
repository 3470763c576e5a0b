package console

import (
	"fmt"
	"html/template"
	"strings"
	"unicode"
	"unicode/utf8"
)

// chatText renders text a chat user wrote (or any other text from outside:
// a statement, a reason) as HTML that shows it harmlessly and visibly:
// every character escaped; control characters, bidirectional overrides and
// isolates, and invisible characters (zero-width spaces and joiners, the
// byte order mark) shown as escapes in a marked span, so that a reviewer
// sees that they are there and they cannot reorder or hide what follows;
// invalid UTF-8 shown byte by byte. Newlines stay line breaks. Text longer
// than max runes (0: no limit) is cut, with an ellipsis.
func chatText(s string, max int) template.HTML {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); {
		if max > 0 && n == max {
			b.WriteString(`<span class="cut">…</span>`)
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `<span class="esc" title="invalid byte">\x%02x</span>`, s[i])
		} else if esc, ok := visibleEscape(r); ok {
			fmt.Fprintf(&b, `<span class="esc" title="%s">%s</span>`, escapeTitle(r), esc)
		} else {
			template.HTMLEscape(&b, []byte(s[i:i+size]))
		}
		i += size
		n++
	}
	return template.HTML(b.String())
}

// visibleEscape returns how r is shown when it must not be shown as
// itself: a control character (but a newline), a format character (the
// bidirectional controls, zero-width characters, the byte order mark …),
// a line or paragraph separator, or an unassigned or private-use code
// point.
func visibleEscape(r rune) (string, bool) {
	switch {
	case r == '\n':
		return "", false
	case r == '\t':
		return `\t`, true
	case r == '\r':
		return `\r`, true
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf(`\x%02x`, r), true
	case unicode.Is(unicode.Cc, r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r),
		unicode.Is(unicode.Co, r), r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0, r == 0x034F:
		return fmt.Sprintf(`\u{%04X}`, r), true
	}
	return "", false
}

// escapeTitle names an escaped character for its tooltip.
func escapeTitle(r rune) string {
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return "bidirectional control character"
	case r == 0x200B, r == 0x200C, r == 0x200D, r == 0x2060, r == 0xFEFF, r == 0x180E:
		return "invisible character"
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return "control character"
	}
	return "hidden character"
}
