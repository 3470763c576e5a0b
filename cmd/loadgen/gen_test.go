package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"moderator/policy"
)

// buildPlan builds n requests from cfg, failing the test on error.
func buildPlan(t testing.TB, cfg config, n int) *plan {
	t.Helper()
	g, err := newGenerator(cfg, io.Discard)
	if err != nil {
		t.Fatalf("newGenerator: %v", err)
	}
	g.now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // reproducible bodies
	p, err := g.build(n, cfg.dup)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return p
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip reader: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func TestGeneratedBodies(t *testing.T) {
	t.Parallel()
	const n = 500
	for _, gz := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "gzip"}[gz], func(t *testing.T) {
			t.Parallel()
			cfg := config{secret: "dev-secret", seed: 42, rate: 500, gzip: gz}
			p := buildPlan(t, cfg, n)
			if got := len(p.slots); got != n {
				t.Fatalf("got %d slots, want %d", got, n)
			}
			if p.unique != n {
				t.Errorf("got %d unique requests, want %d (no -dup)", p.unique, n)
			}
			webhookIDs := make(map[string]bool)
			messageIDs := make(map[string]bool)
			hashes := make(map[[32]byte]bool)
			var links, mentions, shouts int
			for i, s := range p.slots {
				raw := s.req.body
				if gz {
					if !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
						t.Fatalf("body %d: not gzip", i)
					}
					raw = gunzip(t, raw)
				}
				if got, want := s.req.signature, sign([]byte(cfg.secret), raw); got != want {
					t.Fatalf("body %d: signature %s, want %s over the uncompressed body", i, got, want)
				}
				if !json.Valid(raw) {
					t.Fatalf("body %d: invalid JSON: %s", i, raw)
				}
				ev, err := policy.ParseEvent(raw)
				if err != nil {
					t.Fatalf("body %d: ParseEvent: %v\n%s", i, err, raw)
				}
				if ev.Type != "message.new" {
					t.Errorf("body %d: type %q, want message.new", i, ev.Type)
				}
				if ev.Message == nil || ev.Message.ID == "" || ev.SubjectUserID() == "" || ev.ChannelCID() == "" {
					t.Fatalf("body %d: missing message id, user or channel: %s", i, raw)
				}
				if ev.CreatedAt.IsZero() || ev.Message.User.CreatedAt.IsZero() {
					t.Errorf("body %d: zero created_at", i)
				}
				text := ev.Message.Text
				if l := utf8.RuneCountInString(text); l < 190 || l > 450 {
					t.Errorf("body %d: text of %d characters, want about 250: %q", i, l, text)
				}
				if len(ev.Message.MentionedUsers) > 0 {
					mentions++
					for _, u := range ev.Message.MentionedUsers {
						if !strings.Contains(text, "@"+u.ID) {
							t.Errorf("body %d: mentioned user %s not in text %q", i, u.ID, text)
						}
					}
				}
				if strings.Contains(text, "https://") {
					links++
				}
				if strings.Contains(text, "!!!") {
					shouts++
				}
				if webhookIDs[s.req.webhookID] {
					t.Fatalf("body %d: webhook id %s repeated", i, s.req.webhookID)
				}
				webhookIDs[s.req.webhookID] = true
				if messageIDs[ev.Message.ID] {
					t.Fatalf("body %d: message id %s repeated", i, ev.Message.ID)
				}
				messageIDs[ev.Message.ID] = true
				h := sha256.Sum256(raw)
				if hashes[h] {
					t.Fatalf("body %d: body repeated", i)
				}
				hashes[h] = true
			}
			// A fixed seed makes these counts deterministic; the bounds
			// check that each feature is present in a plausible share.
			for _, c := range []struct {
				name     string
				got, min int
			}{{"links", links, n / 10}, {"mentions", mentions, n / 10}, {"shouts", shouts, n / 50}} {
				if c.got < c.min || c.got > n/2 {
					t.Errorf("got %d of %d bodies with %s, want between %d and %d", c.got, n, c.name, c.min, n/2)
				}
			}
		})
	}
}

func TestBuildDeterministic(t *testing.T) {
	t.Parallel()
	cfg := config{secret: "s", seed: 7, rate: 100}
	a, b := buildPlan(t, cfg, 200), buildPlan(t, cfg, 200)
	for i := range a.slots {
		if !bytes.Equal(a.slots[i].req.body, b.slots[i].req.body) {
			t.Fatalf("body %d differs between builds with the same seed", i)
		}
	}
	cfg.seed = 8
	c := buildPlan(t, cfg, 200)
	if c.slots[0].req.webhookID == a.slots[0].req.webhookID {
		t.Errorf("got webhook id %s from seeds 7 and 8, want different ids", a.slots[0].req.webhookID)
	}
}

func TestBuildDuplicates(t *testing.T) {
	t.Parallel()
	const n = 2000
	p := buildPlan(t, config{secret: "s", seed: 3, dup: 0.25}, n)
	dups := 0
	firstSeen := make(map[*request]int)
	for i, s := range p.slots {
		first, seen := firstSeen[s.req]
		switch {
		case s.dup && !seen:
			t.Fatalf("slot %d: duplicate of a request not sent before", i)
		case !s.dup && seen:
			t.Fatalf("slot %d: request of slot %d re-sent without being marked duplicate", i, first)
		case s.dup && i-first > dupWindow*2:
			t.Errorf("slot %d: duplicate of slot %d, further back than the window", i, first)
		}
		if s.dup {
			dups++
		} else {
			firstSeen[s.req] = i
		}
	}
	if got, want := p.unique, n-dups; got != want {
		t.Errorf("got %d unique requests, want %d (%d slots, %d duplicates)", got, want, n, dups)
	}
	if dups < n/5 || dups > n*3/10 {
		t.Errorf("got %d duplicates of %d with -dup 0.25, want about %d", dups, n, n/4)
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		wantErr bool
		check   func(t *testing.T, i int, ev *policy.Event, raw []byte)
	}{
		{
			name: "placeholders",
			file: `{"type":"message.new","cid":"messaging:x","message":{"id":"{{id}}","text":"{{text}}","user":{"id":"{{user_id}}"},"created_at":"{{now}}","custom_seq":{{seq}}}}`,
			check: func(t *testing.T, i int, ev *policy.Event, raw []byte) {
				if ev.Message.ID == "" || ev.Message.Text == "" || ev.SubjectUserID() == "" || ev.Message.CreatedAt.IsZero() {
					t.Errorf("body %d: placeholders not filled: %s", i, raw)
				}
				if got, want := ev.Message.Custom["custom_seq"], float64(i); got != want {
					t.Errorf("body %d: custom_seq %v, want %v", i, got, want)
				}
			},
		},
		{
			name: "no placeholders replaces message.id",
			file: `{"type":"message.new","cid":"messaging:x","message":{"id":"fixed","text":"<b>hello</b> & bye","n":12345678901234567890}}`,
			check: func(t *testing.T, i int, ev *policy.Event, raw []byte) {
				if ev.Message.ID == "fixed" || ev.Message.ID == "" {
					t.Errorf("body %d: message id %q, want a generated one", i, ev.Message.ID)
				}
				if got, want := ev.Message.Text, "<b>hello</b> & bye"; got != want {
					t.Errorf("body %d: text %q, want %q", i, got, want)
				}
				if !bytes.Contains(raw, []byte("12345678901234567890")) || !bytes.Contains(raw, []byte("<b>")) {
					t.Errorf("body %d: number or HTML re-encoded: %s", i, raw)
				}
			},
		},
		{
			name:    "placeholders giving invalid JSON",
			file:    `{"type":"message.new","message":{"id":{{id}}}}`,
			wantErr: true,
		},
		{
			name:    "not JSON",
			file:    `type: message.new`,
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "body.json")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := config{secret: "s", seed: 9, bodyFile: path}
			g, err := newGenerator(cfg, io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("newGenerator: got no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatalf("newGenerator: %v", err)
			}
			p, err := g.build(50, 0)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			seen := make(map[string]bool)
			for i, s := range p.slots {
				ev, err := policy.ParseEvent(s.req.body)
				if err != nil {
					t.Fatalf("body %d: ParseEvent: %v\n%s", i, err, s.req.body)
				}
				if seen[string(s.req.body)] {
					t.Fatalf("body %d repeated: %s", i, s.req.body)
				}
				seen[string(s.req.body)] = true
				if got, want := s.req.signature, sign([]byte("s"), s.req.body); got != want {
					t.Errorf("body %d: signature %s, want %s", i, got, want)
				}
				tt.check(t, i, ev, s.req.body)
			}
		})
	}
}

func TestUUID(t *testing.T) {
	t.Parallel()
	p := buildPlan(t, config{secret: "s", seed: 1}, 3)
	for _, s := range p.slots {
		id := s.req.webhookID
		if len(id) != 36 || id[14] != '4' || !strings.ContainsAny(id[19:20], "89ab") {
			t.Errorf("webhook id %q: want a version 4 UUID", id)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	g, err := newGenerator(config{secret: "s", seed: 1, rate: 500}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := g.build(1000, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestShippedBodies: every template in bodies/ builds distinct bodies that
// moderator parses, of the event type the file names (none for the
// before-send bodies, whose calls carry no type).
func TestShippedBodies(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("bodies/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bodies found: %v", err)
	}
	for _, file := range files {
		g, err := newGenerator(config{secret: "s", seed: 3, bodyFile: file}, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		p, err := g.build(20, 0)
		if err != nil {
			t.Fatalf("%s: build: %v", file, err)
		}
		var want struct {
			Type string `json:"type"`
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		seen := make(map[string]bool)
		for i, s := range p.slots {
			ev, err := policy.ParseEvent(s.req.body)
			if err != nil {
				t.Fatalf("%s: body %d: %v", file, i, err)
			}
			if ev.Type != want.Type || ev.Message == nil || ev.Message.ID == "" {
				t.Errorf("%s: body %d: type %q, message %+v", file, i, ev.Type, ev.Message)
			}
			if seen[string(s.req.body)] {
				t.Fatalf("%s: body %d repeated", file, i)
			}
			seen[string(s.req.body)] = true
		}
	}
}
