package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"moderator/policy"
)

// UserEraser erases a user's content wherever the service keeps it
// (cmd/moderator provides it, over package erasure). The intake calls it
// when Stream reports a user deleted with hard_delete.
type UserEraser interface {
	EraseUser(ctx context.Context, userID string) error
}

// eraseTimeout bounds an erasure the intake asks for. Stream stops
// waiting after a few seconds and retries; the retry is a duplicate,
// which asks for the erasure again (it is idempotent).
const eraseTimeout = 30 * time.Second

// deletedUser returns the id of the user a hard user.deleted event
// deletes, "" for any other event.
func deletedUser(ev *policy.Event) string {
	if ev == nil || ev.Type != "user.deleted" || !ev.HardDelete || ev.User == nil {
		return ""
	}
	return ev.User.ID
}

// LaterEraser queues an erasure that failed at once, to be retried until
// it succeeds (cmd/moderator's eraser provides it, over a River queue).
type LaterEraser interface {
	EraseUserLater(ctx context.Context, userID string) error
}

// eraseDeleted erases the content of the user a recorded (or duplicate)
// hard user.deleted deletes, when an eraser is configured. When the
// erasure fails and the eraser can queue it, it is queued (retried until
// it succeeds) and queued is true; err is set only when it is neither
// done nor queued.
func (in *Intake) eraseDeleted(ctx context.Context, ev *policy.Event) (queued bool, err error) {
	id := deletedUser(ev)
	if id == "" || in.cfg.Eraser == nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eraseTimeout)
	defer cancel()
	err = in.cfg.Eraser.EraseUser(ctx, id)
	if err == nil {
		return false, nil
	}
	if later, ok := in.cfg.Eraser.(LaterEraser); ok {
		qerr := later.EraseUserLater(ctx, id)
		if qerr == nil {
			in.logger.Warn("erasure of a deleted user failed; queued, retried until it succeeds",
				"user_id", policy.SafeID(id), "error", err.Error())
			return true, nil
		}
		err = errors.Join(err, qerr)
	}
	return false, fmt.Errorf("erase deleted user %s: %w", id, err)
}

// eraseReplayed carries out the erasures that replayed user.deleted
// deliveries asked for. Their records are acknowledged: a failed erasure
// is queued (eraseDeleted); one that cannot be queued either is logged at
// ERROR for an admin to erase the user through the staff API.
func (in *Intake) eraseReplayed(ctx context.Context, users []string) {
	for _, id := range users {
		if _, err := in.eraseDeleted(ctx, &policy.Event{Type: "user.deleted", HardDelete: true, User: &policy.User{ID: id}}); err != nil {
			in.logger.Error("erasure of a deleted user failed and could not be queued; erase them through the staff API",
				"user_id", policy.SafeID(id), "error", err.Error())
		}
	}
}

// EraseSpooled redacts, in the spool, the deliveries about userID (as
// moderator_erase_user does in the database: the events whose subject or
// actor they are whole, the message quoted in others' messages), and
// returns how many it changed. It waits for the replay of the chunk under
// way, and keeps the replayer off the spool until done, so that no copy
// of the old text is recorded after it returns. Each replica erases its
// own spool.
func (in *Intake) EraseSpooled(ctx context.Context, userID string) (int, error) {
	if in.spool == nil {
		return 0, nil
	}
	select {
	case in.replaying <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("erase %s in the spool: waiting for the replay: %w", policy.SafeID(userID), ctx.Err())
	}
	defer func() { <-in.replaying }()
	n, err := in.spool.Rewrite(func(data []byte) ([]byte, bool) { return redactSpooled(data, userID) })
	if err != nil {
		return n, fmt.Errorf("erase %s in the spool: %w", policy.SafeID(userID), err)
	}
	return n, nil
}

// redactSpooled returns a spooled delivery with its body redacted when it
// is about userID; ok is false when it is not (or cannot be read: it will
// be set aside as it is).
func redactSpooled(data []byte, userID string) ([]byte, bool) {
	_, body, err := splitDelivery(data)
	if err != nil {
		return nil, false
	}
	out, ok := redactBody(body, userID)
	if !ok {
		return nil, false
	}
	head := slices.Clip(data[:len(data)-len(body)])
	return append(head, fit(out, len(body))...), true
}

// redactBody redacts a Stream event about userID: whole when the user is
// its subject or actor, only the message when it is theirs (another
// user's reaction to it), only the quoted message when it quotes theirs.
func redactBody(body []byte, userID string) ([]byte, bool) {
	ev, err := policy.ParseEvent(body)
	if err != nil {
		return nil, false
	}
	var out []byte
	switch {
	case ev.SubjectUserID() == userID || ev.ActorID() == userID:
		out, err = policy.RedactPayload(body)
	case ev.Message != nil && ev.Message.User != nil && ev.Message.User.ID == userID:
		out, _, err = policy.RedactMessage(body)
	case quotedAuthor(body) == userID:
		out, _, err = policy.RedactQuoted(body)
	default:
		return nil, false
	}
	if err != nil || bytes.Equal(out, bytes.TrimRight(body, " ")) {
		return nil, false // already redacted
	}
	return out, true
}

// quotedAuthor returns the author of the message an event's message
// quotes, "" when it quotes none.
func quotedAuthor(body []byte) string {
	var ev struct {
		Message *struct {
			Quoted *struct {
				User *struct {
					ID string `json:"id"`
				} `json:"user"`
			} `json:"quoted_message"`
		} `json:"message"`
	}
	if json.Unmarshal(body, &ev) != nil || ev.Message == nil || ev.Message.Quoted == nil || ev.Message.Quoted.User == nil {
		return ""
	}
	return ev.Message.Quoted.User.ID
}

// fit makes a redacted body exactly n bytes long, the length of the body
// it replaces (a spool record keeps its place): padded with spaces, which
// JSON allows after a value. When the markers make it longer than the
// original (many short strings), the redacted strings are left empty
// instead, and as a last resort the body is an empty object.
func fit(out []byte, n int) []byte {
	if len(out) > n {
		out = bytes.ReplaceAll(out, []byte(strconv.Quote(policy.Redacted)), []byte(`""`))
	}
	if len(out) > n {
		out = []byte("{}")
	}
	return append(out, bytes.Repeat([]byte(" "), max(n-len(out), 0))...)
}
