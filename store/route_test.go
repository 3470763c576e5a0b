package store

import "testing"

// one is the route keys of a record with a single key.
func one(k int32) routeKeys { return routeKeys{k: [2]int32{k}, n: 1} }

// two is the route keys of a record with a deciding key and another.
func two(first, second int32) routeKeys { return routeKeys{k: [2]int32{first, second}, n: 2} }

// TestRouterKeepsAKeyWhileInFlight: a key's records go where its records
// in flight are; a key with none goes to the least loaded flusher, equals
// taking turns.
func TestRouterKeepsAKeyWhileInFlight(t *testing.T) {
	r := newRouter(2)
	assign := func(k int32) int {
		f, held := r.assign(one(k))
		if held != one(k) {
			t.Fatalf("key %d: held %v, want the key", k, held.all())
		}
		return f
	}
	release := func(k int32, f int) { r.release(one(k), f) }
	a := assign(1)
	b := assign(2)
	if a == b {
		t.Fatalf("two new keys on idle flushers both went to %d", a)
	}
	if got := assign(1); got != a {
		t.Fatalf("key 1 with a record in flight on %d went to %d", a, got)
	}
	// Flusher a holds two records, b one: a new key goes to b.
	if got := assign(3); got != b {
		t.Fatalf("new key went to %d (load %v), want the least loaded %d", got, r.load, b)
	}
	release(1, a)
	if got := assign(1); got != a {
		t.Fatalf("key 1 with one record still in flight on %d went to %d", a, got)
	}
	release(1, a)
	release(1, a)
	if _, ok := r.keys[1]; ok {
		t.Fatal("key 1 still routed with nothing in flight")
	}
	// a is idle, b holds keys 2 and 3: key 1 may now go to a.
	if got := assign(1); got != a {
		t.Fatalf("key 1 with nothing in flight went to %d (load %v), want %d", got, r.load, a)
	}
	release(1, a)
	release(2, b)
	release(3, b)
	if r.load[0] != 0 || r.load[1] != 0 || len(r.keys) != 0 {
		t.Fatalf("after every release: load %v, keys %v", r.load, r.keys)
	}
}

// TestRouterTwoKeys: a record with two keys (a young account's message:
// its channel, then its user) goes where either is in flight, the first
// deciding when both are, on different flushers; it holds there the keys
// not in flight elsewhere, and releasing it frees exactly those.
func TestRouterTwoKeys(t *testing.T) {
	r := newRouter(2)
	const chanA, chanB, user, other = 10, 11, 20, 21
	u, _ := r.assign(one(user)) // the user's message in flight
	o, _ := r.assign(one(other))
	if u == o {
		t.Fatalf("two new keys on idle flushers both went to %d", u)
	}
	// A young account's message in a channel with nothing in flight goes
	// where its user's is, and holds the channel there too.
	f, held := r.assign(two(chanA, user))
	if f != u || held != two(chanA, user) {
		t.Fatalf("channel idle, user in flight on %d: went to %d holding %v", u, f, held.all())
	}
	// The channel now decides: a message of another account in it goes to u.
	if g, _ := r.assign(two(chanA, other)); g != u {
		t.Fatalf("channel in flight on %d, its author on %d: went to %d, want the channel's", u, o, g)
	}
	// ... and holds only the channel: its author stays routed to o.
	if rt := r.keys[other]; rt == nil || rt.flusher != o || rt.n != 1 {
		t.Fatalf("the other account's route %+v, want one record on %d", rt, o)
	}
	// A channel with nothing in flight, and an author with nothing either:
	// the least loaded flusher (o holds one record, u four).
	if g, held := r.assign(two(chanB, 30)); g != o || held != two(chanB, 30) {
		t.Fatalf("nothing in flight: went to %d holding %v, want %d (load %v)", g, held.all(), o, r.load)
	}
	r.release(one(user), u)
	r.release(two(chanA, user), u)
	r.release(one(chanA), u) // the other account's message held only the channel
	r.release(one(other), o)
	r.release(two(chanB, 30), o)
	if r.load[0] != 0 || r.load[1] != 0 || len(r.keys) != 0 {
		t.Fatalf("after every release: load %v, keys %v", r.load, r.keys)
	}
}
