package appeals

import (
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"moderator/statement"
	"moderator/store"
)

// decisionStatement answers GET /decisions/{id}/statement: the statement
// of reasons the user is owed for the decision (DSA Art. 17), as JSON with
// its rendered text, or as the text alone with ?format=text or Accept:
// text/plain. A decision that asked for no action has none: 404.
func (s *server) decisionStatement(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	q := parseQuery(r)
	format := q.enum("format", "json", "text")
	if q.err != nil {
		return q.err
	}
	if format == "" {
		format = acceptedFormat(r.Header.Get("Accept"))
	}
	ev, err := s.store.DecisionEvidence(r.Context(), id, 0)
	if err != nil {
		return about(fmt.Errorf("decision %d statement: %w", id, err), "decision %d", id)
	}
	st, err := statement.New(ev)
	if err != nil {
		return err
	}
	act := store.StaffAct{Act: store.ActViewStatement, TargetUserID: ev.Decision.UserID, Target: "decision:" + strconv.FormatInt(id, 10),
		Params: map[string]any{"decision_id": id, "format": format}}
	if err := s.record(r, act); err != nil {
		return err
	}
	if format == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(st.Text))
		return nil
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// acceptedFormat picks text or json from an Accept header: the first of
// text/plain and application/json it names (by their order, not their
// weights: clients that ask for text name it alone); json when it names
// neither.
func acceptedFormat(accept string) string {
	for _, part := range strings.Split(accept, ",") {
		media, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch media {
		case "text/plain":
			return "text"
		case "application/json":
			return "json"
		}
	}
	return "json"
}
