// Package spool is a small write-ahead queue on local disk: records are
// appended to segment files, made durable (fsync) before Append returns,
// read back in the order they were appended, and deleted once the caller
// acknowledges them. The service spools verified webhooks in it while
// Postgres cannot commit them and replays them when it can.
//
// On disk a spool is a folder of segment files named by a growing number
// (00000000000000000001.seg …), each a run of frames:
//
//	length uint32 | crc32c uint32 | unix nanoseconds int64 | data (length bytes)
//
// little-endian, the CRC (Castagnoli) covering the time and the data. A
// crash can leave the last frame of a segment half written; Open detects it
// (short frame, length past the end, CRC mismatch) and cuts the file there,
// so everything before it survives. The first unacknowledged record is
// remembered in the file "head" (best effort: after a crash the records
// since the last saved head are read again, which a caller that
// deduplicates, as the service does, never notices).
//
// Concurrent appends are grouped: one goroutine writes everything queued
// at a time and fsyncs once for all of it (group commit), so the spool
// keeps up with many writers on a disk that takes a millisecond to sync.
//
// It imports nothing of ours.
package spool

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors callers branch on.
var (
	// ErrFull: the record would take the spool past its byte bound.
	ErrFull = errors.New("spool is full")
	// ErrClosed: the spool was closed.
	ErrClosed = errors.New("spool is closed")
)

const (
	headerSize = 16
	segSuffix  = ".seg"
	headFile   = "head"
	// maxBatch bounds the records written by one write and one fsync.
	maxBatch = 512
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure a spool; zero values take the defaults.
type Options struct {
	// MaxBytes bounds the segment files' total size; an append past it
	// fails with ErrFull. Default 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size past which a new segment is started.
	// Acknowledged records are deleted a whole segment at a time. Default
	// MaxBytes/16, between 4 KiB and 64 MiB.
	SegmentBytes int64
}

func (o *Options) setDefaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = min(max(o.MaxBytes/16, 4<<10), 64<<20)
	}
}

// Pos is a place in the spool: a segment and a byte offset in it.
type Pos struct {
	Segment uint64
	Offset  int64
}

// Entry is one record read back.
type Entry struct {
	Pos  Pos       // where its frame starts
	Next Pos       // where the next frame starts
	Time time.Time // when it was appended
	Data []byte
}

// Recovery says what Open found.
type Recovery struct {
	Segments int
	Records  int   // unacknowledged records
	CutBytes int64 // bytes of torn or corrupt frames cut off
}

// Stats describe the spool now.
type Stats struct {
	Records int       // appended (or being appended) and not yet acknowledged
	Bytes   int64     // bytes of the records not yet acknowledged
	Disk    int64     // bytes of the segment files, the figure MaxBytes bounds
	Oldest  time.Time // append time of the oldest unacknowledged record; zero when none
	Full    bool      // an append was refused for want of room, and nothing was acknowledged since
	Err     error     // non-nil when the spool cannot write (a failed fsync, a closed spool)
}

type segment struct {
	id   uint64
	size int64
}

// Spool is a durable FIFO of records in a folder. It is safe for
// concurrent use.
type Spool struct {
	dir  string
	opts Options
	reqs chan *appendReq
	quit chan struct{} // closed by Close
	done chan struct{} // closed by the writer when it has stopped

	mu       sync.Mutex
	segs     []segment // live segments, ascending; the last one is written
	head     Pos       // first unacknowledged record
	headTime time.Time // its append time
	records  int       // written, not acknowledged
	pending  int       // queued, not yet written
	full     bool
	broken   error
	closed   bool

	f *os.File // the last segment, open for writing; the writer's alone
}

type appendReq struct {
	data []byte
	done chan error
}

func segName(id uint64) string { return fmt.Sprintf("%020d%s", id, segSuffix) }

// Open opens the spool in dir, creating the folder when missing, cuts a
// torn tail, and starts the writer. Close stops it.
func Open(dir string, opts Options) (*Spool, Recovery, error) {
	opts.setDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, Recovery{}, fmt.Errorf("create spool folder: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, reqs: make(chan *appendReq, maxBatch),
		quit: make(chan struct{}), done: make(chan struct{})}
	rec, err := s.load()
	if err != nil {
		return nil, rec, err
	}
	last := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(filepath.Join(dir, segName(last.id)), os.O_RDWR, 0o600)
	if err != nil {
		return nil, rec, fmt.Errorf("open spool segment: %w", err)
	}
	s.f = f
	go s.writer()
	return s, rec, nil
}

// load reads the folder: the segments, the saved head, every frame from
// the head on (cutting a segment at its first bad frame), and makes sure a
// segment exists to write to.
func (s *Spool) load() (Recovery, error) {
	ids, err := s.segmentIDs()
	if err != nil {
		return Recovery{}, err
	}
	if len(ids) == 0 {
		if err := s.create(1); err != nil {
			return Recovery{}, err
		}
		ids = []uint64{1}
	}
	head := s.readHead(ids)
	rec := Recovery{}
	for _, id := range ids {
		if id < head.Segment {
			_ = os.Remove(filepath.Join(s.dir, segName(id)))
			continue
		}
		sc, err := s.scan(id)
		if err != nil {
			return rec, err
		}
		s.segs = append(s.segs, segment{id: id, size: sc.size})
		rec.CutBytes += sc.cut
		from := 0
		if id == head.Segment {
			// The saved head must be a frame's start, else it is not ours:
			// read the whole segment again.
			from = sort.Search(len(sc.frames), func(i int) bool { return sc.frames[i].off >= head.Offset })
			if head.Offset < sc.size && (from == len(sc.frames) || sc.frames[from].off != head.Offset) {
				from, head.Offset = 0, 0
			}
			head.Offset = min(head.Offset, sc.size)
		}
		if n := len(sc.frames) - from; n > 0 {
			if s.records == 0 {
				s.headTime = sc.frames[from].t
			}
			s.records += n
		}
	}
	rec.Records, rec.Segments = s.records, len(s.segs)
	s.head = head
	s.normalizeHead()
	return rec, nil
}

func (s *Spool) segmentIDs() ([]uint64, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read spool folder: %w", err)
	}
	var ids []uint64
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), segSuffix)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil || id == 0 {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// readHead returns the saved head when it names a live segment, else the
// start of the first one. Segments before the head are leftovers of an
// acknowledgement that crashed before deleting them.
func (s *Spool) readHead(ids []uint64) Pos {
	start := Pos{Segment: ids[0]}
	b, err := os.ReadFile(filepath.Join(s.dir, headFile))
	if err != nil {
		return start
	}
	var p Pos
	if _, err := fmt.Sscanf(string(b), "%d %d", &p.Segment, &p.Offset); err != nil || p.Offset < 0 {
		return start
	}
	for _, id := range ids {
		if id == p.Segment {
			return p
		}
	}
	return start
}

// create makes an empty segment file and syncs the folder, so the file
// survives a crash.
func (s *Spool) create(id uint64) error {
	f, err := os.OpenFile(filepath.Join(s.dir, segName(id)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync spool folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool folder: %w", err)
	}
	return nil
}

// Append writes data as one record and returns once it is on disk
// (fsync'd), or with an error when it is not: ErrFull when the record does
// not fit in MaxBytes, ErrClosed, or the write's error. Appends from many
// goroutines share writes and fsyncs.
func (s *Spool) Append(data []byte) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.pending++
	s.mu.Unlock()
	r := &appendReq{data: data, done: make(chan error, 1)}
	s.reqs <- r
	return <-r.done
}

// Len returns the number of records appended or being appended and not
// yet acknowledged.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records + s.pending
}

// Head returns the position of the first unacknowledged record.
func (s *Spool) Head() Pos {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head
}

// Stats returns the spool's figures.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Records: s.records + s.pending, Full: s.full, Err: s.broken}
	for _, sg := range s.segs {
		st.Disk += sg.size
	}
	st.Bytes = st.Disk - s.head.Offset
	if s.records > 0 {
		st.Oldest = s.headTime
	}
	if s.closed && st.Err == nil {
		st.Err = ErrClosed
	}
	return st
}

// Close stops the writer once the appends already queued are written and
// closes the segment. Appends after Close fail with ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	return s.f.Close()
}
