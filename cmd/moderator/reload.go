package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"moderator/guard"
	"moderator/policy"
	"moderator/rules"
	"moderator/store"
)

// liveRules holds the rule set in force and replaces it when the rules
// folder changes (or on SIGHUP). A new set goes live only if it loads,
// type-checks and passes its examples (policy.Load); otherwise the last
// good set stays and the problems are logged with their file:line.
type liveRules struct {
	dir    string
	logger *slog.Logger
	// current is the set in force: loaded, with the rules the guard
	// demoted in shadow mode (guard.Apply). mu orders the writers of
	// current, loaded and demotions.
	current   atomic.Pointer[policy.RuleSet]
	loaded    atomic.Pointer[policy.RuleSet]
	demotions atomic.Pointer[[]store.Demotion]
	mu        sync.Mutex

	// timeout bounds a reload: one that cannot finish is abandoned and
	// reported, so that it never holds up later reloads.
	timeout time.Duration
	loadDir func(dir string) (*policy.RuleSet, error) // loadRulesDir; tests stall it
	stuckN  atomic.Int32                              // loads abandoned past their deadline and still running

	reloads  *prometheus.CounterVec
	loadedAt prometheus.Gauge
	info     *prometheus.GaugeVec

	// status is what admins see of the reloads (GET /api/v1/rules).
	status atomic.Pointer[reloadStatus]
}

// Bounds on reloads. The starter pack loads in about 0.1 s; a folder at
// every limit of policy.Load in a few seconds.
const (
	reloadTimeout = 30 * time.Second
	// maxPendingReloads bounds the abandoned loads still running: past it
	// a reload is refused at once instead of starting another.
	maxPendingReloads = 4
)

// reloadStatus is when the set in force was loaded, its load report, and
// why the last reload was refused, if it was.
type reloadStatus struct {
	loadedAt  time.Time
	changes   policy.Changes // from the set it replaced
	notes     []string
	lastErr   string
	lastErrAt time.Time
}

func newLiveRules(dir string, logger *slog.Logger, reg prometheus.Registerer) *liveRules {
	l := &liveRules{
		dir:     dir,
		logger:  logger,
		timeout: reloadTimeout,
		loadDir: func(dir string) (*policy.RuleSet, error) { return loadRulesDir(dir, policy.Load) },
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_rules_reloads_total",
			Help: "Rule set loads by result: ok (now in force), error (refused; the previous set stays) or timeout (abandoned past its deadline; the previous set stays).",
		}, []string{"result"}),
		loadedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "moderator_rules_loaded_timestamp_seconds",
			Help: "When the rule set in force was loaded (0: none loaded).",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "moderator_rules_info",
			Help: "1 for the version of the rule set in force, with its rule count.",
		}, []string{"version", "rules"}),
	}
	stuck := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "moderator_rules_reloads_stuck",
		Help: "Rule loads still running past their deadline (abandoned; they never block later reloads).",
	}, func() float64 { return float64(l.stuck()) })
	reg.MustRegister(l.reloads, l.loadedAt, l.info, stuck)
	for _, result := range []string{"ok", "error", "timeout"} {
		l.reloads.WithLabelValues(result)
	}
	return l
}

// Evaluate judges ev with the rule set in force; false when none is loaded.
func (l *liveRules) Evaluate(ev *policy.Event) (policy.Decision, bool) {
	rs := l.current.Load()
	if rs == nil {
		return policy.Decision{}, false
	}
	return rs.Evaluate(ev), true
}

// EvaluateOrDefer implements webhook.HistoryRules: events whose rules
// read counters or strikes (and, while any rule reads a counter, every new
// message, which must be counted) are judged in the recording
// transaction; the rest at once, as Evaluate does.
func (l *liveRules) EvaluateOrDefer(ev *policy.Event) (policy.Decision, *policy.Deferred, bool) {
	rs := l.current.Load()
	if rs == nil {
		return policy.Decision{}, nil, false
	}
	d, deferred := rs.EvaluateOrDefer(ev)
	return d, deferred, true
}

// ready reports whether a rule set is in force.
func (l *liveRules) ready() error {
	if l.current.Load() == nil {
		return fmt.Errorf("rules: no valid rule set loaded from %s", l.dir)
	}
	return nil
}

// readyDetail says what /readyz adds about the rules while the set in
// force serves: a reload stuck past its deadline, or the last one refused.
func (l *liveRules) readyDetail() string {
	var parts []string
	if n := l.stuck(); n > 0 {
		parts = append(parts, fmt.Sprintf("rules: %d reload(s) of %s did not finish within %s; the set in force stays", n, l.dir, l.timeout))
	}
	if st := l.status.Load(); st != nil && st.lastErr != "" {
		parts = append(parts, fmt.Sprintf("rules: the last reload (%s) was refused; the set in force stays (GET /api/v1/rules says why)", st.lastErrAt.UTC().Format(time.RFC3339)))
	}
	return strings.Join(parts, "; ")
}

// stuck returns how many loads are running past their deadline.
func (l *liveRules) stuck() int { return int(l.stuckN.Load()) }

// reload loads the folder and, if it is good, puts it in force.
func (l *liveRules) reload(trigger string) error {
	start := time.Now()
	rs, err := l.load()
	if err != nil {
		l.refuse(trigger, err)
		return err
	}
	l.mu.Lock()
	old := l.loaded.Swap(rs)
	l.current.Store(guard.Apply(rs, l.activeDemotions()))
	l.mu.Unlock()
	st := &reloadStatus{loadedAt: time.Now(), changes: policy.Diff(old, rs)}
	for _, n := range rs.Notes() {
		st.notes = append(st.notes, filepath.Join(l.dir, n.String()))
	}
	l.status.Store(st)
	l.reloads.WithLabelValues("ok").Inc()
	l.loadedAt.SetToCurrentTime()
	l.info.Reset()
	l.info.WithLabelValues(rs.Version(), fmt.Sprint(len(rs.Rules()))).Set(1)
	attrs := []any{"dir", l.dir, "trigger", trigger, "version", rs.Version(), "rules", len(rs.Rules()),
		"load_ms", time.Since(start).Milliseconds()}
	if len(st.notes) > 0 {
		attrs = append(attrs, "notes", st.notes)
	}
	if old != nil {
		attrs = append(attrs, "previous_version", old.Version(), "changes", st.changes.String(),
			"added", st.changes.Added, "removed", st.changes.Removed, "changed", changedIDs(st.changes))
	}
	l.logger.Info("rules loaded", attrs...)
	return nil
}

// activeDemotions returns the demotions in force, as last read.
func (l *liveRules) activeDemotions() []store.Demotion {
	if p := l.demotions.Load(); p != nil {
		return *p
	}
	return nil
}

// setDemotions puts the demotions read from the store in force: the
// rules they demote go to shadow mode, the others back to their folder's
// mode.
func (l *liveRules) setDemotions(ds []store.Demotion) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.demotions.Store(&ds)
	if rs := l.loaded.Load(); rs != nil {
		l.current.Store(guard.Apply(rs, ds))
	}
}

// changedIDs lists the changed rules as "id(field,field)" for the log.
func changedIDs(c policy.Changes) []string {
	out := make([]string, len(c.Changed))
	for i, r := range c.Changed {
		out[i] = r.ID + "(" + strings.Join(r.Fields, ",") + ")"
	}
	return out
}

// errReloadTimeout is a reload abandoned past its deadline.
var errReloadTimeout = errors.New("the reload did not finish in time and was abandoned")

// load loads the folder in a goroutine of its own and waits for it at
// most l.timeout. A load past its deadline is abandoned (it finishes, or
// not, on its own and its result is dropped) and counted, so that nothing
// in the folder can hold up the reloads that follow.
func (l *liveRules) load() (*policy.RuleSet, error) {
	if n := l.stuck(); n >= maxPendingReloads {
		return nil, fmt.Errorf("%w: %d earlier reloads are still running, so no other is started", errReloadTimeout, n)
	}
	type result struct {
		rs  *policy.RuleSet
		err error
	}
	const (
		running = iota
		finished
		abandoned
	)
	var state atomic.Int32
	done := make(chan result, 1)     // buffered: an abandoned load never blocks on it
	loadDir, dir := l.loadDir, l.dir // read here: the goroutine may outlive this reload
	go func() {
		rs, err := loadDir(dir)
		done <- result{rs, err}
		if !state.CompareAndSwap(running, finished) {
			l.stuckN.Add(-1) // abandoned earlier: no longer stuck
		}
	}()
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.rs, r.err
	case <-timer.C:
		if !state.CompareAndSwap(running, abandoned) {
			r := <-done // it finished just now
			return r.rs, r.err
		}
		l.stuckN.Add(1)
		return nil, fmt.Errorf("%w (after %s)", errReloadTimeout, l.timeout)
	}
}

// loadRulesDir loads the rules folder dir through rules.OpenDir, which
// keeps symbolic links inside it and never blocks on a FIFO.
func loadRulesDir(dir string, load func(fs.FS) (*policy.RuleSet, error)) (*policy.RuleSet, error) {
	d, err := rules.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return load(d)
}

// refuse logs and records why a reload was refused; the set in force stays.
func (l *liveRules) refuse(trigger string, err error) {
	result := "error"
	if errors.Is(err, errReloadTimeout) {
		result = "timeout"
	}
	l.reloads.WithLabelValues(result).Inc()
	attrs := []any{"dir", l.dir, "trigger", trigger}
	var le *policy.LoadError
	if errors.As(err, &le) {
		problems := make([]string, len(le.Problems))
		for i, p := range le.Problems {
			problems[i] = filepath.Join(l.dir, p.String())
		}
		attrs = append(attrs, "problems", problems)
	} else {
		attrs = append(attrs, "error", err.Error())
	}
	if old := l.current.Load(); old != nil {
		attrs = append(attrs, "kept_version", old.Version())
	}
	l.logger.Error("rules refused", attrs...)
	st := reloadStatus{lastErr: reloadError(l.dir, err), lastErrAt: time.Now()}
	if prev := l.status.Load(); prev != nil {
		st.loadedAt, st.notes = prev.loadedAt, prev.notes
	}
	l.status.Store(&st)
}

// reloadError says why a reload was refused: each problem as file:line:
// message, or the error.
func reloadError(dir string, err error) string {
	var le *policy.LoadError
	if !errors.As(err, &le) {
		return err.Error()
	}
	problems := make([]string, len(le.Problems))
	for i, p := range le.Problems {
		problems[i] = filepath.Join(dir, p.String())
	}
	return strings.Join(problems, "\n")
}

// watch reloads on SIGHUP and whenever a file in the folder changes,
// until ctx ends. Bursts of changes (an editor's save, a git checkout, a
// ConfigMap's symlink swap) are coalesced into one reload.
func (l *liveRules) watch(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var changes <-chan fsnotify.Event
	var watchErrs <-chan error
	w, err := fsnotify.NewWatcher()
	if err != nil {
		l.logger.Error("rules: cannot watch the folder; reload with SIGHUP", "dir", l.dir, "error", err)
	} else {
		defer w.Close()
		if err := addTree(w, l.dir); err != nil {
			l.logger.Error("rules: cannot watch the folder; reload with SIGHUP", "dir", l.dir, "error", err)
		}
		changes, watchErrs = w.Events, w.Errors
	}

	const settle = 200 * time.Millisecond
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = l.reload("sighup")
		case ev, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			if ev.Has(fsnotify.Create) && w != nil {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					_ = addTree(w, ev.Name)
				}
			}
			debounce = time.After(settle)
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			l.logger.Warn("rules: watch error", "error", err)
		case <-debounce:
			debounce = nil
			_ = l.reload("change")
		}
	}
}

// addTree watches dir and its subfolders (fsnotify is not recursive).
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") && !strings.HasPrefix(d.Name(), "..") {
			return filepath.SkipDir
		}
		return w.Add(path)
	})
}
