package appeals

import (
	"encoding/json"
	"net/http"
)

// errorBody is the body of every error answer of the staff API:
//
//	{"error": {"code": "invalid_parameter", "field": "user_id", "message": "user_id: …"}}
//
// Code is stable for scripts; Field names the offending parameter or body
// field when there is one; Message is safe to show (never internal
// details, which go to the log).
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error codes of the staff API.
const (
	CodeUnauthorized     = "unauthorized"       // 401: no valid token
	CodeForbidden        = "forbidden"          // 403: the token's role does not allow this
	CodeInvalidParameter = "invalid_parameter"  // 400: a query parameter or body field is wrong
	CodeInvalidBody      = "invalid_body"       // 400: the body is not the JSON object expected
	CodeNotFound         = "not_found"          // 404
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: already decided, already overturned
	CodeTooLarge         = "too_large"          // 413
	CodeRateLimited      = "rate_limited"       // 429
	CodeUnavailable      = "unavailable"        // 503: the database did not answer
	CodeInternal         = "internal"           // 500
)

// writeError answers status with an errorBody.
func writeError(w http.ResponseWriter, status int, code, field, message string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Field: field, Message: message}})
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
