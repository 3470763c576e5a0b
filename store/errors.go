package store

import "errors"

// Errors callers branch on (the staff API maps them to statuses).
var (
	// ErrNotFound: the event, decision, action or appeal asked for does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyDecided: the appeal has a decision already; decisions are
	// final rows, never edited.
	ErrAlreadyDecided = errors.New("appeal already decided")
	// ErrAlreadyOverturned: every action asked for was overturned before.
	ErrAlreadyOverturned = errors.New("already overturned")
	// ErrBadCursor: a page cursor that this store did not issue.
	ErrBadCursor = errors.New("invalid page cursor")
)
