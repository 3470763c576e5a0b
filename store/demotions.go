package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Staff acts of the rule guard.
const (
	ActDemoteRule  = "demote_rule"  // by the system: a guard tripped
	ActRestoreRule = "restore_rule" // by an admin
)

// ErrNotDemoted: the rule asked to be restored is not demoted.
var ErrNotDemoted = errors.New("the rule is not demoted")

// Demotion is a rule demoted to shadow by its guard.
type Demotion struct {
	RuleID       string        `json:"rule_id" db:"rule_id"`
	RuleDigest   string        `json:"rule_digest" db:"rule_digest"`
	Reason       string        `json:"reason" db:"reason"`
	OverturnRate float64       `json:"overturn_rate" db:"overturn_rate"`
	Taken        int           `json:"taken" db:"taken"`
	Overturned   int           `json:"overturned" db:"overturned"`
	Window       time.Duration `json:"-" db:"-"`
	At           time.Time     `json:"at" db:"at"`
}

// GuardState is the rule guard's rows as they stand: the demotions in
// force (rules whose latest row is a demotion) and, for each rule
// restored, when (its guard counts only what it did since).
type GuardState struct {
	Active   []Demotion
	Restored map[string]time.Time
}

// GuardState reads the latest guard row of every rule.
func (s *Store) GuardState(ctx context.Context) (GuardState, error) {
	st := GuardState{Restored: map[string]time.Time{}}
	rows, err := s.pool.Query(ctx, `
		SELECT rule_id, rule_digest, act, reason, coalesce(overturn_rate, 0), coalesce(taken, 0), coalesce(overturned, 0),
			coalesce(window_seconds, 0), at
		FROM (SELECT DISTINCT ON (rule_id) * FROM rule_demotions ORDER BY rule_id, id DESC) d ORDER BY rule_id`)
	if err != nil {
		return st, fmt.Errorf("rule guard state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d Demotion
		var act string
		var secs int64
		if err := rows.Scan(&d.RuleID, &d.RuleDigest, &act, &d.Reason, &d.OverturnRate, &d.Taken, &d.Overturned, &secs, &d.At); err != nil {
			return st, fmt.Errorf("rule guard state: %w", err)
		}
		d.Window = time.Duration(secs) * time.Second
		if act == "restore" {
			st.Restored[d.RuleID] = d.At
			continue
		}
		st.Active = append(st.Active, d)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("rule guard state: %w", err)
	}
	return st, nil
}

// lockRule serialises the guard rows of one rule across replicas.
func lockRule(ctx context.Context, tx pgx.Tx, ruleID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, int32(lockClass+1), lockKey("rule", ruleID))
	return err
}

// latestAct returns the rule's latest guard row: its act and digest ("" when none).
func latestAct(ctx context.Context, tx pgx.Tx, ruleID string) (act, digest string, err error) {
	err = tx.QueryRow(ctx, `SELECT act, rule_digest FROM rule_demotions WHERE rule_id = $1 ORDER BY id DESC LIMIT 1`, ruleID).
		Scan(&act, &digest)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	return act, digest, err
}

// DemoteRule records d, with the system's staff act, unless the rule's
// definition is demoted already (another replica got there first); it
// reports whether it did.
func (s *Store) DemoteRule(ctx context.Context, d Demotion) (bool, error) {
	done := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockRule(ctx, tx, d.RuleID); err != nil {
			return err
		}
		act, digest, err := latestAct(ctx, tx, d.RuleID)
		if err != nil || (act == "demote" && digest == d.RuleDigest) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rule_demotions (rule_id, rule_digest, act, actor, reason, overturn_rate, taken, overturned, window_seconds)
			VALUES ($1, $2, 'demote', 'system', $3, $4, $5, $6, $7)`,
			d.RuleID, d.RuleDigest, d.Reason, d.OverturnRate, d.Taken, d.Overturned, int64(d.Window/time.Second)); err != nil {
			return err
		}
		done = true
		return RecordStaffActTx(ctx, tx, StaffAct{Actor: "system", Role: "system", Act: ActDemoteRule, Target: "rule:" + d.RuleID,
			Reason: d.Reason, Params: map[string]any{"overturn_rate": d.OverturnRate, "taken": d.Taken, "overturned": d.Overturned,
				"window_seconds": int64(d.Window / time.Second), "rule_digest": d.RuleDigest}})
	})
	if err != nil {
		return false, fmt.Errorf("demote rule %s: %w", d.RuleID, err)
	}
	return done, nil
}

// RestoreRule ends the demotion of ruleID, with the admin's staff act
// (act.Actor, act.Role; the reason is required). ErrNotDemoted when it is
// not demoted.
func (s *Store) RestoreRule(ctx context.Context, ruleID, reason string, act StaffAct) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockRule(ctx, tx, ruleID); err != nil {
			return err
		}
		last, digest, err := latestAct(ctx, tx, ruleID)
		if err != nil {
			return err
		}
		if last != "demote" {
			return ErrNotDemoted
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rule_demotions (rule_id, rule_digest, act, actor, reason) VALUES ($1, $2, 'restore', $3, $4)`,
			ruleID, digest, act.Actor, reason); err != nil {
			return err
		}
		act.Act, act.Target, act.Reason = ActRestoreRule, "rule:"+ruleID, reason
		return RecordStaffActTx(ctx, tx, act)
	})
	if err != nil {
		return fmt.Errorf("restore rule %s: %w", ruleID, err)
	}
	return nil
}
