package spool_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"moderator/spool"
)

func open(t testing.TB, dir string, opts spool.Options) (*spool.Spool, spool.Recovery) {
	t.Helper()
	s, rec, err := spool.Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, rec
}

func appendN(t testing.TB, s *spool.Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Append(record(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func record(i int) []byte { return fmt.Appendf(nil, "record-%06d", i) }

// readAll reads every record from the head.
func readAll(t testing.TB, s *spool.Spool) []spool.Entry {
	t.Helper()
	var all []spool.Entry
	pos := s.Head()
	for {
		got, err := s.Read(pos, 7)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if len(got) == 0 {
			return all
		}
		all = append(all, got...)
		pos = got[len(got)-1].Next
	}
}

func wantRecords(t testing.TB, got []spool.Entry, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d records, want %d", len(got), n)
	}
	for i, e := range got {
		if want := record(from + i); !bytes.Equal(e.Data, want) {
			t.Fatalf("record %d: got %q, want %q", i, e.Data, want)
		}
	}
}

func TestAppendReadAck(t *testing.T) {
	t.Parallel()
	s, rec := open(t, t.TempDir(), spool.Options{SegmentBytes: 200})
	if rec.Records != 0 || s.Len() != 0 {
		t.Fatalf("new spool: %+v, Len %d", rec, s.Len())
	}
	appendN(t, s, 0, 40)
	all := readAll(t, s)
	wantRecords(t, all, 0, 40)
	st := s.Stats()
	if st.Records != 40 || st.Oldest.IsZero() || st.Bytes <= 0 || st.Disk < st.Bytes {
		t.Fatalf("stats after 40 appends: %+v", st)
	}

	if err := s.Ack(all[:25]...); err != nil {
		t.Fatal(err)
	}
	if got := s.Len(); got != 15 {
		t.Fatalf("Len after acking 25 of 40: got %d, want 15", got)
	}
	wantRecords(t, readAll(t, s), 25, 15)
	if err := s.Ack(all[30]); err == nil {
		t.Fatal("acking a record past the head: got no error")
	}
	if err := s.Ack(all[25:]...); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 0 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Fatalf("stats when empty: %+v", st)
	}
}

func TestAcknowledgedSegmentsAreDeleted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, dir, spool.Options{SegmentBytes: 100})
	appendN(t, s, 0, 30)
	if n := segments(t, dir); n < 5 {
		t.Fatalf("30 records in 100-byte segments: got %d segments, want several", n)
	}
	if err := s.Ack(readAll(t, s)...); err != nil {
		t.Fatal(err)
	}
	if n := segments(t, dir); n != 1 {
		t.Fatalf("after acknowledging everything: got %d segments, want 1", n)
	}
}

func segments(t testing.TB, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestReopenKeepsUnacknowledged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _, err := spool.Open(dir, spool.Options{SegmentBytes: 150})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 20)
	if err := s.Ack(readAll(t, s)[:12]...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(record(99)); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("append after close: got %v, want ErrClosed", err)
	}

	s2, rec := open(t, dir, spool.Options{SegmentBytes: 150})
	if rec.Records != 8 || rec.CutBytes != 0 {
		t.Fatalf("reopened: %+v, want 8 records and nothing cut", rec)
	}
	appendN(t, s2, 20, 5)
	wantRecords(t, readAll(t, s2), 12, 13)
}

// A crash can leave the last frame half written, or written with bytes
// that never reached the disk: Open cuts it and keeps every record before.
func TestTornTailIsCut(t *testing.T) {
	t.Parallel()
	for name, damage := range map[string]func([]byte) []byte{
		"half a header": func(b []byte) []byte { return append(b, 0x20, 0, 0) },
		"header only":   func(b []byte) []byte { return append(b, bytes.Repeat([]byte{0x20, 0, 0, 0}, 4)...) },
		"half the data": func(b []byte) []byte { return b[:len(b)-5] },
		"bad crc":       func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b },
		"length past end": func(b []byte) []byte {
			return append(b, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
		},
		"zeroes (no data)": func(b []byte) []byte { return append(b, make([]byte, 4096)...) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s, _, err := spool.Open(dir, spool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, s, 0, 5)
			s.Close()
			seg := filepath.Join(dir, "00000000000000000001.seg")
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(seg, damage(b), 0o600); err != nil {
				t.Fatal(err)
			}

			s2, rec := open(t, dir, spool.Options{})
			want := 5
			if name == "half the data" || name == "bad crc" {
				want = 4 // the last record itself was torn
			}
			if rec.Records != want || rec.CutBytes == 0 {
				t.Fatalf("reopened: %+v, want %d records and a cut", rec, want)
			}
			appendN(t, s2, want, 2)
			wantRecords(t, readAll(t, s2), 0, want+2)
		})
	}
}

func TestFullRefusesUntilAcknowledged(t *testing.T) {
	t.Parallel()
	// In small segments, and in one segment larger than the bound.
	for _, seg := range []int64{200, 0} {
		t.Run(fmt.Sprint("segment bytes ", seg), func(t *testing.T) {
			t.Parallel()
			testFull(t, spool.Options{MaxBytes: 1000, SegmentBytes: seg})
		})
	}
}

func testFull(t *testing.T, opts spool.Options) {
	s, _ := open(t, t.TempDir(), opts)
	n := 0
	for ; ; n++ {
		err := s.Append(record(n))
		if errors.Is(err, spool.ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 || n > 1000/29 {
		t.Fatalf("%d records of 29 bytes framed fit in 1000 bytes", n)
	}
	if st := s.Stats(); !st.Full || st.Records != n || st.Disk > 1000 {
		t.Fatalf("stats when full: %+v", st)
	}
	if err := s.Ack(readAll(t, s)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(record(n)); err != nil {
		t.Fatalf("append once acknowledged: %v", err)
	}
	if st := s.Stats(); st.Full {
		t.Fatalf("stats after room was made: %+v", st)
	}
}

func TestConcurrentAppendsAreEachWrittenOnce(t *testing.T) {
	t.Parallel()
	s, _ := open(t, t.TempDir(), spool.Options{SegmentBytes: 4096})
	const writers, each = 16, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { appendN(t, s, w*each, each) })
	}
	wg.Wait()
	all := readAll(t, s)
	seen := map[string]int{}
	for _, e := range all {
		seen[string(e.Data)]++
	}
	for i := range writers * each {
		if c := seen[string(record(i))]; c != 1 {
			t.Errorf("record %d read %d times, want once", i, c)
		}
	}
	if len(all) != writers*each {
		t.Fatalf("got %d records, want %d", len(all), writers*each)
	}
}

func TestOpenRefusesAFileForAFolder(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := spool.Open(file, spool.Options{}); err == nil {
		t.Fatal("open on a regular file: got no error")
	}
}

// TestRewrite rewrites some records in place, across segments, and the
// set-aside copies: a reader (and a reopened spool, which checks every
// CRC) sees the new data, acknowledged records are not offered, and a
// rewrite that would change a record's length is refused.
func TestRewrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := open(t, dir, spool.Options{SegmentBytes: 100})
	appendN(t, s, 0, 20)
	first := readAll(t, s)[:4]
	if err := s.Ack(first...); err != nil {
		t.Fatal(err)
	}
	aside, err := s.SetAside(readAll(t, s)[0]) // record 4, copied aside (and still queued)
	if err != nil {
		t.Fatal(err)
	}
	var offered []string
	odd := func(data []byte) ([]byte, bool) {
		offered = append(offered, string(data))
		if !bytes.HasPrefix(data, []byte("record")) || (data[len(data)-1]-'0')%2 == 0 {
			return nil, false
		}
		return bytes.Replace(data, []byte("record"), []byte("ERASED"), 1), true
	}
	n, err := s.Rewrite(odd)
	if err != nil {
		t.Fatal(err)
	}
	if want := 8; n != want { // 5, 7, … 19 (record 4, also set aside, is even)
		t.Errorf("rewrote %d records, want %d", n, want)
	}
	if len(offered) != 17 {
		t.Errorf("offered %d records, want the 16 queued and the one set aside", len(offered))
	}
	check := func(s *spool.Spool) {
		t.Helper()
		got := readAll(t, s)
		if len(got) != 16 {
			t.Fatalf("%d records after the rewrite, want 16", len(got))
		}
		for i, e := range got {
			want := record(i + 4)
			if i%2 == 1 {
				want = bytes.Replace(want, []byte("record"), []byte("ERASED"), 1)
			}
			if !bytes.Equal(e.Data, want) {
				t.Errorf("record %d: %q, want %q", i+4, e.Data, want)
			}
		}
	}
	check(s)
	s.Close()
	s2, rec := open(t, dir, spool.Options{SegmentBytes: 100})
	if rec.CutBytes != 0 || rec.Records != 16 {
		t.Errorf("reopened: %+v, want 16 records and nothing cut", rec)
	}
	check(s2)

	if err := os.WriteFile(aside, []byte("record-000021"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := s2.Rewrite(odd); err != nil || n != 1 {
		t.Errorf("rewriting the set-aside record: %d, %v; want 1", n, err)
	}
	if b, err := os.ReadFile(aside); err != nil || string(b) != "ERASED-000021" {
		t.Errorf("set-aside record: %q, %v", b, err)
	}
	_, err = s2.Rewrite(func(data []byte) ([]byte, bool) { return append(data, 'x'), true })
	if err == nil || !strings.Contains(err.Error(), "bytes, want") {
		t.Errorf("a rewrite changing the length: %v, want refused", err)
	}
}
