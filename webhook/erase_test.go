package webhook

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moderator/policy"
)

const spoolSecret = "quokkasecret"

// fakeEraser records the users it is asked to erase, and fails while
// fail is set.
type fakeEraser struct {
	mu    sync.Mutex
	users []string
	fail  error
}

func (e *fakeEraser) EraseUser(_ context.Context, userID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users = append(e.users, userID)
	return e.fail
}

func (e *fakeEraser) calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.users...)
}

// filesHolding returns the files under dir whose bytes hold word.
func filesHolding(t *testing.T, dir, word string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(word)) {
			found = append(found, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestEraseSpooled: the spooled deliveries about a user (theirs, and the
// message of another quoting theirs) are redacted on disk, in the queue
// and set aside; what the replay records then holds the marker where the
// user's text was, the others' text as it was, and the ids and types.
func TestEraseSpooled(t *testing.T) {
	t.Parallel()
	b := newIntakeBundle(t, 0)
	b.audit.setDown(true)
	eve := `{"id":"eve","name":"Eve ` + spoolSecret + `"}`
	bodies := map[string]string{
		"eve-1":   `{"type":"message.new","cid":"messaging:zoo","message":{"id":"m1","text":"` + spoolSecret + `","user":` + eve + `},"user":` + eve + `}`,
		"eve-bad": `{"type":"message.new","message":{"id":"m2","text":"` + spoolSecret + `","user":` + eve + `},"user":` + eve + `}`,
		"bob-1":   `{"type":"message.new","message":{"id":"m3","text":"bob's own","user":{"id":"bob"},"quoted_message":{"id":"m1","text":"` + spoolSecret + `","user":` + eve + `}},"user":{"id":"bob"}}`,
		"carol-1": `{"type":"message.new","message":{"id":"m4","text":"hi","user":{"id":"carol"}},"user":{"id":"carol"}}`,
	}
	for _, id := range []string{"eve-1", "eve-bad", "bob-1", "carol-1"} {
		if code, body := b.send(t, id, []byte(bodies[id]), []byte(bodies[id])); code != 200 || !strings.Contains(body, "spooled") {
			t.Fatalf("%s: %d %s, want spooled", id, code, body)
		}
	}
	b.audit.refuse["eve-bad"] = true // the database refuses it for good: set aside
	b.audit.setDown(false)
	b.in.drain(context.Background())
	b.audit.setDown(true)
	for _, id := range []string{"eve-1", "bob-1", "carol-1"} {
		id := id + "-again"
		body := bodies[strings.TrimSuffix(id, "-again")]
		if code, _ := b.send(t, id, []byte(body), []byte(body)); code != 200 {
			t.Fatalf("%s: %d", id, code)
		}
	}
	if got := filesHolding(t, b.dir, spoolSecret); len(got) < 2 {
		t.Fatalf("before the erasure the secret is in %v, want a segment and the set-aside copy", got)
	}

	n, err := b.in.EraseSpooled(context.Background(), "eve")
	if err != nil || n != 3 {
		t.Fatalf("EraseSpooled: %d, %v; want eve's message, bob's quote and the set-aside copy", n, err)
	}
	if got := filesHolding(t, b.dir, spoolSecret); len(got) != 0 {
		t.Errorf("after the erasure the secret is still in %v", got)
	}
	if n, err := b.in.EraseSpooled(context.Background(), "eve"); err != nil || n != 0 {
		t.Errorf("a second erasure: %d, %v; want nothing left to change", n, err)
	}

	b.audit.setDown(false)
	b.in.drain(context.Background())
	got := map[string]string{}
	for _, d := range b.audit.recorded[len(b.audit.recorded)-3:] {
		ev := d.Event
		got[d.WebhookID] = ev.Type + " " + ev.MessageIDOrEmpty() + " " + ev.Message.Text + " " + ev.User.ID + " " + ev.User.Name
	}
	want := map[string]string{
		"eve-1-again":   "message.new m1 " + policy.Redacted + " eve " + policy.Redacted,
		"bob-1-again":   "message.new m3 bob's own bob ",
		"carol-1-again": "message.new m4 hi carol ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replayed after the erasure (-want +got):\n%s", diff)
	}
	for _, d := range b.audit.recorded {
		if strings.HasSuffix(d.WebhookID, "-again") && bytes.Contains(d.Body, []byte(spoolSecret)) {
			t.Errorf("%s recorded with the secret: %s", d.WebhookID, d.Body)
		}
	}
}

// TestRedactSpooledFits: a body whose markers would not fit in its
// record keeps its length with the strings emptied instead.
func TestRedactSpooledFits(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"message.new","message":{"text":"a","html":"b","user":{"id":"u","name":"c"}},"user":{"id":"u","name":"d"}}`)
	rec := encodeDelivery(Delivery{WebhookID: "w", Verified: Verified{APIKey: "k", Body: body}})
	out, ok := redactSpooled(rec, "u")
	if !ok || len(out) != len(rec) {
		t.Fatalf("redacted: %v, %d bytes; want %d", ok, len(out), len(rec))
	}
	var in Intake
	d, err := in.decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if d.Event.Message.Text != "" || d.Event.User.ID != "u" || d.WebhookID != "w" {
		t.Errorf("decoded %+v %q, want the text emptied and the ids kept", d.Event.Message, d.Body)
	}
}

// TestUserDeletedErases: a hard user.deleted, recorded, asks for the
// user's erasure (a soft one does not); when the erasure fails the answer
// is 503 and Stream's retry, a duplicate, asks again; a spooled one asks
// when it is replayed.
func TestUserDeletedErases(t *testing.T) {
	t.Parallel()
	b := newIntakeBundle(t, 0)
	eraser := &fakeEraser{}
	b.in.cfg.Eraser = eraser
	hard := []byte(`{"type":"user.deleted","user":{"id":"eve"},"hard_delete":true,"created_at":"2026-12-04T10:00:00Z"}`)
	soft := []byte(`{"type":"user.deleted","user":{"id":"dan"},"hard_delete":false}`)

	if code, _ := b.send(t, "soft", soft, soft); code != 200 || len(eraser.calls()) != 0 {
		t.Fatalf("soft delete: %d, erased %v; want 200 and no erasure", code, eraser.calls())
	}
	eraser.fail = errors.New("database down")
	if code, body := b.send(t, "hard", hard, hard); code != 503 || !strings.Contains(body, "not erased yet") {
		t.Errorf("hard delete, erasure failing: %d %s; want 503", code, body)
	}
	eraser.fail = nil
	if code, body := b.send(t, "hard", hard, hard); code != 200 || !strings.Contains(body, "duplicate") {
		t.Errorf("the retry: %d %s; want 200 duplicate", code, body)
	}
	if diff := cmp.Diff([]string{"eve", "eve"}, eraser.calls()); diff != "" {
		t.Errorf("erasures (-want +got):\n%s", diff)
	}

	b.audit.setDown(true)
	hard2 := []byte(`{"type":"user.deleted","user":{"id":"fay"},"hard_delete":true}`)
	if code, body := b.send(t, "hard2", hard2, hard2); code != 200 || !strings.Contains(body, "spooled") {
		t.Fatalf("hard delete while down: %d %s; want spooled", code, body)
	}
	b.audit.setDown(false)
	b.in.drain(context.Background())
	if diff := cmp.Diff([]string{"eve", "eve", "fay"}, eraser.calls()); diff != "" {
		t.Errorf("erasures after the replay (-want +got):\n%s", diff)
	}
}

// queueingEraser is a fakeEraser that can also queue an erasure (as the
// River queue does), failing to while queueFail is set.
type queueingEraser struct {
	fakeEraser
	queued    []string
	queueFail error
}

func (e *queueingEraser) EraseUserLater(_ context.Context, userID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.queueFail != nil {
		return e.queueFail
	}
	e.queued = append(e.queued, userID)
	return nil
}

// TestFailedErasureQueued: a hard user.deleted whose erasure fails is
// queued (answered 200: the queue retries it until it succeeds), live or
// replayed from the spool; answered 503 only when it cannot be queued
// either, so that Stream's retry asks again.
func TestFailedErasureQueued(t *testing.T) {
	t.Parallel()
	b := newIntakeBundle(t, 0)
	eraser := &queueingEraser{}
	eraser.fail = errors.New("database down")
	b.in.cfg.Eraser = eraser
	hard := func(id string) []byte {
		return []byte(`{"type":"user.deleted","user":{"id":"` + id + `"},"hard_delete":true}`)
	}
	if code, body := b.send(t, "q1", hard("gus"), hard("gus")); code != 200 || !strings.Contains(body, "recorded") {
		t.Errorf("erasure failing, queue working: %d %s; want 200 recorded", code, body)
	}
	eraser.queueFail = errors.New("database down too")
	if code, body := b.send(t, "q2", hard("hal"), hard("hal")); code != 503 || !strings.Contains(body, "not erased yet") {
		t.Errorf("erasure and queue failing: %d %s; want 503", code, body)
	}
	eraser.queueFail = nil
	b.audit.setDown(true)
	if code, body := b.send(t, "q3", hard("ida"), hard("ida")); code != 200 || !strings.Contains(body, "spooled") {
		t.Fatalf("while down: %d %s; want spooled", code, body)
	}
	b.audit.setDown(false)
	b.in.drain(context.Background())
	if diff := cmp.Diff([]string{"gus", "ida"}, eraser.queued); diff != "" {
		t.Errorf("queued erasures (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"gus", "hal", "ida"}, eraser.calls()); diff != "" {
		t.Errorf("erasures tried at once (-want +got):\n%s", diff)
	}
}

// TestRedactSpooledReaction: in the spool, another user's reaction to the
// erased user's message loses only the message; one about neither is
// left as it is.
func TestRedactSpooledReaction(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"reaction.deleted","reaction":{"type":"love","user":{"id":"bob"}},"message":{"id":"m1","text":"eve words","user":{"id":"eve"}},"user":{"id":"bob","name":"Bob"}}`)
	out, ok := redactBody(body, "eve")
	if !ok || strings.Contains(string(out), "eve words") || !strings.Contains(string(out), `"Bob"`) || !strings.Contains(string(out), `"love"`) {
		t.Errorf("redacted to %s (%v), want the message redacted, bob's name and the reaction kept", out, ok)
	}
	if _, ok := redactBody(body, "carol"); ok {
		t.Error("a reaction about neither user was redacted")
	}
}
