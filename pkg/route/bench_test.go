package route_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/input/kafka"
	"github.com/triage-dev/triage/pkg/logging"
	"github.com/triage-dev/triage/pkg/route"
)

// BenchmarkRoute: alerts/s through one route process on kfake (consume
// the unkeyed topic, key by entity, produce with acks, commit). Run with
// -benchtime=1x (docs/fleet.md).
func BenchmarkRoute(b *testing.B) {
	const total = 100000
	for it := 0; it < b.N; it++ {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "falco"), kfake.SeedTopics(6, "falco-by-entity"))
		require.NoError(b, err)
		prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("falco"))
		require.NoError(b, err)
		for from := 0; from < total; from += 10000 {
			var recs []*kgo.Record
			for i := from; i < from+10000; i++ {
				recs = append(recs, &kgo.Record{Value: sidekickAlert(i, 1000)})
			}
			require.NoError(b, prod.ProduceSync(context.Background(), recs...).FirstErr())
		}
		prod.Close()
		addrs := strings.Join(c.ListenAddrs(), ",")
		from, _ := kafka.ParseURL("kafka://"+addrs+"/falco?group=route", true)
		to, _ := kafka.ParseURL("kafka://"+addrs+"/falco-by-entity", false)
		r, err := route.New(route.Options{From: from, To: to, Config: config.Default(), Log: logging.New(&strings.Builder{}, 10, time.Second)})
		require.NoError(b, err)
		b.ResetTimer()
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		for r.Routed.Load() < total {
			time.Sleep(5 * time.Millisecond)
		}
		el := time.Since(start)
		b.StopTimer()
		cancel()
		require.NoError(b, <-done)
		r.Close()
		c.Close()
		b.ReportMetric(total/el.Seconds(), "alerts/s")
	}
}
