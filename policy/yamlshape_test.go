package policy

import (
	"strings"
	"testing"
)

// TestCheckYAMLShape: brackets and quotes inside scalars, comments and
// block scalars do not count, and nesting cannot be hidden behind them.
func TestCheckYAMLShape(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	tests := []struct {
		name     string
		data     string
		wantLine int // 0: accepted
	}{
		{"brackets in a double-quoted string", `when: "` + deep + `"`, 0},
		{"brackets in a single-quoted string", `when: 'it''s ` + deep + `'`, 0},
		{"brackets in a comment", "a: 1 # " + deep, 0},
		{"brackets in a block scalar", "when: |\n  " + deep + "\n  don't\nb: 2\n", 0},
		{"brackets in a folded scalar with a comment", "when: >- # c\n  " + deep + "\nb: 2\n", 0},
		{"apostrophe in a plain scalar", "description: don't [stop\nb: [1, 2]\n", 0},
		{"escaped quote", `a: ["\"` + deep + `"]`, 0},
		{"multi-line quoted string", "a: \"x\n  " + deep + "\n  y\"\nb: 1\n", 0},
		{"flow nesting", "a: " + deep, 1},
		{"nesting after a closed string", `a: ["]]]]]]]]", ` + deep + `]`, 1},
		{"nesting after a block scalar", "a: |\n  x\nb: " + deep, 3},
		{"nesting across lines", "a: [\n" + strings.Repeat("[\n", 40), 32},
		{"compact sequences", "a:\n  " + strings.Repeat("- ", 40) + "x\n", 2},
		{"a | that is not a block scalar", "a: b |\n  " + deep, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			line, msg := checkYAMLShape([]byte(tt.data))
			if line != tt.wantLine || (tt.wantLine == 0) != (msg == "") {
				t.Errorf("got line %d %q, want line %d", line, msg, tt.wantLine)
			}
		})
	}
}
