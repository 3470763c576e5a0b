//go:build race

package policy

// raceSlowdown stretches time limits under the race detector, which slows
// evaluation several times over.
const raceSlowdown = 10
