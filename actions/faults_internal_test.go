package actions

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"moderator/actions/streamtest"
	"moderator/policy"
)

// TestWorkRecordsTheAnswerLate: the database fails just after Stream
// answered. The worker keeps the answer and records it once the database
// answers again: one call at Stream, one attempt on record, numbered as the
// call was before it was made, with its real start time.
func TestWorkRecordsTheAnswerLate(t *testing.T) {
	t.Parallel()
	fake := streamtest.New(t)
	fake.AddMessage(streamtest.Message{ID: "m", UserID: "u", CID: "messaging:general", Text: "spam"})
	r, ledger := newTestRunner(t, fake, false)
	ledger.failRecords = 3
	args := JobArgs{ActionID: 1, Key: "e1-a0", Action: policy.Action{Type: policy.ActionFlag, RuleID: "r"},
		Target: Target{UserID: "u", MessageID: "m"}}
	before := time.Now()
	if err := r.work(context.Background(), &rivertype.JobRow{Attempt: 1, MaxAttempts: 5}, args); err != nil {
		t.Fatalf("work: %v", err)
	}
	if n := len(fake.Calls(streamtest.RouteFlag)); n != 1 {
		t.Errorf("got %d flag calls, want 1", n)
	}
	if len(ledger.attempts) != 1 || ledger.attempts[0].N != 1 || ledger.attempts[0].HTTPStatus != 200 ||
		ledger.attempts[0].StartedAt.Before(before) || ledger.attempts[0].At.Before(ledger.attempts[0].StartedAt) {
		t.Errorf("got attempts %+v, want one: call 1, answered 200, with its times", ledger.attempts)
	}
	if got := ledger.outcomes[1].Outcome; got != Applied {
		t.Errorf("got outcome %q, want applied", got)
	}
}

// TestRerunAfterALostAnswer: the database stays down past the worker's late
// record budget (or the process dies after the call). The job fails; its
// rerun finds the call without an answer, records it as "no answer", and
// sends the action again, which Stream's own idempotency makes harmless:
// one warning posted (its message id is fixed), one flag.
func TestRerunAfterALostAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   JobArgs
		route  string
		effect func(*streamtest.Server) int
	}{
		{"warn", JobArgs{ActionID: 1, Key: "e1-a0", WarningID: newWarningID(),
			Action: policy.Action{Type: policy.ActionWarn, RuleID: "r", Text: "be nice"},
			Target: Target{UserID: "u", MessageID: "m", ChannelCID: "messaging:general"}},
			streamtest.RouteSendMessage, func(s *streamtest.Server) int {
				n := 0
				for _, m := range s.Messages() {
					if strings.Contains(m.Text, "be nice") {
						n++
					}
				}
				return n
			}},
		{"flag", JobArgs{ActionID: 1, Key: "e1-a0", Action: policy.Action{Type: policy.ActionFlag, RuleID: "r"},
			Target: Target{UserID: "u", MessageID: "m"}},
			streamtest.RouteFlag, func(s *streamtest.Server) int { return len(s.Flags()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := streamtest.New(t)
			fake.AddMessage(streamtest.Message{ID: "m", UserID: "u", CID: "messaging:general", Text: "spam"})
			r, ledger := newTestRunner(t, fake, false)
			r.lateBudget = 50 * time.Millisecond
			ledger.failRecords = 1 << 20 // the database stays down for this run
			err := r.work(context.Background(), &rivertype.JobRow{Attempt: 1, MaxAttempts: 5}, tt.args)
			if err == nil || !strings.Contains(err.Error(), "record the answer") {
				t.Fatalf("first run: got %v, want the record's failure", err)
			}
			if calls, _ := ledger.UnansweredCalls(context.Background(), 1); len(calls) != 1 {
				t.Fatalf("after the first run: %d unanswered calls, want 1", len(calls))
			}

			ledger.failRecords = 0 // the database is back; River runs the job again
			if err := r.work(context.Background(), &rivertype.JobRow{Attempt: 2, MaxAttempts: 5}, tt.args); err != nil {
				t.Fatalf("rerun: %v", err)
			}
			if got := tt.effect(fake); got != 1 {
				t.Errorf("got %d effects at Stream, want exactly 1", got)
			}
			if n := len(fake.Calls(tt.route)); n != 2 {
				t.Errorf("got %d calls, want 2 (the lost one and the resend)", n)
			}
			if len(ledger.attempts) != 2 || ledger.attempts[0].N != 1 || ledger.attempts[0].HTTPStatus != 0 ||
				!strings.Contains(ledger.attempts[0].Err, "no answer recorded") || ledger.attempts[1].N != 2 {
				t.Errorf("got attempts %+v, want call 1 recorded as unanswered, then call 2", ledger.attempts)
			}
			if o := ledger.outcomes[1]; o.Outcome != Applied || !strings.Contains(o.Reason, "already") {
				t.Errorf("got outcome %+v, want applied, already done", o)
			}
		})
	}
}

func TestWarningIDsAreRandom(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := newWarningID()
		if seen[id] || !strings.HasPrefix(id, "moderator-") || len(id) != len("moderator-")+32 {
			t.Fatalf("warning id %q repeated or malformed", id)
		}
		seen[id] = true
	}
	a := JobArgs{Key: "e1-a0"}
	if a.warningID() != "moderator-e1-a0" {
		t.Errorf("a job from before random ids: got %q, want the key's id", a.warningID())
	}
}
