package statement

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"moderator/policy"
	"moderator/store"
)

// Render writes the statement in plain words, addressed to the user, in
// the order of Article 17 (3). Text that came from chat users (the
// message, ids) or from staff (reasons) is shown with control and
// invisible characters escaped, so it cannot hide or reorder what follows
// in a terminal or a mail.
func Render(st Statement) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Statement of reasons for decision %d\n", st.DecisionID)
	if st.UserID != "" {
		fmt.Fprintf(&b, "To: %s\n", clean(st.UserID))
	}
	fmt.Fprintf(&b, "Date of the decision: %s\n", minute(st.DecidedAt))

	b.WriteString("\n1. What we decided\n")
	if !st.Restricted {
		b.WriteString("No restriction of your messages or your account has taken effect.\n")
	}
	for _, r := range st.Restrictions {
		fmt.Fprintf(&b, "- %s\n", r.Description)
	}

	b.WriteString("\n2. The facts we relied on\n")
	writeFacts(&b, st.Facts)

	b.WriteString("\n3. Use of automated means\n")
	b.WriteString("The message was detected, and the decision taken, by automated means: rules that software applies to every message, without a person looking at it first.\n")
	writeReviews(&b, st.Automation.Reviews)

	b.WriteString("\n4. The grounds for the decision\n")
	for _, g := range st.Grounds {
		fmt.Fprintf(&b, "- The platform's rule %s (rule set version %s", clean(g.RuleID), clean(g.RuleSetVersion))
		if g.Source != "" {
			fmt.Fprintf(&b, ", %s", clean(g.Source))
		}
		fmt.Fprintf(&b, "): %s\n", strconv.QuoteToGraphic(g.Reason))
	}

	b.WriteString("\n5. How you can seek redress\n")
	fmt.Fprintf(&b, "- %s\n- %s\n- %s\n", st.Redress.Internal, st.Redress.OutOfCourt, st.Redress.Judicial)
	return b.String()
}

// writeFacts writes the message the decision is about and the values the
// rules read.
func writeFacts(b *strings.Builder, f Facts) {
	switch {
	case f.EventType == policy.EventBeforeSend:
		b.WriteString("The message you tried to send")
	case f.MessageID != "":
		fmt.Fprintf(b, "Your message %s", clean(f.MessageID))
	default:
		fmt.Fprintf(b, "The event %s", clean(f.EventType))
	}
	if f.ChannelCID != "" {
		fmt.Fprintf(b, " in %s", clean(f.ChannelCID))
	}
	at := f.ReceivedAt
	if f.SentAt != nil {
		at = *f.SentAt
	}
	fmt.Fprintf(b, ", sent %s", minute(at))
	if f.Excerpt != "" {
		fmt.Fprintf(b, ":\n  %s\n", strconv.QuoteToGraphic(f.Excerpt))
	} else {
		b.WriteString(".\n")
	}
	if len(f.Values) > 0 {
		b.WriteString("What the rules found in it:\n")
	}
	for _, v := range f.Values {
		fmt.Fprintf(b, "- %s: %s = %s\n", clean(v.RuleID), clean(v.Expression), clean(v.Value))
	}
}

// writeReviews writes what people did about the decision since.
func writeReviews(b *strings.Builder, reviews []Review) {
	if len(reviews) == 0 {
		b.WriteString("No person has reviewed it since.\n")
		return
	}
	for _, r := range reviews {
		switch {
		case r.AppealID != 0 && r.Outcome == store.AppealPending:
			fmt.Fprintf(b, "- Your appeal of %s is waiting for a person's review.\n", minute(*r.AppealAt))
		case r.AppealID != 0:
			fmt.Fprintf(b, "- After your appeal of %s, a person reviewed the decision and %s it on %s: %s\n",
				minute(*r.AppealAt), r.Outcome, minute(*r.DecidedAt), strconv.QuoteToGraphic(r.Reason))
		default:
			fmt.Fprintf(b, "- A person reviewed the decision and overturned it on %s: %s\n",
				minute(*r.DecidedAt), strconv.QuoteToGraphic(r.Reason))
		}
	}
}

// describe says what a restriction is, in plain words, and what became
// of it.
func describe(r Restriction) string {
	var s string
	where := "anywhere in the app"
	if r.Scope == "channel" {
		where = "in " + clean(r.ChannelCID)
	}
	msg := "your message"
	if r.MessageID != "" {
		msg += " " + clean(r.MessageID)
	}
	shadow := ""
	if r.Shadow {
		shadow = "shadow "
	}
	switch r.Type {
	case "delete":
		s = "Deletion of " + msg
		if r.Hard {
			s = "Permanent deletion of " + msg
		}
	case "mute":
		s = fmt.Sprintf("A %smute: you may not post %s", shadow, where)
		if r.Permanent { // never from the rules, which require a timeout
			s += ", with no end date"
		} else {
			s += " for " + span(r.DurationMinutes)
		}
	case "ban":
		s = fmt.Sprintf("A %sban from posting %s", shadow, where)
		if r.Permanent {
			s += ", with no end date"
		} else {
			s += " for " + span(r.DurationMinutes)
		}
		if r.DeleteMessages == "hard" {
			s += ", with the permanent deletion of your messages"
		} else if r.DeleteMessages != "" {
			s += ", with the deletion of your messages"
		}
	case "flag":
		s = "A report of " + msg + " to the platform's moderators for review (it stays visible)"
		if r.Scope == "user" {
			s = "A report of your account to the platform's moderators for review"
		}
	case "warn":
		s = "A warning posted to you"
		if r.ChannelCID != "" {
			s += " in " + clean(r.ChannelCID)
		}
	case "block":
		s = "Refusal of your message: it was not sent"
	case "rewrite":
		s = "Masking of words in your message before it was sent"
	default:
		s = "The action " + clean(r.Type)
	}
	if r.Shadow {
		s += " (a shadow restriction: you can still post, but nobody else sees your messages)"
	}
	return s + status(r)
}

// status says what became of a restriction: when it took effect and
// ends, or why it did not, and whether a person lifted it.
func status(r Restriction) string {
	var s string
	switch r.Status {
	case store.OutcomeApplied:
		if r.EndsAt != nil {
			s = fmt.Sprintf(". In effect from %s until %s.", minute(*r.AppliedAt), minute(*r.EndsAt))
		} else if r.AppliedAt != nil {
			s = fmt.Sprintf(". Carried out on %s.", minute(*r.AppliedAt))
		}
	case store.OutcomePending:
		s = ". Decided, and being carried out."
	case store.OutcomeDryRun:
		s = ". Decided but not carried out: the service was running in a trial mode."
	case store.OutcomeFailed:
		s = ". Decided but it could not be carried out."
	case store.OutcomeHeld:
		s = ". Decided but held back by a daily limit, and not carried out."
	case store.OutcomeSuperseded:
		s = ". Decided but not carried out: a stronger action of the same decision replaced it."
	case store.OutcomeSuppressed:
		s = ". Decided but not carried out: a person had overturned this rule's earlier action against you."
	default:
		s = "."
	}
	if l := r.Lifted; l != nil {
		switch l.Disposition {
		case "reversed":
			s += fmt.Sprintf(" A person lifted it on %s.", minute(l.At))
		case "cancelled":
			s += fmt.Sprintf(" A person cancelled it on %s, before it was carried out.", minute(l.At))
		default:
			s += fmt.Sprintf(" A person overturned it on %s; there was nothing left to undo.", minute(l.At))
		}
	}
	return s
}

// clean shows s with its control and invisible characters escaped.
func clean(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) || r == unicode.ReplacementChar }) < 0 {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}
