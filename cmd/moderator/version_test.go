package main

import (
	"strings"
	"testing"
)

// TestBuildVersion: the version make build stamps wins; without it the
// toolchain's build information names the build (a module version, or
// dev-<revision>), and never as "(devel)" or empty. Not parallel: it sets
// the package's version for a moment, and parallel tests run only after
// it.
func TestBuildVersion(t *testing.T) {
	saved := version
	t.Cleanup(func() { version = saved })

	version = "1.4.0"
	if got := buildVersion(); got != "1.4.0" {
		t.Fatalf("stamped: got %q, want 1.4.0", got)
	}
	version = "dev"
	if got := buildVersion(); got == "" || got == "(devel)" || !strings.HasPrefix(got, "dev") && !strings.HasPrefix(got, "v") {
		t.Fatalf("unstamped: got %q, want dev, dev-<revision> or a module version", got)
	}
}
