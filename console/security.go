package console

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"moderator/appeals"
)

// contentSecurityPolicy allows scripts, styles and requests from the
// console's own origin only: no inline script or style, no eval, no
// plugins, no framing, forms posted only to itself.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets the headers every console answer carries, error
// pages and assets included.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, Prefix+"/assets/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// crossOriginProtection refuses state-changing requests that a browser
// says come from another origin (Sec-Fetch-Site, else Origin against
// Host): the first of the two CSRF defences, before any session is read.
var crossOriginProtection = http.NewCrossOriginProtection()

func crossOrigin(next http.Handler) http.Handler {
	return crossOriginProtection.Handler(next)
}

// maxFormBytes bounds a form's body.
const maxFormBytes = 64 << 10

// checkCSRF is the second defence, on every form of a session: the form
// must carry the session's own CSRF token (a hidden field, or the
// X-CSRF-Token header of an htmx request).
func checkCSRF(r *http.Request, sess session) error {
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return &httpError{status: http.StatusBadRequest, msg: "The form could not be read (it may be too large).", err: err}
	}
	got := r.PostForm.Get("csrf")
	if got == "" {
		got = r.Header.Get("X-CSRF-Token")
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRFToken)) != 1 {
		return &httpError{status: http.StatusForbidden, msg: "This form is out of date or did not come from the console: reload the page and try again."}
	}
	return nil
}

// requireRole lets a request through only when the session's role
// includes need; otherwise 403 with the error page, and nothing done. It
// goes inside requireSession.
func (c *Console) requireRole(need appeals.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sess := sessionFrom(r.Context())
			if !appeals.Role(sess.Role).Allows(need) {
				c.fail(w, r, &httpError{status: http.StatusForbidden,
					msg: "This needs the " + string(need) + " role; you are signed in as " + sess.Role + "."})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// isLoopback reports whether host (a Host header, with or without a port)
// names this machine: the only case where the session cookie may go
// without Secure (a developer's plain-HTTP console on localhost).
func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
