package appeals

import (
	"fmt"
	"net/http"

	"moderator/store"
)

// eraseUser redacts a user's content everywhere the service keeps it (the
// database and this replica's spool), keeping the skeleton of the audit
// trail, and answers what it changed per kind. The act, with its reason
// and the counts, is recorded in the staff audit log by the erasure
// itself. Erasing twice is fine: the second answers zeros.
func (s *server) eraseUser(w http.ResponseWriter, r *http.Request) error {
	userID, err := pathString(r, "user_id", idUser)
	if err != nil {
		return err
	}
	reason, err := decodeReason(w, r)
	if err != nil {
		return err
	}
	if s.eraser == nil {
		return &unavailableError{msg: "erasure is not available in this deployment"}
	}
	st := staff(r)
	res, err := s.eraser.Erase(r.Context(), userID, store.StaffAct{Actor: st.Subject, Role: string(st.Role), Reason: reason})
	if err != nil {
		return fmt.Errorf("erase user %s: %w", userID, err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
