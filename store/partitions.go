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

// RetentionBatch is how many rows (actions: how many actions, with their
// calls, attempts and outcomes) one transaction of DeletePastRetention
// deletes from each table: the daily run never holds long locks nor
// writes one huge transaction.
const RetentionBatch = 5000

// RetainedTables are the unpartitioned tables DeletePastRetention prunes,
// in the order it reports them.
var RetainedTables = []string{"action_calls", "action_attempts", "action_outcomes", "actions",
	"before_send_keys", "before_send_links", "event_raw_bodies", "quarantine", "action_daily_counts"}

// DeletePastRetention deletes the rows of the unpartitioned tables that
// retention no longer keeps, batch rows per table per transaction, until
// none is left, and returns how many it deleted from each table. Rows of
// an event go once its month is dropped (so run it after
// DropPartitionsBefore, with the same cutoff: a month kept for an open
// appeal keeps its actions and before-send records); an action staff
// reviewed (appealed, overturned) stays with that record; quarantine and
// the daily caps' counters go by their own time, before before.
func (s *Store) DeletePastRetention(ctx context.Context, before time.Time, batch int) (map[string]int64, error) {
	if batch < 1 {
		return nil, fmt.Errorf("delete past retention: batch %d: want at least 1", batch)
	}
	total := map[string]int64{}
	for more := true; more; {
		more = false
		rows, err := s.pool.Query(ctx, `SELECT table_name, deleted FROM moderator_prune_audit($1, $2)`, before, batch)
		if err != nil {
			return total, fmt.Errorf("delete past retention: %w", err)
		}
		var table string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&table, &n}, func() error {
			total[table] += n
			more = more || n >= int64(batch)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("delete past retention: %w", err)
		}
	}
	return total, nil
}
