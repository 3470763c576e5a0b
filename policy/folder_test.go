package policy

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"moderator/rules"
)

// hostileFolderCase is one entry of the hostile-folder matrix: what is
// added to a folder holding one good rule file, and what Load says.
type hostileFolderCase struct {
	name string
	add  func(t *testing.T, dir string)
	// wantProblems, when set, are the problems that refuse the folder;
	// otherwise it loads, with wantNotes in its load report.
	wantProblems []string
	wantNotes    []string
}

// HostileFolderCases is the matrix of rules folders that must neither
// crash nor stall the loader (issue 12). cmd/moderator reloads the same
// cases in a running service through hostileFolderMatrix's twin there.
func hostileFolderCases() []hostileFolderCase {
	write := func(name, data string) func(*testing.T, string) {
		return func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, name), data) }
	}
	nested := "rules: " + strings.Repeat("[", 1<<19-8) + strings.Repeat("]", 1<<19-8) + "\n"
	wide := "rules: [" + strings.Repeat("1,", 1<<19-8) + "1]\n"
	return []hostileFolderCase{
		{name: "empty file", add: write("new.yaml", ""), wantNotes: []string{"new.yaml: no rules in this file"}},
		{name: "comment-only file", add: write("new.yaml", "# rules:\n#   - id: x\n"), wantNotes: []string{"new.yaml: no rules in this file"}},
		{name: "document marker only", add: write("new.yaml", "---\n"), wantNotes: []string{"new.yaml: no rules in this file"}},
		{name: "several empty documents", add: write("new.yaml", "---\n# x\n---\n...\n"), wantNotes: []string{"new.yaml: no rules in this file"}},
		{name: "draft", add: write("_x.yaml", ruleYAML(`message.text == "x"`)), wantNotes: []string{"_x.yaml: ignored: names starting with _ are drafts, so nothing in it is loaded"}},
		{name: "nested 1 MiB", add: write("bomb.yaml", nested), wantProblems: []string{
			"bomb.yaml:1: nested more than 32 levels deep (a rule file needs about 8; is a bracket left open?)"}},
		{name: "nested block 200 levels", add: write("bomb.yaml", blockNest(200)), wantProblems: []string{
			"bomb.yaml:32: nested more than 32 levels deep (a rule file needs about 8; is a bracket left open?)"}},
		{name: "1 MiB of flow values", add: write("wide.yaml", wide), wantProblems: []string{
			"wide.yaml:1: more than 50000 YAML values in one file: split the rules over several files"}},
		{name: "rule file over 1 MiB", add: write("big.yaml", "# "+strings.Repeat("x", 1<<20)), wantProblems: []string{
			"big.yaml: file is 1048578 bytes long; the limit for a rule file is 1048576"}},
		{name: "symlink out of the folder", add: symlink("/etc/passwd", "passwd.txt"), wantProblems: []string{
			"passwd.txt: cannot read: path escapes from parent"}},
		{name: "symlink to a device out of the folder", add: symlink("/dev/zero", "zero.txt"), wantProblems: []string{
			"zero.txt: cannot read: path escapes from parent"}},
		{name: "symlink inside the folder", add: func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "..data", "words.txt"), "darn\n")
			symlink("..data/words.txt", "words.txt")(t, dir)
		}},
		{name: "FIFO", add: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantProblems: []string{"pipe.yaml: is a FIFO (named pipe), not a regular file: rule files and word lists must be plain files"}},
		{name: "FIFO behind a symlink", add: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, ".pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
			symlink(".pipe", "pipe.txt")(t, dir)
		}, wantProblems: []string{"pipe.txt: leads to a FIFO (named pipe), not a regular file: rule files and word lists must be plain files"}},
		{name: "socket", add: func(t *testing.T, dir string) {
			ln, err := net.Listen("unix", filepath.Join(dir, "s.txt"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}, wantProblems: []string{"s.txt: is a socket, not a regular file: rule files and word lists must be plain files"}},
		{name: "device", add: func(t *testing.T, dir string) {
			// A character device like /dev/null (1, 3); creating one
			// needs root, which the test machines and CI have.
			if err := syscall.Mknod(filepath.Join(dir, "null.txt"), syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
				t.Skipf("cannot create a device node here: %v", err)
			}
		}, wantProblems: []string{"null.txt: is a device, not a regular file: rule files and word lists must be plain files"}},
		{name: "50 MB word list", add: sparse("huge.txt", 50<<20), wantProblems: []string{
			"huge.txt: file is 52428800 bytes long; the limit for a word list is 4194304"}},
		{name: "folder over its total", add: func(t *testing.T, dir string) {
			for _, n := range []string{"x1", "x2", "x3", "x4", "x5"} {
				sparse(n+".txt", 4_000_000)(t, dir)
			}
		}, wantProblems: []string{
			"x1.txt: read list: bufio.Scanner: token too long",
			"x2.txt: read list: bufio.Scanner: token too long",
			"x3.txt: read list: bufio.Scanner: token too long",
			"x4.txt: read list: bufio.Scanner: token too long",
			"x5.txt: the rules folder is over its limit of 16777216 bytes with this file",
		}},
	}
}

func blockNest(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		b.WriteString(strings.Repeat(" ", i+1) + "- a:\n")
	}
	return b.String()
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(target, name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// sparse makes a file of size zero bytes without writing them.
func sparse(name string, size int64) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostileFolder: nothing in the rules folder crashes or stalls Load;
// each case is refused with a problem naming the file (never quoting it)
// or loads with a note in the load report.
func TestHostileFolder(t *testing.T) {
	t.Parallel()
	for _, tt := range hostileFolderCases() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "good.yaml"), ruleYAML(`message.text == "x"`))
			tt.add(t, dir)
			d, err := rules.OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			rs, err := Load(d)
			if tt.wantProblems != nil {
				var le *LoadError
				if !errors.As(err, &le) {
					t.Fatalf("got %v, want problems %q", err, tt.wantProblems)
				}
				var got []string
				for _, p := range le.Problems {
					got = append(got, p.String())
				}
				if diff := cmp.Diff(tt.wantProblems, got); diff != "" {
					t.Errorf("problems (-want +got):\n%s", diff)
				}
				if strings.Contains(err.Error(), "root:") {
					t.Errorf("the problems quote a file outside the folder: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want the folder to load", err)
			}
			var notes []string
			for _, n := range rs.Notes() {
				notes = append(notes, n.String())
			}
			if diff := cmp.Diff(tt.wantNotes, notes); diff != "" {
				t.Errorf("notes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadRecoversPanics: a panic inside the load (a library's bug)
// refuses the set with its message instead of crashing the caller.
func TestLoadRecoversPanics(t *testing.T) {
	t.Parallel()
	rs, err := guard("r.yaml", func() (*RuleSet, error) {
		var m map[string]int
		//lint:ignore SA5000 a runtime panic, as a library's bug would raise, is the point
		m["x"] = 1
		return &RuleSet{}, nil
	})
	if rs != nil {
		t.Errorf("got a rule set, want none")
	}
	want := "r.yaml: could not be loaded: internal error: assignment to entry in nil map (please report it; the set in force stays)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestWordListWarnings: entries that load but are likely mistakes are
// warnings in the load report, at their line.
func TestWordListWarnings(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{
		"r.yaml":     {Data: []byte(ruleYAML(`message.text == "x"`))},
		"words.txt":  {Data: []byte("darn\n# a comment\nheck\nDarn\nx\nhttps://evil.example/path\nfrick\n")},
		"empty.txt":  {Data: []byte("# nothing yet\n\n")},
		"phrase.txt": {Data: []byte("free nitro\na b\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range rs.Notes() {
		got = append(got, n.String())
	}
	want := []string{
		`empty.txt: warning: the list is empty: rules that read it never match with it`,
		`words.txt:4: warning: "Darn" is also at line 1`,
		`words.txt:5: warning: "x" is one letter: as a word it matches every "x" in every message`,
		`words.txt:6: warning: "https://evil.example/path" is a URL: it matches only as a domain (domain_in), never as words`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
}
