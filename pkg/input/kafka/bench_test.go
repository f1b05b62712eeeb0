package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/input/kafka"
)

// Fleet benchmarks (docs/fleet.md): run with -benchtime=1x; each
// iteration moves a fixed number of alerts and reports alerts/s.
//
//	go test ./pkg/input/kafka/ ./pkg/route/ -run '^$' -bench . -benchtime=1x

const benchAlerts = 100000

// BenchmarkKafkaInput: alerts/s through the plugin's Kafka input (poll,
// parse, queue, engine, commit) with 1 and 2 consumers in one group on
// kfake, 6 partitions, 1,000 entities.
func BenchmarkKafkaInput(b *testing.B) {
	for _, consumers := range []int{1, 2} {
		b.Run(fmt.Sprintf("consumers=%d", consumers), func(b *testing.B) {
			for it := 0; it < b.N; it++ {
				addrs := cluster(b, 6, keyed)
				for from := 0; from < benchAlerts; from += 10000 {
					produceKeyed(b, addrs, from, from+10000, 1000)
				}
				cfg := testConfig()
				b.ResetTimer()
				start := time.Now()
				var ms []*member
				for i := 0; i < consumers; i++ {
					ms = append(ms, startMember(b, fmt.Sprint(i), addrs, "bench", cfg))
				}
				waitFor(b, "all delivered", func() bool {
					n := 0
					for _, m := range ms {
						m.mu.Lock()
						n += len(m.evts)
						m.mu.Unlock()
					}
					return n >= benchAlerts
				})
				el := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(benchAlerts)/el.Seconds(), "alerts/s")
				for _, m := range ms {
					m.close()
				}
			}
		})
	}
}

// BenchmarkRebuild: the state rebuild of an assigned partition holding
// 100,000 alerts of window (1,000 entities): reading them by timestamp
// from kfake, and applying them to a fresh engine.
func BenchmarkRebuild(b *testing.B) {
	addrs := cluster(b, 1, keyed)
	for from := 0; from < benchAlerts; from += 10000 {
		produceKeyed(b, addrs, from, from+10000, 1000)
	}
	cfg := testConfig()
	copts := []kgo.Opt{kgo.SeedBrokers(strings.Split(addrs, ",")...)}
	b.ResetTimer()
	var read, apply time.Duration
	for it := 0; it < b.N; it++ {
		t0 := time.Now()
		vals, err := kafka.ReadWindow(context.Background(), copts, keyed, map[int32]int64{0: benchAlerts}, 48*time.Hour)
		require.NoError(b, err)
		require.Len(b, vals, benchAlerts)
		t1 := time.Now()
		eng, err := engine.New(cfg)
		require.NoError(b, err)
		require.Equal(b, benchAlerts, kafka.Apply(eng, vals, cfg.MaxEventBytes))
		read += t1.Sub(t0)
		apply += time.Since(t1)
	}
	b.ReportMetric(float64(read.Milliseconds())/float64(b.N), "read-ms/100k")
	b.ReportMetric(float64(apply.Milliseconds())/float64(b.N), "apply-ms/100k")
}
