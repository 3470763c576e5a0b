package appeals_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"
)

// Every answer the database-backed tests get is validated against
// openapi.yaml (status documented for its route, headers, and the body
// against the schema, JSON Schema 2020-12), so the document cannot drift
// from what the handlers really send.

var spec struct {
	once sync.Once
	doc  *openapi3.T
	err  error
}

func loadDoc(t *testing.T, a *api) *openapi3.T {
	t.Helper()
	spec.once.Do(func() {
		req := httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil)
		rec := httptest.NewRecorder()
		a.h.ServeHTTP(rec, req)
		loader := openapi3.NewLoader()
		spec.doc, spec.err = loader.LoadFromData(rec.Body.Bytes())
		if spec.err == nil {
			spec.err = spec.doc.Validate(context.Background())
		}
	})
	if spec.err != nil {
		t.Fatalf("openapi.yaml: %v", spec.err)
	}
	return spec.doc
}

// conforms checks one answer of the route chi matched (rctx) against the
// document.
func (a *api) conforms(t *testing.T, req *http.Request, rctx *chi.Context, rec *httptest.ResponseRecorder) {
	t.Helper()
	doc := loadDoc(t, a)
	pattern := rctx.RoutePattern()
	item := doc.Paths.Value(pattern)
	if item == nil || item.GetOperation(req.Method) == nil {
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d from route %q, which openapi.yaml does not document", req.Method, req.URL, rec.Code, pattern)
		}
		return
	}
	params := map[string]string{}
	for i, k := range rctx.URLParams.Keys {
		params[k] = rctx.URLParams.Values[i]
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      &routers.Route{Spec: doc, Path: pattern, PathItem: item, Method: req.Method, Operation: item.GetOperation(req.Method)},
			Options:    opts,
		},
		Status:  rec.Code,
		Header:  rec.Header(),
		Options: opts,
	}
	in.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		t.Errorf("%s %s: answer %d does not match openapi.yaml: %v\nbody: %.500s", req.Method, req.URL, rec.Code, err, rec.Body)
	}
}
