package store

import "sync"

// router assigns the records to judge to the Batcher's flushers. A record
// goes to the flusher that already holds records of its key (queued, or
// in the batch being written), so that one key's records are judged and
// committed in the order they were submitted and never wait for each
// other's counter locks across this replica's flushers. A key with
// nothing in flight goes to the flusher holding the fewest records, so
// that it never queues behind a busy flusher (a slow commit, a burst of
// one channel) while another is free.
//
// Until 2026-12-06 a key's flusher was fixed by its hash: the same order,
// but half of the keys waited for their flusher while the other idled
// (docs/performance.md, 2026-12-06).
type router struct {
	mu   sync.Mutex
	keys map[int32]*route // the keys with records in flight
	load []int            // records in flight per flusher
	next int              // where the search for the least loaded starts
}

// route is where a key's records in flight are, and how many there are.
type route struct {
	flusher, n int
}

func newRouter(flushers int) *router {
	return &router{keys: make(map[int32]*route), load: make([]int, flushers)}
}

// assign returns the flusher of a record with key, and counts it in
// flight until release.
func (r *router) assign(key int32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt, ok := r.keys[key]
	if !ok {
		rt = &route{flusher: r.leastLoaded()}
		r.keys[key] = rt
	}
	rt.n++
	r.load[rt.flusher]++
	return rt.flusher
}

// leastLoaded is the flusher with the fewest records in flight; of equals,
// the first from next, which moves on so that ties take turns.
func (r *router) leastLoaded() int {
	best := r.next % len(r.load)
	for i := 1; i < len(r.load); i++ {
		f := (r.next + i) % len(r.load)
		if r.load[f] < r.load[best] {
			best = f
		}
	}
	r.next = best + 1
	return best
}

// release says that a record with key, assigned to flusher, has its
// result: committed, refused or failed.
func (r *router) release(key int32, flusher int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.load[flusher]--
	rt := r.keys[key]
	if rt == nil {
		return
	}
	if rt.n--; rt.n == 0 {
		delete(r.keys, key)
	}
}
