package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/policy"
)

// TestServeSurvivesHostileRulesFolder drops each file of the hostile
// matrix into the rules folder of a running service: each reload is
// refused (or loads, noting the empty file), the process keeps answering
// webhooks with the last good set, and a good change afterwards still
// goes live (a FIFO once stalled every later reload).
func TestServeSurvivesHostileRulesFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "greetings.yaml"), []byte(helloRule), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverOptions{rulesDir: dir})
	write := func(data string) func(string) error {
		return func(p string) error { return os.WriteFile(p, []byte(data), 0o644) }
	}
	cases := []struct {
		file string
		add  func(path string) error
		want string // the log line the reload leaves
	}{
		{"h-empty.yaml", write(""), `"msg":"rules loaded".*h-empty.yaml: no rules in this file`},
		{"h-comment.yaml", write("# nothing yet\n"), `"msg":"rules loaded".*h-comment.yaml: no rules in this file`},
		{"h-marker.yaml", write("---\n"), `"msg":"rules loaded".*h-marker.yaml: no rules in this file`},
		{"_h-draft.yaml", write(goodbyeRule), `"msg":"rules loaded".*_h-draft.yaml: ignored`},
		{"h-nested.yaml", write("rules: " + strings.Repeat("[", 1<<19-8) + strings.Repeat("]", 1<<19-8)),
			`"msg":"rules refused".*h-nested.yaml:1: nested more than 32 levels deep`},
		{"h-passwd.txt", func(p string) error { return os.Symlink("/etc/passwd", p) },
			`"msg":"rules refused".*h-passwd.txt: cannot read: path escapes from parent`},
		{"h-zero.txt", func(p string) error { return os.Symlink("/dev/zero", p) },
			`"msg":"rules refused".*h-zero.txt: cannot read: path escapes from parent`},
		{"h-fifo.yaml", func(p string) error { return syscall.Mkfifo(p, 0o644) },
			`"msg":"rules refused".*h-fifo.yaml: is a FIFO`},
		{"h-socket.txt", func(p string) error {
			ln, err := net.Listen("unix", p)
			if err == nil {
				t.Cleanup(func() { ln.Close() })
			}
			return err
		}, `"msg":"rules refused".*h-socket.txt: is a socket`},
		{"h-huge.txt", func(p string) error { return os.Truncate(p, 0) }, ""}, // replaced below
	}
	cases[len(cases)-1].add = func(p string) error {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Truncate(50 << 20)
	}
	cases[len(cases)-1].want = `"msg":"rules refused".*h-huge.txt: file is 52428800 bytes long`
	for i, c := range cases {
		p := filepath.Join(dir, c.file)
		if err := c.add(p); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if _, err := s.logs.waitFor(c.want, 20*time.Second); err != nil {
			t.Fatalf("%s: %v\n%s", c.file, err, grep(s.logs.String(), "rules"))
		}
		id := fmt.Sprintf("hostile-%d", i)
		if st, _ := s.send(t, delivery{body: messageEvent(id, "hello there"), webhookID: id}); st != 200 {
			t.Fatalf("%s: webhook status %d, want 200", c.file, st)
		}
		if got := matchedRules(t, id); len(got) != 1 || got[0] != "says-hello" {
			t.Fatalf("%s: matched %v, want the last good set's [says-hello]", c.file, got)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	// Reloads still run: a good change goes live.
	if err := os.WriteFile(filepath.Join(dir, "greetings.yaml"), []byte(goodbyeRule), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		id := fmt.Sprintf("after-%d", i)
		s.send(t, delivery{body: messageEvent(id, "goodbye now"), webhookID: id})
		if got := matchedRules(t, id); len(got) == 1 && got[0] == "says-goodbye" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the good change never went live:\n%s", grep(s.logs.String(), "rules"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r, err := http.Get(s.URL + "/readyz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("/readyz: %v %v, want 200", r, err)
	}
}

// TestReloadDeadline: a load that cannot finish is abandoned at its
// deadline and reported (metric, /readyz detail, status), later reloads
// still run, and abandoned loads are bounded.
func TestReloadDeadline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "greetings.yaml"), []byte(helloRule), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	l := newLiveRules(dir, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err := l.reload("start"); err != nil {
		t.Fatal(err)
	}
	good := l.current.Load()
	release := make(chan struct{})
	stall := func(dir string) (*policy.RuleSet, error) {
		<-release
		return loadRulesDir(dir, policy.Load)
	}
	l.timeout = 20 * time.Millisecond
	l.loadDir = stall
	if err := l.reload("change"); !errors.Is(err, errReloadTimeout) {
		t.Fatalf("got %v, want a timeout", err)
	}
	if got := l.stuck(); got != 1 {
		t.Errorf("stuck = %d, want 1", got)
	}
	if l.current.Load() != good {
		t.Errorf("the set in force changed")
	}
	if d := l.readyDetail(); !strings.Contains(d, "1 reload(s) of "+dir+" did not finish within 20ms; the set in force stays") {
		t.Errorf("readyDetail = %q, want the stuck reload", d)
	}
	if st := (serviceStatus{rules: l}).RuleSet(); st.StuckReloads != 1 || !strings.Contains(st.LastReloadError, "did not finish in time") {
		t.Errorf("status = %d %q, want 1 stuck reload and its error", st.StuckReloads, st.LastReloadError)
	}
	// A later reload is not held up by the stuck one. It gets a generous
	// deadline: a real load can take longer than 20 ms on a busy machine.
	l.timeout = 10 * time.Second
	l.loadDir = func(dir string) (*policy.RuleSet, error) { return loadRulesDir(dir, policy.Load) }
	if err := l.reload("change"); err != nil {
		t.Fatalf("a reload after a stuck one: %v", err)
	}
	// Abandoned loads are bounded: past maxPendingReloads, a reload is
	// refused at once.
	l.timeout = 20 * time.Millisecond
	l.loadDir = stall
	for range maxPendingReloads - 1 {
		_ = l.reload("change")
	}
	if got := l.stuck(); got != maxPendingReloads {
		t.Fatalf("stuck = %d, want %d", got, maxPendingReloads)
	}
	if err := l.reload("change"); err == nil || !strings.Contains(err.Error(), "earlier reloads are still running") {
		t.Fatalf("got %v, want a refusal while %d loads are stuck", err, maxPendingReloads)
	}
	close(release)
	for deadline := time.Now().Add(10 * time.Second); l.stuck() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stuck = %d after the loads were released, want 0", l.stuck())
		}
	}
	if got := counterValue(t, reg, "moderator_rules_reloads_total", map[string]string{"result": "timeout"}); got != maxPendingReloads+1 {
		t.Errorf("timeouts counted = %v, want %d", got, maxPendingReloads+1)
	}
}
