package store

import (
	"fmt"
	"testing"
	"time"

	"moderator/policy"
)

// benchMarks are a busy user's marks: n over the last ten minutes, in 12
// channels, the shape the load tool's skewed senders give the copies.
func benchMarks(n int, now time.Time) []cachedMark {
	marks := make([]cachedMark, n)
	for i := range marks {
		marks[i] = cachedMark{at: now.Add(-10*time.Minute + time.Duration(i)*10*time.Minute/time.Duration(n)),
			channel: channelOf(fmt.Sprintf("messaging:channel-%d", i%12)), fp: int64(i % 50), links: int32(i % 3), mentions: int32(i % 2),
			created: now.Add(-time.Duration(i%5) * 24 * time.Hour)}
	}
	return marks
}

// BenchmarkUserValues is the Go side of counting a judged message's user
// values from the copy of a user with 1,000 marks in the window: every
// user counter, as the heavy policy reads them.
func BenchmarkUserValues(b *testing.B) {
	now := time.Now()
	marks := benchMarks(1000, now)
	keys := []policy.HistoryKey{{Name: policy.CountUserMessages, Window: time.Minute}, {Name: policy.CountUserMessages, Window: 10 * time.Minute},
		{Name: policy.CountUserChannelMessages, Window: 10 * time.Minute}, {Name: policy.CountUserLinks, Window: 10 * time.Minute},
		{Name: policy.CountUserMentions, Window: 10 * time.Minute}, {Name: policy.CountUserDuplicates, Window: 10 * time.Minute},
		{Name: policy.CountUserChannels, Window: 10 * time.Minute}}
	h := policy.History{}
	channel := channelOf("messaging:channel-3")
	for b.Loop() {
		userValues(h, keys, marks, now, channel, 7, 10*time.Minute)
	}
	if h[keys[6]] != 12 || h[keys[1]] != 999 {
		b.Fatalf("values %v", h)
	}
}

// BenchmarkYoungValues is the same for a channel's young accounts'
// marks (counts.channel_young_messages in two windows).
func BenchmarkYoungValues(b *testing.B) {
	now := time.Now()
	marks := benchMarks(1000, now)
	keys := []policy.HistoryKey{{Name: policy.CountChannelYoungMessages, Window: time.Minute},
		{Name: policy.CountChannelYoungMessages, Window: 5 * time.Minute}}
	h := policy.History{}
	for b.Loop() {
		youngValues(h, keys, marks, now, 3*24*time.Hour, 5*time.Minute)
	}
	if h[keys[1]] == 0 || h[keys[0]] >= h[keys[1]] {
		b.Fatalf("values %v", h)
	}
}
