// Package kafka is triage's Kafka transport (docs/fleet.md): the
// kafka:// input of the plugin, a consumer-group member feeding the shared
// queue of package ingest with at-least-once commits and a state rebuild
// on assignment; and the pieces `triage route` shares with it (URL form,
// client options, the entity partitioner, record parsing).
//
// Library: github.com/twmb/franz-go (kgo), pure Go. Facts relied on, read
// in its source (pkg/kgo, v1.22.3):
//   - config.go, ConsumerGroup/Balancers: the default group balancer is
//     cooperative-sticky; BlockRebalanceOnPoll: after a poll returns records
//     no OnPartitions* callback runs until AllowRebalance, so records are
//     never pushed for a partition whose revocation already ran.
//   - config.go, AdjustFetchOffsetsFn + consumer_group.go (fetchOffsets):
//     called for the partitions added in a session, after their committed
//     offsets were fetched and before fetching them starts; a partition
//     with no commit carries the start offset instead (a negative offset).
//   - config.go, DisableAutoCommit/OnPartitionsRevoked: with manual commits
//     the revoke callback should commit synchronously; Close leaves the group
//     and runs a last revoke, and does not commit by itself.
//   - consumer_group.go, CommitOffsetsSync: a commit that a rebalance does
//     not cancel, waiting for its answer.
//   - consumer.go, Offset.AfterMilli: start at the first offset whose record
//     timestamp is at or after a time (ListOffsets by timestamp).
//   - partitioner.go, StickyKeyPartitioner(nil): a keyed record goes to
//     murmur2(key) & 0x7fffffff mod partitions, as Kafka's Java producer.
package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/ingest"
)

// Spec is a parsed kafka:// address:
//
//	kafka://HOST:PORT[,HOST:PORT…]/TOPIC[?group=GROUP]
type Spec struct {
	Brokers []string
	Topic   string
	Group   string
}

// String renders the spec back as a kafka:// URL.
func (s Spec) String() string {
	u := "kafka://" + strings.Join(s.Brokers, ",") + "/" + s.Topic
	if s.Group != "" {
		u += "?group=" + url.QueryEscape(s.Group)
	}
	return u
}

// ParseURL parses a kafka:// address. needGroup says the group is
// required (a consumer); a producer target takes none.
func ParseURL(s string, needGroup bool) (Spec, error) {
	rest, ok := strings.CutPrefix(s, "kafka://")
	if !ok {
		if len(s) > 8 && strings.EqualFold(s[:8], "kafka://") {
			rest = s[8:]
		} else {
			return Spec{}, fmt.Errorf("%q is not a kafka:// address", s)
		}
	}
	hosts, path, _ := strings.Cut(rest, "/")
	topic, query, _ := strings.Cut(path, "?")
	var sp Spec
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return Spec{}, fmt.Errorf("%q: broker %q is not HOST:PORT", s, h)
		}
		sp.Brokers = append(sp.Brokers, h)
	}
	if len(sp.Brokers) == 0 {
		return Spec{}, fmt.Errorf("%q names no broker; write kafka://HOST:PORT[,HOST:PORT…]/TOPIC?group=GROUP", s)
	}
	if err := validTopic(topic); err != nil {
		return Spec{}, fmt.Errorf("%q: %v", s, err)
	}
	sp.Topic = topic
	q, err := url.ParseQuery(query)
	if err != nil {
		return Spec{}, fmt.Errorf("%q: bad query: %v", s, err)
	}
	for k := range q {
		if k != "group" {
			return Spec{}, fmt.Errorf("%q: unknown parameter %q (only group)", s, k)
		}
	}
	sp.Group = q.Get("group")
	if needGroup && sp.Group == "" {
		return Spec{}, fmt.Errorf("%q names no consumer group; add ?group=GROUP", s)
	}
	if !needGroup && sp.Group != "" {
		return Spec{}, fmt.Errorf("%q: a group means nothing for a topic written to", s)
	}
	return sp, nil
}

// validTopic applies Kafka's topic name rule: 1-249 of [a-zA-Z0-9._-].
func validTopic(t string) error {
	if t == "" || t == "." || t == ".." || len(t) > 249 {
		return fmt.Errorf("topic %q is not a valid Kafka topic name", t)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic %q is not a valid Kafka topic name (letters, digits, . _ -)", t)
		}
	}
	return nil
}

// ClientOpts returns the options every triage Kafka client shares: the
// brokers, TLS and SASL from init_config (secrets read from their files).
func ClientOpts(sp Spec, k config.Kafka, clientID string) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(sp.Brokers...), kgo.ClientID(clientID)}
	tc, err := k.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if k.SASLMechanism != "" {
		pass, err := k.LoadSASLPassword()
		if err != nil {
			return nil, err
		}
		switch k.SASLMechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: k.SASLUsername, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.SASLUsername, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.SASLUsername, Pass: pass}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("init_config: key \"kafka.saslMechanism\": %q is not supported", k.SASLMechanism)
		}
	}
	return opts, nil
}

// EntityPartitioner is the partitioner of the keyed topic: Kafka's own
// (murmur2 of the key), so any producer keying by entity ID agrees.
func EntityPartitioner() kgo.Partitioner { return kgo.StickyKeyPartitioner(nil) }

// PartitionOf returns the partition of the keyed topic that an entity ID
// goes to among n partitions, as EntityPartitioner places it.
func PartitionOf(entityID string, n int) int32 {
	return int32(EntityPartitioner().ForTopic("").Partition(&kgo.Record{Key: []byte(entityID)}, n))
}

// NumPartitions asks the brokers how many partitions topic has.
func NumPartitions(ctx context.Context, cl *kgo.Client, topic string) (int, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	for _, rt := range resp.Topics {
		if rt.Topic != nil && *rt.Topic == topic {
			if rt.ErrorCode != 0 {
				return 0, fmt.Errorf("topic %s: error code %d", topic, rt.ErrorCode)
			}
			return len(rt.Partitions), nil
		}
	}
	return 0, fmt.Errorf("topic %s: not in the metadata answer", topic)
}

// Where says where a record came from, for logs.
type Where struct {
	Topic     string
	Partition int32
	Offset    int64
}

func (w Where) String() string { return fmt.Sprintf("%s/%d@%d", w.Topic, w.Partition, w.Offset) }

// ParseRecord parses a record value: one alert (Falco's or Falcosidekick's
// shape, pretty-printed or not) or NDJSON, one alert per line (EachAlert).
// The alerts come from alert.Acquire.
func ParseRecord(p *alert.Parser, value []byte, maxEventBytes int, c *ingest.Counters, bad func(line int, err error)) []*alert.Alert {
	var out []*alert.Alert
	EachAlert(p, value, maxEventBytes, c, bad, func(_ []byte, a *alert.Alert) { out = append(out, a) })
	return out
}

// EachAlert parses a record value and calls fn with each alert and its
// JSON text. Each bad alert is counted (ingest.Parse) and passed to bad
// with its line (0 for the whole value); the loop guard drops alerts of
// source falco_alert (counted, not bad).
func EachAlert(p *alert.Parser, value []byte, maxEventBytes int, c *ingest.Counters, bad func(line int, err error), fn func(raw []byte, a *alert.Alert)) {
	v := bytes.TrimSpace(value)
	if len(v) == 0 {
		c.Received.Add(1)
		c.Malformed.Add(1)
		bad(0, errors.New("empty record"))
		return
	}
	// One alert is the common case (Falcosidekick writes one per message);
	// NDJSON is tried when the whole value is not one alert.
	if bytes.IndexByte(v, '\n') < 0 || oneJSONValue(v) {
		a, err := ingest.Parse(p, v, maxEventBytes, c)
		if err != nil {
			if !errors.Is(err, ingest.ErrLoop) {
				bad(0, err)
			}
			return
		}
		fn(v, a)
		return
	}
	for n := 1; len(v) > 0; n++ {
		line, rest, _ := bytes.Cut(v, []byte{'\n'})
		v = rest
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		a, err := ingest.Parse(p, line, maxEventBytes, c)
		if err != nil {
			if !errors.Is(err, ingest.ErrLoop) {
				bad(n, err)
			}
			continue
		}
		fn(line, a)
	}
}

// oneJSONValue says whether v (trimmed, starting with '{') is a single
// JSON object spanning lines: its first top-level '}' is its last byte.
func oneJSONValue(v []byte) bool {
	if len(v) == 0 || v[0] != '{' {
		return false
	}
	depth, inStr, esc := 0, false, false
	for i, ch := range v {
		switch {
		case esc:
			esc = false
		case inStr:
			if ch == '\\' {
				esc = true
			} else if ch == '"' {
				inStr = false
			}
		case ch == '"':
			inStr = true
		case ch == '{' || ch == '[':
			depth++
		case ch == '}' || ch == ']':
			depth--
			if depth == 0 {
				return i == len(v)-1
			}
		}
	}
	return false
}

// defaultTimeout bounds one broker round trip made outside a poll.
const defaultTimeout = 30 * time.Second
