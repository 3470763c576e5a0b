package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DedupHorizon is how long the keys that deduplicate deliveries (webhook
// id, body hash) are kept in event_keys: far longer than Stream retries
// (minutes) and than an outage the spool bridges. A delivery repeated
// after it is recorded again.
const DedupHorizon = 7 * 24 * time.Hour

// PartitionsAhead is how many months past the current one have their
// partitions of events and decisions created in advance.
const PartitionsAhead = 3

// MinRetention is the shortest retention the service accepts unless
// forced: the EU Digital Services Act gives users six months to appeal.
const MinRetention = 183 * 24 * time.Hour

// EnsurePartitions creates the monthly partitions of events and decisions
// for this month and the next PartitionsAhead ones that are missing, and
// returns how many it created. Replicas may call it at once.
func (s *Store) EnsurePartitions(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT moderator_ensure_partitions(now(), $1)`, PartitionsAhead).Scan(&n); err != nil {
		return 0, fmt.Errorf("create partitions: %w", err)
	}
	return n, nil
}

// PruneEventKeys deletes the deduplication keys of events recorded more
// than horizon ago and returns how many it deleted.
func (s *Store) PruneEventKeys(ctx context.Context, horizon time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM event_keys WHERE received_at < now() - $1::interval`, horizon)
	if err != nil {
		return 0, fmt.Errorf("prune event keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Partition is a monthly partition that retention considered.
type Partition struct {
	Name  string    // events_2025_01, decisions_2025_01
	Month time.Time // its first instant (UTC)
	Kept  bool      // kept: an open appeal depends on an event of its month
}

// DropPartitionsBefore drops the monthly partitions of events and
// decisions whose month ends at or before before, with the derived rows
// of their months (the search's words), except those holding the event of
// an open appeal, which stay until it is decided. It returns every
// partition it considered, dropped or kept. Its floor is the caller's: the
// service refuses a retention under MinRetention unless forced.
func (s *Store) DropPartitionsBefore(ctx context.Context, before time.Time) ([]Partition, error) {
	rows, err := s.pool.Query(ctx, `SELECT partition_name, month_start, kept FROM moderator_drop_partitions($1)`, before)
	if err != nil {
		return nil, fmt.Errorf("drop expired partitions: %w", err)
	}
	parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Partition, error) {
		var p Partition
		err := r.Scan(&p.Name, &p.Month, &p.Kept)
		p.Month = p.Month.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("drop expired partitions: %w", err)
	}
	return parts, nil
}
