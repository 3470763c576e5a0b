package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDeployNamesRealMetrics holds the alert rules and the dashboard in
// deploy/ to the metrics the code defines: a renamed metric must not leave
// an alert that can never fire. (promtool, run by .ci/run, checks their
// syntax and the alerts' behaviour.)
func TestDeployNamesRealMetrics(t *testing.T) {
	t.Parallel()
	defined := map[string]bool{}
	name := regexp.MustCompile(`"(moderator_[a-z0-9_]+)"`)
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".data" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range name.FindAllSubmatch(src, -1) {
			defined[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	dashboard, err := os.ReadFile("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(dashboard) {
		t.Fatal("deploy/grafana-dashboard.json is not valid JSON")
	}
	alerts, err := os.ReadFile("../../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`\bmoderator_[a-z0-9_]+`)
	for file, text := range map[string][]byte{"grafana-dashboard.json": dashboard, "alerts.yml": alerts} {
		var unknown []string
		for _, m := range used.FindAll(text, -1) {
			metric := string(m)
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(metric, "_bucket"), "_sum"), "_count")
			if !defined[metric] && !defined[base] {
				unknown = append(unknown, metric)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			t.Errorf("deploy/%s names metrics no code defines: %v", file, slices.Compact(unknown))
		}
	}
}
