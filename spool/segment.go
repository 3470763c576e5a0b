package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"
)

// errTorn marks a frame that is cut short or does not match its CRC.
var errTorn = errors.New("torn or corrupt frame")

// appendFrame appends data's frame, stamped with t, to buf.
func appendFrame(buf []byte, t time.Time, data []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(data)))
	binary.LittleEndian.PutUint64(h[8:16], uint64(t.UnixNano()))
	crc := crc32.Update(crc32.Checksum(h[8:16], castagnoli), castagnoli, data)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	buf = append(buf, h[:]...)
	return append(buf, data...)
}

// readFrame reads one frame of at most remaining bytes from r. It returns
// io.EOF at a clean end and errTorn for a frame that is incomplete or whose
// CRC does not match.
func readFrame(r *bufio.Reader, remaining int64) (time.Time, []byte, error) {
	if remaining == 0 {
		return time.Time{}, nil, io.EOF
	}
	var h [headerSize]byte
	if remaining < headerSize {
		return time.Time{}, nil, errTorn
	}
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return time.Time{}, nil, fmt.Errorf("read spool frame: %w", err)
	}
	n := int64(binary.LittleEndian.Uint32(h[0:4]))
	if n > remaining-headerSize {
		return time.Time{}, nil, errTorn
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return time.Time{}, nil, fmt.Errorf("read spool frame: %w", err)
	}
	crc := crc32.Update(crc32.Checksum(h[8:16], castagnoli), castagnoli, data)
	if crc != binary.LittleEndian.Uint32(h[4:8]) {
		return time.Time{}, nil, errTorn
	}
	return time.Unix(0, int64(binary.LittleEndian.Uint64(h[8:16]))), data, nil
}

// segScan is what scan found in a segment.
type segScan struct {
	size   int64 // the file's size after any cut
	cut    int64 // bytes cut off
	frames []frameAt
}

type frameAt struct {
	off int64
	t   time.Time
}

// scan checks every frame of segment id and cuts the file at the first
// bad one (a torn tail), so that appends continue after the last good
// record.
func (s *Spool) scan(id uint64) (segScan, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, segName(id)), os.O_RDWR, 0o600)
	if err != nil {
		return segScan{}, fmt.Errorf("open spool segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return segScan{}, fmt.Errorf("open spool segment: %w", err)
	}
	size := fi.Size()
	r := bufio.NewReaderSize(f, 64<<10)
	var sc segScan
	off := int64(0)
	for {
		t, data, err := readFrame(r, size-off)
		if errors.Is(err, io.EOF) {
			sc.size = size
			return sc, nil
		}
		if err != nil {
			break // a torn tail (or corruption): cut it below
		}
		sc.frames = append(sc.frames, frameAt{off: off, t: t})
		off += headerSize + int64(len(data))
	}
	if err := f.Truncate(off); err != nil {
		return sc, fmt.Errorf("cut torn spool segment %s: %w", segName(id), err)
	}
	if err := f.Sync(); err != nil {
		return sc, fmt.Errorf("cut torn spool segment %s: %w", segName(id), err)
	}
	sc.size, sc.cut = off, size-off
	return sc, nil
}

// writer writes queued appends until Close, each batch with one write and
// one fsync.
func (s *Spool) writer() {
	defer close(s.done)
	for {
		select {
		case r := <-s.reqs:
			s.write(s.take(r))
		case <-s.quit:
			// Appends admitted before Close still arrive: write them.
			for {
				s.mu.Lock()
				n := s.pending
				s.mu.Unlock()
				if n == 0 {
					return
				}
				s.write(s.take(<-s.reqs))
			}
		}
	}
}

// take returns first and whatever else is queued now, up to maxBatch.
func (s *Spool) take(first *appendReq) []*appendReq {
	batch := []*appendReq{first}
	for len(batch) < maxBatch {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// write appends a batch with one write and one fsync and answers each
// request.
func (s *Spool) write(batch []*appendReq) {
	errs := make([]error, len(batch))
	s.writeFrames(batch, errs)
	s.mu.Lock()
	s.pending -= len(batch)
	s.mu.Unlock()
	for i, r := range batch {
		r.done <- errs[i]
	}
}

// writeFrames does write's work; errs gets each request's answer.
func (s *Spool) writeFrames(batch []*appendReq, errs []error) {
	fail := func(err error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	s.mu.Lock()
	broken, last, empty := s.broken, s.segs[len(s.segs)-1], s.records == 0
	var disk int64
	for _, sg := range s.segs {
		disk += sg.size
	}
	s.mu.Unlock()
	if broken != nil {
		fail(broken)
		return
	}
	// A full segment, or one whose records are all acknowledged, is left
	// for a new one (and the latter deleted), so the bound counts only
	// what waits.
	if last.size >= s.opts.SegmentBytes || empty && last.size > 0 {
		if err := s.roll(last.id + 1); err != nil {
			fail(err)
			return
		}
		last = segment{id: last.id + 1}
		disk = 0
		s.mu.Lock()
		for _, sg := range s.segs {
			disk += sg.size
		}
		s.mu.Unlock()
	}

	now := time.Now()
	var buf []byte
	n, refused := 0, false
	for i, r := range batch {
		if disk+int64(len(buf))+headerSize+int64(len(r.data)) > s.opts.MaxBytes {
			errs[i], refused = ErrFull, true
			continue
		}
		buf = appendFrame(buf, now, r.data)
		n++
	}
	if n > 0 {
		if _, err := s.f.WriteAt(buf, last.size); err != nil {
			// Take back a partial write (a full disk) so the file ends on
			// a whole frame; the next batch writes at the same place.
			_ = s.f.Truncate(last.size)
			fail(fmt.Errorf("write spool: %w", err))
			return
		}
		if err := s.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the pages:
			// nothing written since the last good fsync can be trusted, and
			// no later fsync would say so. Stop writing.
			err = fmt.Errorf("fsync spool: %w", err)
			s.mu.Lock()
			s.broken = err
			s.mu.Unlock()
			fail(err)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.segs[len(s.segs)-1].size += int64(len(buf))
	if s.records == 0 && n > 0 {
		s.headTime = now
	}
	s.records += n
	s.full = refused
}

// roll starts segment id; the current one is already fsync'd (every batch
// is).
func (s *Spool) roll(id uint64) error {
	if err := s.create(id); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.dir, segName(id)), os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open spool segment: %w", err)
	}
	old := s.f
	s.mu.Lock()
	s.f = f
	s.segs = append(s.segs, segment{id: id})
	s.normalizeHead()
	s.mu.Unlock()
	_ = old.Close()
	return nil
}

// normalizeHead moves a head that sits at the end of a segment which is
// not the last to the start of the next, deleting the finished segments.
// The caller holds mu.
func (s *Spool) normalizeHead() {
	for len(s.segs) > 1 && (s.head.Segment > s.segs[0].id ||
		s.head.Segment == s.segs[0].id && s.head.Offset >= s.segs[0].size) {
		_ = os.Remove(filepath.Join(s.dir, segName(s.segs[0].id)))
		s.segs = s.segs[1:]
		if s.head.Segment < s.segs[0].id {
			s.head = Pos{Segment: s.segs[0].id}
		}
	}
}

// Read returns up to max records from pos on, in order, as far as they
// are durable. Start at Head; continue at the last entry's Next.
func (s *Spool) Read(pos Pos, max int) ([]Entry, error) {
	s.mu.Lock()
	segs := append([]segment(nil), s.segs...)
	s.mu.Unlock()
	var out []Entry
	for i, sg := range segs {
		if sg.id < pos.Segment || len(out) >= max {
			continue
		}
		if sg.id > pos.Segment {
			pos = Pos{Segment: sg.id}
		}
		got, err := s.readSegment(sg, pos.Offset, max-len(out))
		if err != nil {
			return out, err
		}
		out = append(out, got...)
		if len(got) > 0 {
			pos = got[len(got)-1].Next
		}
		if i < len(segs)-1 && pos.Offset >= sg.size {
			pos = Pos{Segment: segs[i+1].id}
		}
	}
	return out, nil
}

func (s *Spool) readSegment(sg segment, off int64, max int) ([]Entry, error) {
	if off >= sg.size {
		return nil, nil
	}
	f, err := os.Open(filepath.Join(s.dir, segName(sg.id)))
	if err != nil {
		return nil, fmt.Errorf("read spool: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, sg.size-off), 64<<10)
	var out []Entry
	for len(out) < max {
		t, data, err := readFrame(r, sg.size-off)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("read spool %s at %d: %w", segName(sg.id), off, err)
		}
		next := off + headerSize + int64(len(data))
		out = append(out, Entry{Pos: Pos{sg.id, off}, Next: Pos{sg.id, next}, Time: t, Data: data})
		off = next
	}
	return out, nil
}

// Ack acknowledges entries, which must be the next ones from Head in
// order: they are deleted (with their segment, once all of it is
// acknowledged) and never read again.
func (s *Spool) Ack(entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		s.normalizeHead()
		if e.Pos != s.head {
			return fmt.Errorf("spool: acknowledged record at %v, want the head at %v", e.Pos, s.head)
		}
		s.head = e.Next
		s.records--
	}
	// Room is made (whole segments are deleted as soon as they can be, the
	// last one at the next append): the next append may fit.
	s.full = false
	s.normalizeHead()
	s.headTime = time.Time{}
	if s.records > 0 {
		s.headTime = s.timeAt(s.head)
	}
	// Not synced: a lost head only means records read again after a crash.
	tmp := filepath.Join(s.dir, headFile+".tmp")
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %d\n", s.head.Segment, s.head.Offset), 0o600); err == nil {
		_ = os.Rename(tmp, filepath.Join(s.dir, headFile))
	}
	return nil
}

// timeAt reads the append time of the frame at p; the caller holds mu.
func (s *Spool) timeAt(p Pos) time.Time {
	f, err := os.Open(filepath.Join(s.dir, segName(p.Segment)))
	if err != nil {
		return time.Now()
	}
	defer f.Close()
	var h [headerSize]byte
	if _, err := f.ReadAt(h[:], p.Offset); err != nil {
		return time.Now()
	}
	return time.Unix(0, int64(binary.LittleEndian.Uint64(h[8:16])))
}

// SetAsideDir is the folder, inside the spool's, where SetAside copies
// records.
const SetAsideDir = "set-aside"

// SetAside copies e's data to a file of its own in the set-aside folder,
// fsync'd, and returns its path: for a record the caller gives up on (the
// database refuses it for good) but that must not be lost. It does not
// acknowledge e.
func (s *Spool) SetAside(e Entry) (string, error) {
	dir := filepath.Join(s.dir, SetAsideDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("set spool record aside: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%020d-%012d.rec", e.Pos.Segment, e.Pos.Offset))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("set spool record aside: %w", err)
	}
	_, err = f.Write(e.Data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("set spool record aside: %w", err)
	}
	return path, syncDir(dir)
}

// Rewrite passes the data of every record not yet acknowledged, and of
// every record set aside, to fn, and replaces it with what fn returns when
// fn reports a change: for erasing content the spool must not keep. A
// record in a segment keeps its place and its length (fn must return as
// many bytes as it was given, or Rewrite stops with an error); its frame's
// CRC is updated and the segment fsync'd. A set-aside record may change
// length: its file is replaced. It returns how many records it changed.
//
// Appends may go on meanwhile (they write past the records Rewrite
// reads), but the caller must keep its reader from reading or
// acknowledging records until Rewrite returns, or the reader may see a
// record half rewritten (a CRC error) or keep the old data it read.
func (s *Spool) Rewrite(fn func(data []byte) ([]byte, bool)) (int, error) {
	s.mu.Lock()
	segs, head := append([]segment(nil), s.segs...), s.head
	s.mu.Unlock()
	changed := 0
	for _, sg := range segs {
		if sg.id < head.Segment {
			continue
		}
		from := int64(0)
		if sg.id == head.Segment {
			from = head.Offset
		}
		n, err := s.rewriteSegment(sg, from, fn)
		changed += n
		if err != nil {
			return changed, err
		}
	}
	n, err := s.rewriteSetAside(fn)
	return changed + n, err
}

// rewriteSegment rewrites, in place, the records of sg from offset from on
// that fn changes, and fsyncs the segment when it changed any.
func (s *Spool) rewriteSegment(sg segment, from int64, fn func([]byte) ([]byte, bool)) (int, error) {
	entries, err := s.readSegment(sg, from, int(^uint(0)>>1))
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(filepath.Join(s.dir, segName(sg.id)), os.O_RDWR, 0o600)
	if err != nil {
		return 0, fmt.Errorf("rewrite spool: %w", err)
	}
	defer f.Close()
	changed := 0
	for _, e := range entries {
		out, ok := fn(e.Data)
		if !ok {
			continue
		}
		if len(out) != len(e.Data) {
			return changed, fmt.Errorf("rewrite spool %s at %d: the new record has %d bytes, want %d",
				segName(sg.id), e.Pos.Offset, len(out), len(e.Data))
		}
		frame := appendFrame(nil, e.Time, out)
		if _, err := f.WriteAt(frame[4:], e.Pos.Offset+4); err != nil { // the length stays
			return changed, fmt.Errorf("rewrite spool %s at %d: %w", segName(sg.id), e.Pos.Offset, err)
		}
		changed++
	}
	if changed > 0 {
		if err := f.Sync(); err != nil {
			return changed, fmt.Errorf("rewrite spool %s: fsync: %w", segName(sg.id), err)
		}
	}
	return changed, nil
}

// rewriteSetAside replaces the set-aside records that fn changes, each
// through a new file renamed over the old one.
func (s *Spool) rewriteSetAside(fn func([]byte) ([]byte, bool)) (int, error) {
	dir := filepath.Join(s.dir, SetAsideDir)
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rewrite set-aside records: %w", err)
	}
	changed := 0
	for _, de := range des {
		if !de.Type().IsRegular() || filepath.Ext(de.Name()) != ".rec" {
			continue
		}
		path := filepath.Join(dir, de.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return changed, fmt.Errorf("rewrite set-aside record: %w", err)
		}
		out, ok := fn(data)
		if !ok {
			continue
		}
		if err := replaceFile(path, out); err != nil {
			return changed, err
		}
		changed++
	}
	if changed > 0 {
		return changed, syncDir(dir)
	}
	return 0, nil
}

// replaceFile writes data to path through a synced temporary file.
func replaceFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	return nil
}
