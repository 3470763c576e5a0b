package appeals_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"

	"moderator/appeals"
	"moderator/store"
)

// injections are hostile values for every filter: SQL, LIKE wildcards,
// unicode look-alikes and direction marks, NUL, and a very long value.
var injections = []string{
	"' OR 1=1 --",
	"1; DROP TABLE events",
	"alice'; DELETE FROM staff_audit; --",
	"%",
	"a%",
	"\\",
	"$1",
	"ålice",
	"\u202eecila",
	"аlice", // Cyrillic а
	"a\x00b",
	"\x00",
	strings.Repeat("a", 10_000),
	"1 UNION SELECT * FROM appeals",
	"\" OR \"\"=\"",
	"2026-11-01T00:00:00Z'; SELECT pg_sleep(5); --",
}

// queryParams returns, for each route of the served spec, its query
// parameters' names.
func queryParams(t *testing.T, a *api) map[string][]string {
	t.Helper()
	_, raw := a.call(t, http.MethodGet, "/openapi.yaml", "", "")
	type param struct {
		Ref  string `yaml:"$ref"`
		Name string `yaml:"name"`
		In   string `yaml:"in"`
	}
	var spec struct {
		Paths map[string]map[string]struct {
			Parameters []param `yaml:"parameters"`
		} `yaml:"paths"`
		Components struct {
			Parameters map[string]param `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for path, ops := range spec.Paths {
		for method, op := range ops {
			for _, p := range op.Parameters {
				if p.Ref != "" {
					p = spec.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
				}
				if p.In == "query" {
					key := strings.ToUpper(method) + " " + path
					out[key] = append(out[key], p.Name)
				}
			}
		}
	}
	return out
}

// rowCounts counts the rows of every table of the schema.
func rowCounts(t *testing.T, st *store.Store) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	rows, err := st.Pool().Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, tbl := range tables {
		var n int64
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM "`+tbl+`"`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tbl] = n
	}
	if len(out) < 10 {
		t.Fatalf("found %d tables: %v", len(out), tables)
	}
	return out
}

// TestSQLInjectionIsRefused sends every injection in every filter of every
// route, in the path ids and in the appeal body's user id: each is a 400
// naming the field, and no table of the database changes.
func TestSQLInjectionIsRefused(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	seedHistory(t, st, 6)
	a := newAPI(t, st)
	before := rowCounts(t, st)
	if before["events"] != 6 || before["staff_audit"] != 0 {
		t.Fatalf("seeded counts %v", before)
	}
	admin := token(t, "inj", appeals.RoleAdmin)

	sent := 0
	expect400 := func(method, target, body, field string) {
		t.Helper()
		sent++
		code, raw := a.call(t, method, target, admin, body)
		if code != http.StatusBadRequest {
			t.Errorf("%s %.120s: %d %.200s, want 400", method, target, code, raw)
			return
		}
		e := decodeErr(t, raw)
		if e.Error.Code != appeals.CodeInvalidParameter || e.Error.Field != field {
			t.Errorf("%s %.120s: error %+v, want invalid_parameter on %s", method, target, e.Error, field)
		}
	}
	searches := 0
	for ep, names := range queryParams(t, a) {
		method, pattern, _ := strings.Cut(ep, " ")
		for _, name := range names {
			for _, inj := range injections {
				if name != "text" {
					expect400(method, target(pattern)+"?"+name+"="+url.QueryEscape(inj), "", name)
					continue
				}
				// Free text is searched for, as a parameter: it is words to
				// find ("$1" finds the messages with a 1), never SQL (each
				// search a staff audit row, and nothing else written).
				if strings.TrimSpace(inj) == "" || strings.ContainsFunc(inj, unicode.IsControl) || !utf8.ValidString(inj) || utf8.RuneCountInString(inj) > 200 {
					expect400(method, target(pattern)+"?"+name+"="+url.QueryEscape(inj), "", name)
					continue
				}
				code, raw := a.call(t, method, target(pattern)+"?"+name+"="+url.QueryEscape(inj), admin, "")
				if code != http.StatusOK || !strings.HasPrefix(string(raw), `{"items":[`) {
					t.Errorf("%s %s?text=%q: %d %.200s, want 200 and a page", method, pattern, inj, code, raw)
				}
				searches++
			}
		}
	}
	before["staff_audit"] += int64(searches)
	for _, inj := range injections {
		esc := url.PathEscape(inj)
		expect400(http.MethodGet, "/users/"+esc+"/timeline", "", "user_id")
		for _, pattern := range []string{"/decisions/%s", "/actions/%s", "/appeals/%s"} {
			expect400(http.MethodGet, strings.Replace(pattern, "%s", esc, 1), "", "id")
		}
		expect400(http.MethodPost, "/actions/"+esc+"/overturn", `{"reason":"x"}`, "id")
		body, _ := jsonString(map[string]any{"user_id": inj, "action_id": 1, "statement": "s", "source": "in_app"})
		expect400(http.MethodPost, "/appeals", body, "user_id")
		body, _ = jsonString(map[string]any{"user_id": "alice", "action_id": 1, "statement": "s", "source": inj})
		expect400(http.MethodPost, "/appeals", body, "source")
		body, _ = jsonString(map[string]any{"outcome": inj, "reason": "x"})
		expect400(http.MethodPost, "/appeals/1/decision", body, "outcome")
	}
	if sent < 500 {
		t.Errorf("sent only %d hostile requests", sent)
	}
	if diff := cmp.Diff(before, rowCounts(t, st)); diff != "" {
		t.Errorf("row counts changed (-before +after):\n%s", diff)
	}
}
