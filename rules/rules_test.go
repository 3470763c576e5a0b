package rules_test

import (
	"os"
	"testing"

	"moderator/policy"
	"moderator/rules"
)

// TestEmbeddedPack: the embedded pack loads (its examples pass) and is the
// same rule set as the folder on disk, so nothing is left out of the
// embed patterns.
func TestEmbeddedPack(t *testing.T) {
	t.Parallel()
	embedded, err := policy.Load(rules.FS)
	if err != nil {
		t.Fatalf("load embedded pack: %v", err)
	}
	disk, err := policy.Load(os.DirFS("."))
	if err != nil {
		t.Fatalf("load rules folder: %v", err)
	}
	if got, want := embedded.Version(), disk.Version(); got != want {
		t.Errorf("embedded pack version %s, folder version %s: the embed patterns miss a file", got, want)
	}
}
