package backtest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"moderator/policy"
	"moderator/store"
)

// Store is what a recorded backtest needs: the history it reads and the
// table its result is kept in.
type Store interface {
	Source
	StartBacktest(ctx context.Context, b store.Backtest, act store.StaffAct) (int64, error)
	FinishBacktest(ctx context.Context, id int64, summary string, report []byte, failure string) error
}

// Request says who asked for a backtest and where its candidate came
// from (a folder, or "api" for files sent to the staff API).
type Request struct {
	Actor  string
	Role   string
	Source string
}

// Start checks opt and records the backtest as running, with the staff
// act of asking for it, before anything is read.
func Start(ctx context.Context, st Store, cand *policy.RuleSet, opt Options, req Request) (int64, error) {
	if err := opt.check(); err != nil {
		return 0, err
	}
	p := store.BacktestParams{From: opt.From, To: opt.To, Channels: opt.Channels, Rules: opt.Rules, Samples: opt.Samples,
		Source: req.Source, CandidateVersion: cand.Version()}
	return st.StartBacktest(ctx, store.Backtest{RequestedBy: req.Actor, Role: req.Role, Params: p},
		store.StaffAct{Actor: req.Actor, Role: req.Role, Params: p})
}

// Finish runs backtest id and records its report, or why it failed.
func Finish(ctx context.Context, st Store, id int64, cand *policy.RuleSet, opt Options) (*Report, error) {
	rep, err := Run(ctx, st, cand, opt)
	if err != nil {
		// The row must not stay "running" because the caller's context
		// ended: record the failure on a context of its own.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if ferr := st.FinishBacktest(fctx, id, "", nil, err.Error()); ferr != nil {
			return nil, fmt.Errorf("%w (and recording the failure: %v)", err, ferr)
		}
		return nil, err
	}
	rep.ID = id
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, fmt.Errorf("encode backtest report: %w", err)
	}
	if err := st.FinishBacktest(ctx, id, rep.Summary, b, ""); err != nil {
		return nil, err
	}
	return rep, nil
}

// Record is Start then Finish: a backtest run to its end by the caller.
func Record(ctx context.Context, st Store, cand *policy.RuleSet, opt Options, req Request) (*Report, error) {
	id, err := Start(ctx, st, cand, opt, req)
	if err != nil {
		return nil, err
	}
	return Finish(ctx, st, id, cand, opt)
}
