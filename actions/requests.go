package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// MaxReasonLength is the longest flag or ban reason Stream accepts, in
	// characters.
	MaxReasonLength = 255
	// MaxMessageLength is Stream's default limit on a message's text, in
	// characters.
	MaxMessageLength = 5000
)

// DeleteMode says what a ban does to the banned user's messages.
type DeleteMode string

// The delete_messages values Stream accepts on a ban.
const (
	DeleteSoft    DeleteMode = "soft"
	DeletePruning DeleteMode = "pruning"
	DeleteHard    DeleteMode = "hard"
)

// invalid builds an ErrInvalidRequest for op.
func invalid(op, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// minutes converts a timeout to the whole minutes Stream takes, rounding up
// so that a short timeout never becomes zero, which Stream reads as
// "forever".
func minutes(d time.Duration) (int, bool) {
	if d < 0 {
		return 0, false
	}
	m := d / time.Minute
	if d%time.Minute != 0 {
		m++
	}
	return int(m), true
}

// checkReason enforces Stream's reason limit before the call, so that a
// long templated reason fails here, permanently, instead of at Stream.
func checkReason(op, reason string) error {
	if n := utf8.RuneCountInString(reason); n > MaxReasonLength {
		return invalid(op, "reason is %d characters, more than %d", n, MaxReasonLength)
	}
	return nil
}

// TruncateReason shortens reason to MaxReasonLength characters, for callers
// that would rather send a clipped reason than fail the action.
func TruncateReason(reason string) string {
	if utf8.RuneCountInString(reason) <= MaxReasonLength {
		return reason
	}
	n := 0
	for i := range reason {
		if n == MaxReasonLength {
			return reason[:i]
		}
		n++
	}
	return reason
}

// splitCID splits a channel CID "type:id".
func splitCID(cid string) (typ, id string, ok bool) {
	typ, id, ok = strings.Cut(cid, ":")
	return typ, id, ok && typ != "" && id != ""
}

// BanRequest is a ban. The acting user is the client's bot user.
type BanRequest struct {
	// TargetUserID is the user to ban. Required.
	TargetUserID string
	// ChannelCID ("type:id") limits the ban to one channel; empty bans the
	// user from the whole app.
	ChannelCID string
	// Reason is shown to moderators; at most MaxReasonLength characters.
	Reason string
	// Timeout ends the ban after this long (a moderation "timeout"); zero
	// bans until lifted. Sent as whole minutes, rounded up.
	Timeout time.Duration
	// Shadow hides the user's new messages from everyone else without
	// telling them.
	Shadow bool
	// IPBan also bans the user's last known IP address.
	IPBan bool
	// DeleteMessages deletes the user's existing messages too; empty keeps
	// them.
	DeleteMessages DeleteMode
	// BanFromFutureChannels extends a channel ban to channels created later
	// by the bot user.
	BanFromFutureChannels bool
}

// banBody is POST /moderation/ban. A channel ban names its channel by
// channel_cid alone: the contract takes channel_cid or type and id, and a
// request carries only fields the contract knows.
type banBody struct {
	TargetUserID          string     `json:"target_user_id"`
	BannedByID            string     `json:"banned_by_id"`
	Reason                string     `json:"reason,omitempty"`
	Timeout               int        `json:"timeout,omitempty"`
	Shadow                bool       `json:"shadow,omitempty"`
	IPBan                 bool       `json:"ip_ban,omitempty"`
	ChannelCID            string     `json:"channel_cid,omitempty"`
	DeleteMessages        DeleteMode `json:"delete_messages,omitempty"`
	BanFromFutureChannels bool       `json:"ban_from_future_channels,omitempty"`
}

// Ban bans a user, app-wide or from one channel.
func (c *Client) Ban(ctx context.Context, req BanRequest) (Response, error) {
	const op = "ban user"
	if req.TargetUserID == "" {
		return Response{}, invalid(op, "target user ID is empty")
	}
	if err := checkReason(op, req.Reason); err != nil {
		return Response{}, err
	}
	timeout, ok := minutes(req.Timeout)
	if !ok {
		return Response{}, invalid(op, "timeout %s is negative", req.Timeout)
	}
	switch req.DeleteMessages {
	case "", DeleteSoft, DeletePruning, DeleteHard:
	default:
		return Response{}, invalid(op, "delete mode %q is not soft, pruning or hard", req.DeleteMessages)
	}
	body := banBody{
		TargetUserID:          req.TargetUserID,
		BannedByID:            c.botUserID,
		Reason:                req.Reason,
		Timeout:               timeout,
		Shadow:                req.Shadow,
		IPBan:                 req.IPBan,
		DeleteMessages:        req.DeleteMessages,
		BanFromFutureChannels: req.BanFromFutureChannels,
	}
	if req.ChannelCID != "" {
		if _, _, ok := splitCID(req.ChannelCID); !ok {
			return Response{}, invalid(op, "channel CID %q is not type:id", req.ChannelCID)
		}
		body.ChannelCID = req.ChannelCID
	}
	r, err := c.do(ctx, http.MethodPost, "/moderation/ban", nil, body, nil)
	if err != nil {
		return r, fmt.Errorf("ban user %s: %w", req.TargetUserID, err)
	}
	return r, nil
}

// UnbanRequest lifts a ban.
type UnbanRequest struct {
	// TargetUserID is the banned user. Required.
	TargetUserID string
	// ChannelCID lifts a channel ban; empty lifts the app-wide ban.
	ChannelCID string
	// Reason is recorded with the unban when Stream keeps it.
	Reason string
}

// Unban lifts an app-wide or channel ban (DELETE /moderation/ban, all
// parameters in the query).
func (c *Client) Unban(ctx context.Context, req UnbanRequest) (Response, error) {
	const op = "unban user"
	if req.TargetUserID == "" {
		return Response{}, invalid(op, "target user ID is empty")
	}
	if err := checkReason(op, req.Reason); err != nil {
		return Response{}, err
	}
	q := url.Values{}
	q.Set("target_user_id", req.TargetUserID)
	q.Set("created_by", c.botUserID)
	if req.Reason != "" {
		q.Set("reason", req.Reason)
	}
	if req.ChannelCID != "" {
		if _, _, ok := splitCID(req.ChannelCID); !ok {
			return Response{}, invalid(op, "channel CID %q is not type:id", req.ChannelCID)
		}
		q.Set("channel_cid", req.ChannelCID)
	}
	r, err := c.do(ctx, http.MethodDelete, "/moderation/ban", q, nil, nil)
	if err != nil {
		return r, fmt.Errorf("unban user %s: %w", req.TargetUserID, err)
	}
	return r, nil
}

// FlagOptions are the optional parts of a flag.
type FlagOptions struct {
	// Reason is shown in Stream's review queue; at most MaxReasonLength
	// characters. A slug ("spam") filters and translates best.
	Reason string
	// Custom is extra data stored with the flag (rule ID, decision ID …).
	Custom map[string]any
}

type flagBody struct {
	TargetMessageID string         `json:"target_message_id,omitempty"`
	TargetUserID    string         `json:"target_user_id,omitempty"`
	UserID          string         `json:"user_id"`
	Reason          string         `json:"reason,omitempty"`
	Custom          map[string]any `json:"custom,omitempty"`
}

func (c *Client) flag(ctx context.Context, op string, body flagBody, target string) (Response, error) {
	if target == "" {
		return Response{}, invalid(op, "target ID is empty")
	}
	if err := checkReason(op, body.Reason); err != nil {
		return Response{}, err
	}
	body.UserID = c.botUserID
	r, err := c.do(ctx, http.MethodPost, "/moderation/flag", nil, body, nil)
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", op, target, err)
	}
	return r, nil
}

// FlagMessage puts a message in Stream's review queue, flagged by the bot
// user. Flagging the same message twice fails with an error for which
// IsAlreadyDone is true.
func (c *Client) FlagMessage(ctx context.Context, messageID string, opts FlagOptions) (Response, error) {
	return c.flag(ctx, "flag message", flagBody{TargetMessageID: messageID, Reason: opts.Reason, Custom: opts.Custom}, messageID)
}

// FlagUser puts a user in Stream's review queue, flagged by the bot user.
func (c *Client) FlagUser(ctx context.Context, userID string, opts FlagOptions) (Response, error) {
	return c.flag(ctx, "flag user", flagBody{TargetUserID: userID, Reason: opts.Reason, Custom: opts.Custom}, userID)
}

// UnflagMessage withdraws the bot user's flag of a message.
func (c *Client) UnflagMessage(ctx context.Context, messageID string) (Response, error) {
	return c.unflag(ctx, "unflag message", flagBody{TargetMessageID: messageID}, messageID)
}

// UnflagUser withdraws the bot user's flag of a user.
func (c *Client) UnflagUser(ctx context.Context, userID string) (Response, error) {
	return c.unflag(ctx, "unflag user", flagBody{TargetUserID: userID}, userID)
}

func (c *Client) unflag(ctx context.Context, op string, body flagBody, target string) (Response, error) {
	if target == "" {
		return Response{}, invalid(op, "target ID is empty")
	}
	// user_id is absent from the current spec but sent by every SDK, and a
	// server-side call without an acting user fails with code 4.
	body.UserID = c.botUserID
	r, err := c.do(ctx, http.MethodPost, "/moderation/unflag", nil, body, nil)
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", op, target, err)
	}
	return r, nil
}

// DeleteMessage deletes a message, softly (it can be undeleted) or hard.
func (c *Client) DeleteMessage(ctx context.Context, messageID string, hard bool) (Response, error) {
	const op = "delete message"
	if messageID == "" {
		return Response{}, invalid(op, "message ID is empty")
	}
	q := url.Values{}
	q.Set("deleted_by", c.botUserID)
	if hard {
		q.Set("hard", "true")
	}
	r, err := c.do(ctx, http.MethodDelete, "/messages/"+url.PathEscape(messageID), q, nil, nil)
	if err != nil {
		return r, fmt.Errorf("delete message %s: %w", messageID, err)
	}
	return r, nil
}

// UndeleteMessage restores a softly deleted message.
func (c *Client) UndeleteMessage(ctx context.Context, messageID string) (Response, error) {
	const op = "undelete message"
	if messageID == "" {
		return Response{}, invalid(op, "message ID is empty")
	}
	body := struct {
		UndeletedBy string `json:"undeleted_by"`
	}{c.botUserID}
	r, err := c.do(ctx, http.MethodPost, "/messages/"+url.PathEscape(messageID)+"/undelete", nil, body, nil)
	if err != nil {
		return r, fmt.Errorf("undelete message %s: %w", messageID, err)
	}
	return r, nil
}

// MessageRequest is a message from the bot user (a "warn").
type MessageRequest struct {
	// ID, when set, is the message's ID. A deterministic ID (derived from
	// the decision and action) makes a resend fail with "already exists",
	// which IsAlreadyDone recognises: a warning is then posted once even if
	// the job runs twice.
	ID string
	// Text is the message. Required; at most MaxMessageLength characters.
	Text string
	// Type is the message type; empty means "regular". "system" renders as
	// a notice in most Stream UIs.
	Type string
	// ParentID posts the message in a thread.
	ParentID string
	// ShowInChannel also shows a thread reply in the channel.
	ShowInChannel bool
	// Silent sends without increasing unread counts.
	Silent bool
	// MentionedUserIDs mention users (their IDs must also appear in Text
	// as @name for UIs to highlight them).
	MentionedUserIDs []string
	// SkipPush sends no push notification.
	SkipPush bool
}

type messageBody struct {
	ID             string   `json:"id,omitempty"`
	Text           string   `json:"text"`
	Type           string   `json:"type,omitempty"`
	UserID         string   `json:"user_id"`
	ParentID       string   `json:"parent_id,omitempty"`
	ShowInChannel  bool     `json:"show_in_channel,omitempty"`
	Silent         bool     `json:"silent,omitempty"`
	MentionedUsers []string `json:"mentioned_users,omitempty"`
}

type sendMessageBody struct {
	Message  messageBody `json:"message"`
	SkipPush bool        `json:"skip_push,omitempty"`
}

// SendMessageResponse is the answer to SendMessage.
type SendMessageResponse struct {
	Response
	// MessageID is the ID of the posted message (the requested one, or the
	// one Stream generated).
	MessageID string
}

// SendMessage posts a message from the bot user to a channel. The bot user
// must exist (EnsureBotUser). Server-side messages skip Stream's own
// moderation.
func (c *Client) SendMessage(ctx context.Context, channelType, channelID string, m MessageRequest) (SendMessageResponse, error) {
	const op = "send message"
	switch {
	case channelType == "" || channelID == "":
		return SendMessageResponse{}, invalid(op, "channel type and ID are required")
	case strings.TrimSpace(m.Text) == "":
		return SendMessageResponse{}, invalid(op, "text is empty")
	case utf8.RuneCountInString(m.Text) > MaxMessageLength:
		return SendMessageResponse{}, invalid(op, "text is longer than %d characters", MaxMessageLength)
	}
	body := sendMessageBody{
		Message: messageBody{
			ID:             m.ID,
			Text:           m.Text,
			Type:           m.Type,
			UserID:         c.botUserID,
			ParentID:       m.ParentID,
			ShowInChannel:  m.ShowInChannel,
			Silent:         m.Silent,
			MentionedUsers: m.MentionedUserIDs,
		},
		SkipPush: m.SkipPush,
	}
	var out struct {
		Message struct {
			ID string `json:"id"`
		} `json:"message"`
	}
	path := "/channels/" + url.PathEscape(channelType) + "/" + url.PathEscape(channelID) + "/message"
	r, err := c.do(ctx, http.MethodPost, path, nil, body, &out)
	if err != nil {
		return SendMessageResponse{Response: r}, fmt.Errorf("send message to %s:%s: %w", channelType, channelID, err)
	}
	return SendMessageResponse{Response: r, MessageID: out.Message.ID}, nil
}

// User is a user to create or replace.
type User struct {
	// ID is the user's ID. Required.
	ID string
	// Name is the display name.
	Name string
	// Role is the user's role; empty leaves it to Stream ("user" for a new
	// user).
	Role string
	// Custom holds custom fields, sent flattened into the user object as
	// Stream's upsert expects. They cannot override id, name or role.
	Custom map[string]any
}

// MarshalJSON flattens Custom into the object.
func (u User) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(u.Custom)+3)
	for k, v := range u.Custom {
		m[k] = v
	}
	m["id"] = u.ID
	if u.Name != "" {
		m["name"] = u.Name
	} else {
		delete(m, "name")
	}
	if u.Role != "" {
		m["role"] = u.Role
	} else {
		delete(m, "role")
	}
	return json.Marshal(m)
}

// UpsertUsers creates users or replaces them whole (fields not sent are
// dropped by Stream).
func (c *Client) UpsertUsers(ctx context.Context, users ...User) (Response, error) {
	const op = "upsert users"
	if len(users) == 0 {
		return Response{}, invalid(op, "no users")
	}
	body := struct {
		Users map[string]User `json:"users"`
	}{Users: make(map[string]User, len(users))}
	for i, u := range users {
		if u.ID == "" {
			return Response{}, invalid(op, "user %d has no ID", i)
		}
		body.Users[u.ID] = u
	}
	r, err := c.do(ctx, http.MethodPost, "/users", nil, body, nil)
	if err != nil {
		return r, fmt.Errorf("upsert %d users: %w", len(users), err)
	}
	return r, nil
}

// EnsureBotUser creates the bot user, or refreshes it, so that its messages
// can be sent: Stream refuses a message from a user that does not exist.
// Call it at start-up. It sends no role, so that an operator may promote
// the bot in Stream's dashboard without the service undoing it on a
// restart, and no custom fields, which an upsert would otherwise keep
// resetting.
func (c *Client) EnsureBotUser(ctx context.Context) (Response, error) {
	r, err := c.UpsertUsers(ctx, User{ID: c.botUserID, Name: c.botName})
	if err != nil {
		return r, fmt.Errorf("ensure bot user: %w", err)
	}
	return r, nil
}

// QueryBansRequest selects bans.
type QueryBansRequest struct {
	// Filter is Stream's filter_conditions, e.g.
	// {"user_id": {"$eq": "u1"}} or {"channel_cid": "messaging:general"}.
	// Required.
	Filter map[string]any
	// Limit caps the answer (Stream's default when zero).
	Limit int
	// Offset skips bans, for paging.
	Offset int
}

// Ban is a ban as Stream reports it.
type Ban struct {
	UserID     string
	ChannelCID string
	BannedByID string
	Reason     string
	Shadow     bool
	// Expires is when the ban ends; zero for a ban until lifted.
	Expires   time.Time
	CreatedAt time.Time
}

// QueryBansResponse is the answer to QueryBannedUsers.
type QueryBansResponse struct {
	Response
	Bans []Ban
}

type wireBan struct {
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	Channel *struct {
		CID string `json:"cid"`
	} `json:"channel"`
	BannedBy *struct {
		ID string `json:"id"`
	} `json:"banned_by"`
	Reason    string     `json:"reason"`
	Shadow    bool       `json:"shadow"`
	Expires   *time.Time `json:"expires"`
	CreatedAt time.Time  `json:"created_at"`
}

// QueryBannedUsers lists bans (GET /query_banned_users with the query as a
// JSON payload parameter). Appeals use it to see what is in force.
func (c *Client) QueryBannedUsers(ctx context.Context, req QueryBansRequest) (QueryBansResponse, error) {
	const op = "query banned users"
	if len(req.Filter) == 0 {
		return QueryBansResponse{}, invalid(op, "filter is empty")
	}
	if req.Limit < 0 || req.Offset < 0 {
		return QueryBansResponse{}, invalid(op, "limit and offset must not be negative")
	}
	payload := struct {
		Filter map[string]any `json:"filter_conditions"`
		Limit  int            `json:"limit,omitempty"`
		Offset int            `json:"offset,omitempty"`
	}{req.Filter, req.Limit, req.Offset}
	p, err := json.Marshal(payload)
	if err != nil {
		return QueryBansResponse{}, invalid(op, "encode filter: %v", err)
	}
	q := url.Values{"payload": {string(p)}}
	var out struct {
		Bans []wireBan `json:"bans"`
	}
	r, err := c.do(ctx, http.MethodGet, "/query_banned_users", q, nil, &out)
	if err != nil {
		return QueryBansResponse{Response: r}, fmt.Errorf("%s: %w", op, err)
	}
	resp := QueryBansResponse{Response: r, Bans: make([]Ban, 0, len(out.Bans))}
	for _, b := range out.Bans {
		ban := Ban{UserID: b.User.ID, Reason: b.Reason, Shadow: b.Shadow, CreatedAt: b.CreatedAt}
		if b.Channel != nil {
			ban.ChannelCID = b.Channel.CID
		}
		if b.BannedBy != nil {
			ban.BannedByID = b.BannedBy.ID
		}
		if b.Expires != nil {
			ban.Expires = *b.Expires
		}
		resp.Bans = append(resp.Bans, ban)
	}
	return resp, nil
}
