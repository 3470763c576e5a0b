package actions_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/actions"
	"moderator/actions/streamtest"
)

const (
	testSecret = "tsec2"
	// knownToken is STREAM_API.md's server token for the secret tsec2.
	knownToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzZXJ2ZXIiOnRydWV9.XwR6Woz9uZFo1mpuMZtLhPYCantjl8ooPYy_s2DXthc"
	bot        = "moderator-bot"
)

// setup starts a fake Stream with the known secret and a client for it.
func setup(t *testing.T, opts ...streamtest.Option) (*actions.Client, *streamtest.Server) {
	t.Helper()
	opts = append([]streamtest.Option{streamtest.WithCredentials("test-key", testSecret)}, opts...)
	s := streamtest.New(t, opts...)
	c, err := actions.NewClient(actions.ClientConfig{
		BaseURL:   s.URL,
		APIKey:    s.Key,
		APISecret: s.Secret,
		BotUserID: bot,
		UserAgent: "moderator-go-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func TestNewClientValidation(t *testing.T) {
	t.Parallel()
	valid := actions.ClientConfig{APIKey: "k", APISecret: "very-secret-value", BotUserID: bot}
	tests := []struct {
		name      string
		change    func(*actions.ClientConfig)
		wantField string // empty: valid
	}{
		{"valid with defaults", func(*actions.ClientConfig) {}, ""},
		{"valid with path prefix", func(c *actions.ClientConfig) { c.BaseURL = "http://proxy.internal/stream/" }, ""},
		{"missing key", func(c *actions.ClientConfig) { c.APIKey = "" }, "APIKey"},
		{"blank key", func(c *actions.ClientConfig) { c.APIKey = "  " }, "APIKey"},
		{"missing secret", func(c *actions.ClientConfig) { c.APISecret = "" }, "APISecret"},
		{"missing bot", func(c *actions.ClientConfig) { c.BotUserID = "" }, "BotUserID"},
		{"bot with space", func(c *actions.ClientConfig) { c.BotUserID = "mod bot" }, "BotUserID"},
		{"relative base URL", func(c *actions.ClientConfig) { c.BaseURL = "chat.stream-io-api.com" }, "BaseURL"},
		{"ftp base URL", func(c *actions.ClientConfig) { c.BaseURL = "ftp://chat.stream-io-api.com" }, "BaseURL"},
		{"base URL with query", func(c *actions.ClientConfig) { c.BaseURL = "https://x.example?api_key=1" }, "BaseURL"},
		{"base URL with credentials", func(c *actions.ClientConfig) { c.BaseURL = "https://user:very-secret-value@x.example" }, "BaseURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.change(&cfg)
			c, err := actions.NewClient(cfg)
			if tt.wantField == "" {
				if err != nil || c == nil {
					t.Fatalf("got error %v, want a client", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want one naming %s", tt.wantField)
			}
			if !strings.Contains(err.Error(), tt.wantField) {
				t.Errorf("got error %q, want it to name %s", err, tt.wantField)
			}
			if strings.Contains(err.Error(), "very-secret-value") {
				t.Errorf("got error %q, which contains the secret", err)
			}
		})
	}
}

// TestEveryRequestCarriesTheContract checks the token vector and the
// headers and parameters every call must carry, on the wire.
func TestEveryRequestCarriesTheContract(t *testing.T) {
	t.Parallel()
	c, s := setup(t)
	ctx := context.Background()
	if _, err := c.EnsureBotUser(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteMessage(ctx, "m1", false); err != nil {
		t.Fatal(err)
	}
	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		got := map[string]string{
			"api_key":          r.Query.Get("api_key"),
			"Authorization":    r.Header.Get("Authorization"),
			"Stream-Auth-Type": r.Header.Get("Stream-Auth-Type"),
			"Content-Type":     r.Header.Get("Content-Type"),
			"X-Stream-Client":  r.Header.Get("X-Stream-Client"),
		}
		want := map[string]string{
			"api_key":          "test-key",
			"Authorization":    knownToken,
			"Stream-Auth-Type": "jwt",
			"Content-Type":     "application/json",
			"X-Stream-Client":  "moderator-go-test",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", r.Method, r.Path, diff)
		}
		if r.Status != http.StatusOK {
			t.Errorf("%s %s: got HTTP %d code %d from the fake, want 200", r.Method, r.Path, r.Status, r.Code)
		}
	}
}

// TestOperationsOnTheWire checks each method's method, path, query and body
// against STREAM_API.md, as the fake received them.
func TestOperationsOnTheWire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		call      func(context.Context, *actions.Client) error
		wantRoute string
		wantPath  string
		wantQuery url.Values // besides api_key
		wantBody  map[string]any
	}{
		{
			name: "global ban with timeout",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u1", Reason: "spam", Timeout: 90 * time.Second, IPBan: true})
				return err
			},
			wantRoute: streamtest.RouteBan, wantPath: "/moderation/ban", wantQuery: url.Values{},
			wantBody: map[string]any{"target_user_id": "u1", "banned_by_id": bot, "reason": "spam", "timeout": float64(2), "ip_ban": true},
		},
		{
			name: "channel shadow ban deleting messages",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u1", ChannelCID: "messaging:general", Shadow: true,
					DeleteMessages: actions.DeleteHard, BanFromFutureChannels: true})
				return err
			},
			wantRoute: streamtest.RouteBan, wantPath: "/moderation/ban", wantQuery: url.Values{},
			wantBody: map[string]any{"target_user_id": "u1", "banned_by_id": bot, "shadow": true, "channel_cid": "messaging:general",
				"delete_messages": "hard", "ban_from_future_channels": true},
		},
		{
			name: "unban from channel",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.Unban(ctx, actions.UnbanRequest{TargetUserID: "u1", ChannelCID: "messaging:general", Reason: "appeal"})
				return err
			},
			wantRoute: streamtest.RouteUnban, wantPath: "/moderation/ban",
			wantQuery: url.Values{"target_user_id": {"u1"}, "created_by": {bot}, "reason": {"appeal"},
				"channel_cid": {"messaging:general"}},
		},
		{
			name: "flag message",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.FlagMessage(ctx, "m1", actions.FlagOptions{Reason: "spam", Custom: map[string]any{"rule_id": "r1"}})
				return err
			},
			wantRoute: streamtest.RouteFlag, wantPath: "/moderation/flag", wantQuery: url.Values{},
			wantBody: map[string]any{"target_message_id": "m1", "user_id": bot, "reason": "spam", "custom": map[string]any{"rule_id": "r1"}},
		},
		{
			name: "flag user",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.FlagUser(ctx, "u1", actions.FlagOptions{})
				return err
			},
			wantRoute: streamtest.RouteFlag, wantPath: "/moderation/flag", wantQuery: url.Values{},
			wantBody: map[string]any{"target_user_id": "u1", "user_id": bot},
		},
		{
			name: "unflag message",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.UnflagMessage(ctx, "m1")
				return err
			},
			wantRoute: streamtest.RouteUnflag, wantPath: "/moderation/unflag", wantQuery: url.Values{},
			wantBody: map[string]any{"target_message_id": "m1", "user_id": bot},
		},
		{
			name: "unflag user",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.UnflagUser(ctx, "u1")
				return err
			},
			wantRoute: streamtest.RouteUnflag, wantPath: "/moderation/unflag", wantQuery: url.Values{},
			wantBody: map[string]any{"target_user_id": "u1", "user_id": bot},
		},
		{
			name: "soft delete",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.DeleteMessage(ctx, "m1", false)
				return err
			},
			wantRoute: streamtest.RouteDeleteMessage, wantPath: "/messages/m1", wantQuery: url.Values{"deleted_by": {bot}},
		},
		{
			name: "hard delete of an ID needing escapes",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.DeleteMessage(ctx, "m 1/x", true)
				return err
			},
			wantRoute: streamtest.RouteDeleteMessage, wantPath: "/messages/m 1/x", wantQuery: url.Values{"deleted_by": {bot}, "hard": {"true"}},
		},
		{
			name: "undelete",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.UndeleteMessage(ctx, "m1")
				return err
			},
			wantRoute: streamtest.RouteUndeleteMessage, wantPath: "/messages/m1/undelete", wantQuery: url.Values{},
			wantBody: map[string]any{"undeleted_by": bot},
		},
		{
			name: "warn in a thread",
			call: func(ctx context.Context, c *actions.Client) error {
				resp, err := c.SendMessage(ctx, "messaging", "general", actions.MessageRequest{
					ID: "warn-d1-a1", Text: "@u1 please keep it civil", ParentID: "m1", ShowInChannel: true,
					Silent: true, MentionedUserIDs: []string{"u1"}, SkipPush: true,
				})
				if err == nil && resp.MessageID != "warn-d1-a1" {
					return errors.New("got message ID " + resp.MessageID + ", want warn-d1-a1")
				}
				return err
			},
			wantRoute: streamtest.RouteSendMessage, wantPath: "/channels/messaging/general/message", wantQuery: url.Values{},
			wantBody: map[string]any{
				"message": map[string]any{"id": "warn-d1-a1", "text": "@u1 please keep it civil", "user_id": bot, "parent_id": "m1",
					"show_in_channel": true, "silent": true, "mentioned_users": []any{"u1"}},
				"skip_push": true,
			},
		},
		{
			name: "upsert users",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.UpsertUsers(ctx, actions.User{ID: "u1", Name: "Ann", Role: "user", Custom: map[string]any{"tier": "gold", "id": "ignored"}})
				return err
			},
			wantRoute: streamtest.RouteUpsertUsers, wantPath: "/users", wantQuery: url.Values{},
			wantBody: map[string]any{"users": map[string]any{"u1": map[string]any{"id": "u1", "name": "Ann", "role": "user", "tier": "gold"}}},
		},
		{
			name: "ensure bot user",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.EnsureBotUser(ctx)
				return err
			},
			wantRoute: streamtest.RouteUpsertUsers, wantPath: "/users", wantQuery: url.Values{},
			wantBody: map[string]any{"users": map[string]any{bot: map[string]any{"id": bot, "name": actions.DefaultBotName}}},
		},
		{
			name: "query bans",
			call: func(ctx context.Context, c *actions.Client) error {
				_, err := c.QueryBannedUsers(ctx, actions.QueryBansRequest{Filter: map[string]any{"user_id": "u1"}, Limit: 10})
				return err
			},
			wantRoute: streamtest.RouteQueryBannedUsers, wantPath: "/query_banned_users",
			wantQuery: url.Values{"payload": {`{"filter_conditions":{"user_id":"u1"},"limit":10}`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, s := setup(t)
			s.AddUser(streamtest.User{ID: bot})
			if err := tt.call(context.Background(), c); err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			calls := s.Calls(tt.wantRoute)
			if len(calls) != 1 {
				t.Fatalf("got %d calls on %s (all: %+v), want 1", len(calls), tt.wantRoute, s.Requests())
			}
			r := calls[0]
			if r.Path != tt.wantPath || r.Status != http.StatusOK {
				t.Errorf("got path %q answered %d, want %q answered 200", r.Path, r.Status, tt.wantPath)
			}
			q := r.Query
			q.Del("api_key")
			if diff := cmp.Diff(tt.wantQuery, q); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantBody, r.Body); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEffectsAtTheFake(t *testing.T) {
	t.Parallel()
	clock := streamtest.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	c, s := setup(t, streamtest.WithClock(clock.Now))
	ctx := context.Background()
	if _, err := c.EnsureBotUser(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u1", ChannelCID: "messaging:general", Timeout: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if !s.IsBanned("u1", "messaging:general") || s.IsBanned("u1", "messaging:other") {
		t.Errorf("got u1 banned in general=%v, other=%v; want a ban in general only",
			s.IsBanned("u1", "messaging:general"), s.IsBanned("u1", "messaging:other"))
	}
	clock.Advance(10 * time.Minute)
	if s.IsBanned("u1", "messaging:general") {
		t.Error("got u1 still banned after the 10-minute timeout, want expired")
	}
	if _, err := c.SendMessage(ctx, "messaging", "general", actions.MessageRequest{Text: "be nice"}); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].UserID != bot || msgs[0].CID != "messaging:general" {
		t.Errorf("got messages %+v, want one from the bot in messaging:general", msgs)
	}

	if _, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u2"}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.QueryBannedUsers(ctx, actions.QueryBansRequest{Filter: map[string]any{"user_id": map[string]any{"$eq": "u2"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []actions.Ban{{UserID: "u2", BannedByID: bot, CreatedAt: clock.Now()}}
	if diff := cmp.Diff(want, resp.Bans); diff != "" {
		t.Errorf("bans (-want +got):\n%s", diff)
	}
}

func TestSuccessReturnsRateLimit(t *testing.T) {
	t.Parallel()
	clock := streamtest.NewClock(time.Date(2025, 3, 1, 12, 0, 30, 0, time.UTC))
	c, _ := setup(t, streamtest.WithClock(clock.Now))
	var last actions.Response
	for range 3 {
		r, err := c.FlagUser(context.Background(), "u1", actions.FlagOptions{})
		if err != nil && !actions.IsAlreadyDone(err) {
			t.Fatal(err)
		}
		if err == nil {
			last = r
		}
	}
	want := actions.RateLimit{Limit: 300, Remaining: 299, Reset: time.Date(2025, 3, 1, 12, 1, 0, 0, time.UTC)}
	if diff := cmp.Diff(want, last.RateLimit); diff != "" {
		t.Errorf("rate limit of the first flag (-want +got):\n%s", diff)
	}
}

func TestLocalValidationSendsNothing(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", actions.MaxReasonLength+1)
	tests := []struct {
		name string
		call func(context.Context, *actions.Client) error
	}{
		{"ban without target", func(ctx context.Context, c *actions.Client) error {
			_, err := c.Ban(ctx, actions.BanRequest{})
			return err
		}},
		{"ban negative timeout", func(ctx context.Context, c *actions.Client) error {
			_, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u1", Timeout: -time.Minute})
			return err
		}},
		{"ban long reason", func(ctx context.Context, c *actions.Client) error {
			_, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u1", Reason: long})
			return err
		}},
		{"ban bad delete mode", func(ctx context.Context, c *actions.Client) error {
			_, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u1", DeleteMessages: "all"})
			return err
		}},
		{"ban bad cid", func(ctx context.Context, c *actions.Client) error {
			_, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u1", ChannelCID: "general"})
			return err
		}},
		{"unban without target", func(ctx context.Context, c *actions.Client) error {
			_, err := c.Unban(ctx, actions.UnbanRequest{})
			return err
		}},
		{"flag long reason", func(ctx context.Context, c *actions.Client) error {
			_, err := c.FlagMessage(ctx, "m1", actions.FlagOptions{Reason: long})
			return err
		}},
		{"flag without target", func(ctx context.Context, c *actions.Client) error {
			_, err := c.FlagUser(ctx, "", actions.FlagOptions{})
			return err
		}},
		{"flag unencodable custom", func(ctx context.Context, c *actions.Client) error {
			_, err := c.FlagMessage(ctx, "m1", actions.FlagOptions{Custom: map[string]any{"f": func() {}}})
			return err
		}},
		{"unflag without target", func(ctx context.Context, c *actions.Client) error {
			_, err := c.UnflagMessage(ctx, "")
			return err
		}},
		{"delete without ID", func(ctx context.Context, c *actions.Client) error {
			_, err := c.DeleteMessage(ctx, "", true)
			return err
		}},
		{"undelete without ID", func(ctx context.Context, c *actions.Client) error {
			_, err := c.UndeleteMessage(ctx, "")
			return err
		}},
		{"send without text", func(ctx context.Context, c *actions.Client) error {
			_, err := c.SendMessage(ctx, "messaging", "general", actions.MessageRequest{Text: " "})
			return err
		}},
		{"send without channel", func(ctx context.Context, c *actions.Client) error {
			_, err := c.SendMessage(ctx, "", "general", actions.MessageRequest{Text: "hi"})
			return err
		}},
		{"send too long", func(ctx context.Context, c *actions.Client) error {
			_, err := c.SendMessage(ctx, "messaging", "general", actions.MessageRequest{Text: strings.Repeat("x", actions.MaxMessageLength+1)})
			return err
		}},
		{"upsert nobody", func(ctx context.Context, c *actions.Client) error {
			_, err := c.UpsertUsers(ctx)
			return err
		}},
		{"upsert without ID", func(ctx context.Context, c *actions.Client) error {
			_, err := c.UpsertUsers(ctx, actions.User{Name: "x"})
			return err
		}},
		{"query bans without filter", func(ctx context.Context, c *actions.Client) error {
			_, err := c.QueryBannedUsers(ctx, actions.QueryBansRequest{})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, s := setup(t)
			err := tt.call(context.Background(), c)
			if !errors.Is(err, actions.ErrInvalidRequest) {
				t.Fatalf("got %v, want ErrInvalidRequest", err)
			}
			if !actions.IsPermanent(err) || actions.IsRetryable(err) || actions.IsAlreadyDone(err) {
				t.Errorf("got permanent=%v retryable=%v done=%v, want permanent only",
					actions.IsPermanent(err), actions.IsRetryable(err), actions.IsAlreadyDone(err))
			}
			if n := len(s.Requests()); n != 0 {
				t.Errorf("got %d requests sent, want none", n)
			}
		})
	}
}

func TestTimeoutsAreWholeMinutesRoundedUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		timeout time.Duration
		want    any // nil: the field is absent (a ban until lifted)
	}{
		{0, nil},
		{time.Second, float64(1)},
		{time.Minute, float64(1)},
		{61 * time.Second, float64(2)},
		{24 * time.Hour, float64(1440)},
	}
	for _, tt := range tests {
		t.Run(tt.timeout.String(), func(t *testing.T) {
			t.Parallel()
			c, s := setup(t)
			if _, err := c.Ban(context.Background(), actions.BanRequest{TargetUserID: "u1", Timeout: tt.timeout}); err != nil {
				t.Fatal(err)
			}
			got, ok := s.Calls(streamtest.RouteBan)[0].Body["timeout"]
			if tt.want == nil && ok {
				t.Errorf("got timeout %v, want none", got)
			}
			if tt.want != nil && got != tt.want {
				t.Errorf("got timeout %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTruncateReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"short", "short"},
		{strings.Repeat("é", 255), strings.Repeat("é", 255)},
		{strings.Repeat("é", 300), strings.Repeat("é", 255)},
	}
	for _, tt := range tests {
		if got := actions.TruncateReason(tt.in); got != tt.want {
			t.Errorf("TruncateReason(%d runes): got %d bytes, want %d bytes", len([]rune(tt.in)), len(got), len(tt.want))
		}
	}
}

func TestSecondFlagIsAlreadyDone(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	ctx := context.Background()
	if _, err := c.FlagMessage(ctx, "m1", actions.FlagOptions{Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.FlagMessage(ctx, "m1", actions.FlagOptions{Reason: "spam"})
	if !actions.IsAlreadyDone(err) || actions.IsPermanent(err) || actions.IsRetryable(err) {
		t.Errorf("second flag: got %v (done=%v), want already done only", err, actions.IsAlreadyDone(err))
	}
}

func TestResentWarningIsAlreadyDone(t *testing.T) {
	t.Parallel()
	c, s := setup(t)
	ctx := context.Background()
	if _, err := c.EnsureBotUser(ctx); err != nil {
		t.Fatal(err)
	}
	m := actions.MessageRequest{ID: "warn-d1-a1", Text: "be nice"}
	if _, err := c.SendMessage(ctx, "messaging", "general", m); err != nil {
		t.Fatal(err)
	}
	_, err := c.SendMessage(ctx, "messaging", "general", m)
	if !actions.IsAlreadyDone(err) {
		t.Errorf("resend: got %v, want already done", err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("got %d messages, want 1", n)
	}
}

func TestSendFromMissingBotUserIsPermanent(t *testing.T) {
	t.Parallel()
	c, _ := setup(t)
	_, err := c.SendMessage(context.Background(), "messaging", "general", actions.MessageRequest{Text: "hi"})
	if !actions.IsPermanent(err) || !actions.IsNotFound(err) {
		t.Errorf("got %v, want a permanent not-found error (the bot user does not exist)", err)
	}
}

func TestNetworkFailuresAreRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer streamtest.Answer
		ctx    func() (context.Context, context.CancelFunc)
	}{
		{"dropped connection", streamtest.Disconnect(), nil},
		{"applied then dropped", streamtest.ApplyThenDisconnect(), nil},
		{"deadline", streamtest.Pass().After(time.Hour), func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, s := setup(t)
			s.Script(streamtest.RouteBan, tt.answer)
			ctx := context.Background()
			if tt.ctx != nil {
				var cancel context.CancelFunc
				ctx, cancel = tt.ctx()
				defer cancel()
			}
			_, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u1"})
			if err == nil {
				t.Fatal("got no error, want a network error")
			}
			if !actions.IsRetryable(err) || actions.IsPermanent(err) || actions.IsAlreadyDone(err) {
				t.Errorf("got %v: retryable=%v, want retryable only", err, actions.IsRetryable(err))
			}
			if strings.Contains(err.Error(), "api_key") || strings.Contains(err.Error(), knownToken) {
				t.Errorf("got error %q, which leaks the URL or the token", err)
			}
		})
	}
}

func TestHTTPClientTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	s := streamtest.New(t)
	s.Script(streamtest.RouteFlag, streamtest.Pass().After(time.Hour))
	c, err := actions.NewClient(actions.ClientConfig{
		BaseURL: s.URL, APIKey: s.Key, APISecret: s.Secret, BotUserID: bot,
		HTTPClient: &http.Client{Timeout: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.FlagUser(context.Background(), "u1", actions.FlagOptions{})
	if !actions.IsRetryable(err) {
		t.Errorf("got %v, want a retryable timeout", err)
	}
	if len(s.Flags()) != 0 {
		t.Errorf("got flags %+v, want none", s.Flags())
	}
}

func TestRedirectIsAPermanentError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.RedirectHandler("https://elsewhere.example/", http.StatusMovedPermanently))
	t.Cleanup(srv.Close)
	c, err := actions.NewClient(actions.ClientConfig{BaseURL: srv.URL, APIKey: "k", APISecret: testSecret, BotUserID: bot})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.FlagUser(context.Background(), "u1", actions.FlagOptions{})
	var ae *actions.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusMovedPermanently || !actions.IsPermanent(err) {
		t.Errorf("got %v, want a permanent 301 APIError", err)
	}
}

func TestFakeLimiterAnswerGivesRetryAt(t *testing.T) {
	t.Parallel()
	clock := streamtest.NewClock(time.Date(2025, 3, 1, 12, 0, 10, 0, time.UTC))
	c, s := setup(t, streamtest.WithClock(clock.Now), streamtest.WithRateLimit(streamtest.RouteBan, 30)) // 1 per second
	ctx := context.Background()
	if _, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u1"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u2"})
	if !actions.IsRetryable(err) {
		t.Fatalf("got %v, want a retryable 429", err)
	}
	if got, want := actions.RetryAt(err, clock.Now()), clock.Now().Add(time.Second); !got.Equal(want) {
		t.Errorf("got RetryAt %v, want %v (Retry-After 1)", got, want)
	}
	clock.Advance(time.Second)
	if _, err := c.Ban(ctx, actions.BanRequest{TargetUserID: "u2"}); err != nil {
		t.Errorf("after waiting: got %v, want success", err)
	}
	if !s.IsBanned("u2", "") {
		t.Error("got u2 not banned, want banned")
	}
}
