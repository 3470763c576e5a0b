package store

import (
	"context"
	"fmt"
	"time"
)

// ReserveCall takes one call from endpoint's budget, shared by every
// replica on this database, and returns how long the caller must wait
// before making it (0: at once). The budget is a token bucket of burst
// one refilling at perSecond, kept in rate_budgets and updated in one
// statement under the row's lock with the database's clock, so N replicas
// together make no more calls than one would. A reservation that is not
// used must be given back with ReleaseCall.
func (s *Store) ReserveCall(ctx context.Context, endpoint string, perSecond float64) (time.Duration, error) {
	var tokens float64
	err := s.pool.QueryRow(ctx, `
		INSERT INTO rate_budgets AS b (endpoint, tokens, updated_at) VALUES ($1, 0, clock_timestamp())
		ON CONFLICT (endpoint) DO UPDATE SET
			tokens = least(1, b.tokens + extract(epoch FROM clock_timestamp() - b.updated_at) * $2) - 1,
			updated_at = clock_timestamp()
		RETURNING tokens`, endpoint, perSecond).Scan(&tokens)
	if err != nil {
		return 0, fmt.Errorf("reserve a call to %s: %w", endpoint, err)
	}
	if tokens >= 0 || perSecond <= 0 {
		return 0, nil
	}
	return time.Duration(-tokens / perSecond * float64(time.Second)), nil
}

// ReleaseCall gives back a reservation that was not used (the caller chose
// to wait elsewhere rather than so long).
func (s *Store) ReleaseCall(ctx context.Context, endpoint string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE rate_budgets SET tokens = least(1, tokens + 1) WHERE endpoint = $1`, endpoint); err != nil {
		return fmt.Errorf("release a call to %s: %w", endpoint, err)
	}
	return nil
}

// ObserveBudget lowers endpoint's budget to what Stream reported: remaining
// calls in its window ending at reset (X-RateLimit-Remaining and -Reset; 0
// after a 429). The bucket lets through its tokens plus perSecond for every
// second until the reset, so it is set to remaining minus that refill: no
// more than remaining calls go before the reset, the last of them just
// before it. Stream counts every client of the app, so its answer can only
// make the budget smaller, never larger.
func (s *Store) ObserveBudget(ctx context.Context, endpoint string, perSecond float64, remaining int, reset time.Time) error {
	if _, err := s.pool.Exec(ctx, `
		UPDATE rate_budgets SET tokens = least(
			least(1, tokens + extract(epoch FROM clock_timestamp() - updated_at) * $2),
			$3 - greatest(extract(epoch FROM $4::timestamptz - clock_timestamp()), 0) * $2),
			updated_at = clock_timestamp()
		WHERE endpoint = $1`, endpoint, perSecond, remaining, reset); err != nil {
		return fmt.Errorf("observe the budget of %s: %w", endpoint, err)
	}
	return nil
}
