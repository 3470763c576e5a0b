package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

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

	// Background work is owned here and stopped after the HTTP server has
	// drained, so in-flight webhooks can still commit.
	batcher := store.NewBatcher(st, store.BatcherConfig{})
	audit := &storeAudit{batcher: batcher}
	rules := newLiveRules(cfg.RulesDir, logger, reg)
	_ = rules.reload("start") // a bad folder is logged; /readyz fails until a good one loads
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopBG()
	wg.Go(func() { migrateUntilDone(bg, logger, st, &audit.migrated) })
	wg.Go(func() { batcher.Run(bg) })
	wg.Go(func() { rules.watch(bg) })

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
