package webhook

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadBody: the body is read whole, whatever its Content-Length says
// (right, absent, too small, too large), and never past limit+1 bytes.
func TestReadBody(t *testing.T) {
	t.Parallel()
	const limit = 64
	for _, tt := range []struct {
		name   string
		body   string
		length int64 // the request's Content-Length; -1: unknown
		want   string
	}{
		{"as its length says", "hello", 5, "hello"},
		{"length unknown", "hello", -1, "hello"},
		{"longer than its length", "hello world", 5, "hello world"},
		{"shorter than its length", "hi", 5, "hi"},
		{"over the limit, length unknown", strings.Repeat("x", 100), -1, strings.Repeat("x", limit+1)},
		{"over the limit, length too", strings.Repeat("x", 100), 100, strings.Repeat("x", limit+1)},
		{"at the limit", strings.Repeat("x", limit), limit, strings.Repeat("x", limit)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", bytes.NewReader([]byte(tt.body)))
			r.ContentLength = tt.length
			got, err := readBody(r, limit)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
		})
	}
}
