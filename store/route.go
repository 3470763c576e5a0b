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

// routeKeys are the keys of a record to judge (see routeKeysOf): at most
// two, the first deciding where the record goes when both are in flight
// on different flushers. Held in place: a slice would cost an allocation
// per webhook.
type routeKeys struct {
	k [2]int32
	n int
}

func (ks routeKeys) all() []int32 { return ks.k[:ks.n] }

// assign returns the flusher of a record with keys: where the first of
// them in flight is, else the least loaded. It counts the record in
// flight there until release, under the keys it holds (held): those not
// in flight on another flusher.
func (r *router) assign(keys routeKeys) (flusher int, held routeKeys) {
	r.mu.Lock()
	defer r.mu.Unlock()
	flusher = -1
	for _, k := range keys.all() {
		if rt, ok := r.keys[k]; ok {
			flusher = rt.flusher
			break
		}
	}
	if flusher < 0 {
		flusher = r.leastLoaded()
	}
	for _, k := range keys.all() {
		rt, ok := r.keys[k]
		if !ok {
			rt = &route{flusher: flusher}
			r.keys[k] = rt
		}
		if rt.flusher != flusher {
			continue
		}
		rt.n++
		held.k[held.n] = k
		held.n++
	}
	r.load[flusher]++
	return flusher, held
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

// release says that a record assigned to flusher, holding keys there, has
// its result: committed, refused or failed.
func (r *router) release(held routeKeys, flusher int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.load[flusher]--
	for _, k := range held.all() {
		rt := r.keys[k]
		if rt == nil {
			continue
		}
		if rt.n--; rt.n == 0 {
			delete(r.keys, k)
		}
	}
}
