package policy

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what an expression sees. They bound the work any rule can do
// on one event, whatever the sender puts in it: text past MaxTextRunes is
// not evaluated (text.truncated says so), and the lists are cut at these
// lengths (the *_count fields keep the real counts).
const (
	// MaxTextRunes is Stream's limit on a message's text, in characters:
	// the rules judge a message whole, up to it.
	MaxTextRunes = 5000
	// maxTextBytes bounds the evaluated text in bytes (UTF-8 takes at most
	// four per character), for the cost estimate.
	maxTextBytes    = 4 * MaxTextRunes
	maxLinks        = 100
	maxMentions     = 100
	maxAttachments  = 50
	maxTeams        = 50
	unknownDuration = time.Duration(math.MaxInt64)
)

// Env is the environment a rule's expression is type-checked against and
// evaluated on. The expr tags are the names staff write: `user.account_age`,
// `text.words`, `message.mention_count`. Every derived value is computed
// once per event, before any rule runs, and only when some rule reads it.
type Env struct {
	Event   EventEnv   `expr:"event"`
	Message MessageEnv `expr:"message"`
	User    UserEnv    `expr:"user"`
	Channel ChannelEnv `expr:"channel"`
	Text    TextEnv    `expr:"text"`
	// Counts and Strikes are the history functions (history.go); their
	// values come from the History passed to EvaluateWith.
	Counts  CountsEnv  `expr:"counts"`
	Strikes StrikesEnv `expr:"strikes"`

	history History
	// partial: history may lack values the rules read (Deferred.
	// DecideKnown); missed says one was read.
	partial, missed bool
}

// EventEnv describes the event itself.
type EventEnv struct {
	Type string `expr:"type"`
	// CreatedAt is the event's time, and the rules' "now": policy has no
	// clock, so ages are measured from it (falling back to the message's
	// time when the event has none).
	CreatedAt  time.Time `expr:"created_at"`
	Team       string    `expr:"team"`
	ActorID    string    `expr:"actor_id"`    // who caused it: the flagger, muter, banner, or sender
	Source     string    `expr:"source"`      // request_info.type: "client", "server" or ""
	Reason     string    `expr:"reason"`      // of a ban or flag event
	TotalFlags int       `expr:"total_flags"` // message.flagged and user.flagged
}

// MessageEnv is the message an event is about (empty for events without
// one).
type MessageEnv struct {
	ID              string `expr:"id"`
	Type            string `expr:"type"`
	Text            string `expr:"text"` // the first MaxTextRunes characters of the text
	ParentID        string `expr:"parent_id"`
	IsReply         bool   `expr:"is_reply"` // posted in a thread
	QuotedMessageID string `expr:"quoted_message_id"`
	Command         string `expr:"command"`
	ShowInChannel   bool   `expr:"show_in_channel"`
	Silent          bool   `expr:"silent"`
	Shadowed        bool   `expr:"shadowed"`
	Pinned          bool   `expr:"pinned"`
	// Mentions holds the ids of the mentioned users (at most 100);
	// MentionCount counts them all.
	Mentions        []string        `expr:"mentions"`
	MentionCount    int             `expr:"mention_count"`
	Attachments     []AttachmentEnv `expr:"attachments"` // at most 50
	AttachmentCount int             `expr:"attachment_count"`
	OldText         string          `expr:"old_text"` // message.updated: the text before the edit
	CreatedAt       time.Time       `expr:"created_at"`
	UpdatedAt       time.Time       `expr:"updated_at"`
	Custom          map[string]any  `expr:"custom"`
}

// AttachmentEnv is one attachment of a message.
type AttachmentEnv struct {
	Type        string `expr:"type"`
	Title       string `expr:"title"`
	TitleLink   string `expr:"title_link"`
	Text        string `expr:"text"`
	ImageURL    string `expr:"image_url"`
	AssetURL    string `expr:"asset_url"`
	OGScrapeURL string `expr:"og_scrape_url"`
	MimeType    string `expr:"mime_type"`
}

// UserEnv is the user the event is about: the author of the message for
// message events, the target of a flag or mute, the banned user.
type UserEnv struct {
	ID        string    `expr:"id"`
	Role      string    `expr:"role"`
	Name      string    `expr:"name"`
	Language  string    `expr:"language"`
	Teams     []string  `expr:"teams"` // at most 50
	Banned    bool      `expr:"banned"`
	Online    bool      `expr:"online"`
	CreatedAt time.Time `expr:"created_at"`
	// AccountAge is event.created_at − user.created_at. When either time
	// is unknown it is the largest duration, so that "young account" rules
	// never fire on missing data (evidence shows it as "unknown").
	AccountAge time.Duration `expr:"account_age"`
	// Young: AccountAge is under the folder's young-account age
	// (settings: young_account), so that rules and the young-account
	// counters agree on what young is.
	Young  bool           `expr:"young"`
	Custom map[string]any `expr:"custom"`
}

// ChannelEnv is the channel the event happened in.
type ChannelEnv struct {
	CID         string         `expr:"cid"`
	Type        string         `expr:"type"`
	ID          string         `expr:"id"`
	Name        string         `expr:"name"`
	MemberCount int            `expr:"member_count"`
	Frozen      bool           `expr:"frozen"`
	Custom      map[string]any `expr:"custom"`
}

// TextEnv holds the values derived from the message text, computed once
// per event so that fifty rules reading text.words tokenise it once.
type TextEnv struct {
	Lower      string   `expr:"lower"`      // lower-cased text
	Normalized string   `expr:"normalized"` // see Normalize: look-alikes, leetspeak, diacritics, zero-width folded
	Words      []string `expr:"words"`      // word tokens of Normalized
	// Links are the URLs in the text and in link attachments (at most
	// 100, de-duplicated); Domains are their domains, lower-case, without
	// "www.".
	Links         []string `expr:"links"`
	Domains       []string `expr:"domains"`
	CapsRatio     float64  `expr:"caps_ratio"`     // upper-case letters / letters (see CapsRatio)
	LongestRepeat int      `expr:"longest_repeat"` // longest run of one repeated character
	Length        int      `expr:"length"`         // characters in the whole text, not only the evaluated part
	Truncated     bool     `expr:"truncated"`      // the text was longer than MaxTextRunes characters
}

// needs records which derived values the rules of a set read, so that an
// event only pays for those.
type needs uint16

const (
	needLower needs = 1 << iota
	needNormalized
	needWords
	needLinks
	needCaps
	needRepeat
	needLength

	needAll = needLower | needNormalized | needWords | needLinks | needCaps | needRepeat | needLength
)

// textFieldNeeds returns what computing the text.* field named f takes.
func textFieldNeeds(f string) needs {
	switch f {
	case "lower":
		return needLower
	case "normalized":
		return needNormalized
	case "words":
		return needNormalized | needWords
	case "links", "domains":
		return needLinks
	case "caps_ratio":
		return needCaps
	case "longest_repeat":
		return needRepeat
	case "length":
		return needLength
	}
	return 0
}

// newEnv builds the environment of ev, computing only the derived values
// in nd, with young the young-account age. It reads ev and never
// modifies it.
func newEnv(ev *Event, nd needs, young time.Duration) *Env {
	env := &Env{}
	env.fill(ev, nd, young)
	return env
}

// reset clears env for its pool, keeping the lists' memory but no
// reference to the event it described.
func (env *Env) reset() {
	mentions, attachments := env.Message.Mentions, env.Message.Attachments
	counts, strikes := env.Counts, env.Strikes
	clear(mentions)
	clear(attachments)
	*env = Env{}
	env.Message.Mentions, env.Message.Attachments = mentions[:0], attachments[:0]
	env.Counts, env.Strikes = counts, strikes
}

// fill sets env to the environment of ev. It reuses env's lists, so a
// pooled Env costs no allocation for them; nothing may keep a reference
// into an Env after it is returned to its pool.
func (env *Env) fill(ev *Event, nd needs, young time.Duration) {
	mentions, attachments := env.Message.Mentions[:0], env.Message.Attachments[:0]
	counts, strikes := env.Counts, env.Strikes
	*env = Env{Counts: counts, Strikes: strikes}
	env.bindHistory()
	env.Event = EventEnv{
		Type:       ev.Type,
		CreatedAt:  ev.CreatedAt.Time,
		Team:       ev.Team,
		ActorID:    ev.ActorID(),
		Reason:     ev.Reason,
		TotalFlags: ev.TotalFlags,
	}
	if ev.RequestInfo != nil {
		env.Event.Source = ev.RequestInfo.Type
	}
	var fullText string
	if m := ev.Message; m != nil {
		fullText = m.Text
		env.fillMessage(m, mentions, attachments)
	}
	if ev.MessageUpdate != nil {
		env.Message.OldText = capText(ev.MessageUpdate.OldText)
	}
	env.fillUser(ev, young)
	env.fillChannel(ev)
	fillText(&env.Text, env.Message.Text, fullText, env.Message.Attachments, nd)
}

// fillMessage sets env.Message from m, appending the mentions and
// attachments to the pooled lists given.
func (env *Env) fillMessage(m *Message, mentions []string, attachments []AttachmentEnv) {
	env.Message = MessageEnv{
		ID:              m.ID,
		Type:            m.Type,
		Text:            capText(m.Text),
		ParentID:        m.ParentID,
		IsReply:         m.ParentID != "",
		QuotedMessageID: m.QuotedMessageID,
		Command:         m.Command,
		ShowInChannel:   m.ShowInChannel,
		Silent:          m.Silent,
		Shadowed:        m.Shadowed,
		Pinned:          m.Pinned,
		MentionCount:    len(m.MentionedUsers),
		AttachmentCount: len(m.Attachments),
		CreatedAt:       m.CreatedAt.Time,
		UpdatedAt:       m.UpdatedAt.Time,
		Custom:          m.Custom,
	}
	if n := min(len(m.MentionedUsers), maxMentions); n > 0 {
		for _, u := range m.MentionedUsers[:n] {
			mentions = append(mentions, u.ID)
		}
		env.Message.Mentions = mentions
	}
	if n := min(len(m.Attachments), maxAttachments); n > 0 {
		for _, a := range m.Attachments[:n] {
			attachments = append(attachments, AttachmentEnv{
				Type:        a.Type,
				Title:       a.Title,
				TitleLink:   a.TitleLink,
				Text:        a.Text,
				ImageURL:    a.ImageURL,
				AssetURL:    a.AssetURL,
				OGScrapeURL: a.OGScrapeURL,
				MimeType:    a.MimeType,
			})
		}
		env.Message.Attachments = attachments
	}
}

// fillUser sets env.User to the user ev is about (subjectUser), its age
// measured from the event's time; young is the young-account age.
func (env *Env) fillUser(ev *Event, young time.Duration) {
	u := subjectUser(ev)
	if u == nil {
		env.User.AccountAge = unknownDuration
		return
	}
	env.User = UserEnv{
		ID:         u.ID,
		Role:       u.Role,
		Name:       u.Name,
		Language:   u.Language,
		Teams:      u.Teams[:min(len(u.Teams), maxTeams)],
		Banned:     u.Banned,
		Online:     u.Online,
		CreatedAt:  u.CreatedAt.Time,
		AccountAge: accountAge(eventNow(ev), u.CreatedAt.Time),
		Custom:     u.Custom,
	}
	env.User.Young = env.User.AccountAge < young
}

// fillChannel sets env.Channel from the event's cid and channel object,
// the object's values winning where it has them.
func (env *Env) fillChannel(ev *Event) {
	env.Channel = ChannelEnv{CID: ev.ChannelCID(), Type: ev.ChannelType, ID: ev.ChannelID, MemberCount: ev.ChannelMemberCount}
	if c := ev.Channel; c != nil {
		env.Channel.Name = c.Name
		env.Channel.Frozen = c.Frozen
		env.Channel.Custom = c.Custom
		if c.Type != "" {
			env.Channel.Type = c.Type
		}
		if c.ID != "" {
			env.Channel.ID = c.ID
		}
		if c.MemberCount != 0 {
			env.Channel.MemberCount = c.MemberCount
		}
	}
	if env.Channel.Type == "" && env.Channel.ID == "" {
		env.Channel.Type, env.Channel.ID, _ = strings.Cut(env.Channel.CID, ":")
	}
}

// fillText computes the derived text values in nd from the evaluated
// (capped) text.
func fillText(t *TextEnv, text, fullText string, attachments []AttachmentEnv, nd needs) {
	t.Truncated = len(fullText) > len(text)
	if nd&needLength != 0 {
		t.Length = utf8.RuneCountInString(fullText)
	}
	if nd&needLower != 0 {
		t.Lower = strings.ToLower(text)
	}
	if nd&needNormalized != 0 {
		t.Normalized = Normalize(text)
	}
	if nd&needWords != 0 {
		t.Words = Words(t.Normalized)
	}
	if nd&needLinks != 0 {
		t.Links, t.Domains = collectLinks(text, attachments)
	}
	if nd&needCaps != 0 {
		t.CapsRatio = CapsRatio(text)
	}
	if nd&needRepeat != 0 {
		t.LongestRepeat = LongestRepeat(text)
	}
}

// collectLinks returns the URLs of the text and of link attachments (a
// preview's title_link and og_scrape_url), de-duplicated and capped, with
// their domains.
func collectLinks(text string, attachments []AttachmentEnv) (urls, domains []string) {
	seen := make(map[string]bool)
	add := func(links []Link) {
		for _, l := range links {
			if len(urls) == maxLinks {
				return
			}
			if seen[l.URL] {
				continue
			}
			seen[l.URL] = true
			urls = append(urls, l.URL)
			domains = append(domains, l.Domain)
		}
	}
	add(ExtractLinks(text))
	for _, a := range attachments {
		if a.TitleLink != "" {
			add(ExtractLinks(capText(a.TitleLink)))
		}
		if a.OGScrapeURL != "" && a.OGScrapeURL != a.TitleLink {
			add(ExtractLinks(capText(a.OGScrapeURL)))
		}
	}
	return urls, domains
}

// subjectUser returns the user the event is about, as Event.SubjectUserID
// picks it: the message's author for message events (the top-level user
// when the message carries none), else the target user, else the user.
func subjectUser(ev *Event) *User {
	if strings.HasPrefix(ev.Type, "message.") || ev.Type == "reaction.new" || ev.Type == "" {
		if ev.Message != nil && ev.Message.User != nil && ev.Message.User.ID != "" {
			return ev.Message.User
		}
		if ev.User != nil {
			return ev.User
		}
	}
	if ev.TargetUser != nil && ev.TargetUser.ID != "" {
		return ev.TargetUser
	}
	return ev.User
}

// accountAge is now − created, or unknownDuration when either is unknown.
// A created_at after now (clock skew between Stream's services) counts as
// a brand-new account.
func accountAge(now, created time.Time) time.Duration {
	if now.IsZero() || created.IsZero() {
		return unknownDuration
	}
	return max(now.Sub(created), 0)
}

// capText returns the first MaxTextRunes characters of s.
func capText(s string) string {
	if len(s) <= MaxTextRunes {
		return s // fewer bytes than the limit in characters
	}
	n := 0
	for i := range s {
		if n == MaxTextRunes {
			return s[:i]
		}
		n++
	}
	return s
}
