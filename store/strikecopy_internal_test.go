package store

import (
	"fmt"
	"testing"
	"time"

	"moderator/policy"
)

// TestStrikeCopiesEvicted: past cacheMaxStrikes, the least recently
// stored half of the copies go, and the count of strikes held follows.
func TestStrikeCopiesEvicted(t *testing.T) {
	c := newMarkCache()
	const per = 1000
	rows := make([]strikeRow, per)
	users := cacheMaxStrikes/per + 1
	for i := range users {
		c.storeStrikes(fmt.Sprintf("u%d", i), &userStrikes{version: 1, rows: rows})
		time.Sleep(time.Microsecond) // distinct times of storing
	}
	if len(c.strikes) >= users || len(c.strikes) < users/2-1 {
		t.Fatalf("%d copies left of %d, want about half", len(c.strikes), users)
	}
	if c.strikeRows != len(c.strikes)*per {
		t.Errorf("strikeRows = %d, want %d", c.strikeRows, len(c.strikes)*per)
	}
	if c.lookupStrikes(fmt.Sprintf("u%d", users-1)) == nil || c.lookupStrikes("u0") != nil {
		t.Errorf("the newest copy was evicted, or the oldest kept")
	}
	// An older version does not replace a newer copy.
	last := fmt.Sprintf("u%d", users-1)
	c.storeStrikes(last, &userStrikes{version: 2})
	c.storeStrikes(last, &userStrikes{version: 1, rows: rows})
	if got := c.lookupStrikes(last); got.version != 2 || c.strikeRows != (len(c.strikes)-1)*per {
		t.Errorf("copy at version %d with %d strikes held, want version 2 and %d", got.version, c.strikeRows, (len(c.strikes)-1)*per)
	}
}

// TestCountStrikes: the values the history read's scans compute
// (struckMessages): distinct messages, of the key's kind, within its
// window on either side, the record's own message left out, the shadow
// rows for the shadow rules only, and which of the batch's messages
// were counted.
func TestCountStrikes(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	rows := []strikeRow{
		{at: at.Add(-2 * time.Hour), key: "m:old", rule: "flood", typ: "flag"}, // outside 1h
		{at: at.Add(-time.Hour), key: "m:edge", rule: "flood", typ: "flag"},    // at the edge: out
		{at: at.Add(-30 * time.Minute), key: "m:a", rule: "flood", typ: "flag"},
		{at: at.Add(-20 * time.Minute), key: "m:a", rule: "ladder", typ: "mute"}, // the same message again
		{at: at.Add(-10 * time.Minute), key: "m:b", rule: "ladder", typ: "warn"},
		{at: at.Add(-5 * time.Minute), key: "m:own", rule: "flood", typ: "flag"},
		{at: at.Add(-time.Minute), key: "m:s", rule: "flood", typ: "flag", shadow: true},
		{at: at.Add(time.Hour), key: "m:late", rule: "flood", typ: "flag"}, // newer, within 1h after
	}
	key := func(name, arg string) policy.HistoryKey {
		return policy.HistoryKey{Name: name, Arg: arg, Window: time.Hour}
	}
	tests := []struct {
		k      policy.HistoryKey
		shadow bool
		want   int
		struck string
	}{
		{key(policy.StrikesCount, ""), false, 3, "[m:a m:late]"}, // a, b, late
		{key(policy.StrikesCount, ""), true, 4, "[m:a m:late]"},  // and the shadow one
		{key(policy.StrikesByRule, "flood"), false, 2, "[m:a m:late]"},
		{key(policy.StrikesByRule, "ladder"), false, 2, "[m:a]"},
		{key(policy.StrikesOfType, "mute"), false, 1, "[m:a]"},
	}
	batch := []string{"m:a", "m:late", "m:zzz"} // sorted, as batchStrikeKeys gives them
	for _, tt := range tests {
		n, struck := countStrikes(rows, tt.k, at, "m:own", tt.shadow, batch)
		if n != tt.want || fmt.Sprint(struck) != tt.struck {
			t.Errorf("%s (shadow %v) = %d %v, want %d %s", tt.k, tt.shadow, n, struck, tt.want, tt.struck)
		}
	}
}
