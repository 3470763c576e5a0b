package console

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"moderator/policy"
	"moderator/store"
)

// ActPlayground is the staff act of trying the rules on a message.
const ActPlayground = "playground"

// maxPlaygroundText bounds the text pasted into the playground.
const maxPlaygroundText = 10000

// playgroundPage is the playground's form and, once submitted, what the
// live rules decide.
type playgroundPage struct {
	basePage
	Text, UserID, ChannelCID, Phase, EventID string
	AccountAge                               string
	Tried                                    bool
	RuleSetVersion                           string
	Decision                                 *policy.Decision
	Event                                    *store.EventSnapshot // a stored event tried again
	Error                                    string
}

// playground shows the form (GET) and evaluates a pasted message, or a
// stored event, with the rules in force (POST). Nothing is recorded but
// the staff act, and nothing is sent: history values (counters, strikes)
// read 0 here.
func (c *Console) playground(w http.ResponseWriter, r *http.Request) error {
	if c.rules == nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "The rule set is not available in this deployment."}
	}
	p := playgroundPage{basePage: c.base(r, "Playground"), Phase: "message.new", UserID: "playground-user",
		ChannelCID: "messaging:playground", AccountAge: "720h"}
	if r.Method == http.MethodGet {
		c.render(w, r, http.StatusOK, "playground", p)
		return nil
	}
	f := r.PostForm
	p.Text, p.EventID = f.Get("text"), strings.TrimSpace(f.Get("event_id"))
	p.UserID, p.ChannelCID = cmp.Or(strings.TrimSpace(f.Get("user_id")), p.UserID), cmp.Or(strings.TrimSpace(f.Get("channel_cid")), p.ChannelCID)
	p.Phase, p.AccountAge = cmp.Or(f.Get("phase"), p.Phase), cmp.Or(strings.TrimSpace(f.Get("account_age")), p.AccountAge)
	ev, err := c.playgroundEvent(r, &p)
	if err != nil {
		p.Error = err.Error()
		c.render(w, r, http.StatusBadRequest, "playground", p)
		return nil
	}
	rs := c.rules.Live()
	if rs == nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "No rule set is loaded yet."}
	}
	params := map[string]any{"phase": p.Phase, "text_chars": utf8.RuneCountInString(p.Text)}
	if p.EventID != "" {
		params["event_id"] = p.EventID
	}
	if err := c.record(r, store.StaffAct{Act: ActPlayground, Params: params}); err != nil {
		return err
	}
	d := rs.EvaluateWith(ev, nil)
	p.Tried, p.Decision, p.RuleSetVersion = true, &d, rs.Version()
	c.render(w, r, http.StatusOK, "playground", p)
	return nil
}

// playgroundEvent builds the event to try: the stored event named by
// event_id, or a message with the pasted text.
func (c *Console) playgroundEvent(r *http.Request, p *playgroundPage) (*policy.Event, error) {
	var body []byte
	if p.EventID != "" {
		id, err := strconv.ParseInt(p.EventID, 10, 64)
		if err != nil || id <= 0 {
			return nil, errField("event_id", "must be an event's number")
		}
		snap, err := c.store.Event(r.Context(), id)
		if err != nil {
			return nil, err
		}
		p.Event, body = &snap, snap.Payload
	} else {
		switch {
		case strings.TrimSpace(p.Text) == "":
			return nil, errField("text", "paste a message, or give a stored event's number")
		case utf8.RuneCountInString(p.Text) > maxPlaygroundText:
			return nil, errField("text", "at most 10,000 characters")
		case !utf8.ValidString(p.Text):
			return nil, errField("text", "must be text (UTF-8)")
		case p.Phase != "message.new" && p.Phase != policy.EventBeforeSend:
			return nil, errField("phase", "must be message.new or before_send")
		}
		age, err := policy.ParseDuration(p.AccountAge)
		if err != nil || age < 0 {
			return nil, errField("account_age", "a duration such as 3h, 2d or 720h")
		}
		created := time.Now().Add(-age).UTC().Format(time.RFC3339)
		body, _ = json.Marshal(map[string]any{"type": "message.new", "cid": p.ChannelCID, "created_at": time.Now().UTC().Format(time.RFC3339),
			"message": map[string]any{"id": "playground", "text": p.Text, "user": map[string]any{"id": p.UserID}},
			"user":    map[string]any{"id": p.UserID, "created_at": created}})
	}
	ev, err := policy.ParseEvent(body)
	if err != nil {
		return nil, errField("event", err.Error())
	}
	if p.EventID == "" && p.Phase == policy.EventBeforeSend {
		ev.Type = policy.EventBeforeSend
	}
	return ev, nil
}

type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func errField(field, msg string) error { return &fieldError{field, msg} }
