package console

import (
	"strings"
	"testing"
)

func TestChatText(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{"hello", 0, "hello"},
		{`<script>alert("x")</script>`, 0, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`},
		{"a\u202Eb", 0, `a<span class="esc" title="bidirectional control character">\u{202E}</span>b`},
		{"zero\u200Bwidth", 0, `zero<span class="esc" title="invisible character">\u{200B}</span>width`},
		{"bell\x07", 0, `bell<span class="esc" title="control character">\x07</span>`},
		{"tab\there", 0, `tab<span class="esc" title="control character">\t</span>here`},
		{"two\nlines", 0, "two\nlines"},
		{"bad \xff byte", 0, `bad <span class="esc" title="invalid byte">\xff</span> byte`},
		{"\u2066iso\u2069", 0, `<span class="esc" title="bidirectional control character">\u{2066}</span>iso<span class="esc" title="bidirectional control character">\u{2069}</span>`},
		{"abcdef", 3, `abc<span class="cut">…</span>`},
		{"héllo wörld", 5, `héllo<span class="cut">…</span>`},
	} {
		if got := string(chatText(tt.in, tt.max)); got != tt.want {
			t.Errorf("chatText(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
	long := strings.Repeat("W", 5000)
	if got := string(chatText(long, 0)); got != long {
		t.Error("a 5,000-character line is changed")
	}
}

func TestParseReasons(t *testing.T) {
	t.Parallel()
	rs, err := parseReasons("reasons.txt", []byte("# reasons\n\nupheld: It stands.\noverturned: A quote.\noverturned:  Out of proportion. \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Upheld) != 1 || len(rs.Overturned) != 2 || rs.Overturned[1] != "Out of proportion." {
		t.Fatalf("reasons = %+v", rs)
	}
	for _, tt := range []struct{ in, want string }{
		{"upheld: a\nmaybe: b\n", "reasons.txt:2: want"},
		{"upheld:\n", "reasons.txt:1: the reason is empty"},
		{"upheld: a\x01b\n", "reasons.txt:1: the reason must be"},
		{"upheld: " + strings.Repeat("x", 501) + "\n", "reasons.txt:1: the reason has over 500"},
		{"upheld: only\n", "needs at least one upheld and one overturned"},
	} {
		if _, err := parseReasons("reasons.txt", []byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.in, err, tt.want)
		}
	}
	for _, tt := range []struct{ outcome, template, free, want, err string }{
		{"overturned", "0", "", "A quote.", ""},
		{"overturned", "1", "and kind", "Out of proportion. and kind", ""},
		{"upheld", "", " own words ", "own words", ""},
		{"upheld", "", "  ", "", "pick a reason"},
		{"upheld", "1", "", "", "not one of"},
		{"upheld", "-0", "", "", "not one of"},
		{"upheld", "00", "", "", "not one of"},
	} {
		got, err := rs.reason(tt.outcome, tt.template, tt.free)
		if got != tt.want || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("reason(%q, %q, %q) = %q, %v; want %q, %q", tt.outcome, tt.template, tt.free, got, err, tt.want, tt.err)
		}
	}
}
