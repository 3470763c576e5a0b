package actions

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 30 ", 30 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"999999999", maxRetryWait},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q): got %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header http.Header
		want   RateLimit
	}{
		{"all present", http.Header{"X-Ratelimit-Limit": {"300"}, "X-Ratelimit-Remaining": {"12"}, "X-Ratelimit-Reset": {"1740830460"}},
			RateLimit{Limit: 300, Remaining: 12, Reset: time.Unix(1740830460, 0).UTC()}},
		{"absent", http.Header{}, RateLimit{}},
		{"malformed ignored", http.Header{"X-Ratelimit-Limit": {"lots"}, "X-Ratelimit-Remaining": {"-1"}, "X-Ratelimit-Reset": {"0"}}, RateLimit{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := parseRateLimit(tt.header)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.IsZero() != (tt.want == RateLimit{}) {
				t.Errorf("got IsZero %v, want %v", got.IsZero(), tt.want == RateLimit{})
			}
		})
	}
}

func TestParseAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   *APIError
	}{
		{
			name:   "stream input error",
			status: 400,
			body: `{"code":4,"message":"BanUser failed with error: \"either user or user_id must be provided when using server side auth\"",` +
				`"exception_fields":{"banned_by_id":"required"},"StatusCode":400,"duration":"0.1ms","more_info":"x","details":[],"unrecoverable":true}`,
			want: &APIError{StatusCode: 400, Code: 4, Unrecoverable: true,
				Message:         `BanUser failed with error: "either user or user_id must be provided when using server side auth"`,
				ExceptionFields: map[string]string{"banned_by_id": "required"}},
		},
		{
			name:   "stream rate limit with headers",
			status: 429,
			header: http.Header{"X-Ratelimit-Limit": {"300"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"1740830460"}, "Retry-After": {"5"}},
			body:   `{"code":9,"message":"Too many requests","StatusCode":429}`,
			want: &APIError{StatusCode: 429, Code: 9, Message: "Too many requests", RetryAfter: 5 * time.Second,
				RateLimit: RateLimit{Limit: 300, Remaining: 0, Reset: time.Unix(1740830460, 0).UTC()}},
		},
		{
			name:   "edge HTML 502",
			status: 502,
			body:   "<html><body><h1>502 Bad Gateway</h1></body></html>",
			want:   &APIError{StatusCode: 502, Message: "Bad Gateway (no Stream error body)"},
		},
		{
			name:   "edge plain-text 429",
			status: 429,
			body:   "Too Many Requests\n",
			want:   &APIError{StatusCode: 429, Message: "Too Many Requests"},
		},
		{
			name:   "empty body",
			status: 503,
			want:   &APIError{StatusCode: 503, Message: "Service Unavailable (no Stream error body)"},
		},
		{
			name:   "JSON that is not Stream's error",
			status: 500,
			body:   `{"error":"boom"}`,
			want:   &APIError{StatusCode: 500, Message: `{"error":"boom"}`},
		},
		{
			name:   "exception field that is not a string",
			status: 400,
			body:   `{"code":4,"message":"m","exception_fields":{"n":3}}`,
			want:   &APIError{StatusCode: 400, Code: 4, Message: "m", ExceptionFields: map[string]string{"n": "3"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			got := parseAPIError(tt.status, h, []byte(tt.body), now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
