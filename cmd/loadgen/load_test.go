package main

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/policy"
)

// stream is a fake webhook endpoint that checks every request the way the
// service must: Stream's headers, the signature over the uncompressed body,
// and a parseable event.
type stream struct {
	secret, key string
	status      func(n int) int // reply for the n-th request (0-based)

	mu       sync.Mutex
	n        int
	problems []string
	bodies   map[string][32]byte // webhook id → body hash
	attempts map[string]int      // X-Webhook-Attempt → count
	gzipped  int
}

func newStream(t *testing.T, status func(int) int) (*stream, *httptest.Server) {
	t.Helper()
	s := &stream{
		secret:   "test-secret",
		key:      "test-key",
		status:   status,
		bodies:   make(map[string][32]byte),
		attempts: make(map[string]int),
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	s.n++
	problem := func(format string, args ...any) {
		s.problems = append(s.problems, fmt.Sprintf("request %d: ", n)+fmt.Sprintf(format, args...))
		w.WriteHeader(http.StatusBadRequest)
	}
	if err != nil {
		problem("read body: %v", err)
		return
	}
	h := r.Header
	if r.Method != http.MethodPost || h.Get("Content-Type") != "application/json" || h.Get("X-Api-Key") != s.key {
		problem("method %s, Content-Type %q, X-Api-Key %q", r.Method, h.Get("Content-Type"), h.Get("X-Api-Key"))
		return
	}
	if h.Get("Accept-Encoding") != "" {
		problem("Accept-Encoding %q: compression negotiation is not disabled", h.Get("Accept-Encoding"))
		return
	}
	if h.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			problem("gzip: %v", err)
			return
		}
		if body, err = io.ReadAll(zr); err != nil {
			problem("gunzip: %v", err)
			return
		}
		s.gzipped++
	}
	mac := hmac.New(sha256.New, []byte(s.secret))
	mac.Write(body)
	want := fmt.Sprintf("%x", mac.Sum(nil))
	if !hmac.Equal([]byte(h.Get("X-Signature")), []byte(want)) {
		problem("X-Signature %q, want %q", h.Get("X-Signature"), want)
		return
	}
	if _, err := policy.ParseEvent(body); err != nil {
		problem("ParseEvent: %v", err)
		return
	}
	id, attempt := h.Get("X-Webhook-Id"), h.Get("X-Webhook-Attempt")
	sum := sha256.Sum256(body)
	prev, seen := s.bodies[id]
	switch {
	case id == "":
		problem("no X-Webhook-Id")
		return
	case seen && prev != sum:
		problem("webhook id %s re-sent with a different body", id)
		return
	case attempt != "1" && attempt != "2":
		problem("X-Webhook-Attempt %q, want 1 or 2", attempt)
		return
	}
	s.bodies[id] = sum
	s.attempts[attempt]++
	w.WriteHeader(s.status(n))
}

func always(code int) func(int) int { return func(int) int { return code } }

// runJSON runs the tool with -json against srv and returns its report.
func runJSON(t *testing.T, s *stream, url string, args ...string) (summary, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"-url", url, "-key", s.key, "-secret", s.secret, "-json"}, args...)
	err := run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr)
	var sum summary
	if jerr := json.Unmarshal(stdout.Bytes(), &sum); jerr != nil {
		t.Fatalf("run %v: decode -json output %q: %v (run error %v, stderr %s)", args, stdout.String(), jerr, err, stderr.String())
	}
	if strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("got -json output %q, want one line", stdout.String())
	}
	return sum, err
}

func TestRunEndToEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		status  func(int) int
		wantErr error
		// want* are the measured phase's counts.
		wantSent, wantWarm int
		wantStatus         map[string]int
		wantGzipped        bool
	}{
		{
			name:       "open loop bounded by count",
			args:       []string{"-rate", "2000", "-n", "200", "-concurrency", "8", "-duration", "1m"},
			status:     always(200),
			wantSent:   200,
			wantStatus: map[string]int{"200": 200},
		},
		{
			name:       "closed loop with gzip",
			args:       []string{"-rate", "0", "-n", "300", "-concurrency", "4", "-gzip"},
			status:     always(200),
			wantSent:   300,
			wantStatus: map[string]int{"200": 300},
			// Every request is checked to be gzip in the fake.
			wantGzipped: true,
		},
		{
			// Slots 0-19 are scheduled in the first 20 ms, so they and only
			// they are warm-up, however long the sends take.
			name:       "warm-up is not measured",
			args:       []string{"-rate", "1000", "-n", "100", "-warmup", "20ms", "-duration", "1m"},
			status:     always(200),
			wantSent:   80,
			wantWarm:   20,
			wantStatus: map[string]int{"200": 80},
		},
		{
			name:       "non-200 fails the run",
			args:       []string{"-rate", "0", "-n", "40", "-concurrency", "4"},
			status:     func(n int) int { return map[bool]int{true: 503, false: 200}[n%4 == 3] },
			wantErr:    errFailed,
			wantSent:   40,
			wantStatus: map[string]int{"200": 30, "503": 10},
		},
		{
			name:       "non-200 allowed without -expect-200",
			args:       []string{"-rate", "0", "-n", "40", "-concurrency", "4", "-expect-200=false"},
			status:     always(401),
			wantSent:   40,
			wantStatus: map[string]int{"401": 40},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, srv := newStream(t, tt.status)
			sum, err := runJSON(t, s, srv.URL+"/webhooks/stream", tt.args...)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("run: got error %v, want %v", err, tt.wantErr)
			}
			if sum.OK != (tt.wantErr == nil) {
				t.Errorf("got ok %t, want %t", sum.OK, tt.wantErr == nil)
			}
			if len(s.problems) > 0 {
				t.Errorf("the fake rejected %d requests, first: %s", len(s.problems), s.problems[0])
			}
			if sum.Sent != tt.wantSent || sum.Completed != tt.wantSent || sum.Warmup.Sent != tt.wantWarm {
				t.Errorf("got sent %d, completed %d, warm-up %d; want %d, %d, %d",
					sum.Sent, sum.Completed, sum.Warmup.Sent, tt.wantSent, tt.wantSent, tt.wantWarm)
			}
			if diff := cmp.Diff(tt.wantStatus, sum.Status); diff != "" {
				t.Errorf("status counts (-want +got):\n%s", diff)
			}
			if len(sum.Errors) != 0 || sum.Missed != 0 {
				t.Errorf("got errors %v, missed %d; want none", sum.Errors, sum.Missed)
			}
			total := tt.wantSent + tt.wantWarm
			if s.n != total || len(s.bodies) != total {
				t.Errorf("the fake got %d requests with %d distinct ids, want %d of each", s.n, len(s.bodies), total)
			}
			if tt.wantGzipped && s.gzipped != total {
				t.Errorf("the fake got %d gzip bodies, want %d", s.gzipped, total)
			}
			if len(sum.LatencyMS.distributionValues()) == 0 || sum.LatencyMS.Max < sum.LatencyMS.P50 || sum.LatencyMS.P50 <= 0 {
				t.Errorf("latency %+v: want 0 < p50 ≤ max", sum.LatencyMS)
			}
			// Per request, latency = lateness + response time, so every
			// percentile of the latency is at least the response time's.
			if l, r := sum.LatencyMS, sum.ResponseMS; r.P50 <= 0 || l.P50 < r.P50 || l.P99 < r.P99 || l.Max < r.Max {
				t.Errorf("latency %+v, response %+v: want response > 0 and latency ≥ response", l, r)
			}
			if sum.AchievedRPS <= 0 {
				t.Errorf("got achieved rate %v, want > 0", sum.AchievedRPS)
			}
		})
	}
}

// distributionValues lists the percentiles in order, for ordering checks.
func (d distribution) distributionValues() []float64 {
	return []float64{d.P50, d.P90, d.P99, d.P999, d.Max}
}

func TestRunDuplicates(t *testing.T) {
	t.Parallel()
	s, srv := newStream(t, always(200))
	sum, err := runJSON(t, s, srv.URL, "-rate", "0", "-n", "400", "-concurrency", "4", "-dup", "0.3")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(s.problems) > 0 {
		t.Fatalf("the fake rejected %d requests, first: %s", len(s.problems), s.problems[0])
	}
	if sum.Sent != 400 || s.n != 400 {
		t.Errorf("got %d sent, %d received; want 400", sum.Sent, s.n)
	}
	if sum.Duplicates < 60 || sum.Duplicates > 180 {
		t.Errorf("got %d duplicates of 400 with -dup 0.3, want about 120", sum.Duplicates)
	}
	if got, want := len(s.bodies), 400-sum.Duplicates; got != want {
		t.Errorf("the fake saw %d distinct webhook ids, want %d (400 - %d duplicates)", got, want, sum.Duplicates)
	}
	// A duplicate may overtake its original when both are in flight, so
	// the counts are compared, not the order.
	if got, want := s.attempts["2"], sum.Duplicates; got != want {
		t.Errorf("the fake saw %d requests with X-Webhook-Attempt 2, want %d", got, want)
	}
	if got, want := s.attempts["1"], len(s.bodies); got != want {
		t.Errorf("the fake saw %d requests with X-Webhook-Attempt 1, want one per id, %d", got, want)
	}
}

func TestRunBoundedByDuration(t *testing.T) {
	t.Parallel()
	t.Run("open loop", func(t *testing.T) {
		t.Parallel()
		s, srv := newStream(t, always(200))
		// 1000/s for 50 ms schedules slots 0-49. A slot that a slow machine
		// could not start before the end is counted as missed.
		sum, err := runJSON(t, s, srv.URL, "-rate", "1000", "-duration", "50ms", "-concurrency", "8")
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if got := sum.Sent + sum.Missed; got != 50 {
			t.Errorf("got sent %d + missed %d = %d, want 50", sum.Sent, sum.Missed, got)
		}
		if s.n != sum.Sent {
			t.Errorf("the fake got %d requests, want %d", s.n, sum.Sent)
		}
	})
	t.Run("closed loop", func(t *testing.T) {
		t.Parallel()
		s, srv := newStream(t, always(200))
		// 5000 requests in 20 ms would take 250,000 requests/s: the time
		// bound ends the run first.
		sum, err := runJSON(t, s, srv.URL, "-rate", "0", "-duration", "20ms", "-n", "5000", "-concurrency", "2")
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if sum.Sent == 0 || sum.Sent >= 5000 {
			t.Errorf("got %d sent, want some but fewer than the 5000 of -n", sum.Sent)
		}
		if s.n != sum.Sent || sum.Completed != sum.Sent {
			t.Errorf("got %d sent, %d completed, %d received; want all equal", sum.Sent, sum.Completed, s.n)
		}
	})
}

func TestRunTransportErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more
	s := &stream{key: "k", secret: "s"}
	sum, err := runJSON(t, s, url, "-rate", "0", "-n", "20", "-concurrency", "2")
	if !errors.Is(err, errFailed) {
		t.Errorf("run: got error %v, want %v", err, errFailed)
	}
	if diff := cmp.Diff(map[string]int{"connection_refused": 20}, sum.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if sum.Sent != 20 || sum.Completed != 0 || sum.OK {
		t.Errorf("got sent %d, completed %d, ok %t; want 20, 0, false", sum.Sent, sum.Completed, sum.OK)
	}
}

func TestRunTextReport(t *testing.T) {
	t.Parallel()
	s, srv := newStream(t, always(200))
	var stdout, stderr bytes.Buffer
	args := []string{"-url", srv.URL, "-rate", "0", "-n", "10", "-concurrency", "2"}
	env := map[string]string{"STREAM_API_KEY": s.key, "STREAM_API_SECRET": s.secret}
	if err := run(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if len(s.problems) > 0 {
		t.Fatalf("the fake rejected requests (key and secret from the environment?): %s", s.problems[0])
	}
	for _, want := range []string{
		"requests    sent 10  completed 10",
		"status      200: 10\n",
		"errors      none\n",
		"latency     p50 ",
		"p99.9 ",
		"req/s",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
}

// BenchmarkSend measures the tool's own cost per request against a
// handler that does nothing, which bounds the rate one core can offer.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	g, err := newGenerator(config{secret: "s", seed: 1}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	p, err := g.build(1000, 0)
	if err != nil {
		b.Fatal(err)
	}
	client := newClient(1, 10*time.Second)
	defer client.CloseIdleConnections()
	r := &runner{p: loadParams{url: srv.URL, key: "k"}, slots: p.slots, client: client}
	i := 0
	for b.Loop() {
		status, _, err := r.send(p.slots[i%len(p.slots)], 1)
		if err != nil || status != http.StatusOK {
			b.Fatalf("send: status %d, error %v", status, err)
		}
		i++
	}
}
