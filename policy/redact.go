package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Redacted is the marker an erasure leaves where a user's text was: in the
// database (moderator_erase_user writes the same literal) and in the spool.
// Staff see it as it is, in the API, the console and `moderator audit`.
const Redacted = "[redacted]"

// redactKeep are the keys of a Stream payload whose string values an
// erasure keeps: identifiers, types and times, the skeleton a reviewer
// still needs. moderator_payload_keep() in migrations/0022_erasure.up.sql
// lists the same keys; a store test holds the two equal.
var redactKeep = map[string]bool{
	"id": true, "type": true, "cid": true, "channel_id": true, "channel_type": true, "parent_id": true,
	"quoted_message_id": true, "message_id": true, "user_id": true, "target_user_id": true, "role": true,
	"channel_role": true, "created_at": true, "updated_at": true, "deleted_at": true, "last_active": true,
	"deactivated_at": true, "expiration": true,
}

// RedactPayload returns a Stream event (JSON) with every string replaced
// by Redacted, except empty ones and the values of identifier, type and
// time keys; numbers, booleans and nulls stay (and the values of an
// "evidence" object go whole). It is what an erasure makes
// of a payload, the same in Go as in SQL: compact JSON, without HTML
// escaping.
func RedactPayload(payload []byte) ([]byte, error) {
	v, err := decodeForRedaction(payload)
	if err != nil {
		return nil, err
	}
	return encodeRedacted(redact(v, ""))
}

// RedactQuoted returns a Stream event (JSON) with the message it quotes
// (message.quoted_message) redacted as RedactPayload would, and the rest
// as it was: what an erasure makes of another user's message quoting the
// erased user's. ok is false when the event quotes nothing.
func RedactQuoted(payload []byte) (out []byte, ok bool, err error) {
	return redactAt(payload, "message", "quoted_message")
}

// RedactMessage returns a Stream event (JSON) with its message redacted
// as RedactPayload would, and the rest as it was: what an erasure makes
// of another user's event about the erased user's message (a reaction
// updated or deleted, whose user is the reactor). ok is false when the
// event carries no message.
func RedactMessage(payload []byte) (out []byte, ok bool, err error) {
	return redactAt(payload, "message")
}

// redactAt redacts the value at path (object keys) in payload, leaving
// the rest as it was; ok is false when there is nothing at path.
func redactAt(payload []byte, path ...string) (out []byte, ok bool, err error) {
	v, err := decodeForRedaction(payload)
	if err != nil {
		return nil, false, err
	}
	obj, _ := v.(map[string]any)
	for _, k := range path[:len(path)-1] {
		obj, _ = obj[k].(map[string]any)
	}
	last := path[len(path)-1]
	inner, found := obj[last]
	if !found || inner == nil {
		return nil, false, nil
	}
	obj[last] = redact(inner, last)
	out, err = encodeRedacted(v)
	return out, err == nil, err
}

func decodeForRedaction(payload []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("redact payload: %w", err)
	}
	return v, nil
}

// encodeRedacted writes v as compact JSON, without HTML escaping (which
// would make the marker's neighbours longer than the text they replace).
func encodeRedacted(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("redact payload: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// redact redacts v, the value of key (or an element of key's array).
func redact(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if key == "evidence" {
				// What a rule read, keyed by its expression: the values
				// go whole, whatever their type (as in SQL).
				x[k] = Redacted
				continue
			}
			x[k] = redact(e, k)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = redact(e, key)
		}
		return x
	case string:
		if x == "" || redactKeep[key] {
			return x
		}
		return Redacted
	default:
		return v
	}
}

// RedactKeep returns the keys whose string values RedactPayload keeps.
func RedactKeep() []string {
	keys := make([]string, 0, len(redactKeep))
	for k := range redactKeep {
		keys = append(keys, k)
	}
	return keys
}
