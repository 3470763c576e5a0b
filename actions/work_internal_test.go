package actions

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"moderator/actions/streamtest"
	"moderator/policy"
)

// memLedger is an in-memory Ledger for the worker's tests.
type memLedger struct {
	mu       sync.Mutex
	outcomes map[int64]OutcomeRecord
	attempts []Attempt
}

func (l *memLedger) InsertActionsTx(context.Context, pgx.Tx, []NewAction) ([]int64, error) {
	return nil, errors.New("not in memory")
}

func (l *memLedger) TakeDailySlotsTx(context.Context, pgx.Tx, time.Time, policy.ActionType, int, int) (int, error) {
	return 0, errors.New("not in memory")
}

func (l *memLedger) RecordOutcomesTx(context.Context, pgx.Tx, []OutcomeRecord) error {
	return errors.New("not in memory")
}

func (l *memLedger) Outcome(_ context.Context, id int64) (Outcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outcomes[id].Outcome, nil
}

func (l *memLedger) RecordAttempt(_ context.Context, a Attempt) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts = append(l.attempts, a)
	return nil
}

func (l *memLedger) RecordOutcome(_ context.Context, o OutcomeRecord) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.outcomes[o.ActionID]; ok {
		return false, nil
	}
	l.outcomes[o.ActionID] = o
	return true, nil
}

// newTestRunner is a Runner on a pool that never connects (work does not
// touch River's tables) calling fake.
func newTestRunner(t *testing.T, fake *streamtest.Server, dryRun bool) (*Runner, *memLedger) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ledger := &memLedger{outcomes: map[int64]OutcomeRecord{}}
	r, err := NewRunner(pool, ClientConfig{BaseURL: fake.URL, APIKey: fake.Key, APISecret: fake.Secret, BotUserID: "bot"},
		Config{DryRun: dryRun, Ledger: ledger, Metrics: NewMetrics(prometheus.NewRegistry(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	return r, ledger
}

func TestWorkClassifiesAnswers(t *testing.T) {
	t.Parallel()
	flag := JobArgs{ActionID: 1, Key: "e1-a0", Action: policy.Action{Type: policy.ActionFlag, RuleID: "r"},
		Target: Target{UserID: "u", MessageID: "m"}}
	del := JobArgs{ActionID: 1, Key: "e1-a0", Action: policy.Action{Type: policy.ActionDelete, Hard: true},
		Target: Target{MessageID: "m"}}
	tests := []struct {
		name        string
		args        JobArgs
		script      []streamtest.Answer
		route       string
		attempt     int
		wantOutcome Outcome
		wantErr     func(error) bool
		wantCalls   int
	}{
		{"success", flag, nil, streamtest.RouteFlag, 1, Applied, isNil, 1},
		{"already flagged", flag, []streamtest.Answer{streamtest.Error(400, 4, "message m was already flagged")},
			streamtest.RouteFlag, 1, Applied, isNil, 1},
		{"permanent", flag, []streamtest.Answer{streamtest.Error(403, 17, "not allowed")},
			streamtest.RouteFlag, 1, Failed, isCancel, 1},
		{"unrecoverable 500", flag, []streamtest.Answer{streamtest.Status(500).Unrecoverable()},
			streamtest.RouteFlag, 1, Failed, isCancel, 1},
		{"transient, attempts left", flag, []streamtest.Answer{streamtest.Status(502)},
			streamtest.RouteFlag, 1, "", isPlainError, 1},
		{"transient, last attempt", flag, []streamtest.Answer{streamtest.Status(502)},
			streamtest.RouteFlag, DefaultMaxAttempts, Failed, isPlainError, 1},
		{"rate limited", flag, []streamtest.Answer{streamtest.RateLimited(time.Now().Add(time.Minute))},
			streamtest.RouteFlag, 1, "", isSnooze, 1},
		{"deleted message gone on a retry", del, []streamtest.Answer{streamtest.Error(404, 16, "message m does not exist")},
			streamtest.RouteDeleteMessage, 2, Applied, isNil, 1},
		{"deleted message gone on the first try", del, []streamtest.Answer{streamtest.Error(404, 16, "message m does not exist")},
			streamtest.RouteDeleteMessage, 1, Failed, isCancel, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := streamtest.New(t)
			fake.Script(tt.route, tt.script...)
			r, ledger := newTestRunner(t, fake, false)
			err := r.work(context.Background(), &rivertype.JobRow{Attempt: tt.attempt, MaxAttempts: DefaultMaxAttempts}, tt.args)
			if !tt.wantErr(err) {
				t.Fatalf("got error %v (%T), want another kind", err, err)
			}
			if got := ledger.outcomes[1].Outcome; got != tt.wantOutcome {
				t.Fatalf("got outcome %q, want %q", got, tt.wantOutcome)
			}
			if got := len(fake.Calls(tt.route)); got != tt.wantCalls {
				t.Fatalf("got %d calls, want %d", got, tt.wantCalls)
			}
			if len(ledger.attempts) != 1 || ledger.attempts[0].Endpoint != tt.route {
				t.Fatalf("got attempts %+v, want one on %s", ledger.attempts, tt.route)
			}
		})
	}
}

func TestWorkNeverActsTwice(t *testing.T) {
	t.Parallel()
	fake := streamtest.New(t)
	r, ledger := newTestRunner(t, fake, false)
	ledger.outcomes[7] = OutcomeRecord{ActionID: 7, Outcome: Applied}
	args := JobArgs{ActionID: 7, Action: policy.Action{Type: policy.ActionBan}, Target: Target{UserID: "u"}}
	if err := r.work(context.Background(), &rivertype.JobRow{Attempt: 2, MaxAttempts: 5}, args); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("got %d requests for an action that had ended, want 0", n)
	}
}

func TestWorkDryRunSendsNothing(t *testing.T) {
	t.Parallel()
	fake := streamtest.New(t)
	r, ledger := newTestRunner(t, fake, true)
	args := JobArgs{ActionID: 3, Action: policy.Action{Type: policy.ActionMute, TimeoutMinutes: 30}, Target: Target{UserID: "u"}}
	if err := r.work(context.Background(), &rivertype.JobRow{Attempt: 1, MaxAttempts: 5}, args); err != nil {
		t.Fatal(err)
	}
	o := ledger.outcomes[3]
	if o.Outcome != DryRun || string(o.Request) != `{"method":"POST","path":"/moderation/mute","body":{"target_ids":["u"],"user_id":"bot","timeout":30}}` {
		t.Fatalf("got %+v (%s), want dry_run with the mute request", o, o.Request)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("got %d requests in dry run, want 0", n)
	}
}

func isNil(err error) bool { return err == nil }

func isCancel(err error) bool {
	var c *rivertype.JobCancelError
	return errors.As(err, &c)
}

func isSnooze(err error) bool {
	var s *river.JobSnoozeError
	return errors.As(err, &s) && s.Duration > 0
}

func isPlainError(err error) bool { return err != nil && !isCancel(err) && !isSnooze(err) }
