package store

import (
	"testing"
	"time"
)

// FuzzDecodeCursor: any string is either refused with ErrBadCursor or read
// as a cursor of the list asked for, never a panic; and every cursor the
// store issues reads back as itself.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(kindEvents, time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC), 0, 42), int64(42))
	f.Add(encodeCursor(kindTimeline, time.Unix(0, 0), 3, 1), int64(1))
	f.Add("' OR 1=1 --", int64(7))
	f.Add("eyJrIjoiZXZlbnRzIiwidCI6MSwiaSI6MX0", int64(-1))
	f.Fuzz(func(t *testing.T, s string, id int64) {
		for _, kind := range []string{kindEvents, kindDecisions, kindActions, kindTimeline, kindAppeals} {
			c, err := decodeCursor(kind, s)
			if err != nil && err != ErrBadCursor {
				t.Fatalf("decodeCursor(%q, %q) = %v, want ErrBadCursor or a cursor", kind, s, err)
			}
			if err == nil && c != nil && (c.Kind != kind || c.ID <= 0) {
				t.Fatalf("decodeCursor(%q, %q) = %+v", kind, s, c)
			}
		}
		if id <= 0 {
			return
		}
		at := time.UnixMicro(id % (1 << 50)).UTC()
		c, err := decodeCursor(kindActions, encodeCursor(kindActions, at, 0, id))
		if err != nil || c.ID != id || !c.time().Equal(at) {
			t.Fatalf("round trip of (%v, %d): got %+v, %v", at, id, c, err)
		}
		if _, err := decodeCursor(kindEvents, encodeCursor(kindActions, at, 0, id)); err != ErrBadCursor {
			t.Fatalf("an actions cursor read as an events cursor: %v", err)
		}
	})
}
