// Package backtest replays the events stored in the audit trail through a
// candidate rule set and compares what it would have decided with what
// the rules in force decided at the time: the use case behind `moderator
// rules backtest` and POST /api/v1/backtests.
//
// History is rebuilt as it was: counters from the event stream itself
// (every new message, read in id order), strikes from the recorded
// actions before the window and, inside it, from the candidate's own
// would-be actions (what if it had been enforcing), kept apart from the
// real ones. Evaluation is policy's, unchanged. A backtest only reads;
// its caller records the result and the staff act.
//
// It imports policy and store types; nothing imports it but cmd.
package backtest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"slices"
	"sync"
	"time"

	"moderator/policy"
	"moderator/store"
)

// Source is the stored history a backtest reads: the store.
type Source interface {
	ReplayBounds(ctx context.Context, from, to time.Time) (lo, hi int64, err error)
	ReplayPage(ctx context.Context, f store.ReplayFilter) ([]store.ReplayRow, error)
	PastStrikes(ctx context.Context, from, to time.Time, fn func(store.PastStrike) error) error
}

// Options are what to replay and how much to report.
type Options struct {
	// From and To bound the window, [From, To), by the time events were
	// received.
	From, To time.Time
	// Channels, when set, limits the report to these channels' events.
	Channels []string
	// Rules, when set, limits the report to these rule ids (every rule is
	// still evaluated: one rule's strikes feed another's).
	Rules []string
	// Samples is how many examples to keep of each difference (0-100).
	Samples int
	// Workers evaluate in parallel; 0 means one per CPU.
	Workers int
	// PageSize is how many events are read at once; 0 means 1000.
	PageSize int
}

// MaxSamples bounds Options.Samples.
const MaxSamples = 100

// DefaultSamples is the number of samples when none is asked for.
const DefaultSamples = 5

func (o *Options) check() error {
	if o.From.IsZero() || o.To.IsZero() || !o.From.Before(o.To) {
		return errors.New("the window is empty: from must be before to")
	}
	if o.Samples < 0 || o.Samples > MaxSamples {
		return fmt.Errorf("samples %d: want 0 to %d", o.Samples, MaxSamples)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.PageSize <= 0 {
		o.PageSize = 1000
	}
	return nil
}

// item is one replayed event on its way through the pipeline.
type item struct {
	row      *store.ReplayRow
	ev       *policy.Event
	at       time.Time // the rules' now: the event's time, else when received
	mark     policy.Mark
	marked   bool
	judged   bool // the candidate evaluates it
	reported bool // in the report's channels
	part     int  // the partition of its user
	hist     policy.History
	recorded []recordedMatch
	decision policy.Decision
	err      error
}

// run is one backtest in progress.
type run struct {
	src      Source
	cand     *policy.RuleSet
	opt      Options
	keys     []policy.HistoryKey
	strikes  *strikeTable
	counters *counters
	counts   bool // the candidate reads counters
	shadow   bool // a shadow rule reads strikes: it keeps its own lineage
	parts    []*partition
	agg      *aggregate
}

// partition is one worker's users and their strike lineages. Lineages
// whose strikes have all left the longest window are forgotten as the
// events' time passes, so memory follows the users struck within it.
type partition struct {
	lineages map[string]*lineage
	scratch  lineage // the lineage of a user with none, until struck
	latest   time.Time
	swept    time.Time
}

// sweepEvery is how much event time passes between two sweeps of a
// partition's lineages.
const sweepEvery = time.Hour

// Run replays the window of opt through cand and reports the differences
// with the recorded decisions.
func Run(ctx context.Context, src Source, cand *policy.RuleSet, opt Options) (*Report, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	start := time.Now()
	r := &run{src: src, cand: cand.WithBudget(0), opt: opt, keys: cand.History()}
	r.strikes = newStrikeTable(r.keys)
	r.counters = newCounters(r.keys, cand.YoungAccount())
	r.counts = cand.CountsMessages()
	for _, info := range cand.Rules() {
		if info.Mode == policy.ModeShadow && len(r.strikes.keys) > 0 {
			r.shadow = true
		}
	}
	r.parts = make([]*partition, opt.Workers)
	for i := range r.parts {
		r.parts[i] = &partition{lineages: map[string]*lineage{}}
	}
	r.agg = newAggregate(cand, opt)
	defer r.agg.ids.close() // also when the run fails
	if err := r.warmStrikes(ctx); err != nil {
		return nil, err
	}
	if err := r.warmCounters(ctx); err != nil {
		return nil, err
	}
	if err := r.replay(ctx); err != nil {
		return nil, err
	}
	rep, err := r.agg.report()
	if err != nil {
		return nil, err
	}
	rep.Elapsed = time.Since(start).Seconds()
	return rep, nil
}

// partition is the worker that evaluates a user's events: all of one
// user's go to the same worker, in id order, so each strike lineage is
// one goroutine's.
func (r *run) partition(user string) int {
	if len(r.parts) <= 1 || user == "" {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(user))
	return int(h.Sum32() % uint32(len(r.parts)))
}

// warmStrikes loads the strikes recorded in the longest strike window
// before the window opens.
func (r *run) warmStrikes(ctx context.Context) error {
	if len(r.strikes.keys) == 0 {
		return nil
	}
	return r.src.PastStrikes(ctx, r.opt.From.Add(-r.strikes.window), r.opt.From, func(p store.PastStrike) error {
		part := r.parts[r.partition(p.UserID)]
		lin := part.lineages[p.UserID]
		if lin == nil {
			lin = &lineage{}
		}
		r.strikes.addPast(&lin.enforce, p)
		if !lin.empty() {
			part.lineages[p.UserID] = lin
		}
		return nil
	})
}

// warmCounters counts the messages of the longest counter window before
// the window opens.
func (r *run) warmCounters(ctx context.Context) error {
	w := max(r.counters.maxUser, r.counters.maxChan, r.counters.maxYoung)
	if !r.counts || w == 0 {
		return nil
	}
	return r.pages(ctx, r.opt.From.Add(-w), r.opt.From, true, func(items []item) error {
		for i := range items {
			if items[i].marked {
				r.counters.add(items[i].mark)
			}
		}
		return nil
	})
}

// replay reads the window page by page, evaluates and aggregates.
func (r *run) replay(ctx context.Context) error {
	return r.pages(ctx, r.opt.From, r.opt.To, false, func(items []item) error {
		if r.counts || len(r.keys) > 0 {
			r.readCounters(items)
		}
		r.evaluate(items)
		for i := range items {
			if err := r.agg.add(&items[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// pages reads [from, to) a page at a time, the next page being read while
// this one is worked on, parses each page in parallel and hands it to fn
// in id order.
func (r *run) pages(ctx context.Context, from, to time.Time, messagesOnly bool, fn func([]item) error) error {
	lo, hi, err := r.src.ReplayBounds(ctx, from, to)
	if err != nil || hi == 0 {
		return err
	}
	f := store.ReplayFilter{From: from, To: to, AfterID: lo - 1, MaxID: hi, MessagesOnly: messagesOnly, Limit: r.opt.PageSize}
	if len(r.keys) == 0 && !messagesOnly {
		// Without history nothing outside the report's channels matters.
		f.Channels = r.opt.Channels
	}
	type page struct {
		rows []store.ReplayRow
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan page, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		defer close(next)
		for {
			rows, err := r.src.ReplayPage(ctx, f)
			select {
			case next <- page{rows, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(rows) < f.Limit {
				return
			}
			f.AfterID = rows[len(rows)-1].ID
		}
	})
	for p := range next {
		if p.err != nil {
			return p.err
		}
		items := r.parse(p.rows, messagesOnly)
		if err := fn(items); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// parse decodes a page's events and recorded decisions in parallel.
func (r *run) parse(rows []store.ReplayRow, messagesOnly bool) []item {
	items := make([]item, len(rows))
	var wg sync.WaitGroup
	for w := range r.opt.Workers {
		wg.Go(func() {
			for i := w; i < len(rows); i += r.opt.Workers {
				r.parseOne(&items[i], &rows[i], messagesOnly)
			}
		})
	}
	wg.Wait()
	return items
}

func (r *run) parseOne(it *item, row *store.ReplayRow, messagesOnly bool) {
	it.row = row
	if row.Own || row.Ignored {
		return
	}
	ev, err := policy.ParseEvent(row.Payload)
	if err != nil {
		it.err = fmt.Errorf("event %d: %w", row.ID, err)
		return
	}
	it.ev = ev
	it.at = ev.CreatedAt.Time
	if it.at.IsZero() && ev.Message != nil {
		it.at = ev.Message.CreatedAt.Time
	}
	if it.at.IsZero() {
		it.at = row.ReceivedAt
	}
	if r.counts {
		if m, ok := policy.MarkOf(ev); ok {
			if m.At.IsZero() {
				m.At = it.at
			}
			it.mark, it.marked = m, true
		}
	}
	if messagesOnly {
		return
	}
	it.judged = true
	it.part = r.partition(ev.SubjectUserID())
	it.reported = len(r.opt.Channels) == 0 || slices.Contains(r.opt.Channels, ev.ChannelCID())
	it.recorded, it.err = decodeRecorded(row)
}

// readCounters counts each message and reads the counters of each event,
// in id order (each event counts the messages before it and itself).
func (r *run) readCounters(items []item) {
	for i := range items {
		it := &items[i]
		if it.marked {
			r.counters.add(it.mark)
		}
		if !it.judged || it.err != nil {
			continue
		}
		it.hist = make(policy.History, len(r.keys))
		if len(r.counters.keys) == 0 {
			continue
		}
		user, channel := it.ev.SubjectUserID(), it.ev.ChannelCID()
		var fp int64
		if it.marked {
			fp = it.mark.Fingerprint
		} else if it.ev.Message != nil {
			fp = policy.Fingerprint(it.ev.Message.Text)
		}
		r.counters.read(it.hist, user, channel, it.at, fp)
	}
}

// evaluate runs the candidate on a page's events, one worker per
// partition of users, each in id order.
func (r *run) evaluate(items []item) {
	var wg sync.WaitGroup
	for w, part := range r.parts {
		wg.Go(func() {
			for i := range items {
				it := &items[i]
				if !it.judged || it.err != nil || it.part != w {
					continue
				}
				r.evaluateOne(part, it)
			}
		})
	}
	wg.Wait()
}

func (r *run) evaluateOne(part *partition, it *item) {
	if len(r.strikes.keys) == 0 {
		it.decision = r.cand.EvaluateWith(it.ev, it.hist)
		return
	}
	user := it.ev.SubjectUserID()
	lin := part.lineages[user]
	if lin == nil {
		lin = &part.scratch
	}
	r.strikes.trim(&lin.enforce, it.at)
	r.strikes.trim(&lin.shadow, it.at)
	msg := it.ev.MessageIDOrEmpty()
	var shadow policy.History
	if r.shadow {
		shadow = make(policy.History, len(it.hist))
		for k, v := range it.hist {
			shadow[k] = v
		}
		r.strikes.count(shadow, it.at, msg, &lin.enforce, &lin.shadow)
	}
	r.strikes.count(it.hist, it.at, msg, &lin.enforce)
	d := r.cand.EvaluateSplit(it.ev, it.hist, shadow)
	it.decision = d
	if user != "" && it.ev.Type != policy.EventBeforeSend {
		r.strike(lin, it, msg)
	}
	if lin == &part.scratch && !lin.empty() {
		kept := part.scratch
		part.lineages[user] = &kept
		part.scratch = lineage{}
	}
	part.sweep(r.strikes, it.at)
}

// strike adds to lin the strikes of the candidate's decision on it: its
// enforce actions, and its shadow rules' would-be ones.
func (r *run) strike(lin *lineage, it *item, msg string) {
	key := r.strikes.key(msg, it.row.ID)
	r.strikes.add(&lin.enforce, key, it.at, it.decision.Actions, it.row.Strikes)
	if !r.shadow {
		return
	}
	var would []policy.Action
	for _, m := range it.decision.Matches {
		if m.Mode == policy.ModeShadow {
			would = append(would, m.Actions...)
		}
	}
	r.strikes.add(&lin.shadow, key, it.at, would, it.row.Strikes)
}

// sweep forgets, once every sweepEvery of event time, the lineages whose
// strikes have all left the longest window. It trims as of sweepEvery
// before the latest event, so that an event a little out of time order
// still finds the strikes it counts.
func (p *partition) sweep(t *strikeTable, at time.Time) {
	if at.After(p.latest) {
		p.latest = at
	}
	if p.latest.Sub(p.swept) < sweepEvery {
		return
	}
	for user, lin := range p.lineages {
		t.trim(&lin.enforce, p.latest.Add(-sweepEvery))
		t.trim(&lin.shadow, p.latest.Add(-sweepEvery))
		if lin.empty() {
			delete(p.lineages, user)
		}
	}
	p.swept = p.latest
}
