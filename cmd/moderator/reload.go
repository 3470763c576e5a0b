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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"moderator/policy"
)

// liveRules holds the rule set in force and replaces it when the rules
// folder changes (or on SIGHUP). A new set goes live only if it loads,
// type-checks and passes its examples (policy.Load); otherwise the last
// good set stays and the problems are logged with their file:line.
type liveRules struct {
	dir     string
	logger  *slog.Logger
	current atomic.Pointer[policy.RuleSet]

	reloads  *prometheus.CounterVec
	loadedAt prometheus.Gauge
	info     *prometheus.GaugeVec

	// status is what admins see of the reloads (GET /api/v1/rules).
	status atomic.Pointer[reloadStatus]
}

// reloadStatus is when the set in force was loaded, and why the last
// reload was refused, if it was.
type reloadStatus struct {
	loadedAt  time.Time
	lastErr   string
	lastErrAt time.Time
}

func newLiveRules(dir string, logger *slog.Logger, reg prometheus.Registerer) *liveRules {
	l := &liveRules{
		dir:    dir,
		logger: logger,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_rules_reloads_total",
			Help: "Rule set loads by result: ok (now in force) or error (refused; the previous set stays).",
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
	reg.MustRegister(l.reloads, l.loadedAt, l.info)
	l.reloads.WithLabelValues("ok")
	l.reloads.WithLabelValues("error")
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

// reload loads the folder and, if it is good, puts it in force.
func (l *liveRules) reload(trigger string) error {
	start := time.Now()
	rs, err := policy.Load(os.DirFS(l.dir))
	if err != nil {
		l.reloads.WithLabelValues("error").Inc()
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
			st.loadedAt = prev.loadedAt
		}
		l.status.Store(&st)
		return err
	}
	old := l.current.Swap(rs)
	l.status.Store(&reloadStatus{loadedAt: time.Now()})
	l.reloads.WithLabelValues("ok").Inc()
	l.loadedAt.SetToCurrentTime()
	l.info.Reset()
	l.info.WithLabelValues(rs.Version(), fmt.Sprint(len(rs.Rules()))).Set(1)
	attrs := []any{"dir", l.dir, "trigger", trigger, "version", rs.Version(), "rules", len(rs.Rules()),
		"load_ms", time.Since(start).Milliseconds()}
	if old != nil {
		attrs = append(attrs, "previous_version", old.Version())
	}
	l.logger.Info("rules loaded", attrs...)
	return nil
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
