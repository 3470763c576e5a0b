package appeals

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"moderator/store"
)

// invalidValues are values each query parameter must refuse with a 400
// naming it. A parameter the spec adds must be given some here.
var invalidValues = map[string][]string{
	"user_id":     {"a b", "' OR 1=1 --", strings.Repeat("u", 256), "ü", "a\x00b", "a/b"},
	"message_id":  {"m;1", "m 1", strings.Repeat("m", 256), "%"},
	"channel_cid": {"general", "a:b:c", ":general", "messaging:", "messaging:gen eral"},
	"rule_id":     {"Upper", "rule id", strings.Repeat("r", 65), "r*"},
	"event_type":  {"message new", "Message.New", strings.Repeat("e", 65)},
	"action_type": {"nuke", "BAN", "ban "},
	"outcome":     {"won", "APPLIED"},
	"from":        {"yesterday", "2026-11-24", "2026-11-24 12:00:00", "1700000000"},
	"to":          {"2026-13-01T00:00:00Z", "now"},
	"cursor":      {"!!!", "a b", strings.Repeat("c", 513), "%00"},
	"limit":       {"abc", "0", "-1", "1.5", "1e3", " 5"},
	"around":      {"-1", "x", "2.5"},
	"status":      {"open", "decided", "PENDING"},
	"sort":        {"oldest ", "OLDEST", "age"},
	"text":        {" ", strings.Repeat("x", 201), "a\x01b", "\xff"},
	"format":      {"xml", "TEXT", "json ", "html"},
}

// samplePath fills a route pattern's parameters with valid values.
func samplePath(pattern string) string {
	r := strings.NewReplacer("{id}", "1", "{user_id}", "u1", "{rule_id}", "r1")
	return r.Replace(pattern)
}

// validBody is a body each POST route accepts.
func validBody(pattern string) string {
	switch pattern {
	case "/appeals":
		return `{"user_id":"u1","action_id":1,"statement":"I was joking","source":"in_app"}`
	case "/appeals/{id}/decision":
		return `{"outcome":"upheld","reason":"the rule was right"}`
	}
	return `{"reason":"false positive"}`
}

// TestQueryParameterValidation checks, for every route and every query
// parameter of openapi.yaml, that invalid values are refused with 400
// naming the parameter before the store is touched; and that unknown and
// repeated parameters are refused too.
func TestQueryParameterValidation(t *testing.T) {
	t.Parallel()
	sp := loadSpec(t)
	for path, ops := range sp.Paths {
		for method, op := range ops {
			if op.Role == "public" {
				continue
			}
			method := strings.ToUpper(method)
			target := samplePath(path)
			body := ""
			if method == http.MethodPost {
				body = validBody(path)
			}
			check := func(t *testing.T, query, wantField string) {
				t.Helper()
				b := newUnit(t)
				rec := b.do(t, method, target+"?"+query, "tester:admin", body)
				if rec.Code != http.StatusBadRequest {
					t.Fatalf("%s %s?%s: status %d, want 400; body %s", method, target, query, rec.Code, rec.Body)
				}
				e := apiError(t, rec)
				if e.Code != CodeInvalidParameter || e.Field != wantField {
					t.Errorf("%s %s?%s: error %+v, want invalid_parameter on %q", method, target, query, e, wantField)
				}
				if calls := b.store.Calls(); len(calls) > 0 {
					t.Errorf("%s %s?%s: the store was called: %v", method, target, query, calls)
				}
			}
			t.Run(endpoint(method, path)+"/unknown", func(t *testing.T) {
				t.Parallel()
				check(t, "bogus=1", "bogus")
				check(t, "zzz=1&aaa=2", "aaa,zzz")
			})
			for _, p := range sp.params(t, op, "query") {
				t.Run(endpoint(method, path)+"/"+p.Name, func(t *testing.T) {
					t.Parallel()
					values, ok := invalidValues[p.Name]
					if !ok {
						t.Fatalf("no invalid values for query parameter %s: add some to invalidValues", p.Name)
					}
					for _, v := range values {
						check(t, p.Name+"="+url.QueryEscape(v), p.Name)
					}
					check(t, p.Name+"=&"+p.Name+"=", p.Name) // repeated
				})
			}
		}
	}
}

// TestPathParameterValidation refuses ids that are not positive whole
// numbers, and user ids outside Stream's charset, before the store.
func TestPathParameterValidation(t *testing.T) {
	t.Parallel()
	s := &server{}
	for _, rt := range s.routes() {
		for _, tc := range []struct{ param, placeholder string }{{"id", "{id}"}, {"user_id", "{user_id}"}} {
			if !strings.Contains(rt.pattern, tc.placeholder) {
				continue
			}
			bad := []string{"0", "-1", "abc", "1.0", "99999999999999999999", "1%20OR%201=1", "%27%20OR%201=1%20--"}
			if tc.param == "user_id" {
				bad = []string{"a%20b", "%27%20OR%201=1%20--", "%C3%BC", strings.Repeat("u", 256), "a%00b", "a%2Fb"}
			}
			for _, v := range bad {
				target := strings.Replace(rt.pattern, tc.placeholder, v, 1)
				target = samplePath(target)
				b := newUnit(t)
				body := ""
				if rt.method == http.MethodPost {
					body = validBody(rt.pattern)
				}
				rec := b.do(t, rt.method, target, "tester:admin", body)
				if rec.Code != http.StatusBadRequest {
					t.Errorf("%s %s: status %d, want 400; body %s", rt.method, target, rec.Code, rec.Body)
					continue
				}
				if e := apiError(t, rec); e.Field != tc.param {
					t.Errorf("%s %s: field %q, want %q", rt.method, target, e.Field, tc.param)
				}
				if calls := b.store.Calls(); len(calls) > 0 {
					t.Errorf("%s %s: the store was called: %v", rt.method, target, calls)
				}
			}
		}
	}
}

func TestSearchPassesFiltersAndRecordsTheAct(t *testing.T) {
	t.Parallel()
	b := newUnit(t)
	q := url.Values{
		"user_id": {"alice@example.com"}, "message_id": {"m-1"}, "channel_cid": {"messaging:general"},
		"rule_id": {"new-account-links"}, "event_type": {"message.new"}, "action_type": {"ban"}, "outcome": {"applied"},
		"from": {"2026-11-01T00:00:00Z"}, "to": {"2026-11-02T00:00:00+01:00"}, "cursor": {"abc_-="}, "limit": {"1000"},
	}
	rec := b.do(t, "GET", "/actions?"+q.Encode(), "rita:viewer", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	want := store.AuditFilter{
		UserID: "alice@example.com", MessageID: "m-1", ChannelCID: "messaging:general", RuleID: "new-account-links",
		EventType: "message.new", ActionType: "ban", Outcome: "applied",
		From:   time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		To:     time.Date(2026, 11, 2, 0, 0, 0, 0, time.FixedZone("", 3600)),
		Cursor: "abc_-=", Limit: maxLimit, // clamped
	}
	if len(b.store.filters) != 1 {
		t.Fatalf("got %d searches, want 1", len(b.store.filters))
	}
	if diff := cmp.Diff(want, b.store.filters[0]); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}
	acts := b.store.Acts()
	if len(acts) != 1 {
		t.Fatalf("got %d staff acts, want 1", len(acts))
	}
	a := acts[0]
	if a.Actor != "rita" || a.Role != "viewer" || a.Act != store.ActSearch || a.TargetUserID != "alice@example.com" {
		t.Errorf("staff act %+v", a)
	}
	params, _ := json.Marshal(a.Params)
	for _, wantPart := range []string{`"list":"actions"`, `"rule_id":"new-account-links"`, `"limit":200`, `"from":"2026-11-01T00:00:00Z"`} {
		if !strings.Contains(string(params), wantPart) {
			t.Errorf("staff act params %s lack %s", params, wantPart)
		}
	}
	if diff := cmp.Diff([]string{"SearchActions", "RecordStaffAct"}, b.store.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestTimeRangeMustBeOrdered(t *testing.T) {
	t.Parallel()
	for _, q := range []string{
		"from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
		"from=2026-11-01T00:00:00Z&to=2026-11-01T00:00:00Z",
	} {
		b := newUnit(t)
		rec := b.do(t, "GET", "/events?"+q, "rita:viewer", "")
		if rec.Code != http.StatusBadRequest || apiError(t, rec).Field != "from" {
			t.Errorf("%s: status %d body %s, want 400 on from", q, rec.Code, rec.Body)
		}
	}
}

func TestRuleStatsDefaultWindow(t *testing.T) {
	t.Parallel()
	b := newUnit(t)
	rec := b.do(t, "GET", "/rules/stats", "rita:viewer", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if got, want := b.store.statsArg, [2]time.Time{now.Add(-ruleStatsWindow), now}; got != want {
		t.Errorf("range %v, want %v", got, want)
	}
	var body ruleStatsResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Rules == nil {
		t.Errorf("body %s: rules must be a list (err %v)", rec.Body, err)
	}
	// A from after the default to is refused.
	rec = b.do(t, "GET", "/rules/stats?from=2027-01-01T00:00:00Z", "rita:viewer", "")
	if rec.Code != http.StatusBadRequest || apiError(t, rec).Field != "from" {
		t.Errorf("from in the future: status %d body %s, want 400 on from", rec.Code, rec.Body)
	}
}

// TestStoreErrorsMapToStatuses: the store's sentinels and failures reach
// the client as statuses with safe messages; internal details reach only
// the log.
func TestStoreErrorsMapToStatuses(t *testing.T) {
	t.Parallel()
	secretDetail := "relation \"events\" does not exist at character 42"
	for _, tc := range []struct {
		name     string
		err      error
		status   int
		code     string
		field    string
		inLog    bool
		inAnswer string
	}{
		{"not found", fmt.Errorf("read decision 1: %w", store.ErrNotFound), 404, CodeNotFound, "", false, "decision 1: not found"},
		{"bad cursor", store.ErrBadCursor, 400, CodeInvalidParameter, "cursor", false, "cursor"},
		{"input", &store.InputError{Field: "statement", Msg: "too long"}, 400, CodeInvalidParameter, "statement", false, "statement"},
		{"conn refused", &pgconn.ConnectError{}, 503, CodeUnavailable, "", true, "database"},
		{"timeout", fmt.Errorf("query: %w", errors.Join(errors.New("x"), errTimeout{})), 503, CodeUnavailable, "", true, "database"},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, 503, CodeUnavailable, "", true, "database"},
		{"internal", errors.New(secretDetail), 500, CodeInternal, "", true, "internal error"},
		{"syntax", &pgconn.PgError{Code: "42601", Message: secretDetail}, 500, CodeInternal, "", true, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newUnit(t)
			b.store.err = tc.err
			rec := b.do(t, "GET", "/decisions/1", "rita:viewer", "")
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			e := apiError(t, rec)
			if e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.inAnswer) {
				t.Errorf("error %+v, want code %s field %q message with %q", e, tc.code, tc.field, tc.inAnswer)
			}
			if strings.Contains(rec.Body.String(), "character 42") {
				t.Errorf("answer shows internal details: %s", rec.Body)
			}
			if got := strings.Contains(b.logs.String(), `"error":`); got != tc.inLog {
				t.Errorf("logged error: %v, want %v; log %s", got, tc.inLog, b.logs)
			}
			if len(b.store.Acts()) != 0 {
				t.Errorf("a failed read was recorded as a staff act: %+v", b.store.Acts())
			}
		})
	}
}

type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

// TestReadRefusedWithoutStaffAuditRow: a read whose staff act cannot be
// written is refused, and shows nothing of what it read.
func TestReadRefusedWithoutStaffAuditRow(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"/events?user_id=u1", "/decisions/1", "/actions/1", "/users/u1/timeline", "/appeals/1", "/appeals", "/rules/stats", "/actions", "/decisions", "/rules", "/settings"} {
		b := newUnit(t)
		b.store.actErr = errors.New("disk full")
		rec := b.do(t, "GET", target, "rita:admin", "")
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503", target, rec.Code)
			continue
		}
		if e := apiError(t, rec); e.Code != CodeUnavailable || strings.Contains(rec.Body.String(), "u1") || strings.Contains(rec.Body.String(), "abc123") {
			t.Errorf("%s: answer %s", target, rec.Body)
		}
	}
}

func TestBodyValidation(t *testing.T) {
	t.Parallel()
	big := `{"reason":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	for _, tc := range []struct {
		name, target, body string
		status             int
		code, field        string
	}{
		{"empty", "/actions/1/overturn", "", 400, CodeInvalidBody, ""},
		{"not json", "/actions/1/overturn", "reason=x", 400, CodeInvalidBody, ""},
		{"array", "/actions/1/overturn", `["x"]`, 400, CodeInvalidBody, ""},
		{"truncated", "/actions/1/overturn", `{"reason":"x"`, 400, CodeInvalidBody, ""},
		{"trailing", "/actions/1/overturn", `{"reason":"x"} {"reason":"y"}`, 400, CodeInvalidBody, ""},
		{"unknown field", "/actions/1/overturn", `{"reason":"x","force":true}`, 400, CodeInvalidParameter, "force"},
		{"reason missing", "/actions/1/overturn", `{}`, 400, CodeInvalidParameter, "reason"},
		{"reason blank", "/decisions/1/overturn", `{"reason":"  \n\t "}`, 400, CodeInvalidParameter, "reason"},
		{"reason null", "/decisions/1/overturn", `{"reason":null}`, 400, CodeInvalidParameter, "reason"},
		{"reason number", "/decisions/1/overturn", `{"reason":5}`, 400, CodeInvalidParameter, "reason"},
		{"reason NUL", "/decisions/1/overturn", `{"reason":"a\u0000b"}`, 400, CodeInvalidParameter, "reason"},
		{"reason too long", "/decisions/1/overturn", `{"reason":"` + strings.Repeat("x", maxReasonLen+1) + `"}`, 400, CodeInvalidParameter, "reason"},
		{"too large", "/actions/1/overturn", big, 413, CodeTooLarge, ""},
		{"outcome missing", "/appeals/1/decision", `{"reason":"x"}`, 400, CodeInvalidParameter, "outcome"},
		{"outcome bad", "/appeals/1/decision", `{"outcome":"maybe","reason":"x"}`, 400, CodeInvalidParameter, "outcome"},
		{"decision reason missing", "/appeals/1/decision", `{"outcome":"upheld"}`, 400, CodeInvalidParameter, "reason"},
		{"decision reason blank", "/appeals/1/decision", `{"outcome":"overturned","reason":""}`, 400, CodeInvalidParameter, "reason"},
		{"appeal user missing", "/appeals", `{"action_id":1,"statement":"s","source":"email"}`, 400, CodeInvalidParameter, "user_id"},
		{"appeal user bad", "/appeals", `{"user_id":"' OR 1=1 --","action_id":1,"statement":"s","source":"email"}`, 400, CodeInvalidParameter, "user_id"},
		{"appeal nothing appealed", "/appeals", `{"user_id":"u1","statement":"s","source":"email"}`, 400, CodeInvalidParameter, "action_id"},
		{"appeal action zero", "/appeals", `{"user_id":"u1","action_id":0,"statement":"s","source":"email"}`, 400, CodeInvalidParameter, "action_id"},
		{"appeal decision negative", "/appeals", `{"user_id":"u1","decision_id":-4,"statement":"s","source":"email"}`, 400, CodeInvalidParameter, "decision_id"},
		{"appeal action string", "/appeals", `{"user_id":"u1","action_id":"1","statement":"s","source":"email"}`, 400, CodeInvalidParameter, "action_id"},
		{"appeal statement missing", "/appeals", `{"user_id":"u1","action_id":1,"source":"email"}`, 400, CodeInvalidParameter, "statement"},
		{"appeal statement blank", "/appeals", `{"user_id":"u1","action_id":1,"statement":" ","source":"email"}`, 400, CodeInvalidParameter, "statement"},
		{"appeal source missing", "/appeals", `{"user_id":"u1","action_id":1,"statement":"s"}`, 400, CodeInvalidParameter, "source"},
		{"appeal source bad", "/appeals", `{"user_id":"u1","action_id":1,"statement":"s","source":"E-mail; DROP"}`, 400, CodeInvalidParameter, "source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newUnit(t)
			rec := b.do(t, "POST", tc.target, "rex:reviewer", tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			e := apiError(t, rec)
			if e.Code != tc.code || e.Field != tc.field {
				t.Errorf("error %+v, want %s on %q", e, tc.code, tc.field)
			}
			if tc.field != "" && !strings.Contains(e.Message, tc.field) {
				t.Errorf("message %q does not name %s", e.Message, tc.field)
			}
			if calls := b.store.Calls(); len(calls) > 0 {
				t.Errorf("the store was called: %v", calls)
			}
			if len(b.over.reqs) > 0 {
				t.Errorf("the overturner was called: %+v", b.over.reqs)
			}
		})
	}
}

func TestOverturnCallsTheOverturner(t *testing.T) {
	t.Parallel()
	b := newUnit(t)
	rec := b.do(t, "POST", "/decisions/12/overturn", "rex:reviewer", `{"reason":"false positive"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	want := []OverturnRequest{{DecisionID: 12, Reviewer: "rex", Role: "reviewer", Reason: "false positive"}}
	if diff := cmp.Diff(want, b.over.reqs); diff != "" {
		t.Errorf("overturn requests (-want +got):\n%s", diff)
	}
	var res OverturnResult
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.OverturnID != 3 {
		t.Errorf("body %s (err %v)", rec.Body, err)
	}

	for _, tc := range []struct {
		err    error
		status int
		msg    string
	}{
		{fmt.Errorf("overturn: %w", store.ErrAlreadyOverturned), 409, "action 5: already overturned"},
		{store.ErrNotFound, 404, "action 5: not found"},
	} {
		b := newUnit(t)
		b.over.err = tc.err
		rec := b.do(t, "POST", "/actions/5/overturn", "rex:reviewer", `{"reason":"x"}`)
		if rec.Code != tc.status || apiError(t, rec).Message != tc.msg {
			t.Errorf("%v: status %d body %s, want %d %q", tc.err, rec.Code, rec.Body, tc.status, tc.msg)
		}
	}
}

func TestDecideAppeal(t *testing.T) {
	t.Parallel()
	t.Run("upheld", func(t *testing.T) {
		t.Parallel()
		b := newUnit(t)
		rec := b.do(t, "POST", "/appeals/4/decision", "rex:reviewer", `{"outcome":"upheld","reason":"the rule was right"}`)
		if rec.Code != http.StatusCreated {
			t.Fatalf("status %d body %s", rec.Code, rec.Body)
		}
		acts := b.store.Acts()
		if len(acts) != 1 || acts[0].Actor != "rex" || acts[0].Act != store.ActDecideAppeal || acts[0].Target != "appeal:4" || acts[0].Reason != "the rule was right" {
			t.Errorf("staff acts %+v", acts)
		}
		if len(b.over.reqs) != 0 {
			t.Errorf("upheld called the overturner: %+v", b.over.reqs)
		}
	})
	t.Run("overturned action", func(t *testing.T) {
		t.Parallel()
		b := newUnit(t)
		b.store.appeal = store.Appeal{UserID: "u1", ActionID: 9, DecisionID: 2}
		rec := b.do(t, "POST", "/appeals/4/decision", "rex:reviewer", `{"outcome":"overturned","reason":"joke"}`)
		if rec.Code != http.StatusCreated {
			t.Fatalf("status %d body %s", rec.Code, rec.Body)
		}
		want := []OverturnRequest{{ActionID: 9, AppealID: 4, Reviewer: "rex", Role: "reviewer", Reason: "joke"}}
		if diff := cmp.Diff(want, b.over.reqs); diff != "" {
			t.Errorf("overturn requests (-want +got):\n%s", diff)
		}
	})
	t.Run("overturned decision", func(t *testing.T) {
		t.Parallel()
		b := newUnit(t)
		b.store.appeal = store.Appeal{UserID: "u1", DecisionID: 2}
		rec := b.do(t, "POST", "/appeals/4/decision", "rex:reviewer", `{"outcome":"overturned","reason":"joke"}`)
		if rec.Code != http.StatusCreated {
			t.Fatalf("status %d body %s", rec.Code, rec.Body)
		}
		if len(b.over.reqs) != 1 || b.over.reqs[0].DecisionID != 2 || b.over.reqs[0].ActionID != 0 {
			t.Errorf("overturn requests %+v", b.over.reqs)
		}
	})
	t.Run("already decided", func(t *testing.T) {
		t.Parallel()
		b := newUnit(t)
		b.store.appeal = store.Appeal{UserID: "u1", ActionID: 9, Decision: &store.AppealDecision{ID: 1}}
		rec := b.do(t, "POST", "/appeals/4/decision", "rex:reviewer", `{"outcome":"overturned","reason":"joke"}`)
		if rec.Code != http.StatusConflict || apiError(t, rec).Message != "appeal 4: appeal already decided" {
			t.Errorf("status %d body %s, want 409", rec.Code, rec.Body)
		}
		if len(b.over.reqs) != 0 {
			t.Errorf("a decided appeal reached the overturner: %+v", b.over.reqs)
		}
	})
	t.Run("no overturner", func(t *testing.T) {
		t.Parallel()
		h := NewServer(ServerConfig{Auth: headerAuth{}, Store: &fakeStore{}})
		for _, tc := range []struct{ target, body string }{
			{"/appeals/4/decision", `{"outcome":"overturned","reason":"joke"}`},
			{"/actions/4/overturn", `{"reason":"joke"}`},
		} {
			req := httpRequest("POST", tc.target, "rex:reviewer", tc.body)
			rec := serve(h, req)
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("%s: status %d, want 503", tc.target, rec.Code)
			}
		}
	})
}

func TestRecordAppeal(t *testing.T) {
	t.Parallel()
	b := newUnit(t)
	rec := b.do(t, "POST", "/appeals", "rex:reviewer", `{"user_id":"u1","action_id":3,"statement":"I was quoting a film\nhonest","source":"in_app"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Location"); got != "appeals/7" {
		t.Errorf("Location %q, want appeals/7", got)
	}
	want := []store.NewAppeal{{UserID: "u1", ActionID: 3, Statement: "I was quoting a film\nhonest", Source: "in_app", RecordedBy: "rex"}}
	if diff := cmp.Diff(want, b.store.newAppl); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
	if acts := b.store.Acts(); len(acts) != 1 || acts[0].Act != store.ActRecordAppeal || acts[0].Target != "appeal:7" || acts[0].TargetUserID != "u1" {
		t.Errorf("staff acts %+v", acts)
	}

	b = newUnit(t)
	b.store.err = fmt.Errorf("action 3: %w", store.ErrWrongUser)
	rec = b.do(t, "POST", "/appeals", "rex:reviewer", `{"user_id":"u2","action_id":3,"statement":"x","source":"in_app"}`)
	if rec.Code != http.StatusBadRequest || apiError(t, rec).Field != "user_id" {
		t.Errorf("wrong user: status %d body %s, want 400 on user_id", rec.Code, rec.Body)
	}
}

func TestSettingsRedactSecrets(t *testing.T) {
	t.Parallel()
	b := newUnit(t)
	rec := b.do(t, "GET", "/settings", "ada:admin", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "very-secret-value") {
		t.Fatalf("a secret is shown: %s", rec.Body)
	}
	var got settingsResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []Setting{
		{Name: "MODERATOR_ADDR", Value: ":8080"},
		{Name: "STREAM_API_SECRET", Value: redacted, Secret: true},
		{Name: "MODERATOR_ADMIN_JWKS_URL", Value: ""},
		{Name: "MODERATOR_ADMIN_JWT_SECRET", Value: "", Secret: true},
	}
	if diff := cmp.Diff(want, got.Settings); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func TestUnknownEndpointAndMethod(t *testing.T) {
	t.Parallel()
	b := newUnit(t)
	rec := b.do(t, "GET", "/nope", "", "")
	if rec.Code != http.StatusNotFound || apiError(t, rec).Code != CodeNotFound {
		t.Errorf("unknown path: status %d body %s", rec.Code, rec.Body)
	}
	rec = b.do(t, "DELETE", "/appeals/1", "ada:admin", "")
	if rec.Code != http.StatusMethodNotAllowed || apiError(t, rec).Code != CodeMethodNotAllowed {
		t.Errorf("wrong method: status %d body %s", rec.Code, rec.Body)
	}
}

func TestSpecServedWithoutToken(t *testing.T) {
	t.Parallel()
	b := newUnit(t)
	rec := b.do(t, "GET", "/openapi.yaml", "", "")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "openapi: 3.1.0") || rec.Header().Get("Content-Type") != "application/yaml" {
		t.Errorf("status %d type %q body %.40q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

// TestNoAuthenticatorFailsClosed: a server built without an authenticator
// refuses every protected route.
func TestNoAuthenticatorFailsClosed(t *testing.T) {
	t.Parallel()
	h := NewServer(ServerConfig{Store: &fakeStore{}})
	s := &server{}
	for _, rt := range s.routes() {
		if rt.role == "" {
			continue
		}
		rec := serve(h, httpRequest(rt.method, samplePath(rt.pattern), "ada:admin", validBody(rt.pattern)))
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s: status %d, want 401", rt.method, rt.pattern, rec.Code)
		}
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	rec := serve(Disabled(), httpRequest("GET", "/api/v1/events", "", ""))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d", rec.Code)
	}
	if e := apiError(t, rec); e.Code != CodeNotFound || !strings.Contains(e.Message, "MODERATOR_ADMIN_JWT_SECRET") {
		t.Errorf("error %+v", e)
	}
}

// TestCanonicalLogLine: one line per request, with the route pattern (not
// the path, which holds ids), the caller and the status; never the token
// or the query's values.
func TestCanonicalLogLine(t *testing.T) {
	t.Parallel()
	b := newUnit(t)
	req := httpRequest("GET", "/users/alice/timeline?limit=5&cursor=sekrit", "rita:viewer", "")
	req.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.tokenbody.sig")
	rec := serve(b.h, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	lines := strings.Split(strings.TrimSpace(b.logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), b.logs)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"msg": "staff request", "method": "GET", "route": "/users/{user_id}/timeline", "status": float64(200), "staff_sub": "rita", "role": "viewer"} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["duration_ms"]; !ok {
		t.Errorf("log line lacks duration_ms: %s", lines[0])
	}
	for _, leak := range []string{"tokenbody", "sekrit", "alice"} {
		if strings.Contains(lines[0], leak) {
			t.Errorf("log line holds %q: %s", leak, lines[0])
		}
	}
}

func httpRequest(method, target, who, body string) *http.Request {
	var req *http.Request
	if body != "" {
		req, _ = http.NewRequest(method, target, strings.NewReader(body))
	} else {
		req, _ = http.NewRequest(method, target, nil)
	}
	if who != "" {
		req.Header.Set("X-Test-Staff", who)
	}
	return req
}
