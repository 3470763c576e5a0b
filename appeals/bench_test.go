package appeals_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"moderator/appeals"
)

// BenchmarkStaffRead is one staff read through the whole API
// (authentication, validation, the query on a 300-event history, the
// staff audit row, JSON) on the real database.
func BenchmarkStaffRead(b *testing.B) {
	st := ownStore(b)
	seedHistory(b, st, 300)
	a := newAPI(b, st)
	tok := token(b, "bench", appeals.RoleAdmin)
	for _, target := range []string{
		"/actions?user_id=bob&limit=50",
		"/events?channel_cid=messaging:general&limit=50",
		"/users/bob/timeline?limit=50",
		"/decisions/100?around=5",
		"/rules", // no query: authentication, the staff audit row, JSON
	} {
		b.Run(target, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, target, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				a.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
