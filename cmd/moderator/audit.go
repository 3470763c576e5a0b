package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"moderator/policy"
	"moderator/statement"
	"moderator/store"
)

const auditUsage = `usage: moderator audit <what> [ID] [flags]

  user ID            the user's timeline: events, decisions, actions, appeals, overturns;
                     with search filters, the user's matching events, decisions and actions
  message ID         the message's events, decisions and actions (search filters apply)
  decision ID        one decision's evidence, with the conversation around it
  events | decisions | actions
                     search, with --user --message --channel --rule --type --outcome
                     (--type: the event type for events, else the action type;
                     --event-type for decisions and actions)
  rules              per-rule figures: matches, actions, overturns, what each did and
                     what shadow rules would have done; every rule of the rules folder
                     (--rules DIR, default MODERATOR_RULES_DIR) is listed, with zeros
                     if it never matched
  appeals            the appeals queue: pending, oldest first; --status pending|upheld|
                     overturned|all, --sort oldest|newest, --user, --rule, --type (action)
  appeal ID          one appeal: statement, what it is about, who holds it, its decision
                     and notes, and the evidence of the decision appealed
  statement ID       the statement of reasons the user is owed for decision ID (EU DSA
                     Art. 17), in plain words (--json: with its structured fields)
  quarantine         deliveries the database refused for their data (answered
                     "quarantined"), newest first; --json has their exact bodies

flags (where they apply):
  --since, --until   RFC 3339 time or a duration back from now (24h, 90m): [since, until)
  --limit N          page size, 1 to 200 (default 50); --cursor C for the next page
  --around N         decision: messages before and after (default 5, at most 50)
  --json             JSON for scripts instead of text

DATABASE_URL (or --database-url) names the database. Each use is recorded in
the staff audit log as cli:$USER.
`

// auditArgs are the parsed arguments of one `moderator audit` command.
type auditArgs struct {
	what, id    string
	filter      store.AuditFilter
	appeals     store.AppealFilter // audit appeals
	around      int
	json        bool
	databaseURL string
	rulesDir    string            // audit rules: the rules folder in force
	inForce     []policy.RuleInfo // audit rules: its rules, once loaded
}

// timeFlag is --since or --until: an RFC 3339 time or a duration before
// now.
type timeFlag struct {
	t   *time.Time
	now time.Time
}

func (f timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f timeFlag) Set(s string) error {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		*f.t = t
		return nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		*f.t = f.now.Add(-d)
		return nil
	}
	return errors.New("want an RFC 3339 time (2026-11-24T12:00:00Z) or a duration such as 24h")
}

// parseAuditArgs reads `audit <what> [ID] [flags]`, flags before or after
// the ID. A bad flag or value is one line naming it.
func parseAuditArgs(args []string, now time.Time) (auditArgs, error) {
	var a auditArgs
	if len(args) == 0 {
		return a, errors.New("say what to audit: user ID, message ID, decision ID, appeal ID, statement ID, events, decisions, actions, appeals, rules or quarantine")
	}
	if isHelpFlag(args[0]) {
		return a, flag.ErrHelp
	}
	a.what, args = args[0], args[1:]
	withID := map[string]bool{"user": true, "message": true, "decision": true, "appeal": true, "statement": true}
	search := map[string]bool{"events": true, "decisions": true, "actions": true}
	if !withID[a.what] && !search[a.what] && a.what != "rules" && a.what != "appeals" && a.what != "quarantine" {
		return a, fmt.Errorf("unknown %q: want user, message, decision, appeal, statement, events, decisions, actions, appeals, rules or quarantine", a.what)
	}
	fs := flag.NewFlagSet("audit "+a.what, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&a.json, "json", false, "")
	fs.StringVar(&a.databaseURL, "database-url", "", "")
	fs.Var(timeFlag{&a.filter.From, now}, "since", "")
	fs.Var(timeFlag{&a.filter.To, now}, "until", "")
	var outcome string
	if a.what != "rules" && a.what != "decision" && a.what != "appeal" && a.what != "statement" {
		fs.IntVar(&a.filter.Limit, "limit", 0, "")
	}
	if a.what == "rules" {
		fs.StringVar(&a.rulesDir, "rules", "", "")
	}
	if a.what == "user" || search[a.what] || a.what == "appeals" || a.what == "quarantine" {
		fs.StringVar(&a.filter.Cursor, "cursor", "", "")
	}
	a.appeals = store.AppealFilter{Status: store.AppealPending, Sort: store.SortOldest}
	if a.what == "appeals" {
		fs.StringVar(&a.filter.UserID, "user", "", "")
		fs.StringVar(&a.filter.RuleID, "rule", "", "")
		fs.StringVar(&a.filter.ActionType, "type", "", "")
		fs.StringVar(&a.appeals.Status, "status", a.appeals.Status, "")
		fs.StringVar(&a.appeals.Sort, "sort", a.appeals.Sort, "")
	}
	// The search filters; user and message take them too, and then show
	// the matching events, decisions and actions instead of everything.
	if search[a.what] || a.what == "user" || a.what == "message" {
		if a.what != "user" {
			fs.StringVar(&a.filter.UserID, "user", "", "")
		}
		if a.what != "message" {
			fs.StringVar(&a.filter.MessageID, "message", "", "")
		}
		fs.StringVar(&a.filter.ChannelCID, "channel", "", "")
		fs.StringVar(&a.filter.RuleID, "rule", "", "")
		fs.StringVar(&outcome, "outcome", "", "")
		if a.what == "events" {
			fs.StringVar(&a.filter.EventType, "type", "", "")
		} else {
			fs.StringVar(&a.filter.ActionType, "type", "", "")
			fs.StringVar(&a.filter.EventType, "event-type", "", "")
		}
	}
	a.around = 5
	if a.what == "decision" || a.what == "appeal" {
		fs.IntVar(&a.around, "around", 5, "")
	}
	positional, err := parseInterleaved(fs, args)
	if err != nil {
		return a, err
	}
	switch {
	case withID[a.what] && len(positional) == 0:
		return a, fmt.Errorf("%s: the %s id is required (moderator audit %s ID)", a.what, a.what, a.what)
	case withID[a.what] && len(positional) > 1, !withID[a.what] && len(positional) > 0:
		return a, fmt.Errorf("%s: unexpected argument %q", a.what, positional[len(positional)-1])
	}
	if withID[a.what] {
		a.id = positional[0]
	}
	return a, a.check(outcome)
}

// parseInterleaved parses fs's flags before and after the positional
// arguments (an ID), and returns those.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errors.New(strings.NewReplacer("flag -", "flag --", "defined: -", "defined: --").Replace(err.Error()))
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// check validates the parsed values together, naming the flag at fault,
// and sets the outcome filter.
func (a *auditArgs) check(outcome string) error {
	if outcome != "" && !slices.Contains(store.FilterOutcomes, outcome) {
		return fmt.Errorf("--outcome: want one of %s, got %q", strings.Join(store.FilterOutcomes, ", "), outcome)
	}
	a.filter.Outcome = outcome
	if a.filter.Limit < 0 || a.filter.Limit > store.MaxPageSize {
		return fmt.Errorf("--limit: want 1 to %d, got %d", store.MaxPageSize, a.filter.Limit)
	}
	if a.around < 0 || a.around > store.MaxContext {
		return fmt.Errorf("--around: want 0 to %d, got %d", store.MaxContext, a.around)
	}
	if !a.filter.From.IsZero() && !a.filter.To.IsZero() && !a.filter.From.Before(a.filter.To) {
		return errors.New("--since must be before --until")
	}
	if a.what == "user" && a.filtered() && a.filter.Cursor != "" {
		return errors.New("--cursor pages the whole timeline; with filters, page with audit events|decisions|actions --user ID")
	}
	if a.what == "decision" || a.what == "appeal" || a.what == "statement" {
		if n, err := strconv.ParseInt(a.id, 10, 64); err != nil || n <= 0 {
			return fmt.Errorf("%s: the id must be a positive number, got %q", a.what, a.id)
		}
	}
	if a.what == "appeals" {
		return a.appealFilter()
	}
	return nil
}

// filtered reports whether a search filter beyond the id and the time
// range was given.
func (a *auditArgs) filtered() bool {
	f := a.filter
	return f.ChannelCID != "" || f.RuleID != "" || f.ActionType != "" || f.EventType != "" || f.Outcome != "" ||
		(a.what == "user" && f.MessageID != "") || (a.what == "message" && f.UserID != "")
}

// runAudit is `moderator audit …`: it reads the audit trail and prints it,
// and records the read in the staff audit log.
func runAudit(ctx context.Context, args []string, getenv func(string) string, now time.Time, stdout, stderr io.Writer) error {
	a, err := parseAuditArgs(args, now)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, auditUsage)
		return err
	}
	if err != nil {
		fmt.Fprintln(stderr, "moderator audit:", err)
		return errUsage
	}
	st, user, err := openCLIStore(ctx, getenv, a.databaseURL, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	if a.what == "rules" {
		a.inForce = rulesInForce(a.rulesDir, getenv, stderr)
	}
	act := store.StaffAct{Actor: "cli:" + user, Role: "cli", Params: auditParams(a)}
	out, show, err := readAudit(ctx, st, a, &act)
	if err != nil {
		return auditError(err)
	}
	// The read is recorded before anything is shown.
	if err := st.RecordStaffAct(ctx, act); err != nil {
		return err
	}
	if a.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	show(stdout)
	return nil
}

// readAudit reads what a asks for, and names the read in act: what it
// returns and how to show it.
func readAudit(ctx context.Context, st *store.Store, a auditArgs, act *store.StaffAct) (out any, show func(io.Writer), err error) {
	switch {
	case a.what == "user" && a.filtered(), a.what == "message":
		var m messageHistory
		f := a.filter
		title := "message " + clean(a.id)
		act.Act = store.ActSearch
		if a.what == "user" {
			f.UserID, title, act.TargetUserID = a.id, "user "+clean(a.id)+", filtered", a.id
		} else {
			f.MessageID, act.Target = a.id, "message:"+a.id
		}
		if m.Events, err = st.SearchEvents(ctx, f); err == nil {
			if m.Decisions, err = st.SearchDecisions(ctx, f); err == nil {
				m.Actions, err = st.SearchActions(ctx, f)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		out, show = m, func(w io.Writer) { printMessage(w, title, m) }
	}
	switch a.what {
	case "user":
		if a.filtered() {
			break
		}
		p, err := st.Timeline(ctx, a.id, a.filter)
		if err != nil {
			return nil, nil, err
		}
		act.Act, act.TargetUserID = store.ActTimeline, a.id
		out, show = p, func(w io.Writer) { printTimeline(w, a.id, p) }
	case "decision", "appeal", "statement":
		return readRecord(ctx, st, a, act)
	case "events", "decisions", "actions":
		switch a.what {
		case "events":
			out, show, err = searchPage(ctx, st.SearchEvents, a.filter, printEvents)
		case "decisions":
			out, show, err = searchPage(ctx, st.SearchDecisions, a.filter, printDecisions)
		case "actions":
			out, show, err = searchPage(ctx, st.SearchActions, a.filter, printActions)
		}
		if err != nil {
			return nil, nil, err
		}
		act.Act, act.TargetUserID = store.ActSearch, a.filter.UserID
	case "rules":
		stats, err := st.RuleStats(ctx, a.filter.From, a.filter.To)
		if err != nil {
			return nil, nil, err
		}
		ids := make([]string, len(a.inForce))
		modes := map[string]policy.Mode{}
		for i, info := range a.inForce {
			ids[i], modes[info.ID] = info.ID, info.Mode
		}
		stats = store.WithIdleRules(stats, ids)
		act.Act = store.ActRuleStats
		out, show = stats, func(w io.Writer) { printRuleStats(w, stats, modes) }
	case "appeals":
		p, err := st.ListAppeals(ctx, a.appeals)
		if err != nil {
			return nil, nil, err
		}
		act.Act, act.TargetUserID = store.ActListAppeals, a.appeals.UserID
		now := time.Now()
		out, show = p, func(w io.Writer) { printAppeals(w, p, now) }
	case "quarantine":
		if out, show, err = searchPage(ctx, st.Quarantine, a.filter, printQuarantine); err != nil {
			return nil, nil, err
		}
		act.Act = store.ActSearch
	}
	return out, show, nil
}

// readRecord reads the one record a names by its id (a decision, an
// appeal, a decision's statement of reasons), and names the read in act.
func readRecord(ctx context.Context, st *store.Store, a auditArgs, act *store.StaffAct) (out any, show func(io.Writer), err error) {
	id, _ := strconv.ParseInt(a.id, 10, 64)
	switch a.what {
	case "decision":
		ev, err := st.DecisionEvidence(ctx, id, a.around)
		if err != nil {
			return nil, nil, err
		}
		act.Act, act.Target, act.TargetUserID = store.ActViewDecision, "decision:"+a.id, ev.Decision.UserID
		return ev, func(w io.Writer) { printEvidence(w, ev) }, nil
	case "appeal":
		v, err := readAppealView(ctx, st, id, a.around)
		if err != nil {
			return nil, nil, err
		}
		act.Act, act.Target, act.TargetUserID = store.ActViewAppeal, "appeal:"+a.id, v.Appeal.UserID
		return v, func(w io.Writer) { printAppeal(w, v) }, nil
	default: // statement
		ev, err := st.DecisionEvidence(ctx, id, 0)
		if err != nil {
			return nil, nil, err
		}
		s, err := statement.New(ev)
		if err != nil {
			return nil, nil, err
		}
		act.Act, act.Target, act.TargetUserID = store.ActViewStatement, "decision:"+a.id, ev.Decision.UserID
		return s, func(w io.Writer) { fmt.Fprint(w, s.Text) }, nil
	}
}

// rulesInForce loads the rules folder dir (default the configured one),
// whose rules `audit rules` lists even if they never matched. A folder
// that does not load is said on stderr, and only the rules with figures
// are listed.
func rulesInForce(dir string, getenv func(string) string, stderr io.Writer) []policy.RuleInfo {
	if dir == "" {
		cfg, err := loadConfig("audit", nil, getenv, io.Discard)
		if err != nil {
			return nil
		}
		dir = cfg.RulesDir
	}
	rs, err := loadRulesDir(dir, policy.Load)
	if err != nil {
		fmt.Fprintf(stderr, "moderator audit: rules folder %s not loaded, so rules that never matched are not listed: %s\n",
			clean(dir), clean(strings.ReplaceAll(err.Error(), "\n", "; ")))
		return nil
	}
	return rs.Rules()
}

// openCLIStore opens the database of a command staff run from a terminal
// (DATABASE_URL, or databaseURL when given) and says who runs it ($USER),
// for the staff audit log.
func openCLIStore(ctx context.Context, getenv func(string) string, databaseURL string, stderr io.Writer) (*store.Store, string, error) {
	cfg, err := loadConfig("audit", nil, getenv, stderr)
	if err == nil && databaseURL != "" {
		cfg.DatabaseURL = databaseURL
		err = cfg.validate()
	}
	if err != nil {
		return nil, "", err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, "", err
	}
	user := strings.TrimSpace(getenv("USER"))
	if user == "" {
		user = "unknown"
	}
	return st, user, nil
}

// searchPage runs one of the store's searches and returns its page and how
// to show it.
func searchPage[T any](ctx context.Context, search func(context.Context, store.AuditFilter) (store.Page[T], error),
	f store.AuditFilter, print func(io.Writer, []T)) (any, func(io.Writer), error) {
	p, err := search(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	return p, func(w io.Writer) { print(w, p.Items); printNext(w, p.NextCursor) }, nil
}

// auditError says what a store error means at the terminal.
func auditError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errors.New("audit: " + err.Error())
	case errors.Is(err, store.ErrBadCursor):
		return errors.New("audit: --cursor: not a cursor this list gave")
	}
	return fmt.Errorf("audit: %w", err)
}

// auditParams is what the staff audit row keeps of the command.
func auditParams(a auditArgs) map[string]any {
	p := a.filter.Params()
	p["what"] = a.what
	if a.id != "" {
		p["id"] = a.id
	}
	return p
}

// messageHistory is everything recorded about one message.
type messageHistory struct {
	Events    store.Page[store.EventSummary]    `json:"events"`
	Decisions store.Page[store.DecisionSummary] `json:"decisions"`
	Actions   store.Page[store.ActionDetail]    `json:"actions"`
}

// clean makes text from chat users safe for a terminal: control and other
// invisible characters are shown escaped, never sent to the terminal.
func clean(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) || r == unicode.ReplacementChar }) < 0 {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// quoteText shows a message's text: quoted, escaped, cut at n runes.
func quoteText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return strconv.QuoteToGraphic(s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// row writes one line of cells to a table, leaving out trailing empty
// cells so that no line ends in padding.
func row(tw io.Writer, cells ...string) {
	for len(cells) > 1 && cells[len(cells)-1] == "" {
		cells = cells[:len(cells)-1]
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

func printNext(w io.Writer, cursor string) {
	if cursor != "" {
		fmt.Fprintf(w, "\nmore: --cursor %s\n", cursor)
	}
}

func printTimeline(w io.Writer, user string, p store.Page[store.TimelineEntry]) {
	fmt.Fprintf(w, "timeline of %s, newest first\n\n", clean(user))
	if len(p.Items) == 0 {
		fmt.Fprintln(w, "nothing recorded")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "TIME\tKIND\tID\tTYPE\tRULES\tSTATUS\tCHANNEL\tMESSAGE\tDETAIL")
	for _, e := range p.Items {
		detail := ""
		if e.Text != "" {
			detail = quoteText(e.Text, 60)
		}
		if e.Actor != "" {
			detail = strings.TrimSpace(detail + " by " + clean(e.Actor))
		}
		row(tw, stamp(e.At), e.Kind, strconv.FormatInt(e.ID, 10), dash(e.Type), dash(strings.Join(e.RuleIDs, ",")),
			dash(e.Status), dash(e.ChannelCID), dash(e.MessageID), detail)
	}
	tw.Flush()
	printNext(w, p.NextCursor)
}

// printMessage shows the events, decisions and actions of a message (or of
// a user, filtered) under title.
func printMessage(w io.Writer, title string, m messageHistory) {
	fmt.Fprintf(w, "%s\n\nEVENTS\n", title)
	printEvents(w, m.Events.Items)
	fmt.Fprintln(w, "\nDECISIONS")
	printDecisions(w, m.Decisions.Items)
	fmt.Fprintln(w, "\nACTIONS")
	printActions(w, m.Actions.Items)
}

func printEvents(w io.Writer, evs []store.EventSummary) {
	if len(evs) == 0 {
		fmt.Fprintln(w, "none")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "RECEIVED\tID\tTYPE\tUSER\tCHANNEL\tMESSAGE\tDECISION\tRULES\tTEXT")
	for _, e := range evs {
		dec := "-"
		if e.DecisionID != 0 {
			dec = strconv.FormatInt(e.DecisionID, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", stamp(e.ReceivedAt), e.ID, clean(e.Type), dash(e.UserID),
			dash(e.ChannelCID), dash(e.MessageID), dec, dash(strings.Join(e.MatchedRules, ",")), quoteText(e.Text, 50))
	}
	tw.Flush()
}

func printQuarantine(w io.Writer, qs []store.Quarantined) {
	if len(qs) == 0 {
		fmt.Fprintln(w, "none")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "QUARANTINED\tID\tWEBHOOK\tTYPE\tBYTES\tSQLSTATE\tERROR")
	for _, q := range qs {
		webhook := "-"
		if q.WebhookID != "" {
			webhook = quoteText(q.WebhookID, 40)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\t%s\n", stamp(q.QuarantinedAt), q.ID, webhook,
			dash(q.EventType), q.BodyBytes, dash(q.SQLState), quoteText(q.Error, 80))
	}
	tw.Flush()
}

func printDecisions(w io.Writer, ds []store.DecisionSummary) {
	if len(ds) == 0 {
		fmt.Fprintln(w, "none")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "DECIDED\tID\tEVENT\tUSER\tCHANNEL\tMESSAGE\tMATCHED\tENFORCED\tACTIONS\tRULE SET")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", stamp(d.DecidedAt), d.ID, d.EventID, dash(d.UserID),
			dash(d.ChannelCID), dash(d.MessageID), dash(strings.Join(d.MatchedRules, ",")),
			dash(strings.Join(d.EnforcedRules, ",")), dash(decisionActions(d)), clean(d.RuleSetVersion))
	}
	tw.Flush()
}

// decisionActions lists what a decision asked for, then what its shadow
// rules would have asked for, marked: "ban,mute (shadow)".
func decisionActions(d store.DecisionSummary) string {
	list := slices.Clone(d.ActionTypes)
	for _, t := range d.ShadowActionTypes {
		list = append(list, t+" (shadow)")
	}
	return strings.Join(list, ",")
}

func printActions(w io.Writer, as []store.ActionDetail) {
	if len(as) == 0 {
		fmt.Fprintln(w, "none")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "CREATED\tID\tTYPE\tRULE\tUSER\tCHANNEL\tMESSAGE\tSTATUS\tATTEMPTS\tOVERTURN")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", stamp(a.CreatedAt), a.ID, clean(a.Type), clean(a.RuleID),
			dash(a.TargetUserID), dash(a.ChannelCID), dash(a.MessageID), clean(a.Status), len(a.Attempts), reversal(a))
	}
	tw.Flush()
}

// reversal sums up how an action was overturned, or what it reverses.
func reversal(a store.ActionDetail) string {
	switch r := a.Reversal; {
	case a.ReversesActionID != 0:
		return fmt.Sprintf("reverses #%d", a.ReversesActionID)
	case r == nil:
		return "-"
	case r.ReversalActionID != 0:
		return fmt.Sprintf("#%d by %s: %s #%d %s", r.OverturnID, clean(r.Reviewer), clean(r.ReversalType), r.ReversalActionID, clean(r.ReversalStatus))
	default:
		return fmt.Sprintf("#%d by %s: %s", r.OverturnID, clean(r.Reviewer), clean(r.Disposition))
	}
}

func printEvidence(w io.Writer, ev store.Evidence) {
	d, e := ev.Decision, ev.Event
	fmt.Fprintf(w, "decision  %d, %s, rule set %s\n", d.ID, stamp(d.DecidedAt), clean(ev.RuleSetVersion))
	fmt.Fprintf(w, "event     %d %s, received %s\n", e.ID, clean(e.Type), stamp(e.ReceivedAt))
	fmt.Fprintf(w, "user      %s  channel %s  message %s\n", dash(e.UserID), dash(e.ChannelCID), dash(e.MessageID))
	if e.Text != "" {
		fmt.Fprintf(w, "text      %s\n", quoteText(e.Text, 200))
	}
	for _, m := range ev.Matches {
		fmt.Fprintf(w, "\nMATCH  %s (%s, %s)\n", clean(m.RuleID), m.Mode, dash(m.Source))
		if m.When != "" {
			fmt.Fprintf(w, "  when      %s\n", clean(m.When))
		}
		if m.Reason != "" {
			fmt.Fprintf(w, "  reason    %s\n", clean(m.Reason))
		}
		keys := make([]string, 0, len(m.Evidence))
		for k := range m.Evidence {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			label := "  evidence  "
			if i > 0 {
				label = "            "
			}
			v, _ := json.Marshal(m.Evidence[k])
			fmt.Fprintf(w, "%s%s = %s\n", label, clean(k), clean(string(v)))
		}
		for i, a := range m.Actions {
			label := "  actions   "
			if i > 0 {
				label = "            "
			}
			fmt.Fprintf(w, "%s%s\n", label, clean(a.String()))
		}
	}
	for _, re := range ev.Errors {
		fmt.Fprintf(w, "\nERROR  %s: %s\n", dash(re.RuleID), clean(re.Error))
	}
	fmt.Fprintln(w, "\nACTIONS")
	printActions(w, ev.Actions)
	for _, a := range ev.Actions {
		for _, at := range a.Attempts {
			status := "no answer"
			if at.HTTPStatus != 0 {
				status = strconv.Itoa(at.HTTPStatus)
			}
			line := fmt.Sprintf("  #%d attempt %d  %s  %s  %.1fms", a.ID, at.Attempt, clean(at.Endpoint), status, at.DurationMS)
			if at.Error != "" {
				line += "  " + quoteText(at.Error, 80)
			}
			fmt.Fprintln(w, line)
		}
		if r := a.Reversal; r != nil {
			fmt.Fprintf(w, "  #%d overturned %s by %s: %s\n", a.ID, stamp(r.At), clean(r.Reviewer), quoteText(r.Reason, 80))
		}
	}
	if len(ev.Appeals) > 0 {
		fmt.Fprintln(w, "\nAPPEALS")
		for _, ap := range ev.Appeals {
			fmt.Fprintf(w, "  #%d %s  %s  %s via %s: %s\n", ap.ID, ap.Status, stamp(ap.CreatedAt), clean(ap.UserID), clean(ap.Source), quoteText(ap.Statement, 80))
		}
	}
	c := ev.Context
	if c.Scope == "" {
		return
	}
	fmt.Fprintf(w, "\nCONVERSATION (%s, %d before, %d after)\n", c.Scope, len(c.Before), len(c.After))
	tw := table(w)
	line := func(mark string, m store.ContextMessage) {
		rules := ""
		if len(m.MatchedRules) > 0 {
			rules = "[" + strings.Join(m.MatchedRules, ",") + "]"
		}
		row(tw, mark+" "+stamp(m.ReceivedAt), dash(m.MessageID), dash(m.UserID), quoteText(m.Text, 80), clean(rules))
	}
	if c.Parent != nil {
		line("^", *c.Parent)
	}
	for _, m := range c.Before {
		line(" ", m)
	}
	line(">", store.ContextMessage{ReceivedAt: e.ReceivedAt, MessageID: e.MessageID, UserID: e.UserID, Text: e.Text, MatchedRules: e.MatchedRules})
	for _, m := range c.After {
		line(" ", m)
	}
	tw.Flush()
}

// printRuleStats shows each rule's figures, its mode in the rules folder
// ("-" for a rule no longer in it), what it did and what its shadow
// matches would have done.
func printRuleStats(w io.Writer, stats []store.RuleStat, modes map[string]policy.Mode) {
	if len(stats) == 0 {
		fmt.Fprintln(w, "no rule matched in the period")
		return
	}
	tw := table(w)
	fmt.Fprintln(tw, "RULE\tMODE\tENFORCE\tSHADOW\tERRORS\tACTIONS\tTAKEN\tOVERTURNED\tRATE\tSUPPRESSED\tFAILED\tPENDING\tDID\tSHADOW WOULD")
	for _, s := range stats {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f%%\t%d\t%d\t%d\t%s\t%s\n", clean(s.RuleID), dash(string(modes[s.RuleID])),
			s.EnforceMatches, s.ShadowMatches, s.Errors, s.Actions, s.Taken, s.Overturned, 100*s.OverturnRate, s.Suppressed, s.Failed,
			s.Pending, dash(s.Did), dash(s.Would))
	}
	tw.Flush()
}
