package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"unicode/utf8"
)

// MaxIDBytes is Stream's limit on an id (user, message, channel, event
// type): longer ones do not come from Stream's own checks, and Postgres
// cannot index values of a few kilobytes.
const MaxIDBytes = 255

// idHashDigits is how much of the SHA-256 of a shortened id it keeps: 64
// bits, so that two different long ids stay apart.
const idHashDigits = 16

// SafeID returns id as it can be stored and indexed: id itself when it is
// at most MaxIDBytes of UTF-8 without NUL, which is every id Stream
// issues. Otherwise its start, with invalid bytes and NUL replaced by
// U+FFFD, cut on a character boundary to leave room for "+" and 16 hex
// digits of the SHA-256 of id's exact bytes: the same id always gives the
// same value, different ids different values, and the result is at most
// MaxIDBytes. The full value stays in the event's payload.
func SafeID(id string) string {
	if len(id) <= MaxIDBytes && utf8.ValidString(id) && !strings.Contains(id, "\x00") {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	suffix := "+" + hex.EncodeToString(sum[:])[:idHashDigits]
	clean := strings.ReplaceAll(strings.ToValidUTF8(id, "\uFFFD"), "\x00", "\uFFFD")
	cut := min(len(clean), MaxIDBytes-len(suffix))
	for cut > 0 && cut < len(clean) && !utf8.RuneStart(clean[cut]) {
		cut--
	}
	return clean[:cut] + suffix
}

// sanitize makes every string of e storable in a Postgres text column and
// every id indexable, whatever the signed body held, so that a valid event
// is recorded rather than refused on every retry. The decoder has already
// replaced invalid UTF-8 and lone surrogates with U+FFFD; a \u0000 escape
// decodes to NUL, which no text column accepts, so when the body has one
// (hasNUL) every string is searched for it. Ids go through SafeID first,
// so that an id with NUL stays distinct from one with U+FFFD.
func (e *Event) sanitize(hasNUL bool) {
	e.eachID(func(id *string) {
		if len(*id) > MaxIDBytes || hasNUL && strings.Contains(*id, "\x00") {
			*id = SafeID(*id)
		}
	})
	if hasNUL {
		replaceNUL(reflect.ValueOf(e).Elem())
	}
}

// eachID calls fn with every id of the event that is stored in a column
// or keys a counter.
func (e *Event) eachID(fn func(*string)) {
	for _, s := range []*string{&e.Type, &e.CID, &e.ChannelType, &e.ChannelID, &e.Team, &e.MessageID} {
		fn(s)
	}
	user := func(u *User) {
		if u != nil {
			fn(&u.ID)
		}
	}
	user(e.User)
	user(e.TargetUser)
	user(e.CreatedBy)
	for i := range e.TargetUsers {
		user(&e.TargetUsers[i])
	}
	if m := e.Message; m != nil {
		for _, s := range []*string{&m.ID, &m.CID, &m.ParentID, &m.QuotedMessageID} {
			fn(s)
		}
		user(m.User)
		for i := range m.MentionedUsers {
			user(&m.MentionedUsers[i])
		}
	}
	if c := e.Channel; c != nil {
		for _, s := range []*string{&c.CID, &c.ID, &c.Type} {
			fn(s)
		}
	}
}

// replaceNUL replaces NUL with U+FFFD in every string reachable from v:
// fields, slices, maps (their keys too) and the values inside interfaces.
func replaceNUL(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() && strings.Contains(v.String(), "\x00") {
			v.SetString(withoutNUL(v.String()))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			replaceNUL(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				replaceNUL(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			replaceNUL(v.Index(i))
		}
	case reflect.Interface:
		if !v.IsNil() && v.CanSet() {
			v.Set(reflect.ValueOf(cleanAny(v.Interface())))
		}
	case reflect.Map:
		if m, ok := v.Interface().(map[string]any); ok && v.CanSet() {
			v.Set(reflect.ValueOf(cleanAny(m)))
		}
	}
}

// cleanAny returns x, a value decoded from JSON into any, with NUL
// replaced in its strings and keys.
func cleanAny(x any) any {
	switch x := x.(type) {
	case string:
		return withoutNUL(x)
	case []any:
		for i := range x {
			x[i] = cleanAny(x[i])
		}
		return x
	case map[string]any:
		if x == nil {
			return x
		}
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[withoutNUL(k)] = cleanAny(v)
		}
		return out
	}
	return x
}

func withoutNUL(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }
