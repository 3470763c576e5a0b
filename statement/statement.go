// Package statement owns the statement of reasons: what a platform owes a
// user whose content or account it restricted, under Article 17 of the EU
// Digital Services Act. It builds one from a decision's recorded evidence
// (store.Evidence) and renders it in plain words. It is pure: no I/O, no
// clock; it imports policy and store types only.
//
// Article 17 (3) asks for (a) what was decided, with its scope and
// duration, (b) the facts and circumstances relied on, (c) whether
// automated means were used, in detecting and in deciding, (d) the ground
// (here the platform's own rule: its id, its version and its reason), and
// (e) the redress open to the user: internal complaint handling,
// out-of-court dispute settlement and the courts.
package statement

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"moderator/policy"
	"moderator/store"
)

// ErrNothingDecided is returned for a decision that asked for no action
// (only shadow matches, or rules that failed): nothing was restricted and
// no statement is owed.
var ErrNothingDecided = errors.New("asked for no action (its rules matched only in shadow mode, or failed): nothing was restricted, so no statement of reasons is owed")

// AppealWindow is how long after a decision the user may appeal it
// through the platform's internal complaint handling (DSA Art. 20 (1):
// at least six months).
const AppealWindow = 6 // months

// Statement is the statement of reasons for one decision.
type Statement struct {
	DecisionID int64     `json:"decision_id"`
	DecidedAt  time.Time `json:"decided_at"`
	UserID     string    `json:"user_id,omitempty"`
	// Restricted says whether any restriction of the user's content or
	// account took effect (even if later lifted): a deletion, a mute, a
	// ban, a block or a rewrite, as against a report to the moderators or
	// a warning, or an action that was never carried out.
	Restricted   bool          `json:"restricted"`
	Restrictions []Restriction `json:"restrictions"` // (a)
	Facts        Facts         `json:"facts"`        // (b)
	Automation   Automation    `json:"automation"`   // (c)
	Grounds      []Ground      `json:"grounds"`      // (d)
	Redress      Redress       `json:"redress"`      // (e)
	// Text is the statement in plain words, as Render writes it.
	Text string `json:"text"`
}

// Restriction is one action the decision took (or asked for) about the
// user or their message.
type Restriction struct {
	ActionID int64  `json:"action_id,omitempty"` // 0: a before-send block or rewrite, which has no action row
	Type     string `json:"type"`                // flag, delete, mute, ban, warn, block, rewrite
	RuleID   string `json:"rule_id"`
	// Restricts is true for the types that limit the user's content or
	// account (delete, mute, ban, block, rewrite).
	Restricts bool `json:"restricts"`
	// Scope is where a mute or ban applies ("app" or "channel"), or what
	// a flag reports ("message" or "user"), or "message" for the rest.
	Scope      string `json:"scope"`
	ChannelCID string `json:"channel_cid,omitempty"`
	MessageID  string `json:"message_id,omitempty"`
	// DurationMinutes is a mute's or ban's length; Permanent a ban
	// without one. EndsAt is when it ends, once it took effect.
	DurationMinutes int        `json:"duration_minutes,omitempty"`
	Permanent       bool       `json:"permanent,omitempty"`
	EndsAt          *time.Time `json:"ends_at,omitempty"`
	// Shadow: the user could still post, but others did not see it.
	Shadow bool `json:"shadow,omitempty"`
	// Hard: the message (or, for a ban, the user's messages) is deleted
	// for good; DeleteMessages is a ban's deletion of the user's messages.
	Hard           bool   `json:"hard,omitempty"`
	DeleteMessages string `json:"delete_messages,omitempty"`
	// Status is what became of it: applied, pending, dry_run (decided,
	// not carried out), failed, held, superseded, suppressed.
	Status    string     `json:"status"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	// Lifted is set when a reviewer overturned it.
	Lifted *Lifted `json:"lifted,omitempty"`
	// Description says it in plain words, as the user is told.
	Description string `json:"description"`
}

// Lifted is a reviewer's overturn of a restriction.
type Lifted struct {
	At          time.Time `json:"at"`
	Disposition string    `json:"disposition"` // reversed, cancelled, nothing_to_undo
	Reason      string    `json:"reason"`
}

// Facts are the facts and circumstances the decision relied on.
type Facts struct {
	EventType  string     `json:"event_type"`
	ReceivedAt time.Time  `json:"received_at"`
	SentAt     *time.Time `json:"sent_at,omitempty"` // the message's own time, from Stream
	ChannelCID string     `json:"channel_cid,omitempty"`
	MessageID  string     `json:"message_id,omitempty"`
	// Excerpt is the message's text, cut at 280 characters, as recorded;
	// an erased message shows the redaction marker that replaced it.
	Excerpt string `json:"excerpt,omitempty"`
	// Values are what each rule that acted read from the message and the
	// user's history.
	Values []Value `json:"values"`
}

// Value is one value a rule read, with the expression that read it.
type Value struct {
	RuleID     string `json:"rule_id"`
	Expression string `json:"expression"`
	Value      string `json:"value"` // as JSON
}

// Automation says how automated means were used: always for detection and
// for the decision here, and which human reviews followed.
type Automation struct {
	Detection bool     `json:"automated_detection"`
	Decision  bool     `json:"automated_decision"`
	Reviews   []Review `json:"human_reviews"`
}

// Review is a person's look at the decision after it was taken: an appeal
// (pending or decided) or an overturn a reviewer made without one.
type Review struct {
	AppealID  int64      `json:"appeal_id,omitempty"`
	Outcome   string     `json:"outcome"` // pending, upheld, overturned
	AppealAt  *time.Time `json:"appealed_at,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// Ground is a rule the decision relied on, as it was when it fired.
type Ground struct {
	RuleID         string `json:"rule_id"`
	RuleSetVersion string `json:"rule_set_version"` // the content hash of the rule set in force
	Source         string `json:"source,omitempty"` // its file and line in the rules folder
	Reason         string `json:"reason"`           // its reason, filled in with what it saw
}

// Redress is how the user may contest the decision.
type Redress struct {
	AppealBy   time.Time `json:"appeal_by"` // the end of the internal complaint window
	Internal   string    `json:"internal_complaint"`
	OutOfCourt string    `json:"out_of_court"`
	Judicial   string    `json:"judicial"`
	Reference  string    `json:"reference"` // what to quote: "decision 42"
}

// The redress texts: the platform's own complaint handling, the certified
// out-of-court bodies of Article 21, and the courts.
const (
	internalText   = "You can appeal this decision free of charge through the platform's complaint handling (in the app or by writing to its support) until %s, quoting %s. A person, not software, will review it, and you will be told the outcome and why."
	outOfCourtText = "You can also bring the dispute to an out-of-court dispute settlement body certified under Article 21 of the EU Digital Services Act, whatever the outcome of your appeal."
	judicialText   = "You can also take the matter to a court at any time, under the law that applies to you; none of these steps is required before another."
)

// New builds the statement of reasons of the decision whose evidence is
// ev, and renders its Text. It returns ErrNothingDecided for a decision
// that asked for no action.
func New(ev store.Evidence) (Statement, error) {
	st := Statement{
		DecisionID: ev.Decision.ID,
		DecidedAt:  ev.Decision.DecidedAt.UTC(),
		UserID:     ev.Decision.UserID,
		Automation: Automation{Detection: true, Decision: true, Reviews: reviews(ev)},
		Facts:      facts(ev),
		Grounds:    grounds(ev),
	}
	var err error
	if st.Restrictions, err = restrictions(ev); err != nil {
		return Statement{}, err
	}
	if len(st.Restrictions) == 0 {
		return Statement{}, fmt.Errorf("decision %d: %w", ev.Decision.ID, ErrNothingDecided)
	}
	for _, r := range st.Restrictions {
		st.Restricted = st.Restricted || (r.Restricts && r.AppliedAt != nil)
	}
	ref := fmt.Sprintf("decision %d", ev.Decision.ID)
	by := st.DecidedAt.AddDate(0, AppealWindow, 0)
	st.Redress = Redress{AppealBy: by, Internal: fmt.Sprintf(internalText, day(by), ref),
		OutOfCourt: outOfCourtText, Judicial: judicialText, Reference: ref}
	st.Text = Render(st)
	return st, nil
}

// restrictions lists the decision's actions (reversals left out: they
// are the overturns, told as Lifted), then the before-send blocks and
// rewrites, which the hook answered and which have no action rows.
func restrictions(ev store.Evidence) ([]Restriction, error) {
	out := []Restriction{}
	for _, a := range ev.Actions {
		if a.ReversesActionID != 0 {
			continue
		}
		var p policy.Action
		if err := json.Unmarshal(a.Params, &p); err != nil {
			return nil, fmt.Errorf("decode action %d: %w", a.ID, err)
		}
		r := restriction(p, a.ChannelCID, a.MessageID)
		r.ActionID, r.RuleID, r.Status = a.ID, a.RuleID, a.Status
		if a.Outcome != nil && a.Outcome.Outcome == store.OutcomeApplied {
			at := a.Outcome.At.UTC()
			r.AppliedAt = &at
			if r.DurationMinutes > 0 {
				end := at.Add(time.Duration(r.DurationMinutes) * time.Minute)
				r.EndsAt = &end
			}
		}
		if a.Reversal != nil {
			r.Lifted = &Lifted{At: a.Reversal.At.UTC(), Disposition: a.Reversal.Disposition, Reason: a.Reversal.Reason}
		}
		r.Description = describe(r)
		out = append(out, r)
	}
	for _, p := range ev.Requested {
		if p.Type != policy.ActionBlock && p.Type != policy.ActionRewrite {
			continue
		}
		r := restriction(p, ev.Decision.ChannelCID, ev.Decision.MessageID)
		r.RuleID, r.Status = p.RuleID, store.OutcomeApplied
		at := ev.Decision.DecidedAt.UTC()
		r.AppliedAt = &at
		r.Description = describe(r)
		out = append(out, r)
	}
	return out, nil
}

// restriction is what action p does, where.
func restriction(p policy.Action, channel, message string) Restriction {
	r := Restriction{Type: string(p.Type), ChannelCID: channel, MessageID: message, Scope: "message"}
	switch p.Type {
	case policy.ActionMute, policy.ActionBan:
		r.Restricts = true
		r.Scope = "app"
		if p.ChannelOnly {
			r.Scope = "channel"
		}
		r.DurationMinutes, r.Shadow = p.TimeoutMinutes, p.Shadow
		r.Permanent = p.TimeoutMinutes == 0
		r.DeleteMessages = p.DeleteMessages
		r.Hard = p.DeleteMessages == "hard"
	case policy.ActionDelete:
		r.Restricts, r.Hard = true, p.Hard
	case policy.ActionBlock, policy.ActionRewrite:
		r.Restricts = true
	case policy.ActionFlag:
		if p.Target == "user" {
			r.Scope = "user"
		}
	}
	return r
}

// facts are the message and the values the acting rules read.
func facts(ev store.Evidence) Facts {
	e := ev.Event.EventSummary
	f := Facts{EventType: e.Type, ReceivedAt: e.ReceivedAt.UTC(), ChannelCID: e.ChannelCID, MessageID: e.MessageID,
		Excerpt: e.Text, Values: []Value{}}
	if e.CreatedAt != nil {
		at := e.CreatedAt.UTC()
		f.SentAt = &at
	}
	for _, m := range ev.Matches {
		if m.Mode != policy.ModeEnforce {
			continue
		}
		keys := make([]string, 0, len(m.Evidence))
		for k := range m.Evidence {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, err := json.Marshal(m.Evidence[k])
			if err != nil {
				v = []byte(fmt.Sprint(m.Evidence[k]))
			}
			f.Values = append(f.Values, Value{RuleID: m.RuleID, Expression: k, Value: string(v)})
		}
	}
	return f
}

// grounds are the enforcing rules, as recorded when they fired: the
// decision keeps each rule's reason and where it was written, and the
// rule set's version, so a later edit of the rule changes nothing here.
func grounds(ev store.Evidence) []Ground {
	out := []Ground{}
	for _, m := range ev.Matches {
		if m.Mode != policy.ModeEnforce {
			continue
		}
		out = append(out, Ground{RuleID: m.RuleID, RuleSetVersion: ev.RuleSetVersion, Source: m.Source, Reason: m.Reason})
	}
	return out
}

// reviews are the appeals about the decision or its actions, and the
// overturns made without an appeal.
func reviews(ev store.Evidence) []Review {
	out := []Review{}
	byAppeal := map[int64]bool{}
	for _, a := range ev.Appeals {
		at := a.CreatedAt.UTC()
		r := Review{AppealID: a.ID, Outcome: a.Status, AppealAt: &at}
		if a.Decision != nil {
			d := a.Decision.DecidedAt.UTC()
			r.DecidedAt, r.Reason = &d, a.Decision.Reason
			if a.Decision.OverturnID != 0 {
				byAppeal[a.Decision.OverturnID] = true
			}
		}
		out = append(out, r)
	}
	seen := map[int64]bool{}
	for _, a := range ev.Actions {
		rv := a.Reversal
		if rv == nil || byAppeal[rv.OverturnID] || seen[rv.OverturnID] {
			continue
		}
		seen[rv.OverturnID] = true
		at := rv.At.UTC()
		out = append(out, Review{Outcome: store.AppealOverturned, DecidedAt: &at, Reason: rv.Reason})
	}
	return out
}

// day writes a date for the user.
func day(t time.Time) string { return t.UTC().Format("2 January 2006") }

// minute writes a time for the user.
func minute(t time.Time) string { return t.UTC().Format("2 January 2006, 15:04 UTC") }

// span writes a length of time in words: "15 minutes", "7 days".
func span(minutes int) string {
	unit := func(n int, word string) string {
		if n == 1 {
			return "1 " + word
		}
		return fmt.Sprintf("%d %ss", n, word)
	}
	switch {
	case minutes%(24*60) == 0:
		return unit(minutes/(24*60), "day")
	case minutes%60 == 0:
		return unit(minutes/60, "hour")
	}
	return unit(minutes, "minute")
}
