package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"moderator/appeals"
	"moderator/store"
)

// DefaultSessionTTL is the longest a console session lasts; it ends sooner
// when the staff token it was made from expires sooner.
const DefaultSessionTTL = 12 * time.Hour

// Staff acts of the console's own.
const (
	ActSignIn  = "console_sign_in"
	ActSignOut = "console_sign_out"
)

// maxTokenBytes bounds the token pasted at sign-in (the authenticator
// has its own, smaller bound).
const maxTokenBytes = 16 << 10

// session is a signed-in reviewer: the stored session and its id's hash.
type session struct {
	store.ConsoleSession
	idHash []byte
}

type sessionKey struct{}

// sessionFrom returns the session requireSession put in ctx (zero when
// none).
func sessionFrom(ctx context.Context) session {
	s, _ := ctx.Value(sessionKey{}).(session)
	return s
}

// cookieName is the session cookie's name: with the __Host- prefix when it
// is Secure, so that the browser holds it to this host, path / and HTTPS.
func cookieName(r *http.Request) string {
	if isLoopback(r.Host) {
		return "moderator_console"
	}
	return "__Host-moderator_console"
}

func hashID(id string) []byte {
	sum := sha256.Sum256([]byte(id))
	return sum[:]
}

// session reads the request's session, if it has a live one.
func (c *Console) session(r *http.Request) (session, bool) {
	ck, err := r.Cookie(cookieName(r))
	if err != nil || ck.Value == "" || len(ck.Value) > 100 {
		return session{}, false
	}
	h := hashID(ck.Value)
	s, err := c.store.ConsoleSession(r.Context(), h)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			logOf(r.Context()).err = err
		}
		return session{}, false
	}
	return session{ConsoleSession: s, idHash: h}, true
}

// requireSession lets through a request of a signed-in reviewer, with the
// session in its context; a page request without one is sent to sign in,
// a form without one is refused. A form must also carry the session's
// CSRF token.
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := c.session(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, Prefix+"/sign-in", http.StatusSeeOther)
				return
			}
			c.fail(w, r, &httpError{status: http.StatusUnauthorized, msg: "You are not signed in (or your session has ended): sign in again."})
			return
		}
		rl := logOf(r.Context())
		rl.sub, rl.role = sess.Subject, sess.Role
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess))
		if r.Method == http.MethodPost {
			if err := checkCSRF(r, sess); err != nil {
				c.fail(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

type signInPage struct {
	basePage
	Error string
	// OIDC: the identity provider sign-in is offered.
	OIDC bool
}

func (c *Console) signInData(r *http.Request, msg string) signInPage {
	return signInPage{basePage: c.base(r, "Sign in"), Error: msg, OIDC: c.oidc != nil}
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) error {
	if _, ok := c.session(r); ok {
		http.Redirect(w, r, Prefix+"/appeals", http.StatusSeeOther)
		return nil
	}
	c.render(w, r, http.StatusOK, "sign-in", c.signInData(r, ""))
	return nil
}

// signIn exchanges a staff token for a session: the token is verified as
// the staff API verifies it, and the session ends when the token does (or
// after SessionTTL, sooner). The token itself is not kept.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBytes)
	if err := r.ParseForm(); err != nil {
		return &httpError{status: http.StatusBadRequest, msg: "The form could not be read (the token is too long?).", err: err}
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	token = strings.TrimPrefix(token, "Bearer ")
	refuse := func(msg string) error {
		c.render(w, r, http.StatusUnauthorized, "sign-in", c.signInData(r, msg))
		return nil
	}
	if token == "" {
		return refuse("Paste your staff token (from `moderator token` or your identity provider).")
	}
	st, exp, err := c.auth.AuthenticateUntil(r.Context(), token)
	if err != nil {
		logOf(r.Context()).err = err
		if strings.HasPrefix(err.Error(), "expired") {
			return refuse("That token has expired: get a new one.")
		}
		return refuse("That token is not valid here.")
	}
	return c.openSession(w, r, st, exp, actMethodPasteTok)
}

// openSession opens a session for st, ending at exp (zero: none) or after
// SessionTTL, whichever is sooner, records the sign-in (how: "token" or
// "oidc") and sends the browser to the queue.
func (c *Console) openSession(w http.ResponseWriter, r *http.Request, st appeals.Staff, exp time.Time, how string) error {
	now := c.now()
	until := now.Add(c.sessionTTL)
	if !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	id, csrf := randomToken(), randomToken()
	sess := session{ConsoleSession: store.ConsoleSession{Subject: st.Subject, Role: string(st.Role), CSRFToken: csrf, ExpiresAt: until},
		idHash: hashID(id)}
	if err := c.store.CreateConsoleSession(r.Context(), sess.idHash, sess.ConsoleSession); err != nil {
		return err
	}
	r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess))
	rl := logOf(r.Context())
	rl.sub, rl.role = st.Subject, string(st.Role)
	if err := c.record(r, store.StaffAct{Act: ActSignIn, Params: map[string]any{"until": until.UTC().Format(time.RFC3339), "method": how}}); err != nil {
		_ = c.store.DeleteConsoleSession(r.Context(), sess.idHash)
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(r), Value: id, Path: "/", Expires: until, MaxAge: int(until.Sub(now).Seconds()),
		HttpOnly: true, Secure: !isLoopback(r.Host), SameSite: http.SameSiteStrictMode,
	})
	if how == actMethodOIDC {
		// The callback is a navigation from the provider's site, on which
		// the browser withholds the SameSite=Strict cookie, even through a
		// redirect: continue with a same-site navigation instead.
		w.Header().Set("Refresh", "0; url="+Prefix+"/appeals")
		c.render(w, r, http.StatusOK, "signed-in", c.base(r, "Signed in"))
		return nil
	}
	http.Redirect(w, r, Prefix+"/appeals", http.StatusSeeOther)
	return nil
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) error {
	sess := sessionFrom(r.Context())
	if err := c.store.DeleteConsoleSession(r.Context(), sess.idHash); err != nil {
		return err
	}
	if err := c.record(r, store.StaffAct{Act: ActSignOut}); err != nil {
		logOf(r.Context()).err = err // the session is gone either way
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: !isLoopback(r.Host), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"/sign-in", http.StatusSeeOther)
	return nil
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// role of the session, for templates.
func (s session) can(need appeals.Role) bool { return appeals.Role(s.Role).Allows(need) }
