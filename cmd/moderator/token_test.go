package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/appeals"
)

const tokenTestSecret = "token-test-secret-0123456789abcdef-xyz"

func TestTokenCommandMintsAVerifiableToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		want    appeals.Staff
		expires time.Duration
	}{
		{[]string{"--role", "reviewer", "--sub", "alice@example.com"}, appeals.Staff{Subject: "alice@example.com", Role: appeals.RoleReviewer}, 8 * time.Hour},
		{[]string{"--sub=bob", "--role=admin", "--ttl=15m"}, appeals.Staff{Subject: "bob", Role: appeals.RoleAdmin}, 15 * time.Minute},
		{[]string{"-role", "viewer", "-sub", "carol", "-ttl", "720h"}, appeals.Staff{Subject: "carol", Role: appeals.RoleViewer}, 720 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			// Taken here, not before the subtests: a parallel subtest may
			// wait minutes for its turn on a busy machine.
			now := time.Now()
			var stdout, stderr bytes.Buffer
			env := map[string]string{"MODERATOR_ADMIN_JWT_SECRET": tokenTestSecret}
			err := run(context.Background(), append([]string{"token"}, tt.args...), func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
			if err != nil {
				t.Fatalf("run: %v (stderr %q)", err, stderr.String())
			}
			out := stdout.String()
			if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") || stderr.Len() != 0 {
				t.Fatalf("stdout %q, stderr %q: want the token alone on one line and nothing else", out, stderr.String())
			}
			tok := strings.TrimSuffix(out, "\n")
			verify := func(at time.Time) (appeals.Staff, error) {
				a, err := appeals.NewAuthenticator(t.Context(), appeals.AuthConfig{
					HS256Secret: []byte(tokenTestSecret), Now: func() time.Time { return at }, Leeway: time.Second,
				})
				if err != nil {
					t.Fatal(err)
				}
				return a.Authenticate(t.Context(), tok)
			}
			got, err := verify(now.Add(tt.expires - time.Minute))
			if err != nil {
				t.Fatalf("the printed token does not verify: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("caller (-want +got):\n%s", diff)
			}
			if _, err := verify(now.Add(tt.expires + time.Minute)); err == nil {
				t.Errorf("the token is still valid after --ttl %s", tt.expires)
			}
		})
	}
}

func TestTokenCommandRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		secret string
		want   string
	}{
		{"no role", []string{"--sub", "alice"}, tokenTestSecret, "--role is required"},
		{"unknown role", []string{"--role", "root", "--sub", "alice"}, tokenTestSecret, `--role must be viewer, reviewer or admin, got "root"`},
		{"no sub", []string{"--role", "viewer"}, tokenTestSecret, "--sub is required"},
		{"blank sub", []string{"--role", "viewer", "--sub", "  "}, tokenTestSecret, "--sub is required"},
		{"unprintable sub", []string{"--role", "viewer", "--sub", "a\x1bb"}, tokenTestSecret, "--sub: sub contains the unprintable"},
		{"zero ttl", []string{"--role", "viewer", "--sub", "a", "--ttl", "0s"}, tokenTestSecret, "--ttl must be positive and at most 720h"},
		{"negative ttl", []string{"--role", "viewer", "--sub", "a", "--ttl", "-1h"}, tokenTestSecret, "--ttl must be positive"},
		{"ttl over 30 days", []string{"--role", "viewer", "--sub", "a", "--ttl", "721h"}, tokenTestSecret, "at most 720h (30 days), got 721h0m0s"},
		{"stray argument", []string{"--role", "viewer", "--sub", "a", "extra"}, tokenTestSecret, `unexpected argument "extra"`},
		{"no secret", []string{"--role", "viewer", "--sub", "a"}, "", "MODERATOR_ADMIN_JWT_SECRET is required"},
		{"short secret", []string{"--role", "viewer", "--sub", "a"}, "too-short-secret", "MODERATOR_ADMIN_JWT_SECRET: must be at least 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string {
				if k == "MODERATOR_ADMIN_JWT_SECRET" {
					return tt.secret
				}
				return ""
			}
			err := run(context.Background(), append([]string{"token"}, tt.args...), getenv, strings.NewReader(""), &stdout, &stderr)
			if err == nil {
				t.Fatalf("got no error, want one saying %q; stdout %q", tt.want, stdout.String())
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Fatalf("got error %q, want one line saying %q", msg, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("the error shows the secret")
			}
		})
	}
}

func TestTokenCommandBadFlagIsUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"token", "--role", "viewer", "--sub", "a", "--ttl", "soon"}, func(string) string { return tokenTestSecret }, strings.NewReader(""), &stdout, &stderr)
	if err != errUsage {
		t.Fatalf("got %v, want errUsage (exit 2)", err)
	}
	if !strings.Contains(stderr.String(), "-ttl") || stdout.Len() != 0 {
		t.Errorf("stderr %q should name -ttl; stdout %q should be empty", stderr.String(), stdout.String())
	}
}
