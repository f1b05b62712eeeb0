package spill

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkAppend stores ~1 KiB alerts: per sync policy, one or 100 per
// Append, from one goroutine ("serial") or from 8 appenders per CPU
// sharing commits ("parallel": 16 on 2 CPUs).
// One op is one Append call; alerts/s counts records. The head is acked
// now and then so the spill never fills.
//
//	go test -run '^$' -bench Append -benchtime 2s ./pkg/input/spill
func BenchmarkAppend(b *testing.B) {
	rec := bytes.Repeat([]byte("a"), 1024)
	for _, pol := range []SyncPolicy{SyncAlways, SyncNone} {
		for _, per := range []int{1, 100} {
			batch := make([][]byte, per)
			for i := range batch {
				batch[i] = rec
			}
			for _, mode := range []string{"serial", "parallel"} {
				b.Run(fmt.Sprintf("sync=%s/records=%d/%s", pol, per, mode), func(b *testing.B) {
					s, err := Open(b.TempDir(), Options{MaxBytes: 1 << 30, Sync: pol})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					trim := func(last uint64) {
						if s.Bytes() > 256<<20 {
							if err := s.Ack(last); err != nil {
								b.Error(err)
							}
						}
					}
					b.SetBytes(int64(per * len(rec)))
					b.ResetTimer()
					if mode == "serial" {
						for i := 0; i < b.N; i++ {
							_, last, err := s.Append(batch)
							if err != nil {
								b.Fatal(err)
							}
							trim(last)
						}
					} else {
						b.SetParallelism(8) // 8 appenders per GOMAXPROCS: 16 on 2 CPUs
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								_, last, err := s.Append(batch)
								if err != nil {
									b.Error(err)
									return
								}
								trim(last)
							}
						})
					}
					b.StopTimer()
					b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "alerts/s")
				})
			}
		}
	}
}

// BenchmarkNextAck reads and acks 1 KiB records 100 at a time, as the
// feeder does.
func BenchmarkNextAck(b *testing.B) {
	rec := bytes.Repeat([]byte("a"), 1024)
	for _, pol := range []SyncPolicy{SyncAlways, SyncNone} {
		b.Run("sync="+string(pol), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{MaxBytes: 1 << 30, Sync: pol})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := make([][]byte, 100)
			for i := range batch {
				batch[i] = rec
			}
			var cursor uint64
			b.SetBytes(int64(100 * len(rec)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if _, _, err := s.Append(batch); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				got, last, err := s.Next(cursor, 100, 0)
				if err != nil || len(got) != 100 {
					b.Fatal(err, len(got))
				}
				cursor = last
				if err := s.Ack(last); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "alerts/s")
		})
	}
}
