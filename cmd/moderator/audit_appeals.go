package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"moderator/store"
)

// appealFilter checks the flags of `audit appeals` and copies the shared
// ones (--user, --rule, --type, --since, --until, --limit, --cursor) into
// a.appeals.
func (a *auditArgs) appealFilter() error {
	f := &a.appeals
	if !slices.Contains([]string{store.AppealPending, store.AppealUpheld, store.AppealOverturned, "all"}, f.Status) {
		return fmt.Errorf("--status: want pending, upheld, overturned or all, got %q", f.Status)
	}
	if f.Status == "all" {
		f.Status = ""
	}
	if f.Sort != store.SortOldest && f.Sort != store.SortNewest {
		return fmt.Errorf("--sort: want oldest or newest, got %q", f.Sort)
	}
	if t := a.filter.ActionType; t != "" && !slices.Contains([]string{"flag", "mute", "ban", "delete", "warn"}, t) {
		return fmt.Errorf("--type: want flag, mute, ban, delete or warn, got %q", t)
	}
	f.UserID, f.RuleID, f.ActionType = a.filter.UserID, a.filter.RuleID, a.filter.ActionType
	f.From, f.To, f.Cursor, f.Limit = a.filter.From, a.filter.To, a.filter.Cursor, a.filter.Limit
	return nil
}

// appealView is one appeal as `audit appeal ID` shows it: the appeal, its
// notes, and the evidence of the decision it concerns.
type appealView struct {
	Appeal   store.Appeal        `json:"appeal"`
	Notes    []store.AppealNote  `json:"notes"`
	Action   *store.ActionDetail `json:"action,omitempty"`
	Evidence *store.Evidence     `json:"evidence,omitempty"`
}

func readAppealView(ctx context.Context, st *store.Store, id int64, around int) (appealView, error) {
	var v appealView
	var err error
	if v.Appeal, err = st.Appeal(ctx, id); err != nil {
		return v, err
	}
	if v.Notes, err = st.AppealNotes(ctx, id); err != nil {
		return v, err
	}
	decisionID := v.Appeal.DecisionID
	if v.Appeal.ActionID != 0 {
		act, err := st.Action(ctx, v.Appeal.ActionID)
		if err != nil {
			return v, err
		}
		v.Action, decisionID = &act, act.DecisionID
	}
	if decisionID != 0 {
		ev, err := st.DecisionEvidence(ctx, decisionID, around)
		if err != nil {
			return v, err
		}
		v.Evidence = &ev
	}
	return v, nil
}

func printAppeals(w io.Writer, p store.Page[store.Appeal], now time.Time) {
	if len(p.Items) == 0 {
		fmt.Fprintln(w, "no appeals")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "ID\tCREATED\tWAITING\tUSER\tRULES\tACTIONS\tSTATUS\tHELD BY\tSTATEMENT")
	for _, a := range p.Items {
		waiting := "-"
		if a.Status == store.AppealPending {
			waiting = now.Sub(a.CreatedAt).Round(time.Second).String()
		}
		row(tw, strconv.FormatInt(a.ID, 10), stamp(a.CreatedAt), waiting, clean(a.UserID), dash(strings.Join(a.Rules, ",")),
			dash(strings.Join(a.ActionTypes, ",")), a.Status, dash(a.AssignedTo), quoteText(a.Statement, 60))
	}
	tw.Flush()
	printNext(w, p.NextCursor)
}

func printAppeal(w io.Writer, v appealView) {
	a := v.Appeal
	fmt.Fprintf(w, "appeal    %d, %s, recorded %s by %s via %s\n", a.ID, a.Status, stamp(a.CreatedAt), clean(a.RecordedBy), clean(a.Source))
	fmt.Fprintf(w, "user      %s\n", clean(a.UserID))
	about := fmt.Sprintf("decision %d", a.DecisionID)
	if a.ActionID != 0 {
		about = fmt.Sprintf("action %d", a.ActionID)
	}
	fmt.Fprintf(w, "about     %s (%s; rules %s)\n", about, dash(strings.Join(a.ActionTypes, ",")), dash(strings.Join(a.Rules, ",")))
	fmt.Fprintf(w, "held by   %s\n", dash(a.AssignedTo))
	fmt.Fprintf(w, "statement %s\n", quoteText(a.Statement, 500))
	if d := a.Decision; d != nil {
		fmt.Fprintf(w, "decision  %s by %s at %s: %s\n", d.Outcome, clean(d.Reviewer), stamp(d.DecidedAt), quoteText(d.Reason, 300))
	}
	fmt.Fprintln(w, "\nNOTES")
	if len(v.Notes) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, n := range v.Notes {
		fmt.Fprintf(w, "  %s  %s  %s\n", stamp(n.CreatedAt), clean(n.Author), quoteText(n.Body, 300))
	}
	if v.Evidence != nil {
		fmt.Fprintln(w)
		printEvidence(w, *v.Evidence)
	}
}
