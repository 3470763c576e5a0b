package main

import (
	"os"
	"path/filepath"
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
