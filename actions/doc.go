// Package actions owns the moderator's side of Stream's REST API: a client
// that authenticates as the server (an HS256 JWT with the payload
// {"server": true}), one method per moderation operation (ban, mute, flag,
// delete, warn, and their reversals) with the acting user fixed to the
// configured bot user, and a typed error that tells the job layer whether a
// failed call should be retried, given up, or counted as already done.
//
// The client never retries, sleeps or logs: retries, rate limiting and the
// audit of every attempt belong to the durable job layer, which needs to see
// each attempt and its outcome. Every call returns the rate-limit window
// Stream reported so that layer can pace the next one.
//
// Package actions may import policy types; it must not import store,
// webhook or cmd. Its sub-package streamtest is a contract-enforcing fake
// of Stream for tests.
package actions
