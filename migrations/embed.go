// Package migrations holds the database schema as forward-only SQL files,
// embedded so the binary carries its own schema. Files are named
// NNNN_name.up.sql and applied in order by store.Migrate; an applied file
// is never edited, a change is a new file.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
