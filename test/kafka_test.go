package test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/input"
	"github.com/triage-dev/triage/pkg/input/kafka"
	"github.com/triage-dev/triage/pkg/route"
	"github.com/triage-dev/triage/test/harness"
)

// kafkaAlert is alert seq over n containers, 1 s apart: the k-th alert of
// a container has entity.alerts = k in an uninterrupted run.
func kafkaAlert(seq, n int) []byte {
	b, _ := json.Marshal(map[string]any{
		"uuid": fmt.Sprintf("k%06d", seq), "rule": "Terminal shell in container", "priority": "Notice", "source": "syscall",
		"hostname": "node-1", "time": storyStart.Add(time.Duration(seq) * time.Second).Format(time.RFC3339Nano),
		"output": "shell", "output_fields": map[string]any{"container.id": fmt.Sprintf("c%03d", seq%n)},
	})
	return b
}

func produceKafka(t *testing.T, addrs []string, topic string, from, to, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kafka.EntityPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	var p alert.Parser
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		a := alert.Acquire()
		require.NoError(t, p.ParseInto(kafkaAlert(i, n), a))
		recs = append(recs, route.Keyed(kafkaAlert(i, n), a))
		alert.Release(a)
	}
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
}

type kafkaMember struct {
	p    *harness.Plugin
	inst *harness.Instance
	got  map[string][]uint64 // alert.uuid -> entity.alerts of each delivery
}

// poll calls next_batch once, as Falco's loop does, recording the events.
func (m *kafkaMember) poll(t *testing.T) {
	evts, _, err := m.inst.NextBatch()
	require.NoError(t, err)
	for _, e := range evts {
		v := extractMap(t, m.p, e, "alert.uuid", "entity.alerts")
		m.got[v["alert.uuid"].Str[0]] = append(m.got[v["alert.uuid"].Str[0]], v["entity.alerts"].U64[0])
		e.Free()
	}
}

// Through the built .so: two plugin instances open the same kafka://
// topic in one group, split it and deliver every alert; when one closes
// mid-stream the other takes its partitions over and the moved entities'
// entity.alerts continue from where they were (rebuilt by replay) instead
// of restarting at 1.
func TestKafkaGroupThroughPlugin(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "falco-by-entity"))
	require.NoError(t, err)
	defer c.Close()
	addrs := c.ListenAddrs()
	const n = 12
	produceKafka(t, addrs, "falco-by-entity", 0, 120, n)
	params := "kafka://" + strings.Join(addrs, ",") + "/falco-by-entity?group=central"
	cfg := `{"kafka": {"sessionTimeoutMs": 6000, "revokeWaitMs": 5000}}`

	var ms []*kafkaMember
	for i := 0; i < 2; i++ {
		p := newPlugin(t, cfg)
		inst, err := p.Open(params)
		require.NoError(t, err)
		ms = append(ms, &kafkaMember{p: p, inst: inst, got: map[string][]uint64{}})
	}
	a, b := ms[0], ms[1]
	defer b.inst.Close()
	delivered := func(ms ...*kafkaMember) int {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m.got {
				seen[k] = true
			}
		}
		return len(seen)
	}
	// Alerts arrive in chunks until both members have delivered some
	// (joining the group takes a rebalance or two).
	deadline := time.Now().Add(90 * time.Second)
	produced := 120
	for delivered(a, b) < produced || len(a.got) == 0 || len(b.got) == 0 {
		require.True(t, time.Now().Before(deadline), "both instances deliver: a %d b %d", len(a.got), len(b.got))
		if delivered(a, b) == produced && produced < 480 {
			produceKafka(t, addrs, "falco-by-entity", produced, produced+24, n)
			produced += 24
		}
		a.poll(t)
		b.poll(t)
	}
	a.inst.Close() // leaves the group: b gets every partition
	produceKafka(t, addrs, "falco-by-entity", produced, produced+120, n)
	produced += 120
	for delivered(a, b) < produced {
		require.True(t, time.Now().Before(deadline), "b delivers the rest: %d", delivered(a, b))
		b.poll(t)
	}
	for i := 0; i < produced; i++ {
		id := fmt.Sprintf("k%06d", i)
		ds := append(append([]uint64(nil), a.got[id]...), b.got[id]...)
		require.NotEmpty(t, ds, "alert %d delivered", i)
		for _, d := range ds {
			assert.Equal(t, uint64(i/n+1), d, "entity.alerts of alert %d (the %d-th of its container)", i, i/n+1)
		}
	}
}

// The fleet manifests (deploy/fleet) agree with each other and load:
// Falcosidekick writes the topic route reads, route writes the topic the
// central Falco reads, and the central Falco's triage entry goes through
// Falco's init_config conversion, the schema and plugin_init, with
// open_params the kafka:// form.
func TestDeployFleetManifests(t *testing.T) {
	var sk struct {
		Kafka struct {
			HostPort, Topic, RequiredAcks, MinimumPriority string
		} `yaml:"kafka"`
	}
	require.NoError(t, yaml.Unmarshal(readDeploy(t, "fleet/falcosidekick-kafka.yaml"), &sk))
	assert.Equal(t, "ALL", sk.Kafka.RequiredAcks)
	assert.Equal(t, "debug", sk.Kafka.MinimumPriority)

	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Command, Args []string
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	require.NoError(t, yaml.Unmarshal(readDeploy(t, "fleet/route.yaml"), &dep))
	args := dep.Spec.Template.Spec.Containers[0].Args
	require.Len(t, args, 5)
	assert.Equal(t, []string{"route", "--from", "--to"}, []string{args[0], args[1], args[3]})
	from, err := kafka.ParseURL(args[2], true)
	require.NoError(t, err)
	to, err := kafka.ParseURL(args[4], false)
	require.NoError(t, err)
	assert.Equal(t, sk.Kafka.Topic, from.Topic, "route reads what Falcosidekick writes")
	assert.Equal(t, strings.Join(from.Brokers, ","), sk.Kafka.HostPort)

	dec := yaml.NewDecoder(strings.NewReader(string(readDeploy(t, "fleet/falco-central-kafka.yaml"))))
	var cm struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
	}
	require.NoError(t, dec.Decode(&cm))
	require.Equal(t, "ConfigMap", cm.Kind)
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["falco.yaml"]), &n))
	entries, err := harness.FalcoPlugins(&n)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	checkInitConfig(t, "fleet/falco-central-kafka.yaml", entries[0].InitConfig)
	spec, err := input.ParseOpenParams(entries[0].OpenParams)
	require.NoError(t, err)
	require.Equal(t, input.KindKafka, spec.Kind)
	assert.Equal(t, to.Topic, spec.Kafka.Topic, "the central Falco reads what route writes")
	assert.NotEqual(t, from.Group, spec.Kafka.Group)
	var c falcoConfig
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["falco.yaml"]), &c))
	assert.Contains(t, c.LoadPlugins, "triage")
	var d struct {
		Spec struct {
			Replicas int `yaml:"replicas"`
			Template struct {
				Spec struct {
					Containers []struct{ Args []string } `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	require.NoError(t, dec.Decode(&d))
	assert.Greater(t, d.Spec.Replicas, 1, "N replicas in one group")
	assert.Contains(t, strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "), "--disable-source syscall", "no driver")
}
