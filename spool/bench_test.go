package spool_test

import (
	"bytes"
	"testing"

	"moderator/spool"
)

// BenchmarkAppend measures durable appends of 1.5 KB records (a typical
// Stream event): one appender pays one fsync per record; 32 appenders per core
// share them (group commit), as concurrent webhooks do.
func BenchmarkAppend(b *testing.B) {
	rec := bytes.Repeat([]byte("x"), 1500)
	for _, tc := range []struct {
		name    string
		writers int
	}{{"serial", 1}, {"parallel", 32}} {
		b.Run(tc.name, func(b *testing.B) {
			s, _, err := spool.Open(b.TempDir(), spool.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetParallelism(tc.writers)
			b.SetBytes(int64(len(rec)))
			b.ResetTimer()
			if tc.writers == 1 {
				for b.Loop() {
					if err := s.Append(rec); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := s.Append(rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
