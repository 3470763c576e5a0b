package backtest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"moderator/policy"
	"moderator/store"
)

// Lister reads the kept backtests: the store.
type Lister interface {
	ListBacktests(ctx context.Context, cursor string, limit int) (store.Page[store.Backtest], error)
	GetBacktest(ctx context.Context, id int64) (store.Backtest, error)
}

// Runner runs the staff API's backtests in the background, one at a time
// in this process (the cores are the webhooks' first), and keeps their
// results through the store. Close stops the one running: its row ends
// failed, saying why.
type Runner struct {
	st     Store
	list   Lister
	logger *slog.Logger

	mu      sync.Mutex
	running bool
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// NewRunner returns a Runner over st.
func NewRunner[S interface {
	Store
	Lister
}](st S, logger *slog.Logger) *Runner {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{st: st, list: st, logger: logger, stop: make(chan struct{})}
}

// StartBacktest records a backtest of cand as asked by act's actor and
// starts it; it returns the backtest's id at once. It returns
// store.ErrBacktestRunning while another runs.
func (r *Runner) StartBacktest(ctx context.Context, cand *policy.RuleSet, p store.BacktestParams, act store.StaffAct) (int64, error) {
	r.mu.Lock()
	if r.running || r.closed {
		r.mu.Unlock()
		return 0, store.ErrBacktestRunning
	}
	r.running = true
	r.mu.Unlock()
	done := func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}
	opt := Options{From: p.From, To: p.To, Channels: p.Channels, Rules: p.Rules, Samples: p.Samples}
	id, err := Start(ctx, r.st, cand, opt, Request{Actor: act.Actor, Role: act.Role, Source: p.Source})
	if err != nil {
		done()
		return 0, err
	}
	r.wg.Go(func() {
		defer done()
		bctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-r.stop:
				cancel()
			case <-bctx.Done():
			}
		}()
		start := time.Now()
		rep, err := Finish(bctx, r.st, id, cand, opt)
		if err != nil {
			r.logger.Error("backtest failed", "backtest_id", id, "error", err.Error())
			return
		}
		r.logger.Info("backtest done", "backtest_id", id, "events", rep.Evaluated,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "summary", rep.Summary)
	})
	return id, nil
}

// ListBacktests lists the kept backtests, newest first.
func (r *Runner) ListBacktests(ctx context.Context, cursor string, limit int) (store.Page[store.Backtest], error) {
	return r.list.ListBacktests(ctx, cursor, limit)
}

// GetBacktest returns one backtest with its report.
func (r *Runner) GetBacktest(ctx context.Context, id int64) (store.Backtest, error) {
	return r.list.GetBacktest(ctx, id)
}

// Close stops the running backtest, if any, and waits for it to record
// that it stopped.
func (r *Runner) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
	r.mu.Unlock()
	r.wg.Wait()
}
