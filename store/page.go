package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Page sizes of every list: a caller's limit is clamped to [1, MaxPageSize],
// and 0 means DefaultPageSize.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// Page is one page of a list, newest first. NextCursor, when not empty,
// asks for the page after this one; it is opaque and belongs to the list
// that issued it.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// pageSize clamps a caller's limit.
func pageSize(limit int) int {
	switch {
	case limit == 0:
		return DefaultPageSize
	case limit < 1:
		return 1
	case limit > MaxPageSize:
		return MaxPageSize
	}
	return limit
}

// cursor is the position after which a page starts: the (time, rank, id)
// of the last row of the previous page, in the list's order (time
// descending, then rank, then id). Rank orders the kinds of rows of a
// timeline that share a time; other lists leave it 0. Kind ties a cursor
// to its list, so that one list's cursor is refused by another.
type cursor struct {
	Kind string `json:"k"`
	At   int64  `json:"t"` // microseconds since the Unix epoch, Postgres's precision
	Rank int    `json:"r,omitempty"`
	ID   int64  `json:"i"`
}

func encodeCursor(kind string, at time.Time, rank int, id int64) string {
	b, _ := json.Marshal(cursor{Kind: kind, At: at.UnixMicro(), Rank: rank, ID: id}) // plain fields always encode
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads s, a cursor issued for the list kind; "" is the first
// page (nil).
func decodeCursor(kind, s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > 256 {
		return nil, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrBadCursor
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var c cursor
	if err := dec.Decode(&c); err != nil || dec.More() || c.Kind != kind || c.ID <= 0 || c.Rank < 0 {
		return nil, ErrBadCursor
	}
	return &c, nil
}

func (c *cursor) time() time.Time { return time.UnixMicro(c.At).UTC() }

// ceilMicro rounds t up to Postgres's microsecond precision, so that the
// bounds of [From, To) keep their meaning for rows stored at a whole
// microsecond (pgx would truncate them).
func ceilMicro(t time.Time) time.Time {
	if r := t.Sub(t.Truncate(time.Microsecond)); r > 0 {
		return t.Truncate(time.Microsecond).Add(time.Microsecond)
	}
	return t
}

// query is a SQL statement under construction: conditions are fixed text
// written here, and every value a caller passes is a parameter ($n), never
// spliced into the text.
type query struct {
	conds []string
	args  []any
}

// arg adds a parameter and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return fmt.Sprintf("$%d", len(q.args))
}

// where adds a condition (already holding its placeholders).
func (q *query) where(cond string) { q.conds = append(q.conds, cond) }

// clause returns "WHERE a AND b …", or "" with no conditions.
func (q *query) clause() string {
	if len(q.conds) == 0 {
		return ""
	}
	return "WHERE " + strings.Join(q.conds, " AND ")
}

// equal adds col = v when v is set: an empty filter field matches any row.
func (q *query) equal(col, v string) {
	if v != "" {
		q.where(col + " = " + q.arg(v))
	}
}

// timeRange adds [from, to) on col.
func (q *query) timeRange(col string, from, to time.Time) {
	if !from.IsZero() {
		q.where(col + " >= " + q.arg(ceilMicro(from)))
	}
	if !to.IsZero() {
		q.where(col + " < " + q.arg(ceilMicro(to)))
	}
}

// after adds the keyset condition: rows strictly after c in the order
// (timeCol DESC, idCol DESC).
func (q *query) after(c *cursor, timeCol, idCol string) {
	if c == nil {
		return
	}
	q.where("(" + timeCol + ", " + idCol + ") < (" + q.arg(c.time()) + "::timestamptz, " + q.arg(c.ID) + "::bigint)")
}

// afterAscending is after for a list in ascending order: rows strictly
// after c in the order (timeCol, idCol).
func (q *query) afterAscending(c *cursor, timeCol, idCol string) {
	if c == nil {
		return
	}
	q.where("(" + timeCol + ", " + idCol + ") > (" + q.arg(c.time()) + "::timestamptz, " + q.arg(c.ID) + "::bigint)")
}

// search runs a search statement planned for its values each time. The
// searches' plans hinge on how selective a value is (a rule that matched
// 30 decisions, or 3,000): a cached statement's generic plan, which pgx's
// statement cache gets after five runs, cannot know it and falls back to
// reading a time index from the top (BenchmarkAuditReads/decisions/rule:
// 8-10 ms a page with the cached statement, 1.6 ms planned each time).
func (s *Store) search(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return s.pool.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...)
}
