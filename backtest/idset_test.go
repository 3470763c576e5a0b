package backtest

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// TestIDsSpillCountsExactly: sets that spill to disk many times count
// what sets kept in memory count, and what a map of the ids themselves
// counts, with ids repeated within and across spills and sets left empty.
func TestIDsSpillCountsExactly(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	const sets = 5
	spilled, held := newIDs(hashIDs(), 7), newIDs(hashIDs(), 1<<30)
	var a, b [sets]*idSet
	truth := make([]map[string]bool, sets)
	for i := range sets {
		a[i], b[i], truth[i] = spilled.set(), held.set(), map[string]bool{}
	}
	for range 20000 {
		i := rng.IntN(sets - 1) // the last set stays empty
		id := fmt.Sprintf("user-%d", rng.IntN(3000*(i+1)))
		if rng.IntN(50) == 0 {
			id = "" // no id: not counted
		}
		a[i].add(id)
		b[i].add(id)
		if id != "" {
			truth[i][id] = true
		}
	}
	if spilled.file == nil || len(a[0].runs) < 100 {
		t.Fatalf("the sets did not spill (%d runs); the test proves nothing", len(a[0].runs))
	}
	if held.file != nil {
		t.Fatalf("a set within its budget spilled")
	}
	for i := range sets {
		got, err := a[i].count()
		if err != nil {
			t.Fatal(err)
		}
		inMem, _ := b[i].count()
		if got != len(truth[i]) || inMem != len(truth[i]) {
			t.Errorf("set %d: spilled counts %d, held %d, want %d", i, got, inMem, len(truth[i]))
		}
	}
	spilled.close()
	spilled.close() // twice is fine
}

// TestIDsSpillLeavesNoFile: the spill file is unlinked as soon as it is
// made, so a run that fails or is killed leaves nothing in the temporary
// folder.
func TestIDsSpillLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	a := newIDs(hashIDs(), 2)
	s := a.set()
	for i := range 10 {
		s.add(fmt.Sprint(i))
	}
	if a.file == nil {
		t.Fatal("no spill")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("files left in the temporary folder: %q", left)
	}
	if n, err := s.count(); err != nil || n != 10 {
		t.Errorf("count = %d, %v; want 10", n, err)
	}
	a.close()
}
