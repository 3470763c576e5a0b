package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"moderator/actions"
	"moderator/backtest"
	"moderator/erasure"
	"moderator/jobs"
	"moderator/spool"
	"moderator/store"
	"moderator/webhook"
)

// serve runs the HTTP service until ctx is cancelled, then drains
// in-flight requests and closes the pool.
func serve(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	tuneGC(os.LookupEnv)
	st, migrator, closeStores, err := openStores(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStores()

	_, stopPprof, err := startDebugPprof(os.Getenv(debugPprofEnv), logger)
	if err != nil {
		return err
	}
	defer stopPprof()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg)
	keys, err := cfg.webhookKeys()
	if err != nil {
		return err
	}

	runner, err := newActionRunner(cfg, st, logger, reg)
	if err != nil {
		return err
	}
	eraser, erasures := newEraser(st, logger, reg)
	// One River client runs every queue (see package jobs).
	workers, err := jobs.New(st.Pool(), jobs.Config{Logger: logger}, runner, erasures)
	if err != nil {
		return err
	}

	// Background work is owned here and stopped after the HTTP server has
	// drained, so in-flight webhooks can still commit; the job workers
	// (actions, erasures) stop last, after the batcher has committed (and
	// enqueued) the last events.
	batcher := store.NewBatcher(st, store.BatcherConfig{Early: linkBeforeSend(logger), Queue: enqueueActions(runner),
		Quiet: actionsQuiet, Observe: newIntakeMetrics(reg, st)})
	audit := &storeAudit{batcher: batcher}
	rules := newLiveRules(cfg.RulesDir, logger, reg)
	_ = rules.reload("start") // a bad folder is logged; /readyz fails until a good one loads
	sp, err := openSpool(cfg, logger)
	if err != nil {
		return err
	}
	// Closed last, after the HTTP server and the replayer have stopped.
	defer sp.Close()
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	stopWorkers := startWorkers(bg, &wg, cfg, logger, st, migrator, workers, &audit.migrated)
	defer stopWorkers()
	defer wg.Wait()
	defer stopBG()
	wg.Go(func() { batcher.Run(bg) })
	beforeSendAudit := newBeforeSendQueue(audit, logger, reg, 4096, 8)
	wg.Go(func() { beforeSendAudit.run(bg) })
	wg.Go(func() { rules.watch(bg) })
	startUpkeep(bg, &wg, cfg, logger, reg, st, &audit.migrated, batcher.Busy)
	ruleGuard := newRuleGuard(st, rules, cfg.Guard, logger, reg)
	wg.Go(func() { ruleGuard.run(bg, &audit.migrated) })
	if !cfg.DryRun {
		wg.Go(func() { ensureBotUser(bg, logger, runner) })
	}

	webhookCfg := webhookConfig(cfg, keys, audit)
	keepErased(bg, &wg, eraser, &webhookCfg, logger)
	webhookMetrics := webhook.NewMetrics(reg)
	intake := webhook.NewIntake(logger, webhookCfg, rules, audit, sp, webhookMetrics)
	eraser.Spool = intake
	wg.Go(func() { intake.Replay(bg) })
	// The staff API; its overturns go through the action runner (reversal
	// jobs, cancelled pending actions) and grant the immunity window.
	reg.MustRegister(newAppealQueueCollector(st))
	// Backtests run in the background, one at a time; a shutdown stops the
	// one running (its row says so) before the pool closes.
	backtests := backtest.NewRunner(st, logger)
	defer backtests.Close()
	api, ui, err := staffAPI(ctx, cfg, logger, reg, st, rules, newOverturner(st, runner, cfg.ImmunityWindow, logger, nil), backtests, ruleGuard, eraser)
	if err != nil {
		return err
	}
	metrics, stopMetrics, err := startMetrics(cfg, reg, logger)
	if err != nil {
		return err
	}
	defer stopMetrics()
	h := routes(routesConfig{
		logger:      logger,
		metrics:     metrics,
		webhook:     intake.Handler(),
		beforeSend:  webhook.BeforeSendHandler(logger, webhookCfg, rules, beforeSendAudit, webhookMetrics),
		ready:       readiness(rules, audit, intake, st),
		readyDetail: rules.readyDetail,
		staffAPI:    api,
		console:     ui,
	})

	return serveHTTP(ctx, cfg, h, logger, len(keys))
}

// startWorkers applies the migrations in the background (retrying while
// the database is unreachable), then starts the job workers (actions,
// erasures): River's tables exist once migrations are applied. stop lets
// running jobs finish within the shutdown timeout. The workers' context
// is not bg: cancelling it would cancel running actions, while shutdown
// wants them to finish.
func startWorkers(bg context.Context, wg *sync.WaitGroup, cfg config, logger *slog.Logger,
	st, migrator *store.Store, workers *jobs.Client, migrated *atomic.Bool) (stop func()) {
	started := make(chan struct{})
	wg.Go(func() {
		migrateUntilDone(bg, logger, migrator, migrated)
		if migrator != st {
			migrator.Close()
		}
		if bg.Err() != nil {
			return
		}
		if err := workers.Start(context.WithoutCancel(bg)); err != nil {
			logger.Error("job workers did not start", "error", err)
			return
		}
		close(started)
	})
	return func() {
		select {
		case <-started:
		default:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := workers.Stop(sctx); err != nil {
			logger.Error("stopping job workers", "error", err)
		}
	}
}

// defaultGCPercent is the garbage collector's target unless GOGC is set.
// The live heap is small (the mark cache's at most 50 MB, pools), and the
// collector took 13 % of the service's CPU at Go's default of 100; 200
// cut the server's CPU per webhook by 5–13 % in four alternating
// closed-loop pairs (2026-12-05), for a heap at most twice as large.
const defaultGCPercent = 200

// tuneGC sets defaultGCPercent unless the operator set GOGC.
func tuneGC(lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// serveHTTP listens on MODERATOR_ADDR and serves h until ctx ends, then
// drains the in-flight requests within the shutdown timeout.
func serveHTTP(ctx context.Context, cfg config, h http.Handler, logger *slog.Logger, apiKeys int) error {
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
		"dry_run", cfg.DryRun, "bot_user_id", cfg.BotUserID, "api_keys", apiKeys)

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

// openStores opens the service's store on DATABASE_URL and the one that
// migrates: the owner role's MODERATOR_MIGRATE_DATABASE_URL when set (the
// service then runs as a role that may change neither the schema nor the
// audit trail), else the same store. closeStores closes both.
func openStores(ctx context.Context, cfg config) (st, migrator *store.Store, closeStores func(), err error) {
	if st, err = store.Open(ctx, cfg.DatabaseURL); err != nil {
		return nil, nil, nil, err
	}
	if cfg.MigrateDatabaseURL == "" {
		return st, st, st.Close, nil
	}
	if migrator, err = store.Open(ctx, cfg.MigrateDatabaseURL); err != nil {
		st.Close()
		return nil, nil, nil, fmt.Errorf("MODERATOR_MIGRATE_DATABASE_URL: %w", err)
	}
	// The migrator is closed once migrated, too; Close is idempotent.
	return st, migrator, func() { migrator.Close(); st.Close() }, nil
}

// newActionRunner builds the action runner: actions are enqueued as River
// jobs in the transaction that records the decision (the batcher's hook)
// and run by workers on the same database, within a call budget shared
// with the other replicas.
func newActionRunner(cfg config, st *store.Store, logger *slog.Logger, reg *prometheus.Registry) (*actions.Runner, error) {
	clientCfg := actions.ClientConfig{
		BaseURL:   cfg.StreamBaseURL,
		APIKey:    cfg.StreamAPIKey,
		APISecret: cfg.StreamAPISecret,
		BotUserID: cfg.BotUserID,
		UserAgent: "moderator/" + buildVersion(),
	}
	return actions.NewRunner(clientCfg, actions.Config{
		DryRun:     cfg.DryRun,
		Ledger:     storeLedger{st: st},
		Budget:     st, // one call budget per endpoint for every replica
		Logger:     logger,
		Metrics:    actions.NewMetrics(reg, st.Pool()),
		RateLimits: cfg.RateLimits,
		DailyCaps:  cfg.DailyCaps,
		MaxWorkers: cfg.ActionWorkers,
	})
}

// startMetrics starts MODERATOR_METRICS_ADDR's listener when one is set
// and returns nil for the main router; otherwise it returns the handler
// the main router serves at /metrics.
func startMetrics(cfg config, reg *prometheus.Registry, logger *slog.Logger) (onMain http.Handler, stop func(), err error) {
	if cfg.MetricsAddr == "" {
		return metricsHandler(reg), func() {}, nil
	}
	srv, err := listenMetrics(cfg.MetricsAddr, reg, logger)
	if err != nil {
		return nil, nil, err
	}
	logger.Info("metrics listening", "addr", srv.ln.Addr().String())
	go func() {
		if err := srv.serve(); err != nil {
			logger.Error("metrics listener stopped", "error", err)
		}
	}()
	return nil, func() { _ = srv.shutdown(context.Background()) }, nil
}

// openSpool opens the local spool and says what it found there.
func openSpool(cfg config, logger *slog.Logger) (*spool.Spool, error) {
	sp, rec, err := spool.Open(cfg.SpoolDir, spool.Options{MaxBytes: cfg.SpoolMaxBytes})
	if err != nil {
		return nil, fmt.Errorf("MODERATOR_SPOOL_DIR %s: %w", cfg.SpoolDir, err)
	}
	level := slog.LevelInfo
	if rec.CutBytes > 0 {
		level = slog.LevelWarn // a crash tore the last write: those bytes were never acknowledged
	}
	logger.Log(context.Background(), level, "spool opened", "dir", cfg.SpoolDir, "max_bytes", cfg.SpoolMaxBytes,
		"records", rec.Records, "segments", rec.Segments, "torn_bytes_cut", rec.CutBytes)
	return sp, nil
}

// readiness is /readyz: not ready (503) without a rule set, when the
// intake cannot take deliveries durably (spool full or failing), or for the
// moment between a database answering and its migrations applied; degraded
// (200) while it spools, while commits fail, or while the database is
// unreachable, since the spool takes the deliveries then.
func readiness(rules *liveRules, audit *storeAudit, intake *webhook.Intake, st *store.Store) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		if err := rules.ready(); err != nil {
			return nil, err
		}
		degraded, err := intake.Ready()
		if err != nil {
			return nil, err
		}
		switch err := st.Ping(ctx); {
		case err != nil:
			degraded = append(degraded, err.Error())
		case !audit.migrated.Load():
			// The database answers: migrations are a moment away.
			return nil, errors.New("database: migrations not applied yet")
		}
		return degraded, nil
	}
}

// migrateUntilDone applies migrations, retrying while the database is
// unreachable, so that the service can start before Postgres and become
// ready by itself once it answers.
func migrateUntilDone(ctx context.Context, logger *slog.Logger, st *store.Store, done *atomic.Bool) {
	retry(ctx, logger, "applying migrations", 250*time.Millisecond, 10*time.Second, func() error {
		applied, err := st.Migrate(ctx)
		if err == nil {
			done.Store(true)
			logger.Info("migrations applied", "applied", applied)
		}
		return err
	})
}

// counterExpiry is how often serve deletes expired counter marks and
// strikes.
const counterExpiry = time.Hour

// expireCounters deletes counter marks and strikes past
// store.CounterRetention, at start (once migrated) and then every
// counterExpiry, in chunks, so that counter data expires on its own.
// Every replica does it; the deletes are idempotent.
func expireCounters(ctx context.Context, logger *slog.Logger, st *store.Store, migrated *atomic.Bool) {
	everyOnceMigrated(ctx, counterExpiry, migrated, func() {
		expireInChunks(ctx, logger, "counter marks", st.ExpireCounterMarks)
		expireInChunks(ctx, logger, "strikes", st.ExpireStrikes)
	})
}

// expireInChunks calls expire until it deletes less than a chunk, and
// logs what it deleted.
func expireInChunks(ctx context.Context, logger *slog.Logger, what string,
	expire func(ctx context.Context, retention time.Duration, limit int) (int64, error)) {
	var total int64
	for {
		const chunk = 10_000
		n, err := expire(ctx, store.CounterRetention, chunk)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				logger.Error("expiring "+what, "error", err, "deleted", total)
			}
			break
		}
		if n < chunk {
			break
		}
	}
	if total > 0 {
		logger.Info(what+" expired", "deleted", total)
	}
}

// webhookConfig is the webhook edge's configuration (the erasure's hook
// is set once the intake exists).
func webhookConfig(cfg config, keys webhook.Keyring, audit *storeAudit) webhook.Config {
	return webhook.Config{
		Keys:                 keys,
		BotUserID:            cfg.BotUserID,
		MaxBodyBytes:         cfg.MaxBodyBytes,
		MaxDecompressedBytes: cfg.MaxGunzipBytes,
		Transient:            audit.transient,
	}
}

// startUpkeep starts, in wg, the database's background upkeep once the
// migrations are applied: expiring counter marks, keeping the audit
// tables (partitions, retention) and indexing words for the search, which
// gives way while busy says the intake is queueing.
func startUpkeep(ctx context.Context, wg *sync.WaitGroup, cfg config, logger *slog.Logger, reg prometheus.Registerer,
	st *store.Store, migrated *atomic.Bool, busy func() bool) {
	wg.Go(func() { expireCounters(ctx, logger, st, migrated) })
	lifecycle := newLifecycleMetrics(reg)
	wg.Go(func() { keepAuditTables(ctx, logger, st, cfg.Retention, lifecycle, migrated) })
	wg.Go(func() { indexWords(ctx, logger, st, migrated, busy) })
}

// everyOnceMigrated calls fn a second after start once the migrations
// are applied (checking every second until they are), then every period,
// until ctx is done.
func everyOnceMigrated(ctx context.Context, period time.Duration, migrated *atomic.Bool, fn func()) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	wait := time.After(time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait:
			wait = nil
		case <-tick.C:
		}
		if !migrated.Load() {
			wait = time.After(time.Second)
			continue
		}
		fn()
	}
}

// wordsEvery is how often the words of new events are indexed for the
// full-text search; wordsBatch how many at a time: small, so that one
// statement holds a core for tens of milliseconds, not hundreds, beside
// the intake's commits (1,000 took up to 0.9 s under load, mostly writing
// the full-text index).
const (
	wordsEvery = time.Second
	wordsBatch = 250
)

// The indexer works at most 1/wordsShare of the time while it catches up
// (it pauses after each full batch for wordsShare-1 times as long as the
// batch took), and 1/wordsBusyShare while the intake is busy (the database
// its bottleneck), so that a backlog never takes a core from the intake
// for long.
const (
	wordsShare     = 2
	wordsBusyShare = 10
)

// indexWords indexes the words of newly recorded events for the staff's
// full-text search, every second, off the recording path (so the search
// sees an event about a second after it is recorded); a backlog (after an
// upgrade, a burst) is worked through in batches, at most half of the
// time, and at most a tenth while busy says the intake is queueing for
// the database (see wordsPause): the search then lags behind until the
// burst is over.
func indexWords(ctx context.Context, logger *slog.Logger, st *store.Store, migrated *atomic.Bool, busy func() bool) {
	tick := time.NewTicker(wordsEvery)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !migrated.Load() {
			continue
		}
		for ctx.Err() == nil {
			start := time.Now()
			n, err := st.IndexEventWords(ctx, wordsBatch)
			if err != nil {
				if ctx.Err() == nil && !failing {
					logger.Error("indexing words for search", "error", err)
				}
				failing = true
				break
			}
			failing = false
			if n < wordsBatch {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(wordsPause(time.Since(start), busy())):
			}
		}
	}
}

// wordsPause is how long the indexer waits after a full batch that took
// took: enough to keep it to 1/wordsShare of the time, or to
// 1/wordsBusyShare while the intake is busy.
func wordsPause(took time.Duration, busy bool) time.Duration {
	if busy {
		return took * (wordsBusyShare - 1)
	}
	return took * (wordsShare - 1)
}

// ensureBotUser creates the bot user, the acting user of every action,
// retrying while Stream is unreachable: a Stream outage must not stop the
// service, whose actions wait in the queue meanwhile.
func ensureBotUser(ctx context.Context, logger *slog.Logger, r *actions.Runner) {
	retry(ctx, logger, "creating the bot user", time.Second, time.Minute, func() error {
		err := r.EnsureBotUser(ctx)
		if err == nil {
			logger.Info("bot user ready", "bot_user_id", r.BotUserID())
		}
		return err
	})
}

// retry calls fn until it succeeds or ctx ends, doubling the pause between
// attempts from first up to most, and logging each failure.
func retry(ctx context.Context, logger *slog.Logger, what string, first, most time.Duration, fn func() error) {
	backoff := first
	for {
		err := fn()
		if err == nil || ctx.Err() != nil {
			return
		}
		logger.Error(what+" failed; retrying", "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, most)
	}
}

// newEraser returns the Eraser of the staff API and of Stream's hard
// user.deleted (this replica's spool, then the database) and its durable
// queue of the erasures that failed at once, which the job workers run.
func newEraser(st *store.Store, logger *slog.Logger, reg prometheus.Registerer) (*erasure.Eraser, *erasure.Queue) {
	eraser := erasure.New(st, logger)
	eraser.Recent = erasure.NewRecent(st, logger)
	queue := erasure.NewQueue(eraser, erasure.QueueConfig{Reg: reg})
	eraser.Later = queue
	return eraser, queue
}

// keepErased sets the eraser in the intake's configuration and keeps the
// set of users erased lately (here or on another replica), whose late
// deliveries the intake redacts before they are recorded.
func keepErased(bg context.Context, wg *sync.WaitGroup, eraser *erasure.Eraser, webhookCfg *webhook.Config, logger *slog.Logger) {
	webhookCfg.Eraser, webhookCfg.Erased = eraser, eraser.Recent
	// Loaded before the intake takes deliveries (a database not migrated
	// yet leaves it empty until the first refresh that works).
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	if err := eraser.Recent.Refresh(ctx); err != nil {
		logger.Warn("loading the erased users failed; retrying in the background", "error", err.Error())
	}
	cancel()
	wg.Go(func() { eraser.Recent.Run(bg) })
}
