package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ConsoleSession is a signed-in reviewer of the console: who, with which
// role, the token every state-changing form must carry, and when the
// session ends (never after the staff token it was made from).
type ConsoleSession struct {
	Subject   string
	Role      string
	CSRFToken string
	ExpiresAt time.Time
}

// CreateConsoleSession stores a session under idHash (a hash of the
// cookie's value: the table never holds a usable secret) and sweeps the
// sessions that have expired.
func (s *Store) CreateConsoleSession(ctx context.Context, idHash []byte, sess ConsoleSession) error {
	if len(idHash) == 0 || sess.Subject == "" || sess.CSRFToken == "" || sess.ExpiresAt.IsZero() {
		return &InputError{Field: "session", Msg: "needs an id, a subject, a CSRF token and an expiry"}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at < now()`); err != nil {
			return fmt.Errorf("sweep console sessions: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO console_sessions (id_hash, subject, role, csrf_token, expires_at)
			VALUES ($1, $2, $3, $4, $5)`, idHash, sess.Subject, sess.Role, sess.CSRFToken, sess.ExpiresAt)
		if err != nil {
			return fmt.Errorf("create console session of %s: %w", sess.Subject, err)
		}
		return nil
	})
}

// ConsoleSession returns the live session stored under idHash;
// ErrNotFound when there is none or it has expired.
func (s *Store) ConsoleSession(ctx context.Context, idHash []byte) (ConsoleSession, error) {
	var sess ConsoleSession
	err := s.pool.QueryRow(ctx, `SELECT subject, role, csrf_token, expires_at FROM console_sessions
		WHERE id_hash = $1 AND expires_at > now()`, idHash).Scan(&sess.Subject, &sess.Role, &sess.CSRFToken, &sess.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return ConsoleSession{}, fmt.Errorf("console session: %w", ErrNotFound)
	}
	if err != nil {
		return ConsoleSession{}, fmt.Errorf("read console session: %w", err)
	}
	return sess, nil
}

// DeleteConsoleSession ends the session stored under idHash (sign-out);
// ending one that does not exist is not an error.
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash); err != nil {
		return fmt.Errorf("delete console session: %w", err)
	}
	return nil
}
