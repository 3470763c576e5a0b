package main

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"moderator/policy"
)

// TestHeavyPolicy: the benchmark's counter-heavy policy is what the issue
// asks for (about 25 rules, at least 8 reading counters or strikes) and a
// valid rule set whose examples pass, laid over the starter pack.
func TestHeavyPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := layFolders(dir, []string{"../../../rules", "heavy"}); err != nil {
		t.Fatal(err)
	}
	rs, err := policy.Load(os.DirFS(dir))
	if err != nil {
		t.Fatalf("the heavy policy does not load: %v", err)
	}
	rules := rs.Rules()
	if len(rules) < 24 || len(rules) > 26 {
		t.Errorf("%d rules, want about 25", len(rules))
	}
	history := 0
	for _, r := range rules {
		if len(r.History) > 0 {
			history++
		}
	}
	if history < 8 {
		t.Errorf("%d rules read counters or strikes, want at least 8", history)
	}
	if _, err := os.Stat(filepath.Join(dir, "heavy.yaml")); err != nil {
		t.Fatal(err)
	}
}

// TestParseStat: the CPU times are read after the command name, which may
// hold spaces and parentheses, and a line without them is refused.
func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "4242 (postgres: a (b) c) S 1 4242 4242 0 -1 4194560 1021 0 0 0 250 37 0 0 20 0 1 0 3086 226533376 2344"
	got, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 287 * clockTick; got != want {
		t.Errorf("parseStat = %s, want %s (250 + 37 ticks)", got, want)
	}
	if _, err := parseStat("4242 (cut) S 1 2"); err == nil {
		t.Error("a short line was accepted")
	}
	if runtime.GOOS != "linux" {
		return // no /proc
	}
	if got, err := procCPU(os.Getpid()); err != nil || got < 0 {
		t.Errorf("procCPU(self) = %s, %v", got, err)
	}
}
