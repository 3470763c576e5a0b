package webhook

import (
	"encoding/json"

	"moderator/policy"
)

// ErasedUsers tells whether a user was erased lately (erasure.Recent: a
// set in memory, so asking costs a map lookup).
type ErasedUsers interface {
	Erased(userID string) bool
}

// redactErased redacts, in a verified delivery, the content of the users
// erased lately, as the erasure did in the database: the whole event when
// its subject or actor is erased; only the message when its author is
// (another user's reaction to it); only the quoted message when its
// author is. The body's hash stays that of the signed bytes, so that a
// retry of a recorded delivery is still a duplicate. An event concerning
// no erased user costs two or three map lookups; the body is parsed again
// only for those that do, and for quoting messages (to find the quoted
// message's author, which the parsed event does not hold).
func (in *Intake) redactErased(v *Verified) {
	erased, ev := in.cfg.Erased, v.Event
	if erased == nil || ev == nil {
		return
	}
	var (
		out []byte
		ok  bool
		err error
	)
	switch {
	case erased.Erased(ev.SubjectUserID()) || erased.Erased(ev.ActorID()):
		out, err = policy.RedactPayload(v.Body)
		ok = err == nil
	case ev.Message != nil && ev.Message.User != nil && erased.Erased(ev.Message.User.ID):
		out, ok, err = policy.RedactMessage(v.Body)
	case ev.Message != nil && ev.Message.QuotedMessageID != "" && erased.Erased(quotedAuthor(v.Body)):
		out, ok, err = policy.RedactQuoted(v.Body)
	}
	if err != nil {
		// The body parsed as an event a moment ago; should the redaction
		// fail all the same, only the event's type is kept rather than
		// the text.
		out, _ = json.Marshal(map[string]string{"type": ev.Type})
		ok = true
	}
	if !ok {
		return
	}
	red, perr := policy.ParseEvent(out)
	if perr != nil {
		return
	}
	v.Body, v.Event = out, red
	in.m.erasedRedacted.Inc()
}
