package actions_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/actions"
	"moderator/actions/streamtest"
)

func TestClassification(t *testing.T) {
	t.Parallel()
	api := func(status, code int, msg string) error {
		return fmt.Errorf("ban user u1: %w", &actions.APIError{StatusCode: status, Code: code, Message: msg})
	}
	const (
		retryable = "retryable"
		permanent = "permanent"
		done      = "done"
	)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"network reset", fmt.Errorf("POST /moderation/ban: %w", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}), retryable},
		{"unexpected EOF", io.ErrUnexpectedEOF, retryable},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), retryable},
		{"canceled: outcome unknown", fmt.Errorf("x: %w", context.Canceled), retryable},
		{"408", api(408, 23, "timeout"), retryable},
		{"429", api(429, 9, "Too many requests"), retryable},
		{"500", api(500, -1, "internal"), retryable},
		{"502 edge", api(502, 0, "Bad Gateway (no Stream error body)"), retryable},
		{"503", api(503, 0, ""), retryable},
		{"500 unrecoverable", fmt.Errorf("x: %w", &actions.APIError{StatusCode: 500, Code: -1, Unrecoverable: true}), permanent},
		{"429 unrecoverable", fmt.Errorf("x: %w", &actions.APIError{StatusCode: 429, Code: 9, Unrecoverable: true}), permanent},
		{"400 missing field", api(400, 4, `BanUser failed with error: "target_user_id is a required field"`), permanent},
		{"400 acting user", api(400, 4, `Flag failed with error: "either user or user_id must be provided when using server side auth"`), permanent},
		{"401 bad key", api(401, 2, "api_key not valid"), permanent},
		{"401 signature", api(401, 43, "signature is not valid"), permanent},
		{"403 not allowed", api(403, 17, "not allowed"), permanent},
		{"404 does not exist", api(404, 16, "message m1 does not exist"), permanent},
		{"413 too big", api(413, 22, "payload too big"), permanent},
		{"3xx", api(302, 0, "Found"), permanent},
		{"invalid request", fmt.Errorf("ban user: %w: empty", actions.ErrInvalidRequest), permanent},
		{"already flagged", api(400, 4, `Flag failed with error: "message m1 was already flagged by user bot"`), done},
		{"message ID exists", api(400, 4, `SendMessage failed with error: "a message with ID w1 already exists"`), done},
		{"already, edge without code", api(400, 0, "Already Flagged"), done},
		{"conflict", api(409, 0, "Conflict"), done},
		{"already in a 401 is not done", api(401, 40, "token already expired"), permanent},
		{"already in a 5xx is not done", api(500, -1, "already on fire"), retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := map[string]bool{
				retryable: actions.IsRetryable(tt.err),
				permanent: actions.IsPermanent(tt.err),
				done:      actions.IsAlreadyDone(tt.err),
			}
			want := map[string]bool{retryable: false, permanent: false, done: false}
			want[tt.want] = true
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%v (-want +got):\n%s", tt.err, diff)
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		t.Parallel()
		if actions.IsRetryable(nil) || actions.IsPermanent(nil) || actions.IsAlreadyDone(nil) || actions.IsNotFound(nil) {
			t.Error("got a class for a nil error, want none")
		}
	})
}

func TestIsNotFound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{&actions.APIError{StatusCode: 404}, true},
		{fmt.Errorf("w: %w", &actions.APIError{StatusCode: 400, Code: 16}), true},
		{&actions.APIError{StatusCode: 400, Code: 4}, false},
		{errors.New("x"), false},
	}
	for _, tt := range tests {
		if got := actions.IsNotFound(tt.err); got != tt.want {
			t.Errorf("IsNotFound(%v): got %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestRetryAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 40, 0, time.UTC)
	reset := now.Add(20 * time.Second)
	tests := []struct {
		name string
		err  error
		want time.Time
	}{
		{"429 with reset", &actions.APIError{StatusCode: 429, Code: 9, RateLimit: actions.RateLimit{Limit: 300, Reset: reset}}, reset},
		{"Retry-After wins over reset", &actions.APIError{StatusCode: 429, RetryAfter: time.Second, RateLimit: actions.RateLimit{Reset: reset}}, now.Add(time.Second)},
		{"503 with Retry-After", fmt.Errorf("w: %w", &actions.APIError{StatusCode: 503, RetryAfter: 30 * time.Second}), now.Add(30 * time.Second)},
		{"429 with a past reset", &actions.APIError{StatusCode: 429, RateLimit: actions.RateLimit{Reset: now.Add(-time.Second)}}, time.Time{}},
		{"429 without hints", &actions.APIError{StatusCode: 429}, time.Time{}},
		{"500 with a reset is no hint", &actions.APIError{StatusCode: 500, RateLimit: actions.RateLimit{Reset: reset}}, time.Time{}},
		{"bogus far reset is capped", &actions.APIError{StatusCode: 429, RateLimit: actions.RateLimit{Reset: now.Add(48 * time.Hour)}}, now.Add(time.Hour)},
		{"not an API error", errors.New("x"), time.Time{}},
		{"nil", nil, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := actions.RetryAt(tt.err, now); !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestErrorsFromTheFake parses real answers off the wire: Stream's JSON
// errors, a 429 with its headers, and a non-JSON edge page.
func TestErrorsFromTheFake(t *testing.T) {
	t.Parallel()
	clock := streamtest.NewClock(time.Date(2025, 3, 1, 12, 0, 40, 0, time.UTC))
	reset := time.Date(2025, 3, 1, 12, 1, 0, 0, time.UTC)
	tests := []struct {
		name   string
		answer streamtest.Answer
		want   *actions.APIError
		class  func(error) bool
	}{
		{
			name:   "503",
			answer: streamtest.Status(503),
			want: &actions.APIError{StatusCode: 503, Code: -1, Message: `BanUser failed with error: "scripted 503 Service Unavailable"`,
				RateLimit: actions.RateLimit{Limit: 300, Remaining: 300, Reset: reset}},
			class: actions.IsRetryable,
		},
		{
			name:   "rate limited",
			answer: streamtest.RateLimited(reset).WithHeader("Retry-After", "20"),
			want: &actions.APIError{StatusCode: 429, Code: 9, RetryAfter: 20 * time.Second,
				Message:   `BanUser failed with error: "Too many requests, check response headers for more information."`,
				RateLimit: actions.RateLimit{Limit: 300, Remaining: 0, Reset: reset}},
			class: actions.IsRetryable,
		},
		{
			name:   "unrecoverable 500",
			answer: streamtest.Status(500).Unrecoverable(),
			want: &actions.APIError{StatusCode: 500, Code: -1, Unrecoverable: true,
				Message:   `BanUser failed with error: "scripted 500 Internal Server Error"`,
				RateLimit: actions.RateLimit{Limit: 300, Remaining: 300, Reset: reset}},
			class: actions.IsPermanent,
		},
		{
			name:   "edge HTML",
			answer: streamtest.Raw(502, "text/html", "<html><h1>502 Bad Gateway</h1></html>"),
			want: &actions.APIError{StatusCode: 502, Message: "Bad Gateway (no Stream error body)",
				RateLimit: actions.RateLimit{Limit: 300, Remaining: 300, Reset: reset}},
			class: actions.IsRetryable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, s := setup(t, streamtest.WithClock(clock.Now))
			s.Script(streamtest.RouteBan, tt.answer)
			r, err := c.Ban(context.Background(), actions.BanRequest{TargetUserID: "u1"})
			var got *actions.APIError
			if !errors.As(err, &got) {
				t.Fatalf("got %v, want an *APIError", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !tt.class(err) {
				t.Errorf("got %v misclassified", err)
			}
			if r.StatusCode != tt.want.StatusCode {
				t.Errorf("got Response.StatusCode %d, want %d", r.StatusCode, tt.want.StatusCode)
			}
			if !strings.HasPrefix(err.Error(), "ban user u1: POST /moderation/ban: stream answered HTTP ") {
				t.Errorf("got message %q, want the operation, the route and the status", err)
			}
			if strings.Contains(err.Error(), knownToken) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("got message %q, which leaks a credential", err)
			}
		})
	}
}

// TestWrongSecretIsPermanent checks, through the client,
// that a wrong secret is refused with a permanent error.
func TestWrongSecretIsPermanent(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t)
	c, err := actions.NewClient(actions.ClientConfig{BaseURL: s.URL, APIKey: s.Key, APISecret: "not-the-secret", BotUserID: bot})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.FlagUser(context.Background(), "u1", actions.FlagOptions{})
	var ae *actions.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != 43 || !actions.IsPermanent(err) {
		t.Errorf("got %v, want a permanent 401 code 43", err)
	}
	if strings.Contains(err.Error(), "not-the-secret") {
		t.Errorf("got %q, which contains the secret", err)
	}
}

func BenchmarkBan(b *testing.B) {
	s := streamtest.New(b, streamtest.WithoutRateLimits())
	c, err := actions.NewClient(actions.ClientConfig{BaseURL: s.URL, APIKey: s.Key, APISecret: s.Secret, BotUserID: bot})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	req := actions.BanRequest{TargetUserID: "u1", Reason: "spam", Timeout: time.Hour}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Ban(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
