package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// A rule reads the history of the user and the channel through two
// namespaces of functions, each taking its window as a literal:
//
//	counts.user_messages("1m") > 10
//	strikes.of_type("mute", "7d") >= 1
//
// Policy never queries anything: the rule set says at load which values
// it reads (RuleSet.History), the caller computes them (in the
// transaction that records the event) and hands them to EvaluateWith.
// Because every window and argument is a literal, a misspelt counter, a
// window out of range, an unknown action type or a rule id that is not in
// the set is a load error with its file:line, not a rule that reads 0.

// Names of the history functions, as rules call them.
const (
	// CountUserMessages: messages by the user in the window, every channel.
	CountUserMessages = "counts.user_messages"
	// CountUserChannelMessages: messages by the user in this channel.
	CountUserChannelMessages = "counts.user_channel_messages"
	// CountUserLinks: links in the user's messages.
	CountUserLinks = "counts.user_links"
	// CountUserDuplicates: the user's messages with the same text as this
	// one, once case, look-alikes, digits, punctuation and spacing are
	// folded away (copy-paste spam across channels), this one included.
	CountUserDuplicates = "counts.user_duplicates"
	// CountUserChannels: distinct channels the user posted in.
	CountUserChannels = "counts.user_channels"
	// CountUserMentions: users mentioned in the user's messages (Stream's
	// mentioned_users), summed: mention spam.
	CountUserMentions = "counts.user_mentions"
	// CountChannelYoungMessages: messages in this channel from young
	// accounts (RuleSet.YoungAccount): raids.
	CountChannelYoungMessages = "counts.channel_young_messages"
	// CountChannelUsers: distinct users who posted in this channel: raids
	// are many accounts, not many messages.
	CountChannelUsers = "counts.channel_users"
	// StrikesCount: the user's earlier offences that were acted on: the
	// messages (not events: an edit is the same message) other than this
	// one.
	StrikesCount = "strikes.count"
	// StrikesOfType: those that included an action of one type.
	StrikesOfType = "strikes.of_type"
	// StrikesByRule: those that one rule acted on.
	StrikesByRule = "strikes.by_rule"
)

// Bounds of a history window.
const (
	MinHistoryWindow = time.Second
	MaxHistoryWindow = 30 * 24 * time.Hour
)

// historyFunc describes one history function: its argument before the
// window, if any.
type historyFunc struct {
	name string
	arg  string // "": the window is the only argument; else what the first argument is
}

func historyFuncs() []historyFunc {
	return []historyFunc{
		{name: CountUserMessages}, {name: CountUserChannelMessages}, {name: CountUserLinks},
		{name: CountUserDuplicates}, {name: CountUserChannels}, {name: CountUserMentions},
		{name: CountChannelYoungMessages}, {name: CountChannelUsers},
		{name: StrikesCount}, {name: StrikesOfType, arg: "action type"}, {name: StrikesByRule, arg: "rule id"},
	}
}

// strikeTypes are the action types a strike can be of: those that are
// recorded as actions (before-send answers are not).
func strikeTypes() []string {
	return []string{string(ActionFlag), string(ActionMute), string(ActionBan), string(ActionDelete), string(ActionWarn)}
}

// HistoryKey names one history value a rule reads: a function, its
// argument (the action type or rule id of strikes.of_type and
// strikes.by_rule, else "") and its window.
type HistoryKey struct {
	Name   string
	Arg    string
	Window time.Duration
}

// IsStrike reports whether the value comes from the user's past actions
// rather than from counted messages.
func (k HistoryKey) IsStrike() bool { return strings.HasPrefix(k.Name, "strikes.") }

// IsChannel reports whether the value counts a channel's messages rather
// than one user's.
func (k HistoryKey) IsChannel() bool {
	return k.Name == CountChannelYoungMessages || k.Name == CountChannelUsers
}

// String writes the key as a rule calls it: counts.user_messages("1m").
func (k HistoryKey) String() string {
	w := strconv.Quote(formatWindow(k.Window))
	if k.Arg != "" {
		return k.Name + "(" + strconv.Quote(k.Arg) + ", " + w + ")"
	}
	return k.Name + "(" + w + ")"
}

// JoinHistoryKeys writes keys as rules call them, comma-separated, for
// messages that say which values a rule set reads.
func JoinHistoryKeys(keys []HistoryKey) string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.String()
	}
	return strings.Join(names, ", ")
}

// FormatDuration writes d as rule files write durations, with days:
// 90s, 10m, 1h30m, 7d.
func FormatDuration(d time.Duration) string { return formatWindow(d) }

// formatWindow writes a window in the rule files' syntax, with days.
func formatWindow(d time.Duration) string {
	day := 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.Itoa(int(d/day)) + "d"
	}
	s := d.String() // 1m30s, 1h0m0s
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func compareHistoryKeys(a, b HistoryKey) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arg, b.Arg), cmp.Compare(a.Window, b.Window))
}

// History holds the history values of one event, keyed as RuleSet.History
// lists them. A key that is missing reads 0.
type History map[HistoryKey]int

// isHistoryRoot reports whether name is the root of a history function.
func isHistoryRoot(name string) bool { return name == "counts" || name == "strikes" }

// historyKeyOf checks a call of a history function and returns its key.
// ok is false when n is not such a call at all.
func historyKeyOf(n *ast.CallNode) (key HistoryKey, ok bool, err error) {
	m, isMember := n.Callee.(*ast.MemberNode)
	if !isMember {
		return key, false, nil
	}
	root, isIdent := m.Node.(*ast.IdentifierNode)
	prop, isStr := m.Property.(*ast.StringNode)
	if !isIdent || !isStr || !isHistoryRoot(root.Value) {
		return key, false, nil
	}
	name := root.Value + "." + prop.Value
	i := slices.IndexFunc(historyFuncs(), func(f historyFunc) bool { return f.name == name })
	if i < 0 {
		var known []string
		for _, f := range historyFuncs() {
			if strings.HasPrefix(f.name, root.Value+".") {
				known = append(known, f.name)
			}
		}
		return key, true, fmt.Errorf("unknown function %s%s (known: %s)", name, suggest(name, known), strings.Join(known, ", "))
	}
	f := historyFuncs()[i]
	want := 1
	example := name + `("1h")`
	if f.arg != "" {
		want = 2
		example = name + `("mute", "7d")`
		if name == StrikesByRule {
			example = name + `("profanity", "7d")`
		}
	}
	if len(n.Arguments) != want {
		return key, true, fmt.Errorf("%s takes %d argument(s), like %s", name, want, example)
	}
	lits := make([]string, want)
	for j, a := range n.Arguments {
		s, isLit := a.(*ast.StringNode)
		if !isLit {
			return key, true, fmt.Errorf("%s: its arguments must be string literals, like %s, so that the history it needs is known when the rules load", name, example)
		}
		lits[j] = s.Value
	}
	key.Name = name
	if f.arg != "" {
		key.Arg = lits[0]
		if name == StrikesOfType && !slices.Contains(strikeTypes(), key.Arg) {
			return key, true, fmt.Errorf("%s: unknown action type %q (strikes are of %s)", name, key.Arg, strings.Join(strikeTypes(), ", "))
		}
	}
	w, err := ParseDuration(lits[want-1])
	if err != nil {
		return key, true, fmt.Errorf("%s: window: %v", name, err)
	}
	if w < MinHistoryWindow || w > MaxHistoryWindow {
		return key, true, fmt.Errorf("%s: window %q is out of range: from 1s to 30d", name, lits[want-1])
	}
	if w%time.Second != 0 {
		return key, true, fmt.Errorf("%s: window %q: use whole seconds", name, lits[want-1])
	}
	key.Window = w
	return key, true, nil
}

// ParseHistoryKey parses a history call as rules write it
// (`counts.user_messages("1m")`), for example histories and `moderator
// eval --history`.
func ParseHistoryKey(src string) (HistoryKey, error) {
	tree, err := parser.Parse(src)
	if err != nil {
		return HistoryKey{}, fmt.Errorf("history key %q: %v", src, fromExprError(err))
	}
	call, isCall := tree.Node.(*ast.CallNode)
	if !isCall {
		return HistoryKey{}, fmt.Errorf("history key %q: want a call such as counts.user_messages(\"1m\") or strikes.count(\"7d\")", src)
	}
	key, ok, err := historyKeyOf(call)
	if err != nil {
		return HistoryKey{}, fmt.Errorf("history key %q: %v", src, err)
	}
	if !ok {
		return HistoryKey{}, fmt.Errorf("history key %q: want a call such as counts.user_messages(\"1m\") or strikes.count(\"7d\")", src)
	}
	return key, nil
}

// historyUse is a history function called by an expression, at a line of
// the expression's source.
type historyUse struct {
	key  HistoryKey
	line int
}

// CountsEnv is the counts namespace of the rule environment. Its
// functions read the History the caller supplied; each one's window is a
// literal checked at load.
type CountsEnv struct {
	UserMessages         func(window string) int `expr:"user_messages"`
	UserChannelMessages  func(window string) int `expr:"user_channel_messages"`
	UserLinks            func(window string) int `expr:"user_links"`
	UserDuplicates       func(window string) int `expr:"user_duplicates"`
	UserChannels         func(window string) int `expr:"user_channels"`
	UserMentions         func(window string) int `expr:"user_mentions"`
	ChannelYoungMessages func(window string) int `expr:"channel_young_messages"`
	ChannelUsers         func(window string) int `expr:"channel_users"`
}

// StrikesEnv is the strikes namespace: the user's earlier offences that
// were acted on (see the README's "Counters and strikes").
type StrikesEnv struct {
	Count  func(window string) int             `expr:"count"`
	OfType func(actionType, window string) int `expr:"of_type"`
	ByRule func(ruleID, window string) int     `expr:"by_rule"`
}

// bindHistory points the env's history functions at env.history. The
// closures are made once per Env (Envs are pooled), not per event.
func (env *Env) bindHistory() {
	if env.Counts.UserMessages != nil {
		return
	}
	read := func(name, arg, window string) int {
		w, err := ParseDuration(window)
		if err != nil {
			return 0 // cannot happen: windows are literals checked at load
		}
		v, ok := env.history[HistoryKey{Name: name, Arg: arg, Window: w}]
		if !ok && env.partial {
			env.missed = true
		}
		return v
	}
	env.Counts = CountsEnv{
		UserMessages:         func(w string) int { return read(CountUserMessages, "", w) },
		UserChannelMessages:  func(w string) int { return read(CountUserChannelMessages, "", w) },
		UserLinks:            func(w string) int { return read(CountUserLinks, "", w) },
		UserDuplicates:       func(w string) int { return read(CountUserDuplicates, "", w) },
		UserChannels:         func(w string) int { return read(CountUserChannels, "", w) },
		UserMentions:         func(w string) int { return read(CountUserMentions, "", w) },
		ChannelYoungMessages: func(w string) int { return read(CountChannelYoungMessages, "", w) },
		ChannelUsers:         func(w string) int { return read(CountChannelUsers, "", w) },
	}
	env.Strikes = StrikesEnv{
		Count:  func(w string) int { return read(StrikesCount, "", w) },
		OfType: func(t, w string) int { return read(StrikesOfType, t, w) },
		ByRule: func(r, w string) int { return read(StrikesByRule, r, w) },
	}
}

// Mark is what the counters remember of one message: who posted it,
// where and when, how many links and mentions it had, the fingerprint of
// its text and when its author's account was created. The store keeps one
// per message.new while the rule set reads counters.
type Mark struct {
	UserID     string
	ChannelCID string
	// At is the event's time (the rules' "now"); zero when the event
	// carries none, and the store then uses the time it records it.
	At       time.Time
	Links    int
	Mentions int // users the message mentions: Stream's mentioned_users
	// Fingerprint identifies the text up to case, look-alike letters,
	// leetspeak, digits, punctuation, spacing and stretched letters; 0
	// when the message has no letters (an image, a sticker), which never
	// counts as a duplicate.
	Fingerprint int64
	// AccountCreated is when the author's account was created; zero when
	// that or the event's time is unknown, and the account is then never
	// young. It is kept rather than whether the account was young so that
	// a change of the folder's young-account age applies to the messages
	// already counted.
	AccountCreated time.Time
}

// YoungUnder reports whether the author's account was younger than age
// when the message was posted (see user.account_age).
func (m Mark) YoungUnder(age time.Duration) bool {
	return !m.AccountCreated.IsZero() && !m.At.IsZero() && m.At.Sub(m.AccountCreated) < age
}

// MarkOf returns the mark of ev, and false for events that are not
// counted: only new messages with an author are.
func MarkOf(ev *Event) (Mark, bool) {
	u, ok := countedAuthor(ev)
	if !ok {
		return Mark{}, false
	}
	var attachments []AttachmentEnv
	for _, a := range ev.Message.Attachments[:min(len(ev.Message.Attachments), maxAttachments)] {
		attachments = append(attachments, AttachmentEnv{TitleLink: a.TitleLink, OGScrapeURL: a.OGScrapeURL})
	}
	text := capText(ev.Message.Text)
	links, _ := collectLinks(text, attachments)
	return newMark(ev, u, len(links), Fingerprint(text)), true
}

// newMark is the mark of ev, a counted message by u, with its links and
// fingerprint.
func newMark(ev *Event, u *User, links int, fingerprint int64) Mark {
	now := eventNow(ev)
	m := Mark{UserID: u.ID, ChannelCID: ev.ChannelCID(), At: now, Links: links, Mentions: len(ev.Message.MentionedUsers),
		Fingerprint: fingerprint}
	if !now.IsZero() {
		m.AccountCreated = u.CreatedAt.Time
	}
	return m
}

// markIn is MarkToJudge for ev, whose environment env is filled with
// the derived values in nd: the text's links and normalised form are
// taken from it when it has them instead of being computed again (they
// were a twentieth of the server's CPU per webhook).
func markIn(ev *Event, env *Env, nd needs, counts bool) (Mark, bool) {
	u, ok := countedAuthor(ev)
	if !counts || !ok || nd&needNormalized == 0 || nd&needLinks == 0 {
		return MarkToJudge(ev, counts)
	}
	return newMark(ev, u, len(env.Text.Links), fingerprintNormalized(env.Text.Normalized)), true
}

// countedAuthor returns the author of ev when ev is counted: a new
// message with an author.
func countedAuthor(ev *Event) (*User, bool) {
	if ev == nil || ev.Type != "message.new" || ev.Message == nil {
		return nil, false
	}
	u := subjectUser(ev)
	return u, u != nil && u.ID != ""
}

// ChangesChannelCounts reports whether counting ev changes a channel
// counter among keys, with young the young-account age: every new message
// in a channel changes counts.channel_users (its author may be new to the
// channel), a young account's changes counts.channel_young_messages. An
// event for which it is false only reads the channel's counts, so the
// store need not serialise it with the channel's other messages.
func ChangesChannelCounts(ev *Event, keys []HistoryKey, young time.Duration) bool {
	u, ok := countedAuthor(ev)
	if !ok || ev.ChannelCID() == "" {
		return false
	}
	for _, k := range keys {
		switch k.Name {
		case CountChannelUsers:
			return true
		case CountChannelYoungMessages:
			if accountAge(eventNow(ev), u.CreatedAt.Time) < young {
				return true
			}
		}
	}
	return false
}

// Fingerprint returns the fingerprint of a message text (see Mark): the
// letters of Normalize(text), repeats collapsed, hashed; 0 when there are
// none.
func Fingerprint(text string) int64 { return fingerprintNormalized(Normalize(capText(text))) }

// fingerprintNormalized is Fingerprint of the text whose capped,
// normalised form (Normalize(capText(text))) is normalized.
func fingerprintNormalized(normalized string) int64 {
	norm := CollapseRepeats(normalized)
	var b strings.Builder
	b.Grow(len(norm))
	for _, r := range norm {
		if textIsLetter(r) {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return 0
	}
	sum := sha256.Sum256([]byte(b.String()))
	fp := int64(binary.BigEndian.Uint64(sum[:8]))
	if fp == 0 {
		fp = 1
	}
	return fp
}

// eventNow is the rules' "now" for ev: its time, or its message's.
func eventNow(ev *Event) time.Time {
	now := ev.CreatedAt.Time
	if now.IsZero() && ev.Message != nil {
		now = ev.Message.CreatedAt.Time
	}
	return now
}
