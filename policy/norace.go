//go:build !race

package policy

// raceSlowdown stretches time limits under the race detector (see race.go).
const raceSlowdown = 1
