package erasure

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// RecentWindow is how long a replica keeps redacting an erased user's
// deliveries: longer than Stream retries a delivery (minutes) and than a
// spool is expected to hold one (an outage of the database of hours, a
// replica down for a day or two).
const RecentWindow = 7 * 24 * time.Hour

// RefreshEvery is how often a replica learns the erasures other replicas
// did (an erasure redacts on the replica that did it at once).
const RefreshEvery = 5 * time.Second

// Lister lists the users erased since a time, with when (*store.Store
// satisfies it: the erasures' records in the staff audit log).
type Lister interface {
	ErasedSince(ctx context.Context, since time.Time) (map[string]time.Time, error)
}

// Recent is the set of users erased in the last RecentWindow, kept in
// memory so that the intake can ask about every delivery for the cost of
// a map lookup (webhook.ErasedUsers): a late retry of an earlier event, a
// spooled replay, any later event about the user are redacted before they
// are recorded. Readers never lock: the set is replaced whole.
type Recent struct {
	list   Lister
	logger *slog.Logger
	now    func() time.Time
	mu     sync.Mutex // serialises writers
	set    atomic.Pointer[map[string]time.Time]
}

// NewRecent returns an empty set over list; Refresh (or Run) fills it.
func NewRecent(list Lister, logger *slog.Logger) *Recent {
	r := &Recent{list: list, logger: logger, now: time.Now}
	r.set.Store(&map[string]time.Time{})
	return r
}

// Erased reports whether the user was erased in the last RecentWindow
// (as this replica last knew).
func (r *Recent) Erased(userID string) bool {
	if userID == "" {
		return false
	}
	_, ok := (*r.set.Load())[userID]
	return ok
}

// Add puts a user in the set at once (the Eraser does, before it erases,
// so that no delivery recorded while it runs escapes).
func (r *Recent) Add(userID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.set.Load()
	next := make(map[string]time.Time, len(old)+1)
	for id, at := range old {
		next[id] = at
	}
	next[userID] = r.now()
	r.set.Store(&next)
}

// Refresh replaces the set with the erasures recorded in the window, and
// keeps the ones this replica added that are not recorded yet (an
// erasure under way). On failure the set stays as it was.
func (r *Recent) Refresh(ctx context.Context) error {
	now := r.now()
	listed, err := r.list.ErasedSince(ctx, now.Add(-RecentWindow))
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, at := range *r.set.Load() {
		if _, ok := listed[id]; !ok && now.Sub(at) < RecentWindow {
			listed[id] = at
		}
	}
	r.set.Store(&listed)
	return nil
}

// Len returns how many users the set holds.
func (r *Recent) Len() int { return len(*r.set.Load()) }

// Run refreshes the set every RefreshEvery until ctx ends (call Refresh
// once first, at start); a failed refresh is logged and the set kept (the
// next one tries again).
func (r *Recent) Run(ctx context.Context) {
	t := time.NewTicker(RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("refreshing the erased users failed; keeping the last set", "error", err.Error())
		}
	}
}
