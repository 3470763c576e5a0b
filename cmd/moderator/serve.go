package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"moderator/actions"
	"moderator/policy"
	"moderator/store"
	"moderator/webhook"
)

// serve runs the HTTP service until ctx is cancelled, then drains
// in-flight requests and closes the pool.
func serve(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	keys, err := cfg.webhookKeys()
	if err != nil {
		return err
	}

	// Actions: enqueued as River jobs in the transaction that records the
	// decision (the batcher's hook), run by workers on the same database.
	clientCfg := actions.ClientConfig{
		BaseURL:   cfg.StreamBaseURL,
		APIKey:    cfg.StreamAPIKey,
		APISecret: cfg.StreamAPISecret,
		BotUserID: cfg.BotUserID,
		UserAgent: "moderator-go-" + version,
	}
	runner, err := actions.NewRunner(st.Pool(), clientCfg, actions.Config{
		DryRun:     cfg.DryRun,
		Ledger:     storeLedger{st: st},
		Logger:     logger,
		Metrics:    actions.NewMetrics(reg, st.Pool()),
		RateLimits: cfg.RateLimits,
		DailyCaps:  cfg.DailyCaps,
		MaxWorkers: cfg.ActionWorkers,
	})
	if err != nil {
		return err
	}

	// Background work is owned here and stopped after the HTTP server has
	// drained, so in-flight webhooks can still commit; the action workers
	// stop last, after the batcher has committed (and enqueued) the last
	// events.
	batcher := store.NewBatcher(st, store.BatcherConfig{Hook: enqueueActions(runner)})
	audit := &storeAudit{batcher: batcher}
	rules := newLiveRules(cfg.RulesDir, logger, reg)
	_ = rules.reload("start") // a bad folder is logged; /readyz fails until a good one loads
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	workersStarted := make(chan struct{})
	defer func() {
		select {
		case <-workersStarted:
		default:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := runner.Stop(sctx); err != nil {
			logger.Error("stopping action workers", "error", err)
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopBG()
	wg.Go(func() {
		migrateUntilDone(bg, logger, st, &audit.migrated)
		if bg.Err() != nil {
			return
		}
		// River's tables exist once migrations are applied. The workers'
		// context is not bg: cancelling it would cancel running actions,
		// while shutdown wants them to finish (runner.Stop, above).
		if err := runner.Start(context.WithoutCancel(bg)); err != nil {
			logger.Error("action workers did not start", "error", err)
			return
		}
		close(workersStarted)
	})
	wg.Go(func() { batcher.Run(bg) })
	wg.Go(func() { rules.watch(bg) })
	if !cfg.DryRun {
		wg.Go(func() { ensureBotUser(bg, logger, runner) })
	}

	h := routes(routesConfig{
		logger:   logger,
		registry: reg,
		webhook: webhook.Handler(logger, webhook.Config{
			Keys:                 keys,
			BotUserID:            cfg.BotUserID,
			MaxBodyBytes:         cfg.MaxBodyBytes,
			MaxDecompressedBytes: cfg.MaxGunzipBytes,
		}, rules, audit, webhook.NewMetrics(reg)),
		ready: func(ctx context.Context) error {
			if err := rules.ready(); err != nil {
				return err
			}
			if !audit.migrated.Load() {
				return errors.New("database: migrations not applied yet")
			}
			return st.Ping(ctx)
		},
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "addr", ln.Addr().String(), "version", version, "commit", commit,
		"dry_run", cfg.DryRun, "bot_user_id", cfg.BotUserID, "api_keys", len(keys))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// migrateUntilDone applies migrations, retrying while the database is
// unreachable, so that the service can start before Postgres and become
// ready by itself once it answers.
func migrateUntilDone(ctx context.Context, logger *slog.Logger, st *store.Store, done *atomic.Bool) {
	backoff := 250 * time.Millisecond
	for {
		applied, err := st.Migrate(ctx)
		if err == nil {
			done.Store(true)
			logger.Info("migrations applied", "applied", applied)
			return
		}
		if ctx.Err() != nil {
			return
		}
		logger.Error("migrations failed; retrying", "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// ensureBotUser creates the bot user, the acting user of every action,
// retrying while Stream is unreachable: a Stream outage must not stop the
// service, whose actions wait in the queue meanwhile.
func ensureBotUser(ctx context.Context, logger *slog.Logger, r *actions.Runner) {
	backoff := time.Second
	for {
		err := r.EnsureBotUser(ctx)
		if err == nil {
			logger.Info("bot user ready", "bot_user_id", r.BotUserID())
			return
		}
		if ctx.Err() != nil {
			return
		}
		logger.Error("creating the bot user failed; retrying", "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// enqueueActions is the batcher's hook: the new events' actions become
// jobs in the transaction that records them. The service's own echoes are
// never evaluated, so they carry no decision.
func enqueueActions(r *actions.Runner) store.TxHook {
	return func(ctx context.Context, tx pgx.Tx, events []store.NewEvent) error {
		var todo []actions.EventActions
		for _, e := range events {
			d := e.Record.Decision
			if d == nil || len(d.Actions) == 0 || e.Record.Own {
				continue
			}
			todo = append(todo, actions.EventActions{EventID: e.EventID, Event: e.Record.Event, Actions: d.Actions})
		}
		if len(todo) == 0 {
			return nil
		}
		return r.EnqueueTx(ctx, tx, todo)
	}
}

// storeLedger adapts the store to the action runner's Ledger.
type storeLedger struct{ st *store.Store }

func (l storeLedger) InsertActionsTx(ctx context.Context, tx pgx.Tx, acts []actions.NewAction) ([]int64, error) {
	rows := make([]store.ActionRow, len(acts))
	for i, a := range acts {
		params, err := json.Marshal(a.Action)
		if err != nil {
			return nil, fmt.Errorf("encode action %s: %w", a.Key, err)
		}
		rows[i] = store.ActionRow{
			EventID:      a.EventID,
			Position:     a.Position,
			RuleID:       a.Action.RuleID,
			Type:         string(a.Action.Type),
			TargetUserID: a.Target.UserID,
			MessageID:    a.Target.MessageID,
			ChannelCID:   a.Target.ChannelCID,
			Params:       params,
			Key:          a.Key,
		}
	}
	return store.InsertActions(ctx, tx, rows)
}

func (l storeLedger) TakeDailySlotsTx(ctx context.Context, tx pgx.Tx, day time.Time, typ policy.ActionType, want, limit int) (int, error) {
	return store.TakeDailySlots(ctx, tx, day, string(typ), want, limit)
}

func (l storeLedger) RecordOutcomesTx(ctx context.Context, tx pgx.Tx, outs []actions.OutcomeRecord) error {
	rows := make([]store.OutcomeRow, len(outs))
	for i, o := range outs {
		rows[i] = outcomeRow(o)
	}
	return store.RecordOutcomesTx(ctx, tx, rows)
}

func (l storeLedger) Outcome(ctx context.Context, actionID int64) (actions.Outcome, error) {
	o, err := l.st.ActionOutcome(ctx, actionID)
	return actions.Outcome(o), err
}

func (l storeLedger) RecordAttempt(ctx context.Context, a actions.Attempt) error {
	_, err := l.st.RecordAttempt(ctx, store.AttemptRow{
		ActionID:   a.ActionID,
		Endpoint:   a.Endpoint,
		HTTPStatus: a.HTTPStatus,
		StreamCode: a.StreamCode,
		Duration:   a.Duration,
		Error:      a.Err,
	})
	return err
}

func (l storeLedger) RecordOutcome(ctx context.Context, o actions.OutcomeRecord) (bool, error) {
	return l.st.RecordOutcome(ctx, outcomeRow(o))
}

func outcomeRow(o actions.OutcomeRecord) store.OutcomeRow {
	return store.OutcomeRow{ActionID: o.ActionID, Outcome: string(o.Outcome), Reason: o.Reason, Request: o.Request}
}

// storeAudit adapts the store to the webhook's AuditLog.
type storeAudit struct {
	batcher  *store.Batcher
	migrated atomic.Bool
}

var errNotMigrated = errors.New("database schema not migrated yet")

func (a *storeAudit) RecordEvent(ctx context.Context, d webhook.Delivery) (webhook.Recorded, error) {
	if !a.migrated.Load() {
		return webhook.Recorded{}, errNotMigrated
	}
	res, err := a.batcher.RecordEvent(ctx, store.EventRecord{
		WebhookID:  d.WebhookID,
		BodySHA256: d.SHA256,
		Attempt:    d.Attempt,
		APIKey:     d.APIKey,
		Compressed: d.Compressed,
		Payload:    d.Body,
		Event:      d.Event,
		Own:        d.Own,
		Ignored:    d.Ignored,
		Decision:   d.Decision,
	})
	return webhook.Recorded{EventID: res.EventID, Duplicate: res.Duplicate}, err
}
