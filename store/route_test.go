package store

import "testing"

// TestRouterKeepsAKeyWhileInFlight: a key's records go where its records
// in flight are; a key with none goes to the least loaded flusher, equals
// taking turns.
func TestRouterKeepsAKeyWhileInFlight(t *testing.T) {
	r := newRouter(2)
	a := r.assign(1)
	b := r.assign(2)
	if a == b {
		t.Fatalf("two new keys on idle flushers both went to %d", a)
	}
	if got := r.assign(1); got != a {
		t.Fatalf("key 1 with a record in flight on %d went to %d", a, got)
	}
	// Flusher a holds two records, b one: a new key goes to b.
	if got := r.assign(3); got != b {
		t.Fatalf("new key went to %d (load %v), want the least loaded %d", got, r.load, b)
	}
	r.release(1, a)
	if got := r.assign(1); got != a {
		t.Fatalf("key 1 with one record still in flight on %d went to %d", a, got)
	}
	r.release(1, a)
	r.release(1, a)
	if _, ok := r.keys[1]; ok {
		t.Fatal("key 1 still routed with nothing in flight")
	}
	// a is idle, b holds keys 2 and 3: key 1 may now go to a.
	if got := r.assign(1); got != a {
		t.Fatalf("key 1 with nothing in flight went to %d (load %v), want %d", got, r.load, a)
	}
	r.release(1, a)
	r.release(2, b)
	r.release(3, b)
	if r.load[0] != 0 || r.load[1] != 0 || len(r.keys) != 0 {
		t.Fatalf("after every release: load %v, keys %v", r.load, r.keys)
	}
}
