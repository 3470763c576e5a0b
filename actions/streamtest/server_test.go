package streamtest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"moderator/actions/streamtest"
)

// t0 is a fixed clock start, 10 s into a minute, so per-second and
// per-minute windows are easy to reason about.
var t0 = time.Date(2025, 3, 1, 12, 0, 10, 0, time.UTC)

// request builds a request that satisfies the whole contract; cases then
// break one thing at a time.
func request(t *testing.T, s *streamtest.Server, method, path string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	u, err := url.Parse(s.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("api_key", s.Key)
	u.RawQuery = q.Encode()
	r, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", s.Token())
	r.Header.Set("Stream-Auth-Type", "jwt")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Stream-Client", "streamtest-test")
	return r
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func send(t *testing.T, r *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

func (a answer) code() int {
	f, _ := a.body["code"].(float64)
	return int(f)
}

func (a answer) message() string {
	m, _ := a.body["message"].(string)
	return m
}

func sign(t *testing.T, method jwt.SigningMethod, claims jwt.MapClaims, key any) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestContractViolationsAreRejected(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t, streamtest.WithoutRateLimits())
	secret := []byte(s.Secret)
	ban := map[string]any{"target_user_id": "u1", "banned_by_id": "bot"}
	// Tokens are signed up front: subtests must not fail through the parent.
	var (
		otherSecret = sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"server": true}, []byte("other secret"))
		userToken   = sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"user_id": "u1"}, secret)
		serverFalse = sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"server": false}, secret)
		namedUser   = sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"server": true, "user_id": "u1"}, secret)
		hs512       = sign(t, jwt.SigningMethodHS512, jwt.MapClaims{"server": true}, secret)
		unsigned    = sign(t, jwt.SigningMethodNone, jwt.MapClaims{"server": true}, jwt.UnsafeAllowNoneSignatureType)
		expired     = sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"server": true, "exp": 1}, secret)
	)
	setToken := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", tok) }
	}

	tests := []struct {
		name        string
		method      string
		path        string
		body        any
		mutate      func(r *http.Request)
		wantStatus  int
		wantCode    int
		wantMessage string
	}{
		{"missing api_key", "POST", "/moderation/ban", ban, func(r *http.Request) { r.URL.RawQuery = "" }, 401, 2, "api_key"},
		{"wrong api_key", "POST", "/moderation/ban", ban, func(r *http.Request) { r.URL.RawQuery = "api_key=nope" }, 401, 2, "api_key"},
		{"missing token", "POST", "/moderation/ban", ban, func(r *http.Request) { r.Header.Del("Authorization") }, 401, 5, "Authorization"},
		{"Bearer prefix", "POST", "/moderation/ban", ban, func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+r.Header.Get("Authorization"))
		}, 401, 5, "Bearer"},
		{"wrong signature", "POST", "/moderation/ban", ban, setToken(otherSecret), 401, 43, "signature"},
		{"user token", "POST", "/moderation/ban", ban, setToken(userToken), 401, 5, "server"},
		{"server false", "POST", "/moderation/ban", ban, setToken(serverFalse), 401, 5, "server"},
		{"server token naming a user", "POST", "/moderation/ban", ban, setToken(namedUser), 401, 5, "user_id"},
		{"HS512 token", "POST", "/moderation/ban", ban, setToken(hs512), 401, 5, "HS256"},
		{"unsigned token", "POST", "/moderation/ban", ban, setToken(unsigned), 401, 5, "HS256"},
		{"expired token", "POST", "/moderation/ban", ban, setToken(expired), 401, 40, "expired"},
		{"garbage token", "POST", "/moderation/ban", ban, func(r *http.Request) { r.Header.Set("Authorization", "xyz") }, 401, 5, "not valid"},
		{"missing Stream-Auth-Type", "POST", "/moderation/ban", ban, func(r *http.Request) { r.Header.Del("Stream-Auth-Type") }, 401, 5, "Stream-Auth-Type"},
		{"anonymous Stream-Auth-Type", "POST", "/moderation/ban", ban, func(r *http.Request) { r.Header.Set("Stream-Auth-Type", "anonymous") }, 401, 5, "Stream-Auth-Type"},
		{"missing Content-Type", "POST", "/moderation/ban", ban, func(r *http.Request) { r.Header.Del("Content-Type") }, 400, 4, "Content-Type"},

		{"ban without acting user", "POST", "/moderation/ban", map[string]any{"target_user_id": "u1"}, nil, 400, 4,
			"either user or user_id must be provided when using server side auth"},
		{"ban without target", "POST", "/moderation/ban", map[string]any{"banned_by_id": "bot"}, nil, 400, 4, "target_user_id"},
		{"ban reason too long", "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "reason": strings.Repeat("é", 256)}, nil, 400, 4, "reason"},
		{"ban fractional timeout", "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "timeout": 1.5}, nil, 400, 4, "timeout"},
		{"ban negative timeout", "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "timeout": -1}, nil, 400, 4, "timeout"},
		{"ban bad delete mode", "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "delete_messages": "all"}, nil, 400, 4, "delete_messages"},
		{"ban channel forms disagree", "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "channel_cid": "messaging:a", "type": "messaging", "id": "b"}, nil, 400, 4, "channel_cid"},
		{"ban channel in both forms", "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "channel_cid": "messaging:a", "type": "messaging", "id": "a"}, nil, 400, 4, "not both"},
		{"ban unknown field", "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "duration": 15}, nil, 400, 4, "duration is not a field"},
		{"unban channel in both forms", "DELETE", "/moderation/ban?target_user_id=u1&channel_cid=messaging:a&type=messaging&id=a", nil, nil, 400, 4, "not both"},
		{"unban unknown parameter", "DELETE", "/moderation/ban?target_user_id=u1&shadow=true", nil, nil, 400, 4, "shadow is not a parameter"},
		{"ban bad cid", "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "channel_cid": "general"}, nil, 400, 4, "channel_cid"},
		{"unban without target", "DELETE", "/moderation/ban", nil, nil, 400, 4, "target_user_id"},
		{"mute without acting user", "POST", "/moderation/mute", map[string]any{"target_ids": []string{"u1"}}, nil, 400, 4,
			"either user or user_id must be provided when using server side auth"},
		{"mute without targets", "POST", "/moderation/mute", map[string]any{"user_id": "bot"}, nil, 400, 4, "target_ids"},
		{"mute too many targets", "POST", "/moderation/mute", map[string]any{"user_id": "bot", "target_ids": make([]string, 1001)}, nil, 400, 4, "1000"},
		{"unmute without acting user", "POST", "/moderation/unmute", map[string]any{"target_ids": []string{"u1"}}, nil, 400, 4,
			"either user or user_id must be provided when using server side auth"},
		{"unmute without targets", "POST", "/moderation/unmute", map[string]any{"user_id": "bot"}, nil, 400, 4, "target_ids"},
		{"flag without acting user", "POST", "/moderation/flag", map[string]any{"target_message_id": "m1"}, nil, 400, 4,
			"either user or user_id must be provided when using server side auth"},
		{"flag without target", "POST", "/moderation/flag", map[string]any{"user_id": "bot"}, nil, 400, 4, "target_message_id"},
		{"flag with both targets", "POST", "/moderation/flag", map[string]any{"user_id": "bot", "target_message_id": "m1", "target_user_id": "u1"}, nil, 400, 4, "only one"},
		{"flag reason too long", "POST", "/moderation/flag", map[string]any{"user_id": "bot", "target_message_id": "m1", "reason": strings.Repeat("x", 256)}, nil, 400, 4, "255"},
		{"unflag without acting user", "POST", "/moderation/unflag", map[string]any{"target_message_id": "m1"}, nil, 400, 4,
			"either user or user_id must be provided when using server side auth"},
		{"undelete without undeleted_by", "POST", "/messages/m1/undelete", map[string]any{}, nil, 400, 4, "undeleted_by"},
		{"send without message", "POST", "/channels/messaging/general/message", map[string]any{}, nil, 400, 4, "message"},
		{"send without user", "POST", "/channels/messaging/general/message", map[string]any{"message": map[string]any{"text": "hi"}}, nil, 400, 4,
			"either user or user_id must be provided when using server side auth"},
		{"send without text", "POST", "/channels/messaging/general/message", map[string]any{"message": map[string]any{"user_id": "bot"}}, nil, 400, 4, "message.text"},
		{"send text too long", "POST", "/channels/messaging/general/message", map[string]any{"message": map[string]any{"user_id": "bot", "text": strings.Repeat("x", 5001)}}, nil, 400, 4, "5000"},
		{"send from unknown user", "POST", "/channels/messaging/general/message", map[string]any{"message": map[string]any{"user_id": "ghost", "text": "hi"}}, nil, 404, 16, "ghost"},
		{"upsert without users", "POST", "/users", map[string]any{}, nil, 400, 4, "users"},
		{"upsert id mismatch", "POST", "/users", map[string]any{"users": map[string]any{"a": map[string]any{"id": "b"}}}, nil, 400, 4, "does not match"},
		{"query bans without payload", "GET", "/query_banned_users", nil, nil, 400, 4, "payload"},
		{"invalid JSON", "POST", "/moderation/ban", nil, func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"target_user_id":`))
			r.ContentLength = int64(len(`{"target_user_id":`))
		}, 400, 4, "invalid JSON"},
		{"unknown path", "POST", "/moderation/nuke", ban, nil, 404, 16, "no route"},
		{"wrong method", "GET", "/moderation/ban", nil, nil, 404, 16, "no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := request(t, s, tt.method, tt.path, tt.body)
			if tt.mutate != nil {
				tt.mutate(r)
			}
			a := send(t, r)
			if a.status != tt.wantStatus || a.code() != tt.wantCode {
				t.Fatalf("got HTTP %d code %d (%s), want HTTP %d code %d", a.status, a.code(), a.raw, tt.wantStatus, tt.wantCode)
			}
			if !strings.Contains(a.message(), tt.wantMessage) {
				t.Errorf("got message %q, want it to contain %q", a.message(), tt.wantMessage)
			}
			checkErrorShape(t, a)
			checkRateLimitHeaders(t, a.header)
		})
	}
}

// checkErrorShape asserts Stream's error body: every documented key, with
// StatusCode equal to the HTTP status.
func checkErrorShape(t *testing.T, a answer) {
	t.Helper()
	for _, k := range []string{"code", "message", "exception_fields", "StatusCode", "duration", "more_info", "details", "unrecoverable"} {
		if _, ok := a.body[k]; !ok {
			t.Errorf("error body %s lacks %q", a.raw, k)
		}
	}
	if got, _ := a.body["StatusCode"].(float64); int(got) != a.status {
		t.Errorf("got StatusCode %v in body, want %d", a.body["StatusCode"], a.status)
	}
}

func checkRateLimitHeaders(t *testing.T, h http.Header) {
	t.Helper()
	for _, k := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if _, err := strconv.ParseInt(h.Get(k), 10, 64); err != nil {
			t.Errorf("got %s %q, want an integer", k, h.Get(k))
		}
	}
}

func TestRejectedRequestsHaveNoEffect(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t)
	r := request(t, s, "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot"})
	r.Header.Del("Stream-Auth-Type")
	if a := send(t, r); a.status != http.StatusUnauthorized {
		t.Fatalf("got HTTP %d, want 401", a.status)
	}
	if bans := s.Bans(); len(bans) != 0 {
		t.Errorf("got bans %+v after a rejected request, want none", bans)
	}
	calls := s.Calls(streamtest.RouteBan)
	if len(calls) != 1 || calls[0].Status != http.StatusUnauthorized || calls[0].Code != 5 {
		t.Errorf("got recorded calls %+v, want one answered 401 code 5", calls)
	}
}

func TestBanState(t *testing.T) {
	t.Parallel()
	clock := streamtest.NewClock(t0)
	s := streamtest.New(t, streamtest.WithClock(clock.Now))
	s.AddMessage(streamtest.Message{ID: "m1", CID: "messaging:general", UserID: "u2", Text: "spam"})
	s.AddMessage(streamtest.Message{ID: "m2", CID: "messaging:other", UserID: "u2", Text: "spam"})

	bans := []map[string]any{
		{"target_user_id": "u1", "banned_by_id": "bot", "reason": "spam", "timeout": 60, "shadow": true},
		{"target_user_id": "u2", "banned_by_id": "bot", "channel_cid": "messaging:general", "delete_messages": "soft"},
		{"target_user_id": "u3", "user_id": "bot"}, // the legacy acting-user field
	}
	for _, b := range bans {
		if a := send(t, request(t, s, "POST", "/moderation/ban", b)); a.status != http.StatusOK {
			t.Fatalf("ban %v: got HTTP %d %s, want 200", b, a.status, a.raw)
		}
	}
	want := []streamtest.Ban{
		{UserID: "u1", BannedByID: "bot", Reason: "spam", Shadow: true, Expires: t0.Add(time.Hour), CreatedAt: t0},
		{UserID: "u2", BannedByID: "bot", ChannelCID: "messaging:general", DeleteMessages: "soft", CreatedAt: t0},
		{UserID: "u3", BannedByID: "bot", CreatedAt: t0},
	}
	if diff := cmp.Diff(want, s.Bans()); diff != "" {
		t.Errorf("bans (-want +got):\n%s", diff)
	}
	checks := []struct {
		user, cid string
		want      bool
	}{
		{"u1", "", true}, {"u1", "messaging:any", true},
		{"u2", "messaging:general", true}, {"u2", "", false}, {"u2", "messaging:other", false},
		{"u4", "", false},
	}
	for _, c := range checks {
		if got := s.IsBanned(c.user, c.cid); got != c.want {
			t.Errorf("IsBanned(%q, %q): got %v, want %v", c.user, c.cid, got, c.want)
		}
	}
	if m, _ := s.Message("m1"); !m.Deleted || m.HardDeleted {
		t.Errorf("got m1 %+v, want soft-deleted by the channel ban", m)
	}
	if m, _ := s.Message("m2"); m.Deleted {
		t.Errorf("got m2 %+v, want untouched: it is in another channel", m)
	}

	clock.Advance(time.Hour)
	if s.IsBanned("u1", "") {
		t.Error("got u1 banned after its 60-minute timeout, want expired")
	}

	a := send(t, request(t, s, "DELETE", "/moderation/ban?target_user_id=u2&channel_cid=messaging:general&created_by=bot", nil))
	if a.status != http.StatusOK || s.IsBanned("u2", "messaging:general") {
		t.Errorf("got HTTP %d and u2 still banned=%v after unban, want 200 and lifted", a.status, s.IsBanned("u2", "messaging:general"))
	}
}

func TestSecondBanReplacesFirst(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t)
	for _, reason := range []string{"first", "second"} {
		send(t, request(t, s, "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "reason": reason}))
	}
	bans := s.Bans()
	if len(bans) != 1 || bans[0].Reason != "second" {
		t.Errorf("got bans %+v, want one with the second reason", bans)
	}
}

func TestFlagTwiceIsRefusedAsAlreadyFlagged(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t)
	body := map[string]any{"target_message_id": "m1", "user_id": "bot", "reason": "spam", "custom": map[string]any{"rule": "r1"}}
	first := send(t, request(t, s, "POST", "/moderation/flag", body))
	if first.status != http.StatusOK {
		t.Fatalf("first flag: got HTTP %d %s, want 200", first.status, first.raw)
	}
	if flag, _ := first.body["flag"].(map[string]any); flag["target_message_id"] != "m1" {
		t.Errorf("got flag answer %s, want the flag of m1", first.raw)
	}
	second := send(t, request(t, s, "POST", "/moderation/flag", body))
	if second.status != http.StatusBadRequest || second.code() != 4 || !strings.Contains(second.message(), "already flagged") {
		t.Errorf("second flag: got HTTP %d code %d %q, want 400 code 4 already flagged", second.status, second.code(), second.message())
	}
	// Another flagger may flag the same message.
	other := send(t, request(t, s, "POST", "/moderation/flag", map[string]any{"target_message_id": "m1", "user_id": "u9"}))
	if other.status != http.StatusOK {
		t.Errorf("flag by another user: got HTTP %d, want 200", other.status)
	}
	want := []streamtest.Flag{
		{UserID: "bot", TargetMessageID: "m1", Reason: "spam", Custom: map[string]any{"rule": "r1"}},
		{UserID: "u9", TargetMessageID: "m1"},
	}
	if diff := cmp.Diff(want, s.Flags(), cmpIgnoreTime); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}

	send(t, request(t, s, "POST", "/moderation/unflag", map[string]any{"target_message_id": "m1", "user_id": "bot"}))
	if again := send(t, request(t, s, "POST", "/moderation/flag", body)); again.status != http.StatusOK {
		t.Errorf("flag after unflag: got HTTP %d, want 200", again.status)
	}
}

var cmpIgnoreTime = cmp.FilterPath(func(p cmp.Path) bool {
	return strings.HasSuffix(p.String(), "CreatedAt") || strings.HasSuffix(p.String(), "DeletedAt") || strings.HasSuffix(p.String(), "UpdatedAt")
}, cmp.Ignore())

func TestMuteState(t *testing.T) {
	t.Parallel()
	clock := streamtest.NewClock(t0)
	s := streamtest.New(t, streamtest.WithClock(clock.Now))
	a := send(t, request(t, s, "POST", "/moderation/mute", map[string]any{"target_ids": []string{"u1", "u2"}, "user_id": "bot", "timeout": 5}))
	if a.status != http.StatusOK {
		t.Fatalf("mute: got HTTP %d %s, want 200", a.status, a.raw)
	}
	send(t, request(t, s, "POST", "/moderation/mute", map[string]any{"target_ids": []string{"u1"}, "user_id": "bot"})) // replaces u1's timed mute
	want := []streamtest.Mute{
		{UserID: "bot", TargetID: "u2", Expires: t0.Add(5 * time.Minute), CreatedAt: t0},
		{UserID: "bot", TargetID: "u1", CreatedAt: t0},
	}
	if diff := cmp.Diff(want, s.Mutes()); diff != "" {
		t.Errorf("mutes (-want +got):\n%s", diff)
	}
	send(t, request(t, s, "POST", "/moderation/unmute", map[string]any{"target_ids": []string{"u1", "u2"}, "user_id": "bot"}))
	if m := s.Mutes(); len(m) != 0 {
		t.Errorf("got mutes %+v after unmute, want none", m)
	}
}

func TestMessagesDeleteUndeleteAndSend(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t)
	s.AddUser(streamtest.User{ID: "bot", Name: "Moderator"})

	sendMsg := func(id, text string) answer {
		return send(t, request(t, s, "POST", "/channels/messaging/general/message", map[string]any{
			"message": map[string]any{"id": id, "text": text, "user_id": "bot", "mentioned_users": []string{"u1"}}, "skip_push": true,
		}))
	}
	if a := sendMsg("warn-1", "please be nice"); a.status != http.StatusOK {
		t.Fatalf("send: got HTTP %d %s, want 200", a.status, a.raw)
	}
	if a := sendMsg("warn-1", "please be nice"); a.status != http.StatusBadRequest || !strings.Contains(a.message(), "already exists") {
		t.Errorf("resend of warn-1: got HTTP %d %q, want 400 already exists", a.status, a.message())
	}
	got, ok := s.Message("warn-1")
	want := streamtest.Message{ID: "warn-1", CID: "messaging:general", Text: "please be nice", Type: "regular",
		UserID: "bot", SkipPush: true, MentionedUserIDs: []string{"u1"}}
	if diff := cmp.Diff(want, got, cmpIgnoreTime); !ok || diff != "" {
		t.Errorf("message warn-1 (-want +got):\n%s", diff)
	}

	steps := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
		wantDel    bool
		wantHard   bool
	}{
		{"soft delete", "DELETE", "/messages/warn-1?deleted_by=bot", nil, 200, true, false},
		{"soft delete again", "DELETE", "/messages/warn-1", nil, 200, true, false},
		{"undelete", "POST", "/messages/warn-1/undelete", map[string]any{"undeleted_by": "bot"}, 200, false, false},
		{"hard delete", "DELETE", "/messages/warn-1?hard=true&deleted_by=bot", nil, 200, true, true},
		{"delete after hard delete", "DELETE", "/messages/warn-1", nil, 404, true, true},
		{"undelete after hard delete", "POST", "/messages/warn-1/undelete", map[string]any{"undeleted_by": "bot"}, 404, true, true},
	}
	for _, st := range steps { // sequential: each step builds on the last
		a := send(t, request(t, s, st.method, st.path, st.body))
		m, _ := s.Message("warn-1")
		if a.status != st.wantStatus || m.Deleted != st.wantDel || m.HardDeleted != st.wantHard {
			t.Errorf("%s: got HTTP %d deleted=%v hard=%v, want HTTP %d deleted=%v hard=%v",
				st.name, a.status, m.Deleted, m.HardDeleted, st.wantStatus, st.wantDel, st.wantHard)
		}
	}
}

func TestStrictTargets(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t, streamtest.StrictTargets())
	a := send(t, request(t, s, "POST", "/moderation/flag", map[string]any{"target_message_id": "nope", "user_id": "bot"}))
	if a.status != http.StatusNotFound || a.code() != 16 {
		t.Errorf("flag of unknown message: got HTTP %d code %d, want 404 code 16", a.status, a.code())
	}
	a = send(t, request(t, s, "POST", "/moderation/ban", map[string]any{"target_user_id": "nobody", "banned_by_id": "bot"}))
	if a.status != http.StatusNotFound || a.code() != 16 {
		t.Errorf("ban of unknown user: got HTTP %d code %d, want 404 code 16", a.status, a.code())
	}
}

func TestUpsertUsersAndQueryBans(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t)
	a := send(t, request(t, s, "POST", "/users", map[string]any{"users": map[string]any{
		"bot": map[string]any{"id": "bot", "name": "Moderator", "team": "t&s"},
	}}))
	if a.status != http.StatusOK {
		t.Fatalf("upsert: got HTTP %d %s, want 200", a.status, a.raw)
	}
	u, ok := s.User("bot")
	if diff := cmp.Diff(streamtest.User{ID: "bot", Name: "Moderator", Role: "user", Custom: map[string]any{"team": "t&s"}}, u, cmpIgnoreTime); !ok || diff != "" {
		t.Errorf("user bot (-want +got):\n%s", diff)
	}

	send(t, request(t, s, "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot", "channel_cid": "messaging:general"}))
	send(t, request(t, s, "POST", "/moderation/ban", map[string]any{"target_user_id": "u2", "banned_by_id": "bot"}))
	q := url.Values{"payload": {`{"filter_conditions":{"user_id":{"$eq":"u1"}}}`}}
	a = send(t, request(t, s, "GET", "/query_banned_users?"+q.Encode(), nil))
	bans, _ := a.body["bans"].([]any)
	if a.status != http.StatusOK || len(bans) != 1 {
		t.Fatalf("query bans: got HTTP %d %s, want 200 with one ban", a.status, a.raw)
	}
	ban := bans[0].(map[string]any)
	if ban["user"].(map[string]any)["id"] != "u1" || ban["channel"].(map[string]any)["cid"] != "messaging:general" {
		t.Errorf("got ban %v, want u1's ban in messaging:general", ban)
	}
}

func TestScriptedAnswers(t *testing.T) {
	t.Parallel()
	reset := t0.Add(50 * time.Second)
	tests := []struct {
		name       string
		answer     streamtest.Answer
		wantStatus int
		wantCode   int
		wantHeader map[string]string
		wantRaw    string
		wantBans   int
	}{
		{"status 503", streamtest.Status(503), 503, -1, nil, "", 0},
		{"custom error", streamtest.Error(403, 17, "not allowed").Unrecoverable(), 403, 17, nil, "", 0},
		{"rate limited", streamtest.RateLimited(reset).WithHeader("Retry-After", "7"), 429, 9,
			map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(reset.Unix(), 10), "Retry-After": "7"}, "", 0},
		{"edge HTML", streamtest.Raw(502, "text/html", "<html>Bad Gateway</html>"), 502, 0,
			map[string]string{"Content-Type": "text/html"}, "<html>Bad Gateway</html>", 0},
		{"pass", streamtest.Pass(), 200, 0, nil, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := streamtest.New(t, streamtest.WithClock(streamtest.NewClock(t0).Now))
			s.Script(streamtest.RouteBan, tt.answer)
			body := map[string]any{"target_user_id": "u1", "banned_by_id": "bot"}
			a := send(t, request(t, s, "POST", "/moderation/ban", body))
			if a.status != tt.wantStatus || a.code() != tt.wantCode {
				t.Errorf("got HTTP %d code %d %s, want HTTP %d code %d", a.status, a.code(), a.raw, tt.wantStatus, tt.wantCode)
			}
			for k, v := range tt.wantHeader {
				if got := a.header.Get(k); got != v {
					t.Errorf("got %s %q, want %q", k, got, v)
				}
			}
			checkRateLimitHeaders(t, a.header)
			if tt.wantRaw != "" && a.raw != tt.wantRaw {
				t.Errorf("got body %q, want %q", a.raw, tt.wantRaw)
			}
			if got := len(s.Bans()); got != tt.wantBans {
				t.Errorf("got %d bans after the scripted answer, want %d", got, tt.wantBans)
			}
			// The queue is spent: the next request is handled normally.
			if a := send(t, request(t, s, "POST", "/moderation/ban", body)); a.status != http.StatusOK {
				t.Errorf("after the script: got HTTP %d, want 200", a.status)
			}
			if calls := s.Calls(streamtest.RouteBan); len(calls) != 2 || !calls[0].Scripted || calls[1].Scripted {
				t.Errorf("got calls %+v, want two, the first scripted", calls)
			}
		})
	}
}

func TestScriptedAnswersStillRequireAuth(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t)
	s.Script(streamtest.RouteBan, streamtest.Status(503))
	r := request(t, s, "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot"})
	r.URL.RawQuery = ""
	if a := send(t, r); a.status != http.StatusUnauthorized {
		t.Errorf("got HTTP %d, want 401 before any scripted answer", a.status)
	}
}

func TestDisconnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		answer   streamtest.Answer
		wantBans int
	}{
		{"disconnect", streamtest.Disconnect(), 0},
		{"apply then disconnect", streamtest.ApplyThenDisconnect(), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := streamtest.New(t)
			s.Script(streamtest.RouteBan, tt.answer)
			_, err := http.DefaultClient.Do(request(t, s, "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot"}))
			if err == nil {
				t.Fatal("got an answer, want a network error")
			}
			if got := len(s.Bans()); got != tt.wantBans {
				t.Errorf("got %d bans, want %d", got, tt.wantBans)
			}
		})
	}
}

func TestSlowAnswerEndsWhenClientGivesUp(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t)
	s.Script(streamtest.RouteBan, streamtest.Pass().After(time.Hour))
	client := &http.Client{Timeout: 50 * time.Millisecond}
	_, err := client.Do(request(t, s, "POST", "/moderation/ban", map[string]any{"target_user_id": "u1", "banned_by_id": "bot"}))
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a client timeout", err)
	}
	if bans := s.Bans(); len(bans) != 0 {
		t.Errorf("got bans %+v, want none: the client gave up first", bans)
	}
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	clock := streamtest.NewClock(t0) // 10 s into a minute
	s := streamtest.New(t, streamtest.WithClock(clock.Now), streamtest.WithRateLimit(streamtest.RouteFlag, 60))
	flag := func(i int) answer {
		return send(t, request(t, s, "POST", "/moderation/flag", map[string]any{"target_message_id": "m" + strconv.Itoa(i), "user_id": "bot"}))
	}
	minuteEnd := strconv.FormatInt(t0.Truncate(time.Minute).Add(time.Minute).Unix(), 10)

	// 60 per minute means 2 per second.
	for i := range 2 {
		a := flag(i)
		if a.status != http.StatusOK {
			t.Fatalf("flag %d: got HTTP %d, want 200", i, a.status)
		}
		if got, want := a.header.Get("X-RateLimit-Remaining"), strconv.Itoa(60-i-1); got != want {
			t.Errorf("flag %d: got X-RateLimit-Remaining %s, want %s", i, got, want)
		}
	}
	a := flag(2)
	if a.status != http.StatusTooManyRequests || a.code() != 9 || a.header.Get("Retry-After") != "1" {
		t.Fatalf("third flag in a second: got HTTP %d code %d Retry-After %q, want 429 code 9 Retry-After 1", a.status, a.code(), a.header.Get("Retry-After"))
	}
	if got := a.header.Get("X-RateLimit-Limit"); got != "60" {
		t.Errorf("got X-RateLimit-Limit %s, want 60", got)
	}
	if got := a.header.Get("X-RateLimit-Reset"); got != minuteEnd {
		t.Errorf("got X-RateLimit-Reset %s, want %s", got, minuteEnd)
	}

	// Use up the minute, 2 per second.
	sent := 2
	for sent < 60 {
		clock.Advance(time.Second)
		for range 2 {
			if a := flag(100 + sent); a.status != http.StatusOK {
				t.Fatalf("flag %d: got HTTP %d, want 200", sent, a.status)
			}
			sent++
		}
	}
	clock.Advance(time.Second)
	a = flag(1000)
	if a.status != http.StatusTooManyRequests || a.header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("61st flag in the minute: got HTTP %d remaining %s, want 429 and 0", a.status, a.header.Get("X-RateLimit-Remaining"))
	}
	wantWait := t0.Truncate(time.Minute).Add(time.Minute).Sub(clock.Now())
	if got := a.header.Get("Retry-After"); got != strconv.Itoa(int(wantWait/time.Second)) {
		t.Errorf("got Retry-After %s, want %d (to the minute's end)", got, int(wantWait/time.Second))
	}

	clock.Set(t0.Truncate(time.Minute).Add(time.Minute))
	if a := flag(2000); a.status != http.StatusOK {
		t.Errorf("first flag of the next minute: got HTTP %d, want 200", a.status)
	}
	var ok, limited int
	for _, c := range s.Calls(streamtest.RouteFlag) {
		switch c.Status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
		}
	}
	if ok != 61 || limited != 2 {
		t.Errorf("got %d accepted and %d limited calls recorded, want 61 and 2", ok, limited)
	}
	// Other routes have their own budget.
	if a := send(t, request(t, s, "POST", "/moderation/mute", map[string]any{"target_ids": []string{"u1"}, "user_id": "bot"})); a.status != http.StatusOK {
		t.Errorf("mute: got HTTP %d, want 200", a.status)
	}
}

func TestConcurrentUseAndRecording(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t, streamtest.WithoutRateLimits())
	const n = 40
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = request(t, s, "POST", "/moderation/flag", map[string]any{"target_user_id": "u" + strconv.Itoa(i), "user_id": "bot"})
	}
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Go(func() {
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if got := len(s.Flags()); got != n {
		t.Errorf("got %d flags, want %d", got, n)
	}
	calls := s.Calls(streamtest.RouteFlag)
	if len(calls) != n {
		t.Fatalf("got %d recorded calls, want %d", len(calls), n)
	}
	c := calls[0]
	if c.Method != "POST" || c.Path != "/moderation/flag" || c.Query.Get("api_key") != s.Key ||
		c.Header.Get("X-Stream-Client") != "streamtest-test" || c.Body["user_id"] != "bot" || c.Status != 200 {
		t.Errorf("got recorded request %+v, want method, path, query, headers, body and status", c)
	}
	if got := len(s.Requests()); got != n {
		t.Errorf("got %d requests, want %d", got, n)
	}
}

func TestTokenIsTheKnownServerToken(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t, streamtest.WithCredentials("k", "tsec2"))
	const want = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzZXJ2ZXIiOnRydWV9.XwR6Woz9uZFo1mpuMZtLhPYCantjl8ooPYy_s2DXthc"
	if got := s.Token(); got != want {
		t.Errorf("got token %s, want %s", got, want)
	}
}

// TestBanScopes: a user's app-wide ban and channel ban are separate, each
// with its own expiry; DELETE /moderation/ban lifts exactly the scope it
// names.
func TestBanScopes(t *testing.T) {
	t.Parallel()
	clock := streamtest.NewClock(t0)
	s := streamtest.New(t, streamtest.WithClock(clock.Now))
	for _, b := range []map[string]any{
		{"target_user_id": "u1", "banned_by_id": "bot", "timeout": 15},
		{"target_user_id": "u1", "banned_by_id": "bot", "channel_cid": "messaging:a", "timeout": 60},
		{"target_user_id": "u1", "banned_by_id": "bot", "channel_cid": "messaging:b"},
	} {
		if a := send(t, request(t, s, "POST", "/moderation/ban", b)); a.status != http.StatusOK {
			t.Fatalf("ban %v: got HTTP %d %s", b, a.status, a.raw)
		}
	}
	if n := len(s.Bans()); n != 3 {
		t.Fatalf("got %d bans, want 3 (one per scope)", n)
	}
	a := send(t, request(t, s, "DELETE", "/moderation/ban?target_user_id=u1&channel_cid=messaging:a", nil))
	if a.status != http.StatusOK {
		t.Fatalf("unban in messaging:a: got HTTP %d %s", a.status, a.raw)
	}
	var scopes []string
	for _, b := range s.Bans() {
		scopes = append(scopes, b.ChannelCID)
	}
	if diff := cmp.Diff([]string{"", "messaging:b"}, scopes); diff != "" {
		t.Fatalf("scopes banned after lifting messaging:a (-want +got):\n%s", diff)
	}
	if !s.IsBanned("u1", "messaging:a") {
		t.Fatal("u1 is not banned in messaging:a, want banned: the app-wide ban is in force")
	}
	clock.Advance(15 * time.Minute)
	if s.IsBanned("u1", "") || s.IsBanned("u1", "messaging:a") || !s.IsBanned("u1", "messaging:b") {
		t.Fatal("after 15 minutes: want the app-wide timeout over and the channel ban in messaging:b in force")
	}
}
