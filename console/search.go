package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"moderator/store"
)

// searchKinds are the lists the search screen searches.
var searchKinds = []string{"events", "decisions", "actions"}

// searchForm is the search screen's form, as the URL's query carries it.
type searchForm struct {
	Kind                                                                        string
	Text, UserID, MessageID, ChannelCID, RuleID, EventType, ActionType, Outcome string
	From, To                                                                    string // datetime-local (UTC) or RFC 3339
	Cursor                                                                      string
}

// searchPage is the search screen with its results.
type searchPage struct {
	basePage
	Form        searchForm
	Kinds       []string
	ActionTypes []string
	Outcomes    []string
	Searched    bool
	Events      []store.EventSummary
	Decisions   []store.DecisionSummary
	Actions     []store.ActionDetail
	NextURL     string
}

// readSearch reads and checks the form; a bad value is a 400 naming it.
func readSearch(q url.Values) (searchForm, store.AuditFilter, error) {
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	sf := searchForm{Kind: get("kind"), Text: get("text"), UserID: get("user_id"), MessageID: get("message_id"),
		ChannelCID: get("channel_cid"), RuleID: get("rule_id"), EventType: get("event_type"), ActionType: get("action_type"),
		Outcome: get("outcome"), From: get("from"), To: get("to"), Cursor: q.Get("cursor")}
	if sf.Kind == "" {
		sf.Kind = "events"
	}
	f := store.AuditFilter{UserID: sf.UserID, MessageID: sf.MessageID, ChannelCID: sf.ChannelCID, RuleID: sf.RuleID,
		EventType: sf.EventType, ActionType: sf.ActionType, Outcome: sf.Outcome, Text: sf.Text, Cursor: sf.Cursor, Limit: 50}
	bad := func(field, msg string) error {
		return &httpError{status: http.StatusBadRequest, msg: field + ": " + msg}
	}
	switch {
	case !slices.Contains(searchKinds, sf.Kind):
		return sf, f, bad("kind", "must be events, decisions or actions")
	case sf.ActionType != "" && !slices.Contains(queueActionTypes, sf.ActionType) && !slices.Contains(reversalTypes, sf.ActionType):
		return sf, f, bad("action_type", "is not an action type")
	case sf.Outcome != "" && !slices.Contains(store.FilterOutcomes, sf.Outcome):
		return sf, f, bad("outcome", "is not an outcome")
	case utf8.RuneCountInString(sf.Text) > 200:
		return sf, f, bad("text", "at most 200 characters")
	case sf.Text != "" && sf.Kind != "events":
		return sf, f, bad("text", "searches the messages' words: choose events")
	case len(sf.Cursor) > 256:
		return sf, f, bad("cursor", "is not a page link of this search")
	}
	for field, v := range map[string]string{"user_id": sf.UserID, "message_id": sf.MessageID, "channel_cid": sf.ChannelCID,
		"rule_id": sf.RuleID, "event_type": sf.EventType} {
		if len(v) > maxIDBytes || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return sf, f, bad(field, "must be an id: at most 255 bytes, no control characters")
		}
	}
	var err error
	if f.From, err = formTime(sf.From); err != nil {
		return sf, f, bad("from", err.Error())
	}
	if f.To, err = formTime(sf.To); err != nil {
		return sf, f, bad("to", err.Error())
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return sf, f, bad("from", "must be before to")
	}
	return sf, f, nil
}

// reversalTypes are the action types of reversals, which the action
// search also filters by.
var reversalTypes = []string{"unflag", "unmute", "unban", "undelete", "unwarn"}

// formTime reads a time from a form: a datetime-local value (taken as
// UTC) or RFC 3339; "" is no bound.
func formTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errBadTime
}

var errBadTime = errors.New("want a date and time such as 2026-11-24T12:00 (UTC)")

// query is the form as a query string, without the cursor.
func (sf searchForm) query() string {
	v := url.Values{}
	for k, val := range map[string]string{"kind": sf.Kind, "text": sf.Text, "user_id": sf.UserID, "message_id": sf.MessageID,
		"channel_cid": sf.ChannelCID, "rule_id": sf.RuleID, "event_type": sf.EventType, "action_type": sf.ActionType,
		"outcome": sf.Outcome, "from": sf.From, "to": sf.To} {
		if val != "" {
			v.Set(k, val)
		}
	}
	return v.Encode()
}

func (c *Console) search(w http.ResponseWriter, r *http.Request) error {
	sf, f, err := readSearch(r.URL.Query())
	if err != nil {
		return err
	}
	p := searchPage{basePage: c.base(r, "Search"), Form: sf, Kinds: searchKinds,
		ActionTypes: append(slices.Clone(queueActionTypes), reversalTypes...), Outcomes: store.FilterOutcomes}
	p.Searched = len(r.URL.Query()) > 0
	if !p.Searched {
		c.render(w, r, http.StatusOK, "search", p)
		return nil
	}
	var next string
	switch sf.Kind {
	case "events":
		page, err := c.store.SearchEvents(r.Context(), f)
		if err != nil {
			return err
		}
		p.Events, next = page.Items, page.NextCursor
	case "decisions":
		page, err := c.store.SearchDecisions(r.Context(), f)
		if err != nil {
			return err
		}
		p.Decisions, next = page.Items, page.NextCursor
	case "actions":
		page, err := c.store.SearchActions(r.Context(), f)
		if err != nil {
			return err
		}
		p.Actions, next = page.Items, page.NextCursor
	}
	params := f.Params()
	params["list"], params["screen"] = sf.Kind, "search"
	if err := c.record(r, store.StaffAct{Act: store.ActSearch, TargetUserID: f.UserID, Params: params}); err != nil {
		return err
	}
	if next != "" {
		p.NextURL = Prefix + "/search?" + sf.query() + "&cursor=" + url.QueryEscape(next)
	}
	c.render(w, r, http.StatusOK, "search", p)
	return nil
}
