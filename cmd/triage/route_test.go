package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// `triage route` keys the unkeyed topic by entity and stops cleanly on its
// signal with the counters.
func TestRouteCommand(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "falco"), kfake.SeedTopics(3, "falco-by-entity"))
	require.NoError(t, err)
	defer c.Close()
	addrs := strings.Join(c.ListenAddrs(), ",")
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("falco"))
	require.NoError(t, err)
	var recs []*kgo.Record
	for i := 0; i < 50; i++ {
		recs = append(recs, &kgo.Record{Value: []byte(fmt.Sprintf(`{"rule":"r","priority":"Notice","time":"2026-01-01T00:00:%02dZ","hostname":"h%d","output_fields":{}}`, i, i%5))})
	}
	require.NoError(t, prod.ProduceSync(context.Background(), recs...).FirstErr())
	prod.Close()

	routeSignals = []os.Signal{syscall.SIGUSR1}
	var stderr lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"route", "--from", "kafka://" + addrs + "/falco?group=route", "--to", "kafka://" + addrs + "/falco-by-entity", "--stats", "0"},
			nil, &bytes.Buffer{}, &stderr)
	}()
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("falco-by-entity"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cons.Close()
	keys := map[string]int32{}
	n := 0
	deadline := time.Now().Add(60 * time.Second)
	for n < 50 && time.Now().Before(deadline) {
		ctx, stop := context.WithTimeout(context.Background(), time.Second)
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			n++
			if p, ok := keys[string(r.Key)]; ok {
				assert.Equal(t, p, r.Partition)
			}
			keys[string(r.Key)] = r.Partition
		})
		stop()
	}
	require.Equal(t, 50, n)
	assert.Len(t, keys, 5)
	assert.Contains(t, keys, "host:h3")
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	select {
	case rc := <-code:
		assert.Equal(t, 0, rc, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("route did not stop on its signal")
	}
	assert.Contains(t, stderr.String(), "routed=50")
}

func TestRouteCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"route"},
		{"route", "--from", "kafka://k:9092/falco", "--to", "kafka://k:9092/keyed"},
		{"route", "--from", "kafka://k:9092/falco?group=g", "--to", "kafka://k:9092/keyed?group=g"},
		{"route", "--from", "http://k:9092/falco?group=g", "--to", "kafka://k:9092/keyed"},
	} {
		var stderr bytes.Buffer
		assert.Equal(t, 2, run(args, nil, &bytes.Buffer{}, &stderr), "%v: %s", args, stderr.String())
	}
}
