package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ActBacktest is the staff act of running a backtest.
const ActBacktest = "backtest"

// Backtest statuses.
const (
	BacktestRunning = "running"
	BacktestDone    = "done"
	BacktestFailed  = "failed"
)

// ErrBacktestRunning: this process is running a backtest already; one
// runs at a time, so that a backtest never takes the cores the webhooks
// need.
var ErrBacktestRunning = errors.New("a backtest is already running; wait for it to finish (GET /backtests)")

// BacktestParams is what a backtest was asked: its window [From, To),
// the channels and rules its report is limited to, the samples per
// difference, and its candidate (where it came from, and its version).
type BacktestParams struct {
	From             time.Time `json:"from"`
	To               time.Time `json:"to"`
	Channels         []string  `json:"channels,omitempty"`
	Rules            []string  `json:"rules,omitempty"`
	Samples          int       `json:"samples"`
	Source           string    `json:"candidate_source"`
	CandidateVersion string    `json:"candidate_version"`
}

// Backtest is one backtest: who asked for what, and, once it ran, its
// report (JSON, as package backtest writes it) or why it failed.
type Backtest struct {
	ID          int64           `json:"id" db:"id"`
	RequestedBy string          `json:"requested_by" db:"requested_by"`
	Role        string          `json:"role" db:"role"`
	CreatedAt   time.Time       `json:"created_at" db:"created_at"`
	Params      BacktestParams  `json:"params" db:"params"`
	Status      string          `json:"status" db:"status"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty" db:"finished_at"`
	Summary     string          `json:"summary,omitempty" db:"summary"`
	Report      json.RawMessage `json:"report,omitempty" db:"report"`
	Error       string          `json:"error,omitempty" db:"error"`
}

// StartBacktest records a backtest about to run, and the staff act of
// asking for it, in one transaction, and returns its id.
func (s *Store) StartBacktest(ctx context.Context, b Backtest, act StaffAct) (int64, error) {
	raw, err := json.Marshal(b.Params)
	if err != nil {
		return 0, fmt.Errorf("start backtest: %w", err)
	}
	params := jsonbSafe(raw)
	var id int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO backtests (requested_by, role, params, candidate_version, status)
			VALUES ($1, $2, $3::jsonb, $4, 'running') RETURNING id`,
			b.RequestedBy, b.Role, params, b.Params.CandidateVersion).Scan(&id)
		if err != nil {
			return err
		}
		act.Act, act.Target = ActBacktest, fmt.Sprintf("backtest:%d", id)
		return RecordStaffActTx(ctx, tx, act)
	})
	if err != nil {
		return 0, fmt.Errorf("start backtest: %w", err)
	}
	return id, nil
}

// FinishBacktest records the report of backtest id, or why it failed
// (report nil, failure set).
func (s *Store) FinishBacktest(ctx context.Context, id int64, summary string, report []byte, failure string) error {
	status := BacktestDone
	var rep *string
	if report != nil {
		r := jsonbSafe(report)
		rep = &r
	}
	if failure != "" {
		status = BacktestFailed
	}
	tag, err := s.pool.Exec(ctx, `UPDATE backtests SET status = $2, finished_at = now(), summary = $3, report = $4::jsonb, error = $5
		WHERE id = $1 AND status = 'running'`, id, status, nullString(summary), rep, nullString(failure))
	if err != nil {
		return fmt.Errorf("finish backtest %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish backtest %d: %w", id, ErrNotFound)
	}
	return nil
}

const backtestColumns = `id, requested_by, role, created_at, params, status, finished_at,
	coalesce(summary, '') AS summary, coalesce(error, '') AS error`

// GetBacktest returns backtest id with its report.
func (s *Store) GetBacktest(ctx context.Context, id int64) (Backtest, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+backtestColumns+`, report FROM backtests WHERE id = $1`, id)
	if err != nil {
		return Backtest{}, fmt.Errorf("get backtest %d: %w", id, err)
	}
	b, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByNameLax[Backtest])
	if errors.Is(err, pgx.ErrNoRows) {
		return Backtest{}, fmt.Errorf("backtest %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Backtest{}, fmt.Errorf("get backtest %d: %w", id, err)
	}
	return b, nil
}

// ListBacktests returns backtests newest first, without their reports.
func (s *Store) ListBacktests(ctx context.Context, cursorText string, limit int) (Page[Backtest], error) {
	const kind = "backtests"
	c, err := decodeCursor(kind, cursorText)
	if err != nil {
		return Page[Backtest]{}, err
	}
	limit = pageSize(limit)
	var q query
	q.after(c, "created_at", "id")
	rows, err := s.pool.Query(ctx, `SELECT `+backtestColumns+` FROM backtests `+q.clause()+
		` ORDER BY created_at DESC, id DESC LIMIT `+q.arg(limit+1), q.args...)
	if err != nil {
		return Page[Backtest]{}, fmt.Errorf("list backtests: %w", err)
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByNameLax[Backtest])
	if err != nil {
		return Page[Backtest]{}, fmt.Errorf("list backtests: %w", err)
	}
	return paginate(items, limit, func(b Backtest) string { return encodeCursor(kind, b.CreatedAt, 0, b.ID) }), nil
}
