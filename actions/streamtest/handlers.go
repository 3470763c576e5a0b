package streamtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits Stream applies to request fields.
const (
	maxReason      = 255
	maxMuteTargets = 1000
	maxText        = 5000
)

func (s *Server) routes() map[string]handler {
	return map[string]handler{
		RouteBan:              s.ban,
		RouteUnban:            s.unban,
		RouteMute:             s.mute,
		RouteUnmute:           s.unmute,
		RouteFlag:             s.flag,
		RouteUnflag:           s.unflag,
		RouteDeleteMessage:    s.deleteMessage,
		RouteUndeleteMessage:  s.undeleteMessage,
		RouteSendMessage:      s.sendMessage,
		RouteUpsertUsers:      s.upsertUsers,
		RouteQueryBannedUsers: s.queryBannedUsers,
	}
}

// decodeKnown is decode for an endpoint whose every field the fake knows:
// a field the contract does not name is refused, so that a request can
// never lean on one that Stream would ignore.
func decodeKnown(op string, body []byte, v any) *apiError {
	if e := decode(op, body, v); e != nil {
		return e
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return errInput(op, "", "invalid JSON body: "+err.Error())
	}
	known := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !known[k] {
			return errInput(op, k, fmt.Sprintf("%s is not a field of this endpoint", k))
		}
	}
	return nil
}

// knownQuery refuses a query parameter the endpoint does not take.
func knownQuery(op string, q url.Values, names ...string) *apiError {
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if k != "api_key" && !slices.Contains(names, k) {
			return errInput(op, k, fmt.Sprintf("%s is not a parameter of this endpoint", k))
		}
	}
	return nil
}

// decode reads a JSON body into v; an empty body decodes as {}.
func decode(op string, body []byte, v any) *apiError {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	err := json.Unmarshal(body, v)
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		return errInput(op, te.Field, fmt.Sprintf("%s has the wrong type: got a JSON %s, want %s", te.Field, te.Value, te.Type))
	default:
		return errInput(op, "", "invalid JSON body: "+err.Error())
	}
}

type idObject struct {
	ID string `json:"id"`
}

func (o *idObject) id() string {
	if o == nil {
		return ""
	}
	return o.ID
}

func checkReason(op, reason string) *apiError {
	if utf8.RuneCountInString(reason) > maxReason {
		return errInput(op, "reason", fmt.Sprintf("reason must be at most %d characters", maxReason))
	}
	return nil
}

func expiry(now time.Time, timeout *int) time.Time {
	if timeout == nil || *timeout == 0 {
		return time.Time{}
	}
	return now.Add(time.Duration(*timeout) * time.Minute)
}

func checkTimeout(op string, timeout *int) *apiError {
	if timeout != nil && *timeout < 0 {
		return errInput(op, "timeout", "timeout must be a positive number of minutes")
	}
	return nil
}

// channelOf reads a channel given as channel_cid or as type and id. The
// contract names one form or the other; a request carrying both is refused
// (the moderator sends only fields the contract knows, and two forms that
// an endpoint version might read differently must not meet).
func channelOf(op, cid, typ, id string) (string, *apiError) {
	if typ != "" || id != "" {
		if typ == "" || id == "" {
			return "", errInput(op, "type", "type and id must be given together")
		}
		if cid != "" {
			return "", errInput(op, "channel_cid", fmt.Sprintf("give the channel as channel_cid or as type and id, not both (channel_cid %s, type %s, id %s)", cid, typ, id))
		}
		return typ + ":" + id, nil
	}
	if cid == "" {
		return "", nil
	}
	if t, i, ok := strings.Cut(cid, ":"); !ok || t == "" || i == "" {
		return "", errInput(op, "channel_cid", "channel_cid must be type:id")
	}
	return cid, nil
}

// user returns a known user. Unknown users are created on first use unless
// the server is strict.
func (s *Server) user(op, id string, now time.Time) *apiError {
	if _, ok := s.st.users[id]; ok {
		return nil
	}
	if s.strict {
		return errNotFound(op, fmt.Sprintf("user %s does not exist", id))
	}
	s.st.users[id] = User{ID: id, Role: "user", CreatedAt: now, UpdatedAt: now}
	return nil
}

// message returns a known, not hard-deleted message. Unknown messages are
// created on first use unless the server is strict.
func (s *Server) message(op, id string, now time.Time) (*Message, *apiError) {
	if m, ok := s.st.messages[id]; ok {
		if m.HardDeleted {
			return nil, errNotFound(op, fmt.Sprintf("message %s does not exist", id))
		}
		return m, nil
	}
	if s.strict {
		return nil, errNotFound(op, fmt.Sprintf("message %s does not exist", id))
	}
	return s.st.addMessage(Message{ID: id, Type: "regular", CreatedAt: now}), nil
}

// ban handles POST /moderation/ban. The acting user may be banned_by_id (the
// spec), banned_by.id, or user_id (what older SDKs send). A second ban of
// the same user in the same scope replaces the first (Stream does not
// document the answer; an upsert is the plausible one).
func (s *Server) ban(c call) reply {
	const op = "BanUser"
	var in struct {
		TargetUserID          string    `json:"target_user_id"`
		BannedByID            string    `json:"banned_by_id"`
		BannedBy              *idObject `json:"banned_by"`
		UserID                string    `json:"user_id"`
		Reason                string    `json:"reason"`
		Timeout               *int      `json:"timeout"`
		Shadow                bool      `json:"shadow"`
		IPBan                 bool      `json:"ip_ban"`
		ChannelCID            string    `json:"channel_cid"`
		Type                  string    `json:"type"`
		ID                    string    `json:"id"`
		DeleteMessages        string    `json:"delete_messages"`
		BanFromFutureChannels bool      `json:"ban_from_future_channels"`
	}
	if e := decodeKnown(op, c.body, &in); e != nil {
		return reply{err: e}
	}
	actor := in.BannedByID
	if actor == "" {
		actor = in.BannedBy.id()
	}
	if actor == "" {
		actor = in.UserID
	}
	switch {
	case in.TargetUserID == "":
		return reply{err: errRequired(op, "target_user_id")}
	case actor == "":
		return reply{err: errNoActingUser(op, "banned_by_id")}
	case actor == in.TargetUserID:
		return reply{err: errInput(op, "target_user_id", "you cannot ban yourself")}
	}
	if e := checkReason(op, in.Reason); e != nil {
		return reply{err: e}
	}
	if e := checkTimeout(op, in.Timeout); e != nil {
		return reply{err: e}
	}
	switch in.DeleteMessages {
	case "", "soft", "pruning", "hard":
	default:
		return reply{err: errInput(op, "delete_messages", "delete_messages must be one of soft, pruning or hard")}
	}
	cid, e := channelOf(op, in.ChannelCID, in.Type, in.ID)
	if e != nil {
		return reply{err: e}
	}
	if e := s.user(op, in.TargetUserID, c.now); e != nil {
		return reply{err: e}
	}
	b := Ban{
		UserID: in.TargetUserID, BannedByID: actor, ChannelCID: cid, Reason: in.Reason,
		Shadow: in.Shadow, IPBan: in.IPBan, DeleteMessages: in.DeleteMessages,
		BanFromFutureChannels: in.BanFromFutureChannels, Expires: expiry(c.now, in.Timeout), CreatedAt: c.now,
	}
	s.st.bans = slices.DeleteFunc(s.st.bans, func(x Ban) bool { return x.UserID == b.UserID && x.ChannelCID == b.ChannelCID })
	s.st.bans = append(s.st.bans, b)
	if in.DeleteMessages != "" {
		for _, id := range s.st.order {
			m := s.st.messages[id]
			if m.UserID == b.UserID && (cid == "" || m.CID == cid) && !m.HardDeleted {
				m.Deleted, m.DeletedBy, m.DeletedAt = true, actor, c.now
				m.HardDeleted = in.DeleteMessages != "soft"
			}
		}
	}
	return ok(nil)
}

// unban handles DELETE /moderation/ban (parameters in the query). Lifting
// a ban that is not there succeeds.
func (s *Server) unban(c call) reply {
	const op = "UnbanUser"
	q := c.r.URL.Query()
	if e := knownQuery(op, q, "target_user_id", "channel_cid", "type", "id", "created_by", "reason"); e != nil {
		return reply{err: e}
	}
	target := q.Get("target_user_id")
	if target == "" {
		return reply{err: errRequired(op, "target_user_id")}
	}
	if e := checkReason(op, q.Get("reason")); e != nil {
		return reply{err: e}
	}
	cid, e := channelOf(op, q.Get("channel_cid"), q.Get("type"), q.Get("id"))
	if e != nil {
		return reply{err: e}
	}
	s.st.bans = slices.DeleteFunc(s.st.bans, func(b Ban) bool { return b.UserID == target && b.ChannelCID == cid })
	return ok(nil)
}

type muteIn struct {
	TargetIDs []string  `json:"target_ids"`
	TargetID  string    `json:"target_id"` // the legacy single-target form
	UserID    string    `json:"user_id"`
	User      *idObject `json:"user"`
	Timeout   *int      `json:"timeout"`
}

func (in *muteIn) validate(op string) *apiError {
	if in.TargetID != "" {
		in.TargetIDs = append(in.TargetIDs, in.TargetID)
	}
	if in.UserID == "" {
		in.UserID = in.User.id()
	}
	switch {
	case len(in.TargetIDs) == 0:
		return errRequired(op, "target_ids")
	case len(in.TargetIDs) > maxMuteTargets:
		return errInput(op, "target_ids", fmt.Sprintf("target_ids must contain at most %d users", maxMuteTargets))
	case in.UserID == "":
		return errNoActingUser(op, "user_id")
	case slices.Contains(in.TargetIDs, ""):
		return errInput(op, "target_ids", "target_ids must not contain empty IDs")
	case slices.Contains(in.TargetIDs, in.UserID):
		return errInput(op, "target_ids", "you cannot mute yourself")
	}
	return checkTimeout(op, in.Timeout)
}

func muteJSON(m Mute) map[string]any {
	out := map[string]any{
		"user": map[string]any{"id": m.UserID}, "target": map[string]any{"id": m.TargetID},
		"created_at": m.CreatedAt, "updated_at": m.CreatedAt,
	}
	if !m.Expires.IsZero() {
		out["expires"] = m.Expires
	}
	return out
}

// mute handles POST /moderation/mute. A repeated mute replaces the earlier
// one, as Stream's own mock server notes the backend does.
func (s *Server) mute(c call) reply {
	const op = "MuteUser"
	var in muteIn
	if e := decode(op, c.body, &in); e != nil {
		return reply{err: e}
	}
	if e := in.validate(op); e != nil {
		return reply{err: e}
	}
	for _, id := range in.TargetIDs {
		if e := s.user(op, id, c.now); e != nil {
			return reply{err: e}
		}
	}
	var created []any
	for _, id := range in.TargetIDs {
		m := Mute{UserID: in.UserID, TargetID: id, Expires: expiry(c.now, in.Timeout), CreatedAt: c.now}
		s.st.mutes = slices.DeleteFunc(s.st.mutes, func(x Mute) bool { return x.UserID == m.UserID && x.TargetID == id })
		s.st.mutes = append(s.st.mutes, m)
		created = append(created, muteJSON(m))
	}
	var own []any
	for _, m := range s.st.mutes {
		if m.UserID == in.UserID {
			own = append(own, muteJSON(m))
		}
	}
	body := map[string]any{"mutes": created, "own_user": map[string]any{"id": in.UserID, "mutes": own}}
	if len(created) == 1 {
		body["mute"] = created[0]
	}
	return ok(body)
}

// unmute handles POST /moderation/unmute. Lifting a mute that is not there
// succeeds.
func (s *Server) unmute(c call) reply {
	const op = "UnmuteUser"
	var in muteIn
	if e := decode(op, c.body, &in); e != nil {
		return reply{err: e}
	}
	if e := in.validate(op); e != nil {
		return reply{err: e}
	}
	s.st.mutes = slices.DeleteFunc(s.st.mutes, func(m Mute) bool {
		return m.UserID == in.UserID && slices.Contains(in.TargetIDs, m.TargetID)
	})
	return ok(nil)
}

type flagIn struct {
	TargetMessageID string         `json:"target_message_id"`
	TargetUserID    string         `json:"target_user_id"`
	UserID          string         `json:"user_id"`
	User            *idObject      `json:"user"`
	Reason          string         `json:"reason"`
	Custom          map[string]any `json:"custom"`
}

func (in *flagIn) validate(op string) *apiError {
	if in.UserID == "" {
		in.UserID = in.User.id()
	}
	switch {
	case in.UserID == "":
		return errNoActingUser(op, "user_id")
	case in.TargetMessageID == "" && in.TargetUserID == "":
		return errInput(op, "target_message_id", "either target_message_id or target_user_id must be provided")
	case in.TargetMessageID != "" && in.TargetUserID != "":
		return errInput(op, "target_user_id", "only one of target_message_id and target_user_id may be provided")
	}
	return checkReason(op, in.Reason)
}

// flag handles POST /moderation/flag. A second flag of the same target by
// the same user is refused with 400 code 4, as Stream does (GetStream's
// Flutter SDK treats that code on a flag as "already flagged"); the exact
// text is not public, so the fake's says "already flagged".
func (s *Server) flag(c call) reply {
	const op = "Flag"
	var in flagIn
	if e := decode(op, c.body, &in); e != nil {
		return reply{err: e}
	}
	if e := in.validate(op); e != nil {
		return reply{err: e}
	}
	kind, target := "message", in.TargetMessageID
	if in.TargetMessageID != "" {
		if _, e := s.message(op, in.TargetMessageID, c.now); e != nil {
			return reply{err: e}
		}
	} else {
		kind, target = "user", in.TargetUserID
		if e := s.user(op, in.TargetUserID, c.now); e != nil {
			return reply{err: e}
		}
	}
	for _, f := range s.st.flags {
		if f.UserID == in.UserID && f.TargetMessageID == in.TargetMessageID && f.TargetUserID == in.TargetUserID {
			return reply{err: errInput(op, "", fmt.Sprintf("%s %s was already flagged by user %s", kind, target, in.UserID))}
		}
	}
	f := Flag{UserID: in.UserID, TargetMessageID: in.TargetMessageID, TargetUserID: in.TargetUserID,
		Reason: in.Reason, Custom: maps.Clone(in.Custom), CreatedAt: c.now}
	s.st.flags = append(s.st.flags, f)
	out := map[string]any{"user": map[string]any{"id": f.UserID}, "created_at": f.CreatedAt,
		"updated_at": f.CreatedAt, "created_by_automod": false, "reason": f.Reason}
	if f.TargetMessageID != "" {
		out["target_message_id"] = f.TargetMessageID
	} else {
		out["target_user"] = map[string]any{"id": f.TargetUserID}
	}
	return ok(map[string]any{"flag": out})
}

// unflag handles POST /moderation/unflag. The current spec has no user_id,
// but every SDK sends it and a server-side call needs an acting user, so
// the fake requires it. Withdrawing a flag that is not there succeeds.
func (s *Server) unflag(c call) reply {
	const op = "Unflag"
	var in flagIn
	if e := decode(op, c.body, &in); e != nil {
		return reply{err: e}
	}
	if e := in.validate(op); e != nil {
		return reply{err: e}
	}
	s.st.flags = slices.DeleteFunc(s.st.flags, func(f Flag) bool {
		return f.UserID == in.UserID && f.TargetMessageID == in.TargetMessageID && f.TargetUserID == in.TargetUserID
	})
	return ok(nil)
}

func messageJSON(m *Message) map[string]any {
	out := map[string]any{
		"id": m.ID, "text": m.Text, "type": m.Type, "cid": m.CID,
		"user": map[string]any{"id": m.UserID}, "created_at": m.CreatedAt,
		"show_in_channel": m.ShowInChannel, "silent": m.Silent,
	}
	if m.ParentID != "" {
		out["parent_id"] = m.ParentID
	}
	if len(m.MentionedUserIDs) > 0 {
		users := make([]any, len(m.MentionedUserIDs))
		for i, id := range m.MentionedUserIDs {
			users[i] = map[string]any{"id": id}
		}
		out["mentioned_users"] = users
	}
	if m.Deleted {
		out["type"] = "deleted"
		out["deleted_at"] = m.DeletedAt
	}
	return out
}

// deleteMessage handles DELETE /messages/{id}?hard=true&deleted_by=…;
// deleted_by is optional server-side. Deleting a soft-deleted message again
// succeeds; a hard-deleted message no longer exists (404 code 16).
func (s *Server) deleteMessage(c call) reply {
	const op = "DeleteMessage"
	id := c.r.PathValue("id")
	q := c.r.URL.Query()
	hard := q.Get("hard") == "true" || q.Get("hard") == "1"
	m, e := s.message(op, id, c.now)
	if e != nil {
		return reply{err: e}
	}
	if !m.Deleted {
		m.DeletedAt = c.now
	}
	m.Deleted, m.HardDeleted, m.DeletedBy = true, hard, q.Get("deleted_by")
	return ok(map[string]any{"message": messageJSON(m)})
}

// undeleteMessage handles POST /messages/{id}/undelete. undeleted_by is
// required. Undeleting a message that is not deleted succeeds; a
// hard-deleted message cannot come back (404 code 16).
func (s *Server) undeleteMessage(c call) reply {
	const op = "UndeleteMessage"
	var in struct {
		UndeletedBy string `json:"undeleted_by"`
	}
	if e := decode(op, c.body, &in); e != nil {
		return reply{err: e}
	}
	if in.UndeletedBy == "" {
		return reply{err: errRequired(op, "undeleted_by")}
	}
	m, e := s.message(op, c.r.PathValue("id"), c.now)
	if e != nil {
		return reply{err: e}
	}
	m.Deleted, m.DeletedBy, m.DeletedAt = false, "", time.Time{}
	return ok(map[string]any{"message": messageJSON(m)})
}

// sendMessage handles POST /channels/{type}/{id}/message. The sender must
// exist, even without StrictTargets: Stream refuses messages from unknown
// users (404 code 16 here; the real code is not documented). A
// client-chosen message ID that is taken is refused with "already exists".
func (s *Server) sendMessage(c call) reply {
	const op = "SendMessage"
	var in struct {
		Message *struct {
			ID             string    `json:"id"`
			Text           string    `json:"text"`
			Type           string    `json:"type"`
			UserID         string    `json:"user_id"`
			User           *idObject `json:"user"`
			ParentID       string    `json:"parent_id"`
			ShowInChannel  bool      `json:"show_in_channel"`
			Silent         bool      `json:"silent"`
			MentionedUsers []string  `json:"mentioned_users"`
			Attachments    []any     `json:"attachments"`
		} `json:"message"`
		SkipPush bool `json:"skip_push"`
	}
	if e := decode(op, c.body, &in); e != nil {
		return reply{err: e}
	}
	msg := in.Message
	if msg == nil {
		return reply{err: errRequired(op, "message")}
	}
	if msg.UserID == "" {
		msg.UserID = msg.User.id()
	}
	switch {
	case msg.UserID == "":
		return reply{err: errNoActingUser(op, "message.user_id")}
	case strings.TrimSpace(msg.Text) == "" && len(msg.Attachments) == 0:
		return reply{err: errInput(op, "message.text", "message.text is a required field when there are no attachments")}
	case utf8.RuneCountInString(msg.Text) > maxText:
		return reply{err: errInput(op, "message.text", fmt.Sprintf("message.text must be at most %d characters", maxText))}
	}
	switch msg.Type {
	case "", "regular", "system":
	default:
		return reply{err: errInput(op, "message.type", "message.type must be regular or system")}
	}
	if _, known := s.st.users[msg.UserID]; !known {
		return reply{err: errNotFound(op, fmt.Sprintf("user %s does not exist; create it with POST /users first", msg.UserID))}
	}
	if msg.ID != "" {
		if _, taken := s.st.messages[msg.ID]; taken {
			return reply{err: errInput(op, "message.id", fmt.Sprintf("a message with ID %s already exists", msg.ID))}
		}
	} else {
		s.st.seq++
		msg.ID = fmt.Sprintf("streamtest-msg-%d", s.st.seq)
	}
	if msg.ParentID != "" {
		if _, e := s.message(op, msg.ParentID, c.now); e != nil {
			return reply{err: e}
		}
	}
	typ := msg.Type
	if typ == "" {
		typ = "regular"
	}
	if msg.ParentID != "" && typ == "regular" {
		typ = "reply"
	}
	m := s.st.addMessage(Message{
		ID: msg.ID, CID: c.r.PathValue("type") + ":" + c.r.PathValue("id"), Text: msg.Text, Type: typ,
		UserID: msg.UserID, ParentID: msg.ParentID, ShowInChannel: msg.ShowInChannel, Silent: msg.Silent,
		SkipPush: in.SkipPush, MentionedUserIDs: slices.Clone(msg.MentionedUsers), CreatedAt: c.now,
	})
	return ok(map[string]any{"message": messageJSON(m)})
}

func userJSON(u User) map[string]any {
	out := make(map[string]any, len(u.Custom)+5)
	maps.Copy(out, u.Custom)
	out["id"], out["role"], out["created_at"], out["updated_at"] = u.ID, u.Role, u.CreatedAt, u.UpdatedAt
	if u.Name != "" {
		out["name"] = u.Name
	}
	return out
}

// upsertUsers handles POST /users: {"users": {"<id>": {id, …}}}. Each user
// is replaced whole; a missing role becomes "user".
func (s *Server) upsertUsers(c call) reply {
	const op = "UpdateUsers"
	var in struct {
		Users map[string]map[string]any `json:"users"`
	}
	if e := decode(op, c.body, &in); e != nil {
		return reply{err: e}
	}
	if len(in.Users) == 0 {
		return reply{err: errRequired(op, "users")}
	}
	for key, fields := range in.Users {
		id, _ := fields["id"].(string)
		switch {
		case id == "":
			return reply{err: errInput(op, "users."+key+".id", "users."+key+".id is a required field")}
		case id != key:
			return reply{err: errInput(op, "users."+key+".id", fmt.Sprintf("user ID %s does not match its key %s", id, key))}
		}
	}
	out := map[string]any{}
	for _, key := range slices.Sorted(maps.Keys(in.Users)) {
		fields := in.Users[key]
		u := User{ID: key, Role: "user", CreatedAt: c.now, UpdatedAt: c.now, Custom: map[string]any{}}
		if old, ok := s.st.users[key]; ok {
			u.CreatedAt = old.CreatedAt
		}
		for k, v := range fields {
			switch k {
			case "id", "created_at", "updated_at":
			case "name":
				u.Name, _ = v.(string)
			case "role":
				if r, _ := v.(string); r != "" {
					u.Role = r
				}
			default:
				u.Custom[k] = v
			}
		}
		s.st.users[key] = u
		out[key] = userJSON(u)
	}
	return ok(map[string]any{"users": out})
}

// queryBannedUsers handles GET /query_banned_users?payload=<JSON>. The fake
// filters on user_id, channel_cid and banned_by_id (a value, {"$eq": v} or
// {"$in": [...]}); other filter fields are refused so that a test relying on
// them learns the fake's limit. Expired bans are left out.
func (s *Server) queryBannedUsers(c call) reply {
	const op = "QueryBannedUsers"
	raw := c.r.URL.Query().Get("payload")
	if raw == "" {
		return reply{err: errRequired(op, "payload")}
	}
	var in struct {
		Filter map[string]any `json:"filter_conditions"`
		Limit  int            `json:"limit"`
		Offset int            `json:"offset"`
	}
	if e := decode(op, []byte(raw), &in); e != nil {
		return reply{err: e}
	}
	if len(in.Filter) == 0 {
		return reply{err: errRequired(op, "filter_conditions")}
	}
	match := map[string]func(Ban) string{
		"user_id":      func(b Ban) string { return b.UserID },
		"channel_cid":  func(b Ban) string { return b.ChannelCID },
		"banned_by_id": func(b Ban) string { return b.BannedByID },
	}
	type cond struct {
		field  func(Ban) string
		values []string
	}
	var conds []cond
	for k, v := range in.Filter {
		f, ok := match[k]
		if !ok {
			return reply{err: errInput(op, "filter_conditions", "the fake cannot filter bans on "+k)}
		}
		values, ok := filterValues(v)
		if !ok {
			return reply{err: errInput(op, "filter_conditions", "unsupported filter on "+k)}
		}
		conds = append(conds, cond{f, values})
	}
	var bans []any
	for _, b := range slices.Backward(s.st.bans) { // newest first, as Stream sorts by default
		if !b.Active(c.now) {
			continue
		}
		okAll := true
		for _, cd := range conds {
			okAll = okAll && slices.Contains(cd.values, cd.field(b))
		}
		if !okAll {
			continue
		}
		out := map[string]any{"user": map[string]any{"id": b.UserID}, "banned_by": map[string]any{"id": b.BannedByID},
			"reason": b.Reason, "shadow": b.Shadow, "created_at": b.CreatedAt}
		if b.ChannelCID != "" {
			out["channel"] = map[string]any{"cid": b.ChannelCID}
		}
		if !b.Expires.IsZero() {
			out["expires"] = b.Expires
		}
		bans = append(bans, out)
	}
	if in.Offset > 0 {
		bans = bans[min(in.Offset, len(bans)):]
	}
	if in.Limit > 0 && len(bans) > in.Limit {
		bans = bans[:in.Limit]
	}
	if bans == nil {
		bans = []any{}
	}
	return ok(map[string]any{"bans": bans})
}

func filterValues(v any) ([]string, bool) {
	switch x := v.(type) {
	case string:
		return []string{x}, true
	case map[string]any:
		if eq, ok := x["$eq"].(string); ok && len(x) == 1 {
			return []string{eq}, true
		}
		if in, ok := x["$in"].([]any); ok && len(x) == 1 {
			out := make([]string, 0, len(in))
			for _, e := range in {
				s, ok := e.(string)
				if !ok {
					return nil, false
				}
				out = append(out, s)
			}
			return out, true
		}
	}
	return nil, false
}
