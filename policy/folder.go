package policy

import (
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Limits on what Load reads, so that no file can exhaust memory before a
// check has looked at it: a rule file is also limited by its shape
// (checkYAMLShape), a word list by its entries (maxListEntries).
const (
	maxListFileBytes = 4 << 20
	maxFolderBytes   = 16 << 20
	maxFolderFiles   = 1000
)

type sourceFile struct {
	path string
	data []byte
}

// readRulesFolder returns the rule files and word lists of fsys, sorted by
// path so that the version and the evaluation order do not depend on the
// file system's listing order, with the notes of the load report (ignored
// drafts) and the problems of files it refused to read. Only regular files
// are read: a FIFO would block the reader, a device or /proc file could be
// endless, and a symbolic link is followed only as far as fsys allows
// (rules.OpenDir: never out of the folder). Problems name the file but
// never quote it: a file that is not what it seems must not leak into logs.
// The error is for a folder that cannot be listed at all.
func readRulesFolder(fsys fs.FS) ([]sourceFile, []Problem, []Problem, error) {
	var files []sourceFile
	var notes, problems []Problem
	total, count := 0, 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			problems = append(problems, Problem{File: p, Msg: fmt.Sprintf("cannot read: %v", pathErr(err))})
			return nil
		}
		name := d.Name()
		if p != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			if strings.HasPrefix(name, "_") && (d.IsDir() || isRulesFile(name)) {
				notes = append(notes, Problem{File: p, Msg: "ignored: names starting with _ are drafts, so nothing in it is loaded"})
			}
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isRulesFile(name) {
			return nil
		}
		if count++; count > maxFolderFiles {
			problems = append(problems, Problem{File: p, Msg: fmt.Sprintf("more than %d rule files and word lists in the folder", maxFolderFiles)})
			return fs.SkipAll
		}
		data, msg := readRegular(fsys, p, d, maxFolderBytes-total)
		if msg != "" {
			problems = append(problems, Problem{File: p, Msg: msg})
			return nil
		}
		total += len(data)
		files = append(files, sourceFile{path: p, data: data})
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read rules folder: %w", err)
	}
	slices.SortFunc(files, func(a, b sourceFile) int { return cmp.Compare(a.path, b.path) })
	return files, notes, problems, nil
}

func isRulesFile(name string) bool {
	switch path.Ext(name) {
	case ".yaml", ".yml", ".txt":
		return true
	}
	return false
}

// readRegular reads the file p of fsys if it is a regular file (a
// symbolic link is resolved by fsys) no longer than its kind's limit nor
// than room, the bytes left of the folder's limit. Otherwise it says why
// not, without quoting the file.
func readRegular(fsys fs.FS, p string, d fs.DirEntry, room int) ([]byte, string) {
	if kind := fileKind(d.Type()); kind != "" {
		return nil, fmt.Sprintf("is %s, not a regular file: rule files and word lists must be plain files", kind)
	}
	info, err := fs.Stat(fsys, p) // resolves a symbolic link, within fsys
	if err != nil {
		return nil, fmt.Sprintf("cannot read: %v", pathErr(err))
	}
	if kind := fileKind(info.Mode().Type()); kind != "" || !info.Mode().IsRegular() {
		return nil, fmt.Sprintf("leads to %s, not a regular file: rule files and word lists must be plain files", cmp.Or(kind, "a folder"))
	}
	limit, what := maxRuleFileBytes, "a rule file"
	if path.Ext(p) == ".txt" {
		limit, what = maxListFileBytes, "a word list"
	}
	tooBig := func(n int64) string {
		if n > int64(limit) {
			return fmt.Sprintf("file is %d bytes long; the limit for %s is %d", n, what, limit)
		}
		if n > int64(room) {
			return fmt.Sprintf("the rules folder is over its limit of %d bytes with this file", maxFolderBytes)
		}
		return ""
	}
	if msg := tooBig(info.Size()); msg != "" {
		return nil, msg
	}
	f, err := fsys.Open(p)
	if err != nil {
		return nil, fmt.Sprintf("cannot read: %v", pathErr(err))
	}
	defer f.Close()
	// The size may have changed since Stat, or be wrong (/proc): read at
	// most one byte past the limit.
	data, err := io.ReadAll(io.LimitReader(f, int64(min(limit, room))+1))
	if err != nil {
		return nil, fmt.Sprintf("cannot read: %v", pathErr(err))
	}
	if msg := tooBig(int64(len(data))); msg != "" {
		return nil, msg
	}
	return data, ""
}

// fileKind names a file type that Load refuses, or "" for a regular file,
// a folder or a symbolic link.
func fileKind(t fs.FileMode) string {
	switch {
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0, t&fs.ModeCharDevice != 0:
		return "a device"
	case t&fs.ModeIrregular != 0:
		return "an irregular file"
	}
	return ""
}

// pathErr returns err without its path, which the problem already names.
func pathErr(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
