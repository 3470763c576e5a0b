package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// allowedImports lists, for each package of the module, the packages of
// ours it may import (DESIGN.md "Layout"): dependencies point inward to
// policy; actions and store never import each other; nothing imports
// webhook or cmd. Test files are exempt. A new package must be added here.
var allowedImports = map[string][]string{
	"policy":                  {},
	"backtest":                {"policy", "store"},
	"guard":                   {"policy", "store"},
	"spool":                   {},
	"migrations":              {},
	"rules":                   {},
	"webhook":                 {"policy", "spool"},
	"jobs":                    {},
	"actions":                 {"jobs", "policy"},
	"actions/streamtest":      {"actions"},
	"store":                   {"policy", "migrations"},
	"store/storetest":         {"store"},
	"appeals":                 {"policy", "statement", "store"},
	"console":                 {"appeals", "policy", "statement", "store"},
	"erasure":                 {"jobs", "policy", "store"},
	"statement":               {"policy", "store"},
	"cmd/loadgen":             {"policy"},
	"cmd/loadgen/floor":       {},
	"cmd/loadgen/benchintake": {},
	"cmd/moderator":           {"*"},
}

func TestDeps(t *testing.T) {
	const module = "moderator/"
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		allowed, known := allowedImports[rel]
		if !known {
			t.Errorf("package %s is not in allowedImports: decide what it may import", rel)
			return nil
		}
		seen[rel] = true
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, module) {
				continue
			}
			p = strings.TrimPrefix(p, module)
			if slices.Contains(allowed, "*") || slices.Contains(allowed, p) {
				continue
			}
			t.Errorf("%s imports %s; %s may import only %v", strings.TrimPrefix(path, root+string(os.PathSeparator)), p, rel, allowed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"policy", "webhook", "store", "cmd/moderator"} {
		if !seen[must] {
			t.Errorf("package %s not found: is the walk rooted right?", must)
		}
	}
}
