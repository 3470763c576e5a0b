package store_test

import (
	"context"
	"testing"
	"time"

	"moderator/store"
)

// BenchmarkAuditReads measures the staff's reads on seedBulk's history
// (40,000 events, 13,333 decisions and actions): one page of 50 each.
func BenchmarkAuditReads(b *testing.B) {
	ctx := context.Background()
	st := newSeedStore(b)
	seedBulk(b, st)
	var decisionID int64
	if err := st.Pool().QueryRow(ctx, `SELECT d.id FROM decisions d JOIN events e ON e.id = d.event_id
		WHERE e.channel_cid = 'messaging:c9' ORDER BY d.id LIMIT 1 OFFSET 20`).Scan(&decisionID); err != nil {
		b.Fatal(err)
	}
	for _, bm := range []struct {
		name string
		fn   func() error
	}{
		{"events/user", func() error { _, err := st.SearchEvents(ctx, store.AuditFilter{UserID: "u7"}); return err }},
		{"events/channel", func() error {
			_, err := st.SearchEvents(ctx, store.AuditFilter{ChannelCID: "messaging:c9"})
			return err
		}},
		{"decisions/rule", func() error { _, err := st.SearchDecisions(ctx, store.AuditFilter{RuleID: "rule7"}); return err }},
		{"actions/user", func() error { _, err := st.SearchActions(ctx, store.AuditFilter{UserID: "u7"}); return err }},
		{"actions/all", func() error { _, err := st.SearchActions(ctx, store.AuditFilter{}); return err }},
		{"timeline", func() error { _, err := st.Timeline(ctx, "u7", store.AuditFilter{}); return err }},
		{"evidence/around5", func() error { _, err := st.DecisionEvidence(ctx, decisionID, 5); return err }},
		{"rulestats/all", func() error { _, err := st.RuleStats(ctx, time.Time{}, time.Time{}); return err }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				if err := bm.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
