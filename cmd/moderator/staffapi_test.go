package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSettingsListEveryVariable: GET /api/v1/settings shows every variable
// that config.go reads, and marks each that holds a secret, so that a new
// variable neither escapes the list nor shows a secret.
func TestSettingsListEveryVariable(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for _, m := range regexp.MustCompile(`env\.\w+\("([A-Z0-9_]+)"`).FindAllSubmatch(src, -1) {
		read = append(read, string(m[1]))
	}
	slices.Sort(read)
	read = slices.Compact(read)
	if len(read) < 20 {
		t.Fatalf("found only %d variables in config.go: %v", len(read), read)
	}
	c := config{StreamAPISecret: "s3cret", AdminJWTSecret: "also-secret", DatabaseURL: "postgres://u:pw@h/db", StreamAPIKeys: "k:v"}
	var listed []string
	for _, s := range (serviceStatus{cfg: c, rules: &liveRules{}}).Settings() {
		listed = append(listed, s.Name)
		secretish := strings.Contains(s.Name, "SECRET") || strings.HasSuffix(s.Name, "DATABASE_URL") || s.Name == "STREAM_API_KEYS"
		if secretish != s.Secret {
			t.Errorf("%s: secret %v, want %v", s.Name, s.Secret, secretish)
		}
	}
	slices.Sort(listed)
	if diff := cmp.Diff(read, listed); diff != "" {
		t.Errorf("variables (-config.go +settings):\n%s", diff)
	}
}
