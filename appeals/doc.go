// Package appeals is the staff API under /api/v1/: staff authentication and
// roles, audit search, a user's timeline, a decision's evidence, appeals
// and their decisions, overturns, and per-rule figures. Every staff act is
// itself audited.
//
// It may import policy and store types; it never imports actions, webhook
// or cmd.
package appeals
