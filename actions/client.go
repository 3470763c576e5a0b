package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// DefaultBaseURL is Stream's closest-edge REST endpoint.
	DefaultBaseURL = "https://chat.stream-io-api.com"
	// DefaultTimeout bounds a whole call (connect, send, answer) when the
	// caller supplies no HTTP client. Stream answers moderation calls in
	// milliseconds; ten seconds only guards against a hung connection.
	DefaultTimeout = 10 * time.Second
	// DefaultUserAgent is sent as X-Stream-Client when none is configured.
	DefaultUserAgent = "moderator-go"
	// DefaultBotName is the display name EnsureBotUser gives the bot user.
	DefaultBotName = "Moderator"

	// maxResponseBytes bounds how much of an answer is read: moderation
	// answers are small, and an edge error page must not fill memory.
	maxResponseBytes = 1 << 20
)

// ClientConfig configures a Client. APIKey, APISecret and BotUserID are
// required; the rest have defaults.
type ClientConfig struct {
	// BaseURL is Stream's REST base URL (STREAM_BASE_URL); DefaultBaseURL
	// when empty. A path prefix is kept (for a proxy); a trailing slash is
	// trimmed.
	BaseURL string
	// APIKey is the app's API key, sent as the api_key query parameter.
	APIKey string
	// APISecret is the app's API secret. It signs the server token and is
	// not kept afterwards.
	APISecret string
	// BotUserID is the acting user of every moderation call
	// (MODERATOR_BOT_USER_ID).
	BotUserID string
	// BotName is the bot user's display name for EnsureBotUser;
	// DefaultBotName when empty.
	BotName string
	// HTTPClient sends the requests; when nil, a client with DefaultTimeout
	// that does not follow redirects. A supplied client's timeouts and
	// redirect policy are the caller's to set.
	HTTPClient *http.Client
	// UserAgent is the X-Stream-Client (and User-Agent) value, e.g.
	// "moderator-go-1.4.0"; DefaultUserAgent when empty.
	UserAgent string
}

// configError names the ClientConfig field that is wrong, so that start-up
// stops with one line an operator can act on.
func configError(field, problem string) error {
	return fmt.Errorf("stream client config: %s %s", field, problem)
}

// validate checks cfg and returns the normalised base URL. It never puts the
// secret in an error.
func (cfg ClientConfig) validate() (string, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return "", configError("APIKey", "is required")
	}
	if cfg.APISecret == "" {
		return "", configError("APISecret", "is required")
	}
	if strings.TrimSpace(cfg.BotUserID) == "" {
		return "", configError("BotUserID", "is required")
	}
	if strings.ContainsFunc(cfg.BotUserID, func(r rune) bool { return r == ' ' || r < 0x20 }) {
		return "", configError("BotUserID", "must not contain spaces or control characters")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", configError("BaseURL", "must be an absolute http or https URL")
	}
	if u.User != nil {
		return "", configError("BaseURL", "must not contain credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", configError("BaseURL", "must not have a query or fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// Client calls Stream's REST API as the server. It is immutable after
// NewClient and safe for concurrent use.
type Client struct {
	baseURL   string
	apiKey    string
	token     string
	botUserID string
	botName   string
	userAgent string
	http      *http.Client
	now       func() time.Time
}

// NewClient validates cfg and builds the server token once: it never
// expires, so there is nothing to refresh.
func NewClient(cfg ClientConfig) (*Client, error) {
	base, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	token, err := serverToken(cfg.APISecret)
	if err != nil {
		return nil, fmt.Errorf("stream client: sign server token: %w", err)
	}
	c := &Client{
		baseURL:   base,
		apiKey:    cfg.APIKey,
		token:     token,
		botUserID: cfg.BotUserID,
		botName:   cfg.BotName,
		userAgent: cfg.UserAgent,
		http:      cfg.HTTPClient,
		now:       time.Now,
	}
	if c.botName == "" {
		c.botName = DefaultBotName
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.http == nil {
		c.http = &http.Client{
			Timeout: DefaultTimeout,
			// Stream does not redirect API calls. Following one would turn
			// a POST into a GET and carry the token along; answering the
			// 3xx as a permanent APIError shows the misconfigured BaseURL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c, nil
}

// serverToken is Stream's server-side token: HS256 over exactly
// {"server": true}, with no expiry, as Stream's own SDKs build it.
func serverToken(secret string) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"server": true})
	return tok.SignedString([]byte(secret))
}

// BotUserID is the acting user of every call.
func (c *Client) BotUserID() string { return c.botUserID }

// Response is what every successful call returns besides its payload.
type Response struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// RateLimit is the window Stream reported for the endpoint, so that a
	// limiter can pace the next call before Stream has to refuse it.
	RateLimit RateLimit
}

// do sends one request and decodes a 2xx answer into out (when non-nil).
// Errors carry the method and path, never the URL: the URL holds the API
// key, and the token is in a header that no error includes.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (Response, error) {
	op := method + " " + path
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return Response{}, fmt.Errorf("%s: %w: encode body: %v", op, ErrInvalidRequest, err)
		}
		body = bytes.NewReader(b)
	}
	q := make(url.Values, len(query)+1)
	for k, v := range query {
		q[k] = v
	}
	q.Set("api_key", c.apiKey)
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path+"?"+q.Encode(), body)
	if err != nil {
		return Response{}, fmt.Errorf("%s: %w: build request: %v", op, ErrInvalidRequest, stripURL(err))
	}
	req.Header.Set("Authorization", c.token)
	req.Header.Set("Stream-Auth-Type", "jwt")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Stream-Client", c.userAgent)
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s: %w", op, stripURL(err))
	}
	defer resp.Body.Close()
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	// Drain what is left (bounded) so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))

	r := Response{StatusCode: resp.StatusCode, RateLimit: parseRateLimit(resp.Header)}
	if seen, ok := ctx.Value(rateLimitKey{}).(*RateLimit); ok {
		*seen = r.RateLimit
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return r, fmt.Errorf("%s: %w", op, parseAPIError(resp.StatusCode, resp.Header, data, c.now()))
	}
	if readErr != nil {
		return r, fmt.Errorf("%s: read answer: %w", op, readErr)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return r, fmt.Errorf("%s: decode answer: %w", op, err)
		}
	}
	return r, nil
}

// stripURL removes the *url.Error layer, whose message repeats the full URL
// including the api_key query parameter.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// rateLimitKey carries a *RateLimit that do fills with the rate-limit window
// of the answer, whatever the call: the runner passes it to the budget
// shared by the replicas.
type rateLimitKey struct{}
