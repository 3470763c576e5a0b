package policy

import (
	"bytes"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Event is a Stream Chat webhook event, as much of it as moderation needs.
//
// Stream's payloads vary by event type and by API generation, so decoding is
// liberal: timestamps may be RFC 3339 strings or integer nanoseconds (see
// Time), custom fields may be flattened into an object or nested under
// "custom" (see User, Message, Channel), and unknown keys and event types
// are tolerated.
type Event struct {
	Type      string `json:"type"`
	CreatedAt Time   `json:"created_at"`

	CID         string `json:"cid"`
	ChannelType string `json:"channel_type"`
	ChannelID   string `json:"channel_id"`
	Team        string `json:"team"`

	MessageID string   `json:"message_id"`
	Message   *Message `json:"message"`
	Channel   *Channel `json:"channel"`

	// User is the user the event is about or by; which one depends on the
	// type: the sender of message.new, the banned user of user.banned, the
	// flagger of message.flagged, the muter of user.muted.
	User        *User  `json:"user"`
	TargetUser  *User  `json:"target_user"`
	TargetUsers []User `json:"target_users"`
	CreatedBy   *User  `json:"created_by"`

	Reason     string `json:"reason"`
	Expiration Time   `json:"expiration"`
	Shadow     bool   `json:"shadow"`
	HardDelete bool   `json:"hard_delete"`
	TotalFlags int    `json:"total_flags"`

	ChannelMemberCount int `json:"channel_member_count"`
	WatcherCount       int `json:"watcher_count"`

	MessageUpdate *MessageUpdate `json:"message_update"`
	RequestInfo   *RequestInfo   `json:"request_info"`
}

// Message is a chat message inside an event.
type Message struct {
	ID              string         `json:"id"`
	CID             string         `json:"cid"`
	Text            string         `json:"text"`
	Type            string         `json:"type"`
	User            *User          `json:"user"`
	Attachments     []Attachment   `json:"attachments"`
	MentionedUsers  []User         `json:"mentioned_users"`
	ParentID        string         `json:"parent_id"`
	ShowInChannel   bool           `json:"show_in_channel"`
	QuotedMessageID string         `json:"quoted_message_id"`
	Silent          bool           `json:"silent"`
	Shadowed        bool           `json:"shadowed"`
	Pinned          bool           `json:"pinned"`
	Command         string         `json:"command"`
	CreatedAt       Time           `json:"created_at"`
	UpdatedAt       Time           `json:"updated_at"`
	DeletedAt       Time           `json:"deleted_at"`
	Custom          map[string]any `json:"custom,omitempty"`
}

// Attachment is a file, image or link preview attached to a message.
type Attachment struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	TitleLink   string `json:"title_link"`
	Text        string `json:"text"`
	ImageURL    string `json:"image_url"`
	ThumbURL    string `json:"thumb_url"`
	AssetURL    string `json:"asset_url"`
	OGScrapeURL string `json:"og_scrape_url"`
	MimeType    string `json:"mime_type"`
}

// User is a Stream user.
type User struct {
	ID            string         `json:"id"`
	Role          string         `json:"role"`
	Teams         []string       `json:"teams"`
	Name          string         `json:"name"`
	Language      string         `json:"language"`
	Banned        bool           `json:"banned"`
	Online        bool           `json:"online"`
	CreatedAt     Time           `json:"created_at"`
	UpdatedAt     Time           `json:"updated_at"`
	LastActive    Time           `json:"last_active"`
	DeactivatedAt Time           `json:"deactivated_at"`
	Custom        map[string]any `json:"custom,omitempty"`
}

// Channel is a Stream channel.
type Channel struct {
	CID         string         `json:"cid"`
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	Name        string         `json:"name"`
	MemberCount int            `json:"member_count"`
	Frozen      bool           `json:"frozen"`
	Disabled    bool           `json:"disabled"`
	CreatedAt   Time           `json:"created_at"`
	Custom      map[string]any `json:"custom,omitempty"`
}

// MessageUpdate describes the change carried by message.updated.
type MessageUpdate struct {
	OldText string `json:"old_text"`
}

// RequestInfo describes the client that caused the event.
type RequestInfo struct {
	Type      string `json:"type"` // "client" or "server"
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent"`
	SDK       string `json:"sdk"`
}

// ErrNotObject is returned by ParseEvent for JSON that is valid but not an object.
var ErrNotObject = errors.New("event is not a JSON object")

// decodeOptions say how Stream's JSON is read. Fields match by their exact
// names: encoding/json matches them case-insensitively, so a custom field
// "ID" or "Text", which a user can set on their own profile or message,
// would stand in for Stream's id or text; here it stays a custom field.
// Invalid UTF-8 and lone surrogate escapes become U+FFFD instead of
// refusing the event (it is signed: refusing it would lose it), and a
// repeated key takes its last value, as with encoding/json.
var decodeOptions = json.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))

// ParseEvent decodes a Stream event from its raw JSON body. Every string of
// the event is made storable (see sanitize): ids longer than MaxIDBytes
// are shortened by SafeID, NUL becomes U+FFFD.
func ParseEvent(body []byte) (*Event, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if !jsonv1.Valid(body) {
			return nil, fmt.Errorf("decode event: invalid JSON")
		}
		return nil, ErrNotObject
	}
	var ev Event
	if err := json.Unmarshal(body, &ev, decodeOptions); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	ev.sanitize(bytes.Contains(body, []byte(`\u0000`)))
	return &ev, nil
}

// ChannelCID returns the channel's cid ("type:id") from whichever field
// carries it, or "".
func (e *Event) ChannelCID() string {
	switch {
	case e.CID != "":
		return e.CID
	case e.Channel != nil && e.Channel.CID != "":
		return e.Channel.CID
	case e.Message != nil && e.Message.CID != "":
		return e.Message.CID
	case e.ChannelType != "" && e.ChannelID != "":
		return e.ChannelType + ":" + e.ChannelID
	}
	return ""
}

// MessageIDOrEmpty returns the id of the message the event is about, or "".
func (e *Event) MessageIDOrEmpty() string {
	if e.Message != nil && e.Message.ID != "" {
		return e.Message.ID
	}
	return e.MessageID
}

// SubjectUserID returns the id of the user the event concerns: the author
// of a message, the target of a flag or mute, the banned user.
func (e *Event) SubjectUserID() string {
	if strings.HasPrefix(e.Type, "message.") || e.Type == "reaction.new" || e.Type == "" {
		if e.Message != nil && e.Message.User != nil && e.Message.User.ID != "" {
			return e.Message.User.ID
		}
	}
	if e.TargetUser != nil && e.TargetUser.ID != "" {
		return e.TargetUser.ID
	}
	if e.User != nil {
		return e.User.ID
	}
	return ""
}

// ActorID returns the id of the user who caused the event, when the payload
// tells: created_by for bans, else the event's user, else the message's
// author.
func (e *Event) ActorID() string {
	if e.CreatedBy != nil && e.CreatedBy.ID != "" {
		return e.CreatedBy.ID
	}
	switch e.Type {
	case "user.banned", "user.unbanned", "user.deleted", "user.deactivated", "user.reactivated":
		// The event's user is the subject, not the actor.
		return ""
	}
	if e.User != nil && e.User.ID != "" {
		return e.User.ID
	}
	if e.Message != nil && e.Message.User != nil {
		return e.Message.User.ID
	}
	return ""
}

// CausedBy reports whether the event was caused by the user with the given
// id. The service uses it to recognise the echoes of its own actions.
func (e *Event) CausedBy(userID string) bool {
	if userID == "" {
		return false
	}
	if e.ActorID() == userID {
		return true
	}
	// A message sent by the bot (a warning) comes back as message.new with
	// the bot as the message's author.
	return strings.HasPrefix(e.Type, "message.") && e.Message != nil && e.Message.User != nil && e.Message.User.ID == userID
}

// Time is a Stream timestamp. It decodes from an RFC 3339 string (legacy
// payloads, with up to nanosecond precision) or from integer nanoseconds
// since the epoch (the unified API), and from null or "" as the zero time.
type Time struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	if b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return fmt.Errorf("timestamp %s: %w", b, err)
		}
		if s == "" {
			t.Time = time.Time{}
			return nil
		}
		parsed, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			// Some SDKs send integer nanoseconds as a string.
			if n, nerr := strconv.ParseInt(s, 10, 64); nerr == nil {
				t.Time = time.Unix(0, n).UTC()
				return nil
			}
			return fmt.Errorf("timestamp %q: %w", s, err)
		}
		t.Time = parsed
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil {
			return fmt.Errorf("timestamp %s: not a string or an integer", b)
		}
		n = int64(f)
	}
	t.Time = time.Unix(0, n).UTC()
	return nil
}

// MarshalJSON implements json.Marshaler: RFC 3339 with nanoseconds, or null.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format(time.RFC3339Nano) + `"`), nil
}

// The custom-field decoders: each type decodes its known fields by their
// exact names (through an alias type without the method), while every
// other key is collected, and merged with the contents of a "custom"
// object, into Custom. The UnmarshalJSON methods serve encoding/json
// callers the same way.

// UnmarshalJSONFrom implements json.UnmarshalerFrom, collecting custom fields.
func (u *User) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	type plain User
	w := withExtra[plain]{Known: (*plain)(u)}
	if err := json.UnmarshalDecode(dec, &w); err != nil {
		return err
	}
	var err error
	u.Custom, err = mergeCustom(u.Custom, w.Extra, userKnown)
	return err
}

// UnmarshalJSONFrom implements json.UnmarshalerFrom, collecting custom fields.
func (m *Message) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	type plain Message
	w := withExtra[plain]{Known: (*plain)(m)}
	if err := json.UnmarshalDecode(dec, &w); err != nil {
		return err
	}
	var err error
	m.Custom, err = mergeCustom(m.Custom, w.Extra, messageKnown)
	return err
}

// UnmarshalJSONFrom implements json.UnmarshalerFrom, collecting custom fields.
func (c *Channel) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	type plain Channel
	w := withExtra[plain]{Known: (*plain)(c)}
	if err := json.UnmarshalDecode(dec, &w); err != nil {
		return err
	}
	var err error
	c.Custom, err = mergeCustom(c.Custom, w.Extra, channelKnown)
	return err
}

// UnmarshalJSON implements json.Unmarshaler for encoding/json callers.
func (u *User) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, u, decodeOptions) }

// UnmarshalJSON implements json.Unmarshaler for encoding/json callers.
func (m *Message) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, m, decodeOptions) }

// UnmarshalJSON implements json.Unmarshaler for encoding/json callers.
func (c *Channel) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, c, decodeOptions) }

// withExtra decodes the fields of T by name and keeps the other keys as
// raw JSON: most of them are Stream fields no rule reads (a channel's
// config, a message's reactions), which mergeCustom drops without
// decoding; only custom fields are decoded. Decoding them all into
// values cost half of ParseEvent's time on a body carrying its channel
// (BenchmarkParseEvent).
type withExtra[T any] struct {
	Known *T                        `json:",inline"`
	Extra map[string]jsontext.Value `json:",unknown"`
}

// Standard Stream fields that the types above do not model; they are not
// custom fields either.
var (
	userKnown = knownKeys(User{}, "image", "invisible", "blocked_user_ids", "channel_unread_count",
		"channel_last_read_at", "total_unread_count", "unread_channels", "unread_count", "unread_threads",
		"devices", "mutes", "channel_mutes", "privacy_settings", "push_notifications", "revoke_tokens_issued_before",
		"ban_expires", "shadow_banned", "deleted_at", "avg_response_time", "teams_role", "bypass_moderation")
	messageKnown = knownKeys(Message{}, "html", "latest_reactions", "own_reactions", "reaction_counts",
		"reaction_scores", "reaction_groups", "reply_count", "deleted_reply_count", "i18n", "moderation",
		"moderation_details", "quoted_message", "thread_participants", "pinned_at", "pinned_by", "pin_expires",
		"image_labels", "restricted_visibility", "before_message_send_failed", "poll_id", "poll",
		"message_text_updated_at", "mml", "args", "draft", "reminder", "shared_location", "member")
	channelKnown = knownKeys(Channel{}, "config", "created_by", "updated_at", "deleted_at", "last_message_at",
		"members", "member", "hidden", "truncated_at", "truncated_by", "own_capabilities", "cooldown",
		"auto_translation_enabled", "auto_translation_language", "team", "image", "blocked", "filter_tags",
		"pending_messages", "pinned_messages", "read", "messages", "watcher_count", "watchers", "membership")
)

func knownKeys(v any, extra ...string) map[string]bool {
	known := make(map[string]bool)
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			known[name] = true
		}
	}
	for _, k := range extra {
		known[k] = true
	}
	return known
}

// mergeCustom returns the custom fields of an object: the contents of its
// "custom" object (nested), and its keys that are neither modelled nor
// known Stream fields (extra); a nested value wins over a flattened one of
// the same name. It returns nil when there are none.
func mergeCustom(nested map[string]any, extra map[string]jsontext.Value, known map[string]bool) (map[string]any, error) {
	for k, raw := range extra {
		if known[k] {
			continue
		}
		if _, dup := nested[k]; dup {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v, decodeOptions); err != nil {
			return nil, fmt.Errorf("custom field %q: %w", k, err)
		}
		if nested == nil {
			nested = make(map[string]any, len(extra))
		}
		nested[k] = v
	}
	if len(nested) == 0 {
		return nil, nil
	}
	return nested, nil
}
