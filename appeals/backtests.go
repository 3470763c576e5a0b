package appeals

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"testing/fstest"
	"time"

	"moderator/policy"
	"moderator/store"
)

// Backtests runs and keeps backtests of candidate rule sets (package
// backtest over the store; cmd/moderator provides it). StartBacktest
// returns store.ErrBacktestRunning while one runs.
type Backtests interface {
	StartBacktest(ctx context.Context, cand *policy.RuleSet, p store.BacktestParams, act store.StaffAct) (int64, error)
	ListBacktests(ctx context.Context, cursor string, limit int) (store.Page[store.Backtest], error)
	GetBacktest(ctx context.Context, id int64) (store.Backtest, error)
}

// Staff acts of reading backtests (running one is store.ActBacktest).
const (
	ActListBacktests = "list_backtests"
	ActViewBacktest  = "view_backtest"
)

// Limits of POST /backtests. The candidate travels in the body, as files,
// rather than as the name of a folder on the server: a name would let a
// reviewer make the service read (and echo, in load errors) any file it
// can open, and would tie the API to one replica's disk. The files are
// kept in memory and loaded with the same checks as the rules folder.
const (
	maxBacktestBody   = 4 << 20 // the candidate's files and the request
	maxBacktestFiles  = 200
	maxBacktestWindow = 92 * 24 * time.Hour
	defaultBacktest   = 7 * 24 * time.Hour
)

// backtestRequest is POST /backtests's body.
type backtestRequest struct {
	// Files is the candidate rules folder: path → content, *.yaml, *.yml
	// and *.txt, as in the rules folder.
	Files    map[string]string `json:"files"`
	Since    string            `json:"since"`
	From     string            `json:"from"`
	To       string            `json:"to"`
	Channels []string          `json:"channels"`
	Rules    []string          `json:"rules"`
	Samples  *int              `json:"samples"`
}

// window reads the request's window; now is the default end.
func (req backtestRequest) window(now time.Time) (from, to time.Time, err error) {
	parse := func(field, v string) (time.Time, error) {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return t, badParam(field, "must be an RFC 3339 time such as 2026-11-24T12:00:00Z, got %q", printable(v, 40))
		}
		return t, nil
	}
	to = now
	if req.To != "" {
		if to, err = parse("to", req.To); err != nil {
			return from, to, err
		}
	}
	switch {
	case req.Since != "" && req.From != "":
		return from, to, badParam("since", "give since or from, not both")
	case req.From != "":
		if from, err = parse("from", req.From); err != nil {
			return from, to, err
		}
	default:
		d := defaultBacktest
		if req.Since != "" {
			if d, err = policy.ParseDuration(req.Since); err != nil || d <= 0 {
				return from, to, badParam("since", "must be a duration such as 7d, 24h or 90m, got %q", printable(req.Since, 40))
			}
		}
		from = to.Add(-d)
	}
	if !from.Before(to) {
		return from, to, badParam("from", "must be before to")
	}
	if to.Sub(from) > maxBacktestWindow {
		return from, to, badParam("from", "the window is at most 92 days")
	}
	return from, to, nil
}

// candidate checks the files and loads them as a draft rule set: failing
// examples are reported by the backtest; anything else is a 400 listing
// every problem as file:line.
func (req backtestRequest) candidate() (*policy.RuleSet, error) {
	if len(req.Files) == 0 {
		return nil, badParam("files", "is required: the candidate rules folder, as {\"name.yaml\": \"…\"}")
	}
	if len(req.Files) > maxBacktestFiles {
		return nil, badParam("files", "at most %d files, got %d", maxBacktestFiles, len(req.Files))
	}
	fsys := fstest.MapFS{}
	for name, data := range req.Files {
		if !validRuleFileName(name) {
			return nil, badParam("files", "%q: a file name must be a relative path without . or .. parts, ending in .yaml, .yml or .txt", printable(name, 80))
		}
		fsys[name] = &fstest.MapFile{Data: []byte(data), Mode: 0o444}
	}
	rs, err := policy.LoadDraft(fsys)
	var le *policy.LoadError
	if errors.As(err, &le) {
		lines := make([]string, 0, min(len(le.Problems), 20))
		for i, p := range le.Problems {
			if i == 20 {
				lines = append(lines, fmt.Sprintf("… and %d more", len(le.Problems)-20))
				break
			}
			lines = append(lines, p.String())
		}
		return nil, badParam("files", "the candidate does not load: %s", strings.Join(lines, "; "))
	}
	if err != nil {
		return nil, badParam("files", "the candidate does not load: %v", err)
	}
	return rs, nil
}

// validRuleFileName reports whether name is a rules folder path the loader
// reads: relative, clean, with a rule file's or word list's extension.
func validRuleFileName(name string) bool {
	if name == "" || len(name) > 255 || path.Clean(name) != name || strings.HasPrefix(name, "/") ||
		strings.ContainsAny(name, "\\\x00") {
		return false
	}
	for _, part := range strings.Split(name, "/") {
		if part == "." || part == ".." {
			return false
		}
	}
	switch path.Ext(name) {
	case ".yaml", ".yml", ".txt":
		return true
	}
	return false
}

// params checks the request's filters.
func (req backtestRequest) params(now time.Time) (store.BacktestParams, error) {
	from, to, err := req.window(now)
	if err != nil {
		return store.BacktestParams{}, err
	}
	p := store.BacktestParams{From: from, To: to, Channels: req.Channels, Rules: req.Rules, Samples: 5, Source: "api"}
	for _, c := range req.Channels {
		if err := checkID("channels", c, idChannel); err != nil {
			return p, err
		}
	}
	for _, r := range req.Rules {
		if err := checkID("rules", r, idRule); err != nil {
			return p, err
		}
	}
	if len(req.Channels) > 100 || len(req.Rules) > 100 {
		return p, badParam("channels", "at most 100 channels and 100 rules")
	}
	if req.Samples != nil {
		if *req.Samples < 0 || *req.Samples > 100 {
			return p, badParam("samples", "must be from 0 to 100, got %d", *req.Samples)
		}
		p.Samples = *req.Samples
	}
	return p, nil
}

// backtestStarted is POST /backtests's answer.
type backtestStarted struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
}

// errNoBacktests answers the backtest routes when the deployment has no
// runner (checked after the request's own validation).
var errNoBacktests = &unavailableError{msg: "backtests are not available in this deployment"}

func (s *server) startBacktest(w http.ResponseWriter, r *http.Request) error {
	var req backtestRequest
	if err := decodeBodyMax(w, r, &req, maxBacktestBody); err != nil {
		return err
	}
	p, err := req.params(s.now())
	if err != nil {
		return err
	}
	cand, err := req.candidate()
	if err != nil {
		return err
	}
	if s.backtests == nil {
		return errNoBacktests
	}
	p.CandidateVersion = cand.Version()
	st := staff(r)
	id, err := s.backtests.StartBacktest(r.Context(), cand, p, store.StaffAct{Actor: st.Subject, Role: string(st.Role)})
	if err != nil {
		return fmt.Errorf("start backtest: %w", err)
	}
	w.Header().Set("Location", "backtests/"+strconv.FormatInt(id, 10))
	writeJSON(w, http.StatusAccepted, backtestStarted{ID: id, Status: store.BacktestRunning})
	return nil
}

func (s *server) listBacktests(w http.ResponseWriter, r *http.Request) error {
	q := parseQuery(r)
	cursor, limit := q.cursor(), q.limit()
	if q.err != nil {
		return q.err
	}
	if s.backtests == nil {
		return errNoBacktests
	}
	page, err := s.backtests.ListBacktests(r.Context(), cursor, limit)
	if err != nil {
		return fmt.Errorf("list backtests: %w", err)
	}
	if err := s.record(r, store.StaffAct{Act: ActListBacktests}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (s *server) backtest(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if s.backtests == nil {
		return errNoBacktests
	}
	b, err := s.backtests.GetBacktest(r.Context(), id)
	if err != nil {
		return about(fmt.Errorf("get backtest: %w", err), "backtest %d", id)
	}
	if err := s.record(r, store.StaffAct{Act: ActViewBacktest, Target: "backtest:" + strconv.FormatInt(id, 10)}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}
