package policy

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ActionType names what a rule asks for. The actions package turns each
// into calls to Stream.
type ActionType string

// The action types. Block and rewrite belong to the before-send phase
// (rules with events: [before_send]) and only they may be used there.
const (
	ActionFlag    ActionType = "flag"
	ActionMute    ActionType = "mute"
	ActionBan     ActionType = "ban"
	ActionDelete  ActionType = "delete"
	ActionWarn    ActionType = "warn"
	ActionBlock   ActionType = "block"
	ActionRewrite ActionType = "rewrite"
)

// Limits Stream puts on action parameters.
const (
	maxReasonRunes  = 255  // flag and ban reasons
	maxWarnRunes    = 1000 // a warning is a chat message; keep it short
	maxBlockRunes   = 500  // shown to the sender in an error bubble
	maxTimeoutRunes = 16
	maxTimeout      = 10 * 365 * 24 * time.Hour
)

// Action is one thing a matched rule asks for, with its parameters filled
// in (templates rendered). Only the fields of its Type are set.
type Action struct {
	Type   ActionType `json:"type"`
	RuleID string     `json:"rule_id"`

	// Target is what a flag is about: "message" (the default) or "user".
	Target string `json:"target,omitempty"`
	// Reason is the flag's, mute's or ban's reason, at most 255 characters: the
	// action's reason template filled in, or else the rule's reason.
	Reason string `json:"reason,omitempty"`
	// TimeoutMinutes is how long a mute or ban lasts, in whole minutes as
	// Stream takes it; 0 means until lifted (a ban only: a mute always
	// has one).
	TimeoutMinutes int `json:"timeout_minutes,omitempty"`
	// Ban options, as Stream's ban endpoint names them; ChannelOnly bans
	// (or mutes) in the event's channel only. A mute takes Shadow and
	// ChannelOnly too: it is a ban with a timeout.
	Shadow         bool   `json:"shadow,omitempty"`
	IPBan          bool   `json:"ip_ban,omitempty"`
	ChannelOnly    bool   `json:"channel_only,omitempty"`
	DeleteMessages string `json:"delete_messages,omitempty"` // "soft", "pruning" or "hard"
	// Hard makes a delete a hard delete.
	Hard bool `json:"hard,omitempty"`
	// Text is the warning the bot posts; InThread posts it as a reply to
	// the message instead of in the channel.
	// For a block, Text is what the sender is shown (at most 500
	// characters).
	Text     string `json:"text,omitempty"`
	InThread bool   `json:"in_thread,omitempty"`
	// Mask is how a rewrite masks (MaskFirst or MaskFull) and Words the
	// word-list entries the rule found, which it masks.
	Mask  string   `json:"mask,omitempty"`
	Words []string `json:"words,omitempty"`
}

// How a rewrite masks a word: MaskFirst keeps its first letter ("d***"),
// so the sender sees which word was taken out; MaskFull hides it all
// ("****").
const (
	MaskFirst = "first"
	MaskFull  = "full"
)

// String describes the action for people: `ban 7d shadow ("spam")`.
func (a Action) String() string {
	var b strings.Builder
	b.WriteString(string(a.Type))
	word := func(s string) {
		b.WriteByte(' ')
		b.WriteString(s)
	}
	switch a.Type {
	case ActionFlag:
		word(cmp.Or(a.Target, "message"))
	case ActionMute, ActionBan:
		if a.TimeoutMinutes > 0 {
			word(formatMinutes(a.TimeoutMinutes))
		} else if a.Type == ActionBan {
			word("permanent")
		}
		for _, f := range []struct {
			on   bool
			name string
		}{{a.Shadow, "shadow"}, {a.IPBan, "ip"}, {a.ChannelOnly, "channel-only"}} {
			if f.on {
				word(f.name)
			}
		}
		if a.DeleteMessages != "" {
			word("delete-messages=" + a.DeleteMessages)
		}
	case ActionDelete:
		if a.Hard {
			word("hard")
		}
	case ActionWarn:
		if a.InThread {
			word("in-thread")
		}
	case ActionRewrite:
		if a.Mask != "" {
			word("mask=" + a.Mask)
		}
	}
	if a.Reason != "" {
		word("(" + strconv.Quote(a.Reason) + ")")
	}
	if a.Text != "" {
		word(strconv.Quote(a.Text))
	}
	return b.String()
}

// formatMinutes writes a timeout the way rule files do: 7d, 24h, 90m.
func formatMinutes(m int) string {
	switch {
	case m%(24*60) == 0:
		return strconv.Itoa(m/(24*60)) + "d"
	case m%60 == 0:
		return strconv.Itoa(m/60) + "h"
	}
	return strconv.Itoa(m) + "m"
}

// actionSpec is a compiled action of a rule: its fixed parameters and the
// templates to fill when the rule matches.
type actionSpec struct {
	action Action    // fixed parameters; Reason and Text are filled from the templates
	reason *template // flag, ban; nil: the rule's reason
	text   *template // warn, block
}

// The parameters each action takes in a rule file. Decoding is strict, so
// a misspelt parameter is a load error.
type (
	flagParams struct {
		Target string `yaml:"target"`
		Reason string `yaml:"reason"`
	}
	// muteParams: a mute silences the user for a while (in Stream, a ban
	// with a timeout), so its timeout is required; channel limits it to
	// the event's channel.
	muteParams struct {
		Timeout any    `yaml:"timeout"`
		Reason  string `yaml:"reason"`
		Shadow  bool   `yaml:"shadow"`
		Channel bool   `yaml:"channel"`
	}
	banParams struct {
		Timeout        any    `yaml:"timeout"`
		Reason         string `yaml:"reason"`
		Shadow         bool   `yaml:"shadow"`
		IPBan          bool   `yaml:"ip_ban"`
		ChannelOnly    bool   `yaml:"channel_only"`
		DeleteMessages string `yaml:"delete_messages"`
	}
	deleteParams struct {
		Hard bool `yaml:"hard"`
	}
	warnParams struct {
		Text     string `yaml:"text"`
		InThread bool   `yaml:"in_thread"`
	}
	blockParams struct {
		Text string `yaml:"text"`
	}
	rewriteParams struct {
		Mask string `yaml:"mask"`
	}
)

// ParseDuration parses a rule file's duration: Go syntax ("90m", "24h",
// "1h30m") plus whole days ("7d", "1d12h"). It refuses negative and
// absurdly long durations.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	if len(s) > maxTimeoutRunes {
		return 0, fmt.Errorf("duration %.16q… is too long", s)
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: want a whole number of days before \"d\", like 7d", s)
		}
		if n > int(maxTimeout/(24*time.Hour)) {
			return 0, fmt.Errorf("duration %q is longer than 10 years", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want Go syntax with d for days, like 30m, 24h or 7d", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	if d+days > maxTimeout || d+days < 0 {
		return 0, fmt.Errorf("duration %q is longer than 10 years", s)
	}
	return d + days, nil
}

// parseTimeout turns a timeout parameter into Stream's whole minutes. nil
// and 0 mean no timeout (when zeroOK).
func parseTimeout(v any, zeroOK bool) (int, error) {
	var d time.Duration
	switch v := v.(type) {
	case nil:
		if zeroOK {
			return 0, nil
		}
		return 0, fmt.Errorf("timeout is required")
	case uint64, int64, int:
		if zeroOK && (v == uint64(0) || v == int64(0) || v == 0) {
			return 0, nil
		}
		return 0, fmt.Errorf("timeout %v needs a unit, like 30m, 24h or 7d", v)
	case string:
		if v == "0" && zeroOK {
			return 0, nil
		}
		var err error
		if d, err = ParseDuration(v); err != nil {
			return 0, fmt.Errorf("timeout: %w", err)
		}
	default:
		return 0, fmt.Errorf("timeout: want a duration like 30m, 24h or 7d, not %v", v)
	}
	if d%time.Minute != 0 || d < time.Minute {
		return 0, fmt.Errorf("timeout %v: Stream counts whole minutes, so use at least 1m and whole minutes", d)
	}
	return int(d / time.Minute), nil
}

// checkLiteralLen refuses a template whose fixed text alone is longer than
// Stream accepts; the filled value is cut to the limit at run time.
func checkLiteralLen(what string, t *template, limit int) error {
	if t == nil {
		return nil
	}
	if n := utf8.RuneCountInString(t.literal()); n > limit {
		return fmt.Errorf("%s is %d characters; Stream accepts at most %d", what, n, limit)
	}
	return nil
}

// truncateRunes cuts s to at most n runes, ending with "…" when cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}
