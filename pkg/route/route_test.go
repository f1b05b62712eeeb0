package route_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/correlate"
	"github.com/triage-dev/triage/pkg/input/kafka"
	"github.com/triage-dev/triage/pkg/logging"
	"github.com/triage-dev/triage/pkg/route"
)

// sidekickAlert is alert seq in Falcosidekick's shape, on one of n
// entities of several kinds (pods, containers, hosts, Kubernetes users).
func sidekickAlert(seq, n int) []byte {
	e := seq % n
	of := map[string]any{"proc.name": "sh", "seq": seq}
	source := "syscall"
	switch e % 4 {
	case 0:
		of["k8s.ns.name"], of["k8s.pod.name"] = "shop", fmt.Sprintf("api-%d", e)
	case 1:
		of["container.id"] = fmt.Sprintf("c%03d", e)
	case 2:
		of["container.id"] = "host"
	case 3:
		source = "k8s_audit"
		of["ka.user.name"] = fmt.Sprintf("user-%d", e)
	}
	b, _ := json.Marshal(map[string]any{"uuid": fmt.Sprintf("u%06d", seq), "rule": "Terminal shell in container", "priority": "Notice",
		"source": source, "hostname": fmt.Sprintf("Node-%d", e), "time": time.Unix(1790000000+int64(seq), 0).UTC().Format(time.RFC3339),
		"output": "x", "output_fields": of, "tags": []string{"mitre_execution"}})
	return b
}

// Sidekick writes unkeyed records round-robin over the input partitions;
// two route processes in one group key them by entity. Every alert
// arrives, keyed with the plugin's entity ID, on the partition Kafka's
// partitioner gives that key, and the alerts of one entity from one input
// partition keep their order.
func TestRouteKeepsEveryEntityOnOnePartition(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "falco"), kfake.SeedTopics(5, "falco-by-entity"))
	require.NoError(t, err)
	defer c.Close()
	addrs := strings.Join(c.ListenAddrs(), ",")
	const total, entities = 600, 40

	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("falco"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	require.NoError(t, err)
	srcPart := map[int]int32{}
	var recs []*kgo.Record
	for i := 0; i < total; i++ {
		recs = append(recs, &kgo.Record{Value: sidekickAlert(i, entities)})
	}
	recs = append(recs, &kgo.Record{Value: []byte("garbage")})
	res := prod.ProduceSync(context.Background(), recs...)
	require.NoError(t, res.FirstErr())
	for _, r := range res { // results come in completion order, not input order
		var v struct{ UUID string }
		if json.Unmarshal(r.Record.Value, &v) == nil {
			var seq int
			fmt.Sscanf(v.UUID, "u%d", &seq)
			srcPart[seq] = r.Record.Partition
		}
	}
	require.Len(t, srcPart, total)
	prod.Close()

	from, err := kafka.ParseURL("kafka://"+addrs+"/falco?group=route", true)
	require.NoError(t, err)
	to, err := kafka.ParseURL("kafka://"+addrs+"/falco-by-entity", false)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var routers []*route.Router
	for i := 0; i < 2; i++ {
		r, err := route.New(route.Options{From: from, To: to, Config: config.Default(), Log: logging.New(testWriter{t}, 100, time.Second)})
		require.NoError(t, err)
		routers = append(routers, r)
		wg.Add(1)
		go func() { defer wg.Done(); assert.NoError(t, r.Run(ctx)) }()
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("falco-by-entity"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cons.Close()
	var p alert.Parser
	seen := map[int]bool{}
	entityPart := map[string]int32{}
	lastSeq := map[string]int{} // entity|source partition -> last seq
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < total && time.Now().Before(deadline) {
		pctx, stop := context.WithTimeout(context.Background(), time.Second)
		fs := cons.PollFetches(pctx)
		stop()
		fs.EachRecord(func(r *kgo.Record) {
			a := alert.Acquire()
			require.NoError(t, p.ParseInto(r.Value, a))
			id, _ := correlate.ResolveEntity(a)
			assert.Equal(t, id, string(r.Key), "key is the plugin's entity ID")
			assert.Equal(t, kafka.PartitionOf(id, 5), r.Partition)
			if q, ok := entityPart[id]; ok {
				assert.Equal(t, q, r.Partition, "entity %s on one partition", id)
			}
			entityPart[id] = r.Partition
			f, _ := a.Field("seq")
			var seq int
			fmt.Sscan(f.Value, &seq)
			seen[seq] = true
			assert.Equal(t, time.Unix(0, a.Time).UnixMilli(), r.Timestamp.UnixMilli(), "timestamp is the alert's time")
			k := fmt.Sprintf("%s|%d", id, srcPart[seq])
			if last, ok := lastSeq[k]; ok {
				assert.Less(t, last, seq, "order of %s kept", k)
			}
			lastSeq[k] = seq
			alert.Release(a)
		})
	}
	cancel()
	wg.Wait()
	assert.Len(t, seen, total, "every alert routed")
	assert.Len(t, entityPart, entities)
	var routed, bad uint64
	for _, r := range routers {
		routed += r.Routed.Load()
		bad += r.Bad.Load()
		r.Close()
	}
	assert.GreaterOrEqual(t, routed, uint64(total))
	assert.EqualValues(t, 1, bad, "the garbage record is skipped and counted")
	parts := map[int32]bool{}
	for _, q := range entityPart {
		parts[q] = true
	}
	assert.Greater(t, len(parts), 1, "entities spread over partitions")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
