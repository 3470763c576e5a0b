package policy

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// An example's event is checked against the shape of Stream's events
// before it runs, so that a misspelt key (txt:, usr:) is a load error
// instead of a custom field that lets the example pass for the wrong
// reason. Keys of users, messages and channels are Stream's own or
// declared custom fields; other objects take Stream's keys only.

// eventKnown are the top-level keys of Stream's events.
var eventKnown = knownKeys(Event{}, "reaction", "member", "members", "thread", "parent_id", "user_id",
	"received_at", "unread_count", "total_unread_count", "unread_channels", "unread_messages", "poll",
	"poll_vote", "automoderation", "automoderation_scores", "channel_last_message_at", "watcher_count",
	"message_id", "mode", "review_queue_item", "flags")

// attachmentKnown are the keys of an attachment.
var attachmentKnown = knownKeys(Attachment{}, "fallback", "author_name", "author_icon", "author_link",
	"title", "file_size", "original_height", "original_width", "image_url", "thumb_url", "asset_url",
	"actions", "fields", "footer", "footer_icon", "color", "pretext", "giphy", "duration", "waveform_data",
	"latitude", "longitude", "name", "custom")

// misplacedKeys explain keys written on the wrong object.
var misplacedKeys = map[string]string{
	"message.old_text":      "the text before an edit is on the event: message_update: {old_text: …}",
	"message.account_age":   "account_age is computed from user: {created_at: …}",
	"user.account_age":      "account_age is computed from user: {created_at: …}",
	"message.mention_count": "mention_count is counted from message: {mentioned_users: [{id: …}]}",
}

// exampleShape checks one example event against Stream's event shape and
// the declared custom fields, and returns a message per wrong key.
func exampleShape(event map[string]any, fields map[string]*customField) []string {
	s := &shapeChecker{fields: fields}
	for _, k := range sortedKeys(event) {
		v := event[k]
		switch k {
		case "message":
			s.object("message", "message", v)
		case "user", "target_user", "created_by":
			s.object(k, "user", v)
		case "channel":
			s.object("channel", "channel", v)
		case "target_users":
			s.list(k, "user", v)
		case "message_update":
			s.plain(k, v, knownKeys(MessageUpdate{}))
		case "request_info":
			s.plain(k, v, knownKeys(RequestInfo{}))
		default:
			if !eventKnown[k] {
				s.unknown(k, k, eventKnown, "")
			}
		}
	}
	return s.msgs
}

type shapeChecker struct {
	fields map[string]*customField
	msgs   []string
}

// object checks an object with custom fields: a user, message or channel
// at path.
func (s *shapeChecker) object(path, kind string, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return // a type error is the parser's to report
	}
	known := fieldObjects()[kind]
	for _, k := range sortedKeys(m) {
		switch {
		case k == "custom":
			if cm, ok := m[k].(map[string]any); ok {
				for _, ck := range sortedKeys(cm) {
					if _, declared := s.fields[kind+"."+ck]; !declared {
						s.undeclared(path+".custom."+ck, kind, ck)
					}
				}
			}
		case kind == "message" && k == "user":
			s.object(path+".user", "user", m[k])
		case kind == "message" && k == "mentioned_users":
			s.list(path+"."+k, "user", m[k])
		case kind == "message" && k == "attachments":
			if items, ok := m[k].([]any); ok {
				for i, it := range items {
					s.plain(fmt.Sprintf("%s.attachments[%d]", path, i), it, attachmentKnown)
				}
			}
		case known[k]:
		default:
			if _, declared := s.fields[kind+"."+k]; declared {
				continue
			}
			if hint, ok := misplacedKeys[kind+"."+k]; ok {
				s.msgs = append(s.msgs, fmt.Sprintf("%s.%s is not a field of the event: %s", path, k, hint))
				continue
			}
			s.unknown(path+"."+k, k, known, kind)
		}
	}
}

// list checks a list of users.
func (s *shapeChecker) list(path, kind string, v any) {
	items, ok := v.([]any)
	if !ok {
		return
	}
	for i, it := range items {
		s.object(fmt.Sprintf("%s[%d]", path, i), kind, it)
	}
}

// plain checks an object without custom fields.
func (s *shapeChecker) plain(path string, v any, known map[string]bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for _, k := range sortedKeys(m) {
		if !known[k] {
			s.unknown(path+"."+k, k, known, "")
		}
	}
}

// unknown reports key at path, which is not in known; kind, when set, is
// the object whose custom fields could declare it.
func (s *shapeChecker) unknown(path, key string, known map[string]bool, kind string) {
	names := slices.Collect(maps.Keys(known))
	if kind != "" {
		for k := range s.fields {
			if obj, name, _ := strings.Cut(k, "."); obj == kind {
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	msg := fmt.Sprintf("%s is not a field of Stream's events%s", path, suggest(key, names))
	if kind != "" {
		msg += fmt.Sprintf("; a custom field must be declared (fields: {%s.%s: {type: …}})", kind, key)
	}
	s.msgs = append(s.msgs, msg)
}

func (s *shapeChecker) undeclared(path, kind, key string) {
	s.msgs = append(s.msgs, fmt.Sprintf("%s is not a declared custom field: declare it (fields: {%s.%s: {type: …}})", path, kind, key))
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}
