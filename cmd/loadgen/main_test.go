package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantUsage string // substring of the usage error; "" for success
		check     func(t *testing.T, c config)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c config) {
				if c.key != "dev-key" || c.secret != "dev-secret" || c.rate != 500 || c.concurrency != 64 || !c.expect200 {
					t.Errorf("got %+v, want the documented defaults", c)
				}
			},
		},
		{
			name: "key and secret from the environment",
			env:  map[string]string{"STREAM_API_KEY": "k", "STREAM_API_SECRET": "s"},
			check: func(t *testing.T, c config) {
				if c.key != "k" || c.secret != "s" {
					t.Errorf("got key %q secret %q, want k and s", c.key, c.secret)
				}
			},
		},
		{
			name: "flags beat the environment",
			args: []string{"-key", "fk", "-secret", "fs"},
			env:  map[string]string{"STREAM_API_KEY": "k", "STREAM_API_SECRET": "s"},
			check: func(t *testing.T, c config) {
				if c.key != "fk" || c.secret != "fs" {
					t.Errorf("got key %q secret %q, want fk and fs", c.key, c.secret)
				}
			},
		},
		{name: "negative rate", args: []string{"-rate", "-1"}, wantUsage: "-rate"},
		{name: "zero concurrency", args: []string{"-concurrency", "0"}, wantUsage: "-concurrency"},
		{name: "dup of one", args: []string{"-dup", "1"}, wantUsage: "-dup"},
		{name: "zero duration", args: []string{"-duration", "0s"}, wantUsage: "-duration"},
		{name: "bad url", args: []string{"-url", "127.0.0.1:8080"}, wantUsage: "-url"},
		{name: "unknown flag", args: []string{"-bogus"}, wantUsage: "bogus"},
		{name: "stray argument", args: []string{"extra"}, wantUsage: "extra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := noEnv
			if tt.env != nil {
				getenv = func(k string) string { return tt.env[k] }
			}
			c, err := parseConfig(tt.args, getenv, &bytes.Buffer{})
			if tt.wantUsage != "" {
				var uerr usageError
				if !errors.As(err, &uerr) || !strings.Contains(err.Error(), tt.wantUsage) {
					t.Fatalf("got error %v, want a usage error naming %s", err, tt.wantUsage)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h: got error %v, want flag.ErrHelp", err)
	}
	for _, f := range []string{"-url", "-rate", "-duration", "-concurrency", "-key", "-secret", "-n", "-body", "-gzip", "-dup", "-warmup", "-json", "-expect-200"} {
		if !strings.Contains(stderr.String(), "  "+f+" ") && !strings.Contains(stderr.String(), "  "+f+"\n") {
			t.Errorf("-h output lacks %s:\n%s", f, stderr.String())
		}
	}
}

func TestRequestCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		c          config
		want       int
		wantCapped bool
	}{
		{"explicit n", config{n: 7, rate: 500, duration: time.Minute}, 7, false},
		{"rate times duration and warm-up", config{rate: 500, duration: 30 * time.Second, warmup: 2 * time.Second}, 16000, false},
		{"fractional rounds up", config{rate: 2.5, duration: time.Second}, 3, false},
		{"at least one", config{rate: 0.1, duration: time.Second}, 1, false},
		{"closed loop default", config{rate: 0, duration: time.Hour}, defaultClosedLoopN, false},
		{"derived count capped", config{rate: 1e6, duration: time.Minute}, maxDerivedN, true},
		{"explicit n not capped", config{n: 2 * maxDerivedN, rate: 1e6, duration: time.Minute}, 2 * maxDerivedN, false},
		{"explicit n beyond what the rate sends", config{n: 100_000, rate: 10, duration: time.Second, warmup: time.Second}, 20, false},
		{"closed loop explicit n", config{n: 123, rate: 0, duration: time.Second}, 123, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, capped := tt.c.requestCount()
			if got != tt.want || capped != tt.wantCapped {
				t.Errorf("requestCount() = %d, %t; want %d, %t", got, capped, tt.want, tt.wantCapped)
			}
		})
	}
}
