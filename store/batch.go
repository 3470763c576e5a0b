package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Batcher groups concurrent RecordEvent calls into shared transactions
// (group commit). A commit costs a WAL flush whatever its size, so under
// load many events share one; at low load a call waits for nobody: a
// flusher takes whatever is queued the moment it is free, so batching
// adds no delay of its own.
type Batcher struct {
	store *Store
	queue chan *pending
	// keyed holds a queue per flusher for records with a Judge, which
	// route assigns by their keys (see routeKeysOf): one user's events in
	// flight share a flusher, so the flushers of one replica never wait
	// for each other's counter locks (a busy user is in almost every
	// batch), and a batch judges them in order.
	keyed    []chan *pending
	route    *router
	maxBatch int
	flushers int
	timeout  time.Duration
	hooks    Hooks
	observe  func(BatchStats)
	// queuedAt is when (unix nanoseconds) a flusher last took a batch of
	// busyBatch records or more; see Busy.
	queuedAt atomic.Int64
}

// busyBatch is the batch size from which the intake counts as busy:
// deliveries are queueing for the flushers, not arriving one at a time.
const busyBatch = 8

// busyFor is how long the intake stays busy after its last large batch.
const busyFor = 2 * time.Second

// Busy reports whether deliveries have been queueing for a commit lately
// (a batch of busyBatch records or more within busyFor): the database is
// the intake's bottleneck, and background work that shares it, such as
// the word indexer, should give way. At a steady few hundred webhooks a
// second batches hold one to three records, and Busy stays false.
func (b *Batcher) Busy() bool {
	t := b.queuedAt.Load()
	return t != 0 && time.Since(time.Unix(0, t)) < busyFor
}

type pending struct {
	rec    EventRecord
	done   chan batchResult // buffered: the flusher never blocks on a caller
	queued time.Time        // when it was submitted, when Observe is set (BatchStats.Waits)
	// routed says that the router counts the record in flight on
	// flusher under keys, until its result is sent.
	routed  bool
	keys    routeKeys
	flusher int
}

type batchResult struct {
	res RecordResult
	err error
}

// BatcherConfig tunes a Batcher; zero values take the defaults.
type BatcherConfig struct {
	MaxBatch int                      // events per transaction; default 256
	Flushers int                      // transactions in flight at once; default 2
	Timeout  time.Duration            // budget of one transaction; default 5 s
	Hook     TxHook                   // runs in each batch's transaction with its new events
	Queue    QueueHook                // queues statements with each batch's decisions (see Hooks)
	Quiet    func([]EventRecord) bool // tells ahead when Queue has nothing to do (see Hooks)
	Early    EarlyHook                // queues statements with each batch's insert
	// Observe, when set, is told what each batch cost, by the flusher
	// that wrote it, after its records have their answers: keep it quick.
	Observe func(BatchStats)
}

// BatchStats is what one batch cost: where a webhook's time goes between
// its verification and its answer, for the intake's metrics.
type BatchStats struct {
	Records int
	// Path is the way the batch went; a batch split to set a refused
	// record apart has its last part's.
	Path BatchPath
	// Waits is how long each record waited for a flusher, from Submit to
	// its batch being taken: the intake's queue for the database.
	Waits []time.Duration
	// Took is from the batch being taken to its records' answers: the
	// transaction's round trips, the judging, the commit.
	Took time.Duration
}

// BatchPath is the way a batch went to Postgres, which sets how many
// round trips it took: at a few hundred webhooks a second the batches of
// one path take two to three times as long as another's, so their times
// are told apart (docs/performance.md, session 21).
type BatchPath string

const (
	// PathInsert: committed with its events' insert, in one round trip:
	// nothing to write after them (no rule matched a record judged ahead
	// from the replica's copies, or nothing was to be judged).
	PathInsert BatchPath = "insert"
	// PathAhead: judged ahead from the copies, then its decisions (and
	// their actions and outcomes) written after the insert: one or two
	// round trips more.
	PathAhead BatchPath = "ahead"
	// PathRead: judged after reading its history in the transaction (the
	// copies could not spare the read, or a judged-ahead batch found them
	// stale and was recorded again this way).
	PathRead BatchPath = "read"
	// PathWrite: nothing to judge, something to write after the insert (a
	// raw body kept, a hook's statements).
	PathWrite BatchPath = "write"
	// PathFailed: the batch was not recorded (the database unreachable,
	// or a record refused and quarantined).
	PathFailed BatchPath = "failed"
)

// NewBatcher returns a Batcher writing to s. Call Run to start it.
func NewBatcher(s *Store, cfg BatcherConfig) *Batcher {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.Flushers <= 0 {
		cfg.Flushers = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	b := &Batcher{store: s, queue: make(chan *pending, cfg.MaxBatch*cfg.Flushers), maxBatch: cfg.MaxBatch,
		flushers: cfg.Flushers, timeout: cfg.Timeout, hooks: Hooks{Queue: cfg.Queue, Tx: cfg.Hook, Quiet: cfg.Quiet, Early: cfg.Early},
		route: newRouter(cfg.Flushers), observe: cfg.Observe}
	for range cfg.Flushers {
		b.keyed = append(b.keyed, make(chan *pending, cfg.MaxBatch))
	}
	return b
}

// ErrBatcherStopped is returned for records queued after Run returned.
var ErrBatcherStopped = errors.New("event batcher stopped")

// Run flushes batches until ctx is cancelled, then drains what is queued
// and returns. Records still queued are written before Run returns, so
// cancel it only after the HTTP server has stopped taking requests.
func (b *Batcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, own := range b.keyed {
		wg.Go(func() { b.flushLoop(ctx, own) })
	}
	wg.Wait()
	// Flush anything that raced with cancellation.
	for _, own := range b.keyed {
		for {
			batch := b.take(nil, own)
			if len(batch) == 0 {
				break
			}
			b.flushTimed(batch)
		}
	}
}

func (b *Batcher) flushLoop(ctx context.Context, own chan *pending) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-own:
			b.flushTimed(b.take(p, own))
		case p := <-b.queue:
			b.flushTimed(b.take(p, own))
		}
	}
}

// take returns first (if any) and every record queued now in the
// flusher's own queue and the shared one, up to maxBatch.
func (b *Batcher) take(first *pending, own chan *pending) []*pending {
	batch := make([]*pending, 0, b.maxBatch)
	if first != nil {
		batch = append(batch, first)
	}
	for len(batch) < b.maxBatch {
		select {
		case p := <-own:
			batch = append(batch, p)
			continue
		default:
		}
		select {
		case p := <-b.queue:
			batch = append(batch, p)
		default:
			b.noteSize(len(batch))
			return batch
		}
	}
	b.noteSize(len(batch))
	return batch
}

// noteSize remembers when a large batch was taken (see Busy).
func (b *Batcher) noteSize(n int) {
	if n >= busyBatch {
		b.queuedAt.Store(time.Now().UnixNano())
	}
}

// flushTimed flushes batch and tells Observe what it cost.
func (b *Batcher) flushTimed(batch []*pending) {
	if b.observe == nil {
		b.flush(batch)
		return
	}
	taken := time.Now()
	path := b.flush(batch)
	st := BatchStats{Records: len(batch), Path: path, Took: time.Since(taken), Waits: make([]time.Duration, len(batch))}
	for i, p := range batch {
		st.Waits[i] = taken.Sub(p.queued)
	}
	b.observe(st)
}

// flush records a batch in one transaction. When Postgres refuses it for
// the data of some record (IsPermanent), the batch is halved until each
// refused record is alone, so that the good records beside it are
// recorded (in their order), and a refused record is quarantined instead
// of failing on every retry. Any other failure fails the whole batch. It
// returns the way the batch went (its last part's, when split).
func (b *Batcher) flush(batch []*pending) BatchPath {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	recs := make([]EventRecord, len(batch))
	for i, p := range batch {
		recs[i] = p.rec
	}
	results, path, err := b.store.recordEvents(ctx, recs, b.hooks)
	if IsTransient(err) && ctx.Err() == nil {
		// The connection broke mid-batch (a restart, a failover): once
		// more, on another, before the records queued behind these in this
		// flusher get their turn, so that one user's events keep their
		// order. (Had the commit gone through, the retry finds duplicates.)
		results, path, err = b.store.recordEvents(ctx, recs, b.hooks)
	}
	switch {
	case err == nil:
		for i, p := range batch {
			b.answer(p, batchResult{res: results[i]})
		}
		return path
	case !IsPermanent(err):
		for _, p := range batch {
			b.answer(p, batchResult{err: err})
		}
	case len(batch) == 1:
		res, qerr := b.store.quarantine(ctx, recs[0], err)
		b.answer(batch[0], batchResult{res: res, err: qerr})
	default:
		mid := len(batch) / 2
		b.flush(batch[:mid])
		return b.flush(batch[mid:])
	}
	return PathFailed
}

// answer lets p's key go to any flusher again when nothing else of it is
// in flight, then gives p its result. In that order: a caller that
// submits its next record the moment it has this one's result must find
// this flusher's load already lowered, or a tie with a flusher stuck on a
// lock could send the next record to wait behind it.
func (b *Batcher) answer(p *pending, r batchResult) {
	if p.routed {
		b.route.release(p.keys, p.flusher)
	}
	p.done <- r
}

// RecordEvent queues rec for the next batch and waits for its commit. It
// has the semantics of Store.RecordEvent.
func (b *Batcher) RecordEvent(ctx context.Context, rec EventRecord) (RecordResult, error) {
	wait, err := b.Submit(ctx, rec)
	if err != nil {
		return RecordResult{}, err
	}
	return wait(ctx)
}

// Submit queues rec for the next batch and returns once it is queued,
// with a function that waits for its commit. Records submitted one after
// another by one goroutine are committed in that order wherever order
// matters (one user's judged records share a flusher; see routeKeysOf), so a
// caller replaying a backlog keeps its order while many records share
// each commit.
func (b *Batcher) Submit(ctx context.Context, rec EventRecord) (wait func(context.Context) (RecordResult, error), err error) {
	p := &pending{rec: rec, done: make(chan batchResult, 1)}
	if b.observe != nil {
		p.queued = time.Now()
	}
	q := b.queue
	if rec.Judge != nil && rec.Event != nil {
		p.routed = true
		p.flusher, p.keys = b.route.assign(routeKeysOf(rec))
		q = b.keyed[p.flusher]
	}
	select {
	case q <- p:
	case <-ctx.Done():
		if p.routed {
			b.route.release(p.keys, p.flusher)
		}
		return nil, fmt.Errorf("queue event: %w", ctx.Err())
	}
	return func(ctx context.Context) (RecordResult, error) {
		select {
		case r := <-p.done:
			return r.res, r.err
		case <-ctx.Done():
			// The record may still commit; the sender's retry will then be
			// answered as a duplicate.
			return RecordResult{}, fmt.Errorf("record event: %w", ctx.Err())
		}
	}, nil
}

// routeKeysOf are the keys by which a record to judge is routed (see
// router): its user, so that one user's events never wait for each other's
// counter locks across this replica's flushers; and first, for a message
// that takes its channel's lock (locksChannel), its channel (a raid is
// many accounts in one channel, and they then share a flusher instead of
// taking turns between two). A young account posting in two channels
// then still finds its own messages in flight: it used to be routed by
// each channel alone, and its messages on both flushers made each
// other's copies of its marks stale (copy loads and misses).
func routeKeysOf(rec EventRecord) routeKeys {
	user := lockKey("user", rec.Event.SubjectUserID())
	if locksChannel(rec) {
		return routeKeys{k: [2]int32{lockKey("channel", rec.Event.ChannelCID()), user}, n: 2}
	}
	return routeKeys{k: [2]int32{user}, n: 1}
}
