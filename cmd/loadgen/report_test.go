package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample p50", ms(1), 50, time.Millisecond},
		{"one sample p99.9", ms(1), 99.9, time.Millisecond},
		{"two samples p50 is the lower", ms(2), 50, 1 * time.Millisecond},
		{"two samples p51 is the upper", ms(2), 51, 2 * time.Millisecond},
		{"100 p50", ms(100), 50, 50 * time.Millisecond},
		{"100 p90", ms(100), 90, 90 * time.Millisecond},
		{"100 p99", ms(100), 99, 99 * time.Millisecond},
		{"100 p99.9 is the max", ms(100), 99.9, 100 * time.Millisecond},
		{"100 p100", ms(100), 100, 100 * time.Millisecond},
		{"1000 p99.9 not pushed up by float error", ms(1000), 99.9, 999 * time.Millisecond},
		{"1000 p99", ms(1000), 99, 990 * time.Millisecond},
		{"10 p0.1 is the min", ms(10), 0.1, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(tt.samples, tt.p); got != tt.want {
				t.Errorf("percentile(%d samples, %v) = %v, want %v", len(tt.samples), tt.p, got, tt.want)
			}
		})
	}
}

func TestDistributionOf(t *testing.T) {
	t.Parallel()
	// 1..1000 µs, shuffled: distributionOf must sort.
	samples := make([]time.Duration, 1000)
	for i := range samples {
		samples[i] = time.Duration((i*617)%1000+1) * time.Microsecond
	}
	got := distributionOf(samples)
	want := distribution{P50: 0.5, P90: 0.9, P99: 0.99, P999: 0.999, Max: 1, Mean: 0.501} // mean 500.5µs, rounded to the µs
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("distributionOf (-want +got):\n%s", diff)
	}
	if got := distributionOf(nil); got != (distribution{}) {
		t.Errorf("distributionOf(nil) = %+v, want zero", got)
	}
}

func TestSummaryFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    map[string]int
		errs      map[string]int
		warmErrs  map[string]int
		expect200 bool
		want      int
	}{
		{"all 200", map[string]int{"200": 5}, nil, nil, true, 0},
		{"non-200 counted when expected", map[string]int{"200": 5, "503": 2, "401": 1}, nil, nil, true, 3},
		{"non-200 ignored when not expected", map[string]int{"200": 5, "503": 2}, nil, nil, false, 0},
		{"transport errors always count", map[string]int{"200": 5}, map[string]int{"timeout": 2}, nil, false, 2},
		{"warm-up errors count", map[string]int{"200": 5}, nil, map[string]int{"eof": 1}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := summary{Status: tt.status, Errors: tt.errs, Warmup: phase{Errors: tt.warmErrs}}
			if got := s.failures(tt.expect200); got != tt.want {
				t.Errorf("failures(%t) = %d, want %d", tt.expect200, got, tt.want)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestErrorKind(t *testing.T) {
	t.Parallel()
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	tests := []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("post: %w", timeoutErr{}), "timeout"},
		{context.Canceled, "canceled"},
		{opErr(syscall.ECONNREFUSED), "connection_refused"},
		{opErr(syscall.ECONNRESET), "connection_reset"},
		{opErr(syscall.EPIPE), "broken_pipe"},
		{opErr(syscall.EADDRNOTAVAIL), "no_local_port"},
		{opErr(syscall.EMFILE), "too_many_open_files"},
		{fmt.Errorf("read response: %w", io.ErrUnexpectedEOF), "eof"},
		{io.EOF, "eof"},
		{errors.New("something else"), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.want+"/"+tt.err.Error(), func(t *testing.T) {
			t.Parallel()
			if got := errorKind(tt.err); got != tt.want {
				t.Errorf("errorKind(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
