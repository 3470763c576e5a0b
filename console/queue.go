package console

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"moderator/store"
)

// queueFilter is the queue's filter form, as the URL's query carries it.
type queueFilter struct {
	Status     string // pending (default), upheld, overturned, all
	Sort       string // oldest (default), newest
	RuleID     string
	ActionType string
	OlderThan  string // "", 1h, 24h, 7d
	Cursor     string
}

var (
	queueStatuses    = []string{"pending", "upheld", "overturned", "all"}
	queueSorts       = []string{store.SortOldest, store.SortNewest}
	queueActionTypes = []string{"flag", "mute", "ban", "delete", "warn"}
	queueAges        = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}
)

// readQueueFilter reads the filters; an unknown value is a 400 naming it.
func readQueueFilter(q url.Values) (queueFilter, error) {
	f := queueFilter{
		Status: cmp.Or(q.Get("status"), "pending"), Sort: cmp.Or(q.Get("sort"), store.SortOldest),
		RuleID: strings.TrimSpace(q.Get("rule")), ActionType: q.Get("action_type"), OlderThan: q.Get("older_than"),
		Cursor: q.Get("cursor"),
	}
	bad := func(field, msg string) error {
		return &httpError{status: http.StatusBadRequest, msg: field + ": " + msg}
	}
	switch {
	case !slices.Contains(queueStatuses, f.Status):
		return f, bad("status", "must be pending, upheld, overturned or all")
	case !slices.Contains(queueSorts, f.Sort):
		return f, bad("sort", "must be oldest or newest")
	case f.ActionType != "" && !slices.Contains(queueActionTypes, f.ActionType):
		return f, bad("action_type", "must be flag, mute, ban, delete or warn")
	case f.OlderThan != "" && queueAges[f.OlderThan] == 0:
		return f, bad("older_than", "must be 1h, 24h or 7d")
	case len(f.RuleID) > 255 || strings.ContainsFunc(f.RuleID, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return f, bad("rule", "must be a rule id (at most 255 characters, no control characters)")
	case len(f.Cursor) > 256:
		return f, bad("cursor", "is not a page link of this queue")
	}
	return f, nil
}

func (f queueFilter) store(now time.Time) store.AppealFilter {
	out := store.AppealFilter{Status: f.Status, Sort: f.Sort, RuleID: f.RuleID, ActionType: f.ActionType, Cursor: f.Cursor, Limit: 50}
	if f.Status == "all" {
		out.Status = ""
	}
	if d := queueAges[f.OlderThan]; d > 0 {
		out.To = now.Add(-d)
	}
	return out
}

// query is the filter as a query string, without the cursor: the queue's
// own URL, which the forms on it come back to.
func (f queueFilter) query() string {
	v := url.Values{}
	v.Set("status", f.Status)
	v.Set("sort", f.Sort)
	for k, val := range map[string]string{"rule": f.RuleID, "action_type": f.ActionType, "older_than": f.OlderThan} {
		if val != "" {
			v.Set(k, val)
		}
	}
	return v.Encode()
}

type queuePage struct {
	basePage
	Filter      queueFilter
	Statuses    []string
	ActionTypes []string
	Ages        []string
	Stats       store.AppealQueue
	OldestAge   string
	Rows        []queueRow
	NextURL     string
	Back        string // this page's URL, for the forms' redirect
}

// queueRow is one appeal in the queue.
type queueRow struct {
	store.Appeal
	Age       string
	Mine      bool
	CanDecide bool
	CSRF      string
	Prefix    string
	Back      string
}

func (c *Console) queue(w http.ResponseWriter, r *http.Request) error {
	f, err := readQueueFilter(r.URL.Query())
	if err != nil {
		return err
	}
	now := c.now()
	sf := f.store(now)
	page, err := c.store.ListAppeals(r.Context(), sf)
	if err != nil {
		return err
	}
	stats, err := c.store.AppealQueueStats(r.Context())
	if err != nil {
		return err
	}
	params := map[string]any{"status": f.Status, "sort": f.Sort, "screen": "queue"}
	for k, v := range map[string]string{"rule_id": f.RuleID, "action_type": f.ActionType, "older_than": f.OlderThan, "cursor": f.Cursor} {
		if v != "" {
			params[k] = v
		}
	}
	if err := c.record(r, store.StaffAct{Act: store.ActListAppeals, Params: params}); err != nil {
		return err
	}
	p := queuePage{basePage: c.base(r, "Appeals"), Filter: f, Statuses: queueStatuses, ActionTypes: queueActionTypes,
		Ages: []string{"1h", "24h", "7d"}, Stats: stats, Back: Prefix + "/appeals?" + f.query()}
	if !stats.OldestPending.IsZero() {
		p.OldestAge = ago(now, stats.OldestPending)
	}
	for _, a := range page.Items {
		p.Rows = append(p.Rows, c.row(r, a, now, p.Back))
	}
	if page.NextCursor != "" {
		p.NextURL = p.Back + "&cursor=" + url.QueryEscape(page.NextCursor)
	}
	c.render(w, r, http.StatusOK, "queue", p)
	return nil
}

func (c *Console) row(r *http.Request, a store.Appeal, now time.Time, back string) queueRow {
	b := c.base(r, "")
	return queueRow{Appeal: a, Age: ago(now, a.CreatedAt), Mine: a.AssignedTo != "" && a.AssignedTo == b.Subject,
		CanDecide: b.CanDecide, CSRF: b.CSRF, Prefix: Prefix, Back: back}
}

// assign answers the claim, release and assign forms: the queue row
// again for htmx, else back to the page the form was on.
func (c *Console) assign(act string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		sess := sessionFrom(r.Context())
		assignee := ""
		if act == store.AssignAssign {
			assignee = strings.TrimSpace(r.PostForm.Get("assignee"))
			if assignee == "" {
				return &httpError{status: http.StatusBadRequest, msg: "assignee: name the reviewer to assign it to."}
			}
		}
		a, err := c.store.AssignAppeal(r.Context(), id, act, assignee, sess.Subject,
			store.StaffAct{Role: sess.Role, Params: map[string]any{"appeal_id": id, "assignee": assignee, "via": "console"}})
		if err != nil {
			return err
		}
		back := safeBack(r.PostForm.Get("back"))
		if r.Header.Get("HX-Request") == "true" && r.PostForm.Get("fragment") == "row" {
			c.renderFragment(w, r, "queue", "row", c.row(r, a, c.now(), back))
			return nil
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
		return nil
	}
}

// safeBack returns the console page a form says to go back to, or the
// queue: never a URL outside the console.
func safeBack(s string) string {
	if strings.HasPrefix(s, Prefix+"/") && !strings.HasPrefix(s, "//") && !strings.ContainsAny(s, "\\\r\n") {
		return s
	}
	return Prefix + "/appeals"
}

// pathID reads the {id} of the path: a positive whole number.
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, &httpError{status: http.StatusNotFound, msg: "There is no such appeal."}
	}
	return id, nil
}
