// Package policy owns the moderation rules: it loads rule files into a
// compiled, immutable RuleSet and turns a Stream Event into a Decision (the
// rules that matched, the actions they ask for, and the evidence each
// expression read).
//
// Policy is pure: no I/O beyond the fs.FS it is handed, no clock, no
// environment, no logging. It imports nothing of this module, and every
// other package may import its types.
package policy
