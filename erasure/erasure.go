// Package erasure owns a user's erasure, the use case that reaches both
// the local spool and the database: the user's spooled deliveries are
// redacted first (so that no replay brings the text back), then the
// database's rows, in one transaction that records the act in the staff
// audit log (store.EraseUser). An admin asks for it through the staff API;
// Stream's user.deleted with hard_delete asks for it as the system.
//
// It imports store (and policy through it); not webhook, which it reaches
// through the Spool interface that cmd/moderator wires.
package erasure

import (
	"context"
	"fmt"
	"log/slog"

	"moderator/store"
)

// Spool redacts the spooled deliveries about a user and returns how many
// it changed. *webhook.Intake satisfies it.
type Spool interface {
	EraseSpooled(ctx context.Context, userID string) (int, error)
}

// Store erases a user's rows and records the act. *store.Store satisfies
// it.
type Store interface {
	EraseUser(ctx context.Context, userID string, act store.StaffAct, spooled int) (store.Erasure, error)
}

// Eraser carries out erasures.
type Eraser struct {
	store  Store
	logger *slog.Logger
	// Spool is this replica's spool; nil when there is none. Set it before
	// the first erasure (the spool's intake is built after the Eraser it
	// calls).
	Spool Spool
	// Recent, when set, learns each erasure at once, before it runs, so
	// that this replica's intake redacts the user's deliveries from then
	// on (the others learn it from the database within seconds).
	Recent *Recent
	// Later, when set, queues a system erasure that failed at once, to be
	// retried until it succeeds, and schedules each erasure's follow-up
	// (a *Queue).
	Later interface {
		EraseUserLater(ctx context.Context, userID string) error
		FollowUp(ctx context.Context, userID string) error
	}
}

// New returns an Eraser over st; set Spool when the service spools.
func New(st Store, logger *slog.Logger) *Eraser {
	return &Eraser{store: st, logger: logger}
}

// systemReason is the recorded reason of an erasure Stream asked for;
// followUpReason that of an erasure's follow-up.
const (
	systemReason   = "Stream user.deleted with hard_delete"
	followUpReason = "follow-up of an erasure: what arrived after it"
)

// Erase redacts the user's content in the spool, then in the database,
// and returns what it changed per kind; with a queue (Later), it
// schedules the erasure's follow-up. act says who asks and why; the act
// is recorded with the counts. A bad user id is a *store.InputError and
// changes nothing.
func (e *Eraser) Erase(ctx context.Context, userID string, act store.StaffAct) (store.Erasure, error) {
	res, err := e.erase(ctx, userID, act)
	if err != nil {
		return res, err
	}
	if e.Later != nil {
		if err := e.Later.FollowUp(ctx, userID); err != nil {
			e.logger.Warn("the erasure's follow-up could not be scheduled", "user_id", userID, "error", err.Error())
		}
	}
	return res, nil
}

// followUp runs an erasure again, as the system, and warns when it found
// something to redact (a delivery that slipped past the replicas' sets).
func (e *Eraser) followUp(ctx context.Context, userID string) error {
	res, err := e.erase(ctx, userID, store.StaffAct{Actor: store.ActorSystem, Role: store.ActorSystem, Reason: followUpReason})
	if err != nil {
		return err
	}
	for kind, n := range res.Counts {
		if n > 0 && kind != "spool" {
			e.logger.Warn("an erasure's follow-up found content recorded after it", "user_id", userID, "erased", res.Counts)
			break
		}
	}
	return nil
}

// erase does the erasure: this replica's set, its spool, the database.
func (e *Eraser) erase(ctx context.Context, userID string, act store.StaffAct) (store.Erasure, error) {
	if err := store.CheckUserID(userID); err != nil {
		return store.Erasure{}, err
	}
	if e.Recent != nil {
		e.Recent.Add(userID)
	}
	spooled := 0
	if e.Spool != nil {
		n, err := e.Spool.EraseSpooled(ctx, userID)
		if err != nil {
			return store.Erasure{}, fmt.Errorf("erase user %s: %w", userID, err)
		}
		spooled = n
	}
	res, err := e.store.EraseUser(ctx, userID, act, spooled)
	if err != nil {
		return store.Erasure{}, err
	}
	e.logger.Info("user erased", "user_id", userID, "actor", act.Actor, "erased", res.Counts)
	return res, nil
}

// EraseUser erases the user as the system, for Stream's user.deleted with
// hard_delete (webhook.UserEraser).
func (e *Eraser) EraseUser(ctx context.Context, userID string) error {
	_, err := e.Erase(ctx, userID, store.StaffAct{Actor: store.ActorSystem, Role: store.ActorSystem, Reason: systemReason})
	return err
}

// EraseUserLater queues the system's erasure of the user, retried until
// it succeeds (webhook.LaterEraser): for Stream's user.deleted whose
// erasure failed at once.
func (e *Eraser) EraseUserLater(ctx context.Context, userID string) error {
	if e.Later == nil {
		return fmt.Errorf("queue the erasure of %s: no durable queue", userID)
	}
	return e.Later.EraseUserLater(ctx, userID)
}
