package backtest

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"os"
	"slices"
)

// idBudget is how many distinct-id hashes a report keeps in memory, over
// all its sets, before it spills them to disk: about 1 MiB of map
// entries. A week of a busy app affects millions of users and messages;
// counting them must not grow the backtest's memory with the window.
var idBudget = 1 << 16 // a variable for the tests that force spills

// ids counts a report's distinct users and messages exactly in bounded
// memory. Each set keeps 64-bit hashes of its ids (8 bytes where the id's
// string and its map entry cost several times more; two of a million ids
// share a hash with a probability of about 3·10⁻⁸, n²/2⁶⁵, so the counts
// are exact in practice). Past budget entries in memory, every set writes
// its entries as one sorted run to a temporary file, unlinked at once so
// that nothing is left behind whatever happens, and count merges a set's
// runs with what it still holds.
type ids struct {
	hash   func(string) uint64
	budget int
	held   int // entries in memory, all sets
	sets   []*idSet
	file   *os.File // nil until the first spill
	size   int64    // bytes written to file
	err    error    // the first spill's failure: the sets stay in memory
}

// idSet is one set of ids of a report.
type idSet struct {
	ids  *ids
	mem  map[uint64]struct{}
	runs []idRun
}

// idRun is a sorted run of a set's hashes in the spill file.
type idRun struct{ off, n int64 }

func newIDs(hash func(string) uint64, budget int) *ids {
	return &ids{hash: hash, budget: budget}
}

// set returns a new empty set of a.
func (a *ids) set() *idSet {
	s := &idSet{ids: a, mem: map[uint64]struct{}{}}
	a.sets = append(a.sets, s)
	return s
}

// add puts id (none when empty) in s.
func (s *idSet) add(id string) {
	if id == "" {
		return
	}
	h := s.ids.hash(id)
	if _, ok := s.mem[h]; ok {
		return
	}
	s.mem[h] = struct{}{}
	s.ids.held++
	if s.ids.held > s.ids.budget && s.ids.err == nil {
		s.ids.err = s.ids.spill()
	}
}

// spill writes every set's entries to the file as one sorted run each
// and empties them.
func (a *ids) spill() error {
	if a.file == nil {
		f, err := os.CreateTemp("", "moderator-backtest-ids-*")
		if err != nil {
			return fmt.Errorf("backtest: spill distinct ids: %w", err)
		}
		_ = os.Remove(f.Name()) // unlinked: the space is freed when it is closed
		a.file = f
	}
	w := bufio.NewWriterSize(io.NewOffsetWriter(a.file, a.size), 64<<10)
	var buf [8]byte
	for _, s := range a.sets {
		if len(s.mem) == 0 {
			continue
		}
		keys := slices.Sorted(maps.Keys(s.mem))
		for _, k := range keys {
			binary.LittleEndian.PutUint64(buf[:], k)
			if _, err := w.Write(buf[:]); err != nil {
				return fmt.Errorf("backtest: spill distinct ids: %w", err)
			}
		}
		s.runs = append(s.runs, idRun{off: a.size, n: int64(len(keys))})
		a.size += int64(len(keys)) * 8
		s.mem = map[uint64]struct{}{} // a new map: clear would keep the old one's buckets
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("backtest: spill distinct ids: %w", err)
	}
	a.held = 0
	return nil
}

// count is the number of distinct ids in s: its runs merged with what it
// holds.
func (s *idSet) count() (int, error) {
	if len(s.runs) == 0 {
		return len(s.mem), nil
	}
	heads := make([]*runReader, 0, len(s.runs)+1)
	for _, r := range s.runs {
		rr := &runReader{r: bufio.NewReaderSize(io.NewSectionReader(s.ids.file, r.off, r.n*8), 16<<10), left: r.n}
		heads = append(heads, rr)
	}
	heads = append(heads, &runReader{mem: slices.Sorted(maps.Keys(s.mem))})
	// A min-heap of the runs by their next value: each id costs log(runs),
	// not a scan of every run.
	h := make(runHeap, 0, len(heads))
	for _, r := range heads {
		if err := r.fill(); err != nil {
			return 0, err
		}
		if r.ok {
			h = append(h, r)
		}
	}
	heap.Init(&h)
	n, last := 0, uint64(0)
	for len(h) > 0 {
		top := h[0]
		if n == 0 || top.cur != last {
			n++
			last = top.cur
		}
		top.ok = false
		if err := top.fill(); err != nil {
			return 0, err
		}
		if top.ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return n, nil
}

// runHeap orders runs by their next value.
type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].cur < h[j].cur }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// close frees the spill file.
func (a *ids) close() {
	if a.file != nil {
		_ = a.file.Close()
		a.file = nil
	}
}

// runReader reads one sorted run (from the file, or from memory).
type runReader struct {
	r    *bufio.Reader
	left int64
	mem  []uint64
	cur  uint64
	ok   bool // cur holds the next value not yet merged
}

// fill reads the next value into cur unless it holds one; at the end, ok
// stays false.
func (h *runReader) fill() error {
	if h.ok {
		return nil
	}
	if h.r == nil {
		if len(h.mem) > 0 {
			h.cur, h.mem, h.ok = h.mem[0], h.mem[1:], true
		}
		return nil
	}
	if h.left == 0 {
		return nil
	}
	var buf [8]byte
	if _, err := io.ReadFull(h.r, buf[:]); err != nil {
		return errors.Join(errors.New("backtest: read spilled distinct ids"), err)
	}
	h.cur, h.left, h.ok = binary.LittleEndian.Uint64(buf[:]), h.left-1, true
	return nil
}

// hashIDs returns the hash of one report's ids, with a seed of its own.
func hashIDs() func(string) uint64 {
	seed := maphash.MakeSeed()
	return func(s string) uint64 { return maphash.String(seed, s) }
}
