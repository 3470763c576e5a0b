package appeals

import (
	"context"
	"fmt"
	"net/http"

	"moderator/store"
)

// AppealWork is the reviewers' work on appeals: claiming, releasing and
// assigning them, and notes. *store.Store satisfies it.
type AppealWork interface {
	AssignAppeal(ctx context.Context, appealID int64, act, assignee, actor string, staff store.StaffAct) (store.Appeal, error)
	AddAppealNote(ctx context.Context, appealID int64, author, body string, staff store.StaffAct) (store.AppealNote, error)
	AppealNotes(ctx context.Context, appealID int64) ([]store.AppealNote, error)
}

// maxNoteLen bounds a note, in characters.
const maxNoteLen = 5000

// assignRequest is POST /appeals/{id}/assign's body.
type assignRequest struct {
	Assignee *string `json:"assignee"`
}

// noteRequest is POST /appeals/{id}/notes's body.
type noteRequest struct {
	Body *string `json:"body"`
}

// notesResponse is GET /appeals/{id}/notes's answer.
type notesResponse struct {
	Items []store.AppealNote `json:"items"`
}

// assign answers POST /appeals/{id}/claim, /release and /assign: the
// appeal as it now is.
func (s *server) assign(act string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		var assignee string
		if act != store.AssignAssign && r.ContentLength != 0 {
			// Nothing to say: no body, or an empty object.
			var empty struct{}
			if err := decodeBody(w, r, &empty); err != nil {
				return err
			}
		}
		if act == store.AssignAssign {
			var req assignRequest
			if err := decodeBody(w, r, &req); err != nil {
				return err
			}
			if req.Assignee == nil || *req.Assignee == "" {
				return badParam("assignee", "is required: the reviewer (a staff token's sub) to assign it to")
			}
			if err := requiredText("assignee", *req.Assignee, 200); err != nil {
				return err
			}
			assignee = *req.Assignee
		}
		st := staff(r)
		a, err := s.store.AssignAppeal(r.Context(), id, act, assignee, st.Subject,
			store.StaffAct{Role: string(st.Role), Params: map[string]any{"appeal_id": id, "assignee": assignee}})
		if err != nil {
			return about(fmt.Errorf("%s appeal %d: %w", act, id, err), "appeal %d", id)
		}
		writeJSON(w, http.StatusOK, a)
		return nil
	}
}

func (s *server) addNote(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req noteRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.Body == nil {
		return badParam("body", "is required: the note")
	}
	if err := requiredText("body", *req.Body, maxNoteLen); err != nil {
		return err
	}
	st := staff(r)
	n, err := s.store.AddAppealNote(r.Context(), id, st.Subject, *req.Body,
		store.StaffAct{Role: string(st.Role), Params: map[string]any{"appeal_id": id}})
	if err != nil {
		return about(fmt.Errorf("note on appeal %d: %w", id, err), "appeal %d", id)
	}
	writeJSON(w, http.StatusCreated, n)
	return nil
}

func (s *server) notes(w http.ResponseWriter, r *http.Request) error {
	id, a, err := s.appealOf(r)
	if err != nil {
		return err
	}
	notes, err := s.store.AppealNotes(r.Context(), id)
	if err != nil {
		return fmt.Errorf("notes of appeal %d: %w", id, err)
	}
	if notes == nil {
		notes = []store.AppealNote{}
	}
	if err := s.record(r, store.StaffAct{Act: store.ActViewAppeal, TargetUserID: a.UserID, Target: appealTarget(id),
		Params: map[string]any{"appeal_id": id, "notes": true}}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, notesResponse{Items: notes})
	return nil
}
