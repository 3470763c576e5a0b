// Package rules holds the starter rule pack: the rule files and word
// lists that trust-and-safety staff begin from and adapt. `moderator rules
// test rules` checks them in CI; the service loads the folder named by
// MODERATOR_RULES_DIR (this one by default) from disk, so that staff can
// change rules without a new build, through OpenDir, which keeps the
// reader inside the folder and off FIFOs and devices.
package rules

import "embed"

// FS holds the starter pack, for tests and for running without a rules
// folder on disk.
//
//go:embed *.yaml *.txt
var FS embed.FS
