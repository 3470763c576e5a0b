package rules

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// Dir is a rules folder on disk, seen as an fs.FS that cannot be turned
// against its reader: a symbolic link is followed only while it stays
// inside the folder (a ConfigMap's links are; "passwd.txt -> /etc/passwd"
// is not), and only regular files and folders open, without blocking
// (a FIFO would otherwise stall the reader until someone writes to it).
// Close it when done.
type Dir struct {
	root *os.Root
}

// errNotRegular is returned for a path that is neither a regular file nor
// a folder.
var errNotRegular = errors.New("not a regular file")

// OpenDir opens the rules folder path.
func OpenDir(path string) (*Dir, error) {
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	return &Dir{root: root}, nil
}

// Open opens name for reading. O_NONBLOCK makes opening a FIFO return at
// once; the mode is then checked on the open file, so that a file swapped
// for a FIFO after a Stat is still refused.
func (d *Dir) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := d.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !info.Mode().IsRegular() && !info.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	return f, nil
}

// Stat describes name, following a symbolic link only inside the folder.
func (d *Dir) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	return d.root.Stat(name)
}

// Close releases the folder.
func (d *Dir) Close() error { return d.root.Close() }
