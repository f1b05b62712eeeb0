package kafka_test

import (
	"bytes"
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
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/input/kafka"
	"github.com/triage-dev/triage/pkg/logging"
	"github.com/triage-dev/triage/pkg/route"
)

const keyed = "falco-by-entity"

// cluster starts an in-process Kafka (kfake) on loopback with the topics.
func cluster(t testing.TB, partitions int32, topics ...string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

var rules = []struct{ rule, prio, tag string }{
	{"Execution from /dev/shm", "Warning", "mitre_execution"},
	{"Fileless execution via memfd_create", "Critical", "mitre_defense_evasion"},
	{"Read sensitive file untrusted", "Warning", "mitre_credential_access"},
	{"Unexpected outbound connection destination", "Notice", "mitre_command_and_control"},
}

var base = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

// alertJSON is alert seq of a stream over n entities.
func alertJSON(seq, entities int) []byte {
	r := rules[(seq/entities)%len(rules)]
	b, _ := json.Marshal(map[string]any{
		"uuid": fmt.Sprintf("u%06d", seq), "rule": r.rule, "priority": r.prio, "source": "syscall",
		"hostname": fmt.Sprintf("node-%d", seq%entities%3), "tags": []string{r.tag},
		"time":   base.Add(time.Duration(seq) * time.Second).Format(time.RFC3339Nano),
		"output": r.rule, "output_fields": map[string]any{"container.id": fmt.Sprintf("c%03d", seq%entities), "proc.name": "sh"},
	})
	return b
}

// produceKeyed writes alerts from..to-1 to the keyed topic as route does.
func produceKeyed(t testing.TB, addrs string, from, to, entities int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(addrs, ",")...), kgo.DefaultProduceTopic(keyed),
		kgo.RecordPartitioner(kafka.EntityPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	var p alert.Parser
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		raw := alertJSON(i, entities)
		a := alert.Acquire()
		require.NoError(t, p.ParseInto(raw, a))
		recs = append(recs, route.Keyed(raw, a))
		alert.Release(a)
	}
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
}

// got is what one event's correlation fields said.
type got struct {
	Entity, Incident              string
	Alerts, RiskSum, Dedup, Rules uint64
	Tactics                       uint16
	First, Escalated              bool
}

func values(rec *event.Record) got {
	c := &rec.Corr
	return got{Entity: strings.Clone(c.EntityID), Incident: strings.Clone(c.IncidentID), Alerts: c.Alerts, RiskSum: c.RiskSum,
		Dedup: c.DedupCount, Rules: c.Rules, Tactics: c.Tactics, First: c.DedupFirst, Escalated: len(c.Escalation) > 0}
}

// reference runs one engine over alerts 0…n-1 in order: what an
// uninterrupted single consumer gives.
func reference(t testing.TB, cfg config.Config, n, entities int) map[string]got {
	eng, err := engine.New(cfg)
	require.NoError(t, err)
	var p alert.Parser
	var rec event.Record
	out := map[string]got{}
	for i := 0; i < n; i++ {
		a := alert.Acquire()
		require.NoError(t, p.ParseInto(alertJSON(i, entities), a))
		eng.Process(a, &rec)
		out[a.UUID] = values(&rec)
		alert.Release(a)
	}
	return out
}

// member is one plugin instance: the kafka input, its queue, and a loop
// doing what the plugin's next_batch does (ack, state operations, pop,
// process).
type member struct {
	name  string
	in    *kafka.Input
	q     *ingest.AlertQueue
	eng   *engine.Engine
	c     ingest.Counters
	log   *bytes.Buffer
	logMu *sync.Mutex

	mu   sync.Mutex
	evts map[string][]got // by alert uuid; more than one is a duplicate

	stop, done chan struct{}
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func testConfig() config.Config {
	cfg := config.Default()
	cfg.Kafka.SessionTimeoutMs = 6000 // kfake's group.min.session.timeout.ms
	cfg.Kafka.RevokeWaitMs = 5000
	return cfg
}

func startMember(t testing.TB, name, addrs, group string, cfg config.Config) *member {
	t.Helper()
	m := &member{name: name, log: &bytes.Buffer{}, logMu: &sync.Mutex{}, evts: map[string][]got{},
		stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	m.eng, err = engine.New(cfg)
	require.NoError(t, err)
	m.q = ingest.NewAlertQueue(cfg.QueueSize, int64(cfg.QueueBytes))
	sp, err := kafka.ParseURL("kafka://"+addrs+"/"+keyed+"?group="+group, true)
	require.NoError(t, err)
	m.in, err = kafka.Start(sp, cfg, m.q, &m.c, logging.New(syncWriter{m.logMu, m.log}, 1000, time.Second))
	require.NoError(t, err)
	go m.loop()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, m.logText())
		}
	})
	return m
}

func (m *member) loop() {
	defer close(m.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []*alert.Alert
	var rec event.Record
	for {
		select {
		case <-m.stop:
			return
		default:
		}
		m.q.Ack()
		batch, _ = m.q.PopBatch(batch[:0], 64, timer, 20*time.Millisecond)
		m.in.BeforeBatch(m.eng)
		for _, a := range batch {
			m.eng.Process(a, &rec)
			m.mu.Lock()
			m.evts[a.UUID] = append(m.evts[a.UUID], values(&rec))
			m.mu.Unlock()
			alert.Release(a)
		}
		clear(batch)
		rec = event.Record{}
	}
}

// close is the plugin's close: the last batch is acked, then the input
// commits and leaves.
func (m *member) close() {
	close(m.stop)
	<-m.done
	m.q.Ack()
	m.in.Stop()
}

// kill stops the member as a crash would: nothing more is acked or
// committed.
func (m *member) kill() {
	close(m.stop)
	<-m.done
	m.in.Crash()
}

func (m *member) delivered() map[string][]got {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]got{}
	for k, v := range m.evts {
		out[k] = append([]got(nil), v...)
	}
	return out
}

func (m *member) logText() string {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	return m.log.String()
}

// waitFor polls cond until true; the deadline only stops a hung test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func union(ms ...*member) map[string][]got {
	out := map[string][]got{}
	for _, m := range ms {
		for k, v := range m.delivered() {
			out[k] = append(out[k], v...)
		}
	}
	return out
}

func uuid(i int) string { return fmt.Sprintf("u%06d", i) }

// requireSameAsReference checks that every alert 0…n-1 was delivered at
// least once, and that every delivery (duplicates included) carries the
// field values of an uninterrupted single consumer.
func requireSameAsReference(t *testing.T, ref map[string]got, all map[string][]got, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		ds := all[uuid(i)]
		if !assert.NotEmpty(t, ds, "alert %d never delivered", i) {
			continue
		}
		for _, d := range ds {
			if !assert.Equal(t, ref[uuid(i)], d, "alert %d", i) {
				return
			}
		}
	}
}

// Two instances in one group split the partitions, deliver every alert
// at least once between them, and a crash of one moves its partitions to
// the other, whose events for the moved entities continue exactly where
// the dead one left them (entity.alerts, risk sum, tactics, dedup,
// incident), because it rebuilt their state from the partition before
// consuming it.
func TestGroupSplitsAndSurvivesAKill(t *testing.T) {
	const entities, parts = 24, 6
	addrs := cluster(t, parts, keyed)
	cfg := testConfig()
	produceKeyed(t, addrs, 0, 240, entities)

	a := startMember(t, "a", addrs, "g", cfg)
	waitFor(t, "a delivers the first alerts", func() bool { return len(a.delivered()) >= 240 })
	b := startMember(t, "b", addrs, "g", cfg)
	defer b.close()
	waitFor(t, "the group splits the partitions", func() bool {
		return len(a.in.Owned()) > 0 && len(b.in.Owned()) > 0 && len(a.in.Owned())+len(b.in.Owned()) == parts
	})
	produceKeyed(t, addrs, 240, 480, entities)
	waitFor(t, "both deliver the second part", func() bool { return len(union(a, b)) >= 480 })
	ownedByA := a.in.Owned()
	assert.NotEmpty(t, b.delivered(), "b consumed its share")

	// a is killed mid-stream: its last deliveries are not committed.
	produceKeyed(t, addrs, 480, 600, entities)
	waitFor(t, "a delivers part of the third part", func() bool { return len(a.delivered()) > 300 })
	a.kill()
	produceKeyed(t, addrs, 600, 720, entities)
	waitFor(t, "b takes every partition over", func() bool { return len(b.in.Owned()) == parts })
	waitFor(t, "every alert delivered", func() bool { return len(union(a, b)) >= 720 })

	ref := reference(t, cfg, 720, entities)
	all := union(a, b)
	requireSameAsReference(t, ref, all, 720)

	// The moved entities' stories continued in b: b delivered alerts of
	// a's former partitions after the kill, with counts beyond what a
	// fresh state would give.
	moved := 0
	bd := b.delivered()
	for i := 600; i < 720; i++ {
		id := ref[uuid(i)].Entity
		if contains(ownedByA, kafka.PartitionOf(id, parts)) {
			require.NotEmpty(t, bd[uuid(i)])
			assert.Greater(t, bd[uuid(i)][0].Alerts, uint64(5), "alert %d on moved entity %s continues its story", i, id)
			moved++
		}
	}
	assert.Positive(t, moved, "some entities moved")
	assert.Positive(t, b.in.Replayed.Load(), "b rebuilt state by replay")
}

func contains(ps []int32, p int32) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// A restart of the only instance replays the window before its committed
// offsets, so the alerts after the restart get the same values as in an
// uninterrupted run; without the replay they would start from zero.
func TestRestartReplaysTheWindow(t *testing.T) {
	const entities = 10
	addrs := cluster(t, 3, keyed)
	cfg := testConfig()
	produceKeyed(t, addrs, 0, 100, entities)
	a := startMember(t, "a", addrs, "g", cfg)
	waitFor(t, "a delivers everything", func() bool { return len(a.delivered()) >= 100 })
	a.close()

	produceKeyed(t, addrs, 100, 150, entities)
	a2 := startMember(t, "a2", addrs, "g", cfg)
	defer a2.close()
	waitFor(t, "a2 delivers the rest", func() bool { return len(a2.delivered()) >= 50 })

	ref := reference(t, cfg, 150, entities)
	d := a2.delivered()
	for i := 0; i < 100; i++ {
		assert.Empty(t, d[uuid(i)], "alert %d was committed before the restart: not delivered again", i)
	}
	for i := 100; i < 150; i++ {
		require.Len(t, d[uuid(i)], 1, "alert %d", i)
		assert.Equal(t, ref[uuid(i)], d[uuid(i)][0], "alert %d after the restart", i)
	}
	assert.EqualValues(t, 100, a2.in.Replayed.Load(), "the whole window was replayed into state")
	assert.Empty(t, d[uuid(0)])
}

// With a replay span shorter than the history, only the span is replayed:
// records before it are not read.
func TestReplaySpanBoundsTheReplay(t *testing.T) {
	const entities = 5
	addrs := cluster(t, 1, keyed)
	cfg := testConfig()
	cfg.Kafka.ReplaySec = 20 // alerts are 1 s apart: the last 21 records
	produceKeyed(t, addrs, 0, 100, entities)
	a := startMember(t, "a", addrs, "g", cfg)
	waitFor(t, "a delivers everything", func() bool { return len(a.delivered()) >= 100 })
	a.close()
	a2 := startMember(t, "a2", addrs, "g", cfg)
	defer a2.close()
	waitFor(t, "a2 replayed", func() bool { return a2.in.Replayed.Load() > 0 })
	assert.EqualValues(t, 21, a2.in.Replayed.Load(), "records stamped in [last-20s, last]")
}

// Malformed records are counted and logged with partition and offset, and
// the partition goes on: alerts after them are delivered, and the offsets
// are committed past them.
func TestMalformedRecordsSkipped(t *testing.T) {
	addrs := cluster(t, 1, keyed)
	cfg := testConfig()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(addrs, ",")...), kgo.DefaultProduceTopic(keyed))
	require.NoError(t, err)
	good := func(i int) []byte { return alertJSON(i, 3) }
	ndjson := bytes.Join([][]byte{good(1), []byte(`{"rule": "no priority"}`), good(2)}, []byte("\n"))
	pretty, _ := json.MarshalIndent(json.RawMessage(good(3)), "", "  ")
	vals := [][]byte{[]byte("not json"), good(0), {}, ndjson, []byte(`{"rule":`), pretty, good(4)}
	var recs []*kgo.Record
	for _, v := range vals {
		recs = append(recs, &kgo.Record{Value: v})
	}
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
	cl.Close()

	m := startMember(t, "m", addrs, "g", cfg)
	waitFor(t, "the good alerts", func() bool { return len(m.delivered()) >= 5 })
	for i := 0; i < 5; i++ {
		assert.Len(t, m.delivered()[uuid(i)], 1, "alert %d", i)
	}
	waitFor(t, "4 malformed counted", func() bool { return m.c.Malformed.Load() == 4 })
	assert.EqualValues(t, 4, m.in.BadRecords.Load())
	log := m.logText()
	for _, w := range []string{keyed + "/0@0:", keyed + "/0@2:", keyed + "/0@3 line 2:", keyed + "/0@4:"} {
		assert.Contains(t, log, w)
	}
	m.close()

	// Everything, the bad records too, was committed: a restart in the
	// group reads nothing again.
	m2 := startMember(t, "m2", addrs, "g", cfg)
	defer m2.close()
	waitFor(t, "m2 owns the partition", func() bool { return len(m2.in.Owned()) == 1 })
	time.Sleep(500 * time.Millisecond)
	assert.Empty(t, m2.delivered())
	assert.Zero(t, m2.c.Malformed.Load())
}

func TestParseURL(t *testing.T) {
	sp, err := kafka.ParseURL("kafka://k1:9092,k2:9093/falco-by-entity?group=triage", true)
	require.NoError(t, err)
	assert.Equal(t, kafka.Spec{Brokers: []string{"k1:9092", "k2:9093"}, Topic: "falco-by-entity", Group: "triage"}, sp)
	assert.Equal(t, "kafka://k1:9092,k2:9093/falco-by-entity?group=triage", sp.String())
	for _, bad := range []string{
		"kafka:///t?group=g", "kafka://k1/t?group=g", "kafka://k1:9092/?group=g", "kafka://k1:9092/a b?group=g",
		"kafka://k1:9092/t", "kafka://k1:9092/t?group=g&x=1",
	} {
		_, err := kafka.ParseURL(bad, true)
		assert.Error(t, err, bad)
	}
	_, err = kafka.ParseURL("kafka://k1:9092/t?group=g", false)
	assert.Error(t, err, "a produce target takes no group")
}
