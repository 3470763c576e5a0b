// Package console is the reviewers' web UI, served under /console/ when
// the staff API is on: server-rendered html/template pages, enhanced by
// htmx (vendored in static/, no build step), on top of the same use cases
// and the same staff audit log as the staff API.
//
// Staff sign in by pasting a staff token, which is verified by the staff
// API's authenticator and exchanged for a session (a cookie naming a row
// of console_sessions, which ends no later than the token). Every
// state-changing form carries the session's CSRF token and passes Go's
// cross-origin protection; every answer carries a strict
// Content-Security-Policy (no inline script) and the other security
// headers. Chat text is escaped, and its control, bidirectional and
// invisible characters are shown as visible escapes.
//
// It may import appeals, policy and store (types and use cases), never
// actions, webhook or cmd.
package console
