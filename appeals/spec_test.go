package appeals

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
)

// spec is the part of openapi.yaml that the tests hold the implementation
// to.
type spec struct {
	OpenAPI    string                       `yaml:"openapi"`
	Paths      map[string]map[string]specOp `yaml:"paths"`
	Components struct {
		Parameters map[string]specParam `yaml:"parameters"`
		Responses  map[string]any       `yaml:"responses"`
		Schemas    map[string]any       `yaml:"schemas"`
	} `yaml:"components"`
}

type specOp struct {
	OperationID string            `yaml:"operationId"`
	Role        string            `yaml:"x-role"`
	Parameters  []specParam       `yaml:"parameters"`
	RequestBody map[string]any    `yaml:"requestBody"`
	Responses   map[string]any    `yaml:"responses"`
	Security    *[]map[string]any `yaml:"security"`
}

type specParam struct {
	Ref      string         `yaml:"$ref"`
	Name     string         `yaml:"name"`
	In       string         `yaml:"in"`
	Required bool           `yaml:"required"`
	Schema   map[string]any `yaml:"schema"`
}

func loadSpec(t *testing.T) spec {
	t.Helper()
	var s spec
	if err := yaml.Unmarshal(openAPISpec, &s); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if s.OpenAPI != "3.1.0" {
		t.Fatalf("openapi.yaml: openapi %q, want 3.1.0", s.OpenAPI)
	}
	return s
}

// params resolves an operation's parameters in place in.
func (s spec) params(t *testing.T, op specOp, in string) []specParam {
	t.Helper()
	var out []specParam
	for _, p := range op.Parameters {
		if p.Ref != "" {
			name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/")
			if !ok {
				t.Fatalf("parameter $ref %q: want #/components/parameters/…", p.Ref)
			}
			rp, ok := s.Components.Parameters[name]
			if !ok {
				t.Fatalf("parameter $ref %q: not in components", p.Ref)
			}
			p = rp
		}
		if p.In == in {
			out = append(out, p)
		}
	}
	return out
}

// endpoint is "METHOD /pattern".
func endpoint(method, pattern string) string { return strings.ToUpper(method) + " " + pattern }

// TestRoutesMatchSpec holds three lists equal: the routes the router
// serves (chi.Walk), the route table with its roles and query parameters,
// and openapi.yaml's paths × methods with their x-role and parameters.
func TestRoutesMatchSpec(t *testing.T) {
	t.Parallel()
	sp := loadSpec(t)
	b := newUnit(t)
	s := &server{}

	walked := map[string]bool{}
	err := chi.Walk(b.h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		walked[endpoint(method, route)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]route{}
	for _, rt := range s.routes() {
		table[endpoint(rt.method, rt.pattern)] = rt
	}
	specOps := map[string]specOp{}
	for path, ops := range sp.Paths {
		for method, op := range ops {
			specOps[endpoint(method, path)] = op
		}
	}

	if diff := cmp.Diff(sortedKeys(table), sortedKeys(walked)); diff != "" {
		t.Errorf("route table vs chi.Walk (-table +router):\n%s", diff)
	}
	if diff := cmp.Diff(sortedKeys(table), sortedKeys(specOps)); diff != "" {
		t.Errorf("route table vs openapi.yaml (-table +spec):\n%s", diff)
	}

	for ep, rt := range table {
		op, ok := specOps[ep]
		if !ok {
			continue
		}
		wantRole := string(rt.role)
		if wantRole == "" {
			wantRole = "public"
			if op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s: public in the route table; the spec must say security: []", ep)
			}
		} else if op.Security != nil {
			t.Errorf("%s: needs %s; the spec must not override security", ep, rt.role)
		}
		if op.Role != wantRole {
			t.Errorf("%s: x-role %q in openapi.yaml, route table says %q", ep, op.Role, wantRole)
		}
		var specQuery []string
		for _, p := range sp.params(t, op, "query") {
			specQuery = append(specQuery, p.Name)
		}
		if diff := cmp.Diff(sorted(rt.query), sorted(specQuery)); diff != "" {
			t.Errorf("%s: query parameters (-route table +spec):\n%s", ep, diff)
		}
		var specPath []string
		for _, p := range sp.params(t, op, "path") {
			if !p.Required {
				t.Errorf("%s: path parameter %s must be required", ep, p.Name)
			}
			specPath = append(specPath, p.Name)
		}
		var routePath []string
		for _, seg := range strings.Split(rt.pattern, "/") {
			if name, ok := strings.CutPrefix(seg, "{"); ok {
				routePath = append(routePath, strings.TrimSuffix(name, "}"))
			}
		}
		if diff := cmp.Diff(sorted(routePath), sorted(specPath)); diff != "" {
			t.Errorf("%s: path parameters (-route +spec):\n%s", ep, diff)
		}
		if (rt.method == http.MethodPost) != (op.RequestBody != nil) {
			t.Errorf("%s: a POST has a request body, nothing else does", ep)
		}
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", ep)
		}
		// Every protected route documents the answers of the auth layer.
		if rt.role != "" {
			for _, code := range []string{"400", "401", "403", "429", "500", "503"} {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s: response %s not documented", ep, code)
				}
			}
		}
		if rt.method == http.MethodPost {
			for _, code := range []string{"413"} {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s: response %s not documented", ep, code)
				}
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}
