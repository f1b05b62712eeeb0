// Package route is `triage route`: it consumes the unkeyed topic
// Falcosidekick's Kafka output writes (no message key, falco-facts.md fact
// 11), computes each alert's entity ID with the plugin's own function
// (correlate.ResolveEntity) and produces the alert to the keyed topic with
// key = entity ID, partitioned as Kafka's Java producer does (murmur2 of
// the key). So every alert of one entity lands in one partition, in the
// order route read it.
//
// At-least-once without transactions: the input offsets of a poll are
// committed only after every record produced from it was acknowledged by
// the brokers (acks=all, idempotent producer: franz-go's defaults,
// pkg/kgo config.go RequiredAcks/DisableIdempotentWrite). A crash between
// the acknowledgement and the commit produces those alerts again. Several
// route processes in one group share the input partitions; rebalances
// wait until a poll's records are produced and committed
// (BlockRebalanceOnPoll), so a partition never moves with work in flight.
package route

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/correlate"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/input/kafka"
	"github.com/triage-dev/triage/pkg/logging"
)

// Options configure a router.
type Options struct {
	From, To kafka.Spec    // From needs a group
	Config   config.Config // kafka.* (TLS, SASL) and maxEventBytes
	Log      *logging.Logger
	PollMax  int // records per poll (default 1000)
}

// Router moves alerts from the unkeyed topic to the keyed one.
type Router struct {
	opts     Options
	consumer *kgo.Client
	producer *kgo.Client

	Counters ingest.Counters // received, malformed, oversize, loop-dropped
	Routed   atomic.Uint64   // alerts produced and acknowledged
	Bad      atomic.Uint64   // records with at least one malformed alert
}

// New connects both clients (one group member, one producer).
func New(opts Options) (*Router, error) {
	if opts.PollMax <= 0 {
		opts.PollMax = 1000
	}
	if opts.Log == nil {
		opts.Log = logging.Default()
	}
	cin, err := kafka.ClientOpts(opts.From, opts.Config.Kafka, "triage-route")
	if err != nil {
		return nil, err
	}
	cout, err := kafka.ClientOpts(opts.To, opts.Config.Kafka, "triage-route")
	if err != nil {
		return nil, err
	}
	r := &Router{opts: opts}
	r.consumer, err = kgo.NewClient(append(cin,
		kgo.ConsumerGroup(opts.From.Group),
		kgo.ConsumeTopics(opts.From.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return nil, err
	}
	r.producer, err = kgo.NewClient(append(cout,
		kgo.DefaultProduceTopic(opts.To.Topic),
		kgo.RecordPartitioner(kafka.EntityPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond),
	)...)
	if err != nil {
		r.consumer.Close()
		return nil, err
	}
	return r, nil
}

// Close leaves the group and closes both clients.
func (r *Router) Close() {
	r.consumer.CloseAllowingRebalance()
	r.producer.Close()
}

// Run routes until ctx ends (nil then) or producing fails (the error; the
// uncommitted input is read again by the next run).
func (r *Router) Run(ctx context.Context) error {
	var p alert.Parser
	var out []*kgo.Record
	for {
		fs := r.consumer.PollRecords(ctx, r.opts.PollMax)
		if ctx.Err() != nil || fs.IsClientClosed() {
			r.consumer.AllowRebalance()
			return nil
		}
		fs.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.opts.Log.Limitedf("route: fetch %s/%d: %v", t, part, err)
			}
		})
		in := fs.Records()
		out = out[:0]
		for _, rec := range in {
			w := kafka.Where{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
			bad := false
			kafka.EachAlert(&p, rec.Value, r.opts.Config.MaxEventBytes, &r.Counters, func(line int, err error) {
				bad = true
				if line > 0 {
					r.opts.Log.Limitedf("route: %s line %d: alert skipped: %v", w, line, err)
				} else {
					r.opts.Log.Limitedf("route: %s: alert skipped: %v", w, err)
				}
			}, func(raw []byte, a *alert.Alert) {
				out = append(out, Keyed(raw, a))
				alert.Release(a)
			})
			if bad {
				r.Bad.Add(1)
			}
		}
		if len(out) > 0 {
			if err := r.producer.ProduceSync(ctx, out...).FirstErr(); err != nil {
				r.consumer.AllowRebalance()
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("route: produce to %s: %w (input not committed: read again on restart)", r.opts.To.Topic, err)
			}
			r.Routed.Add(uint64(len(out)))
		}
		if len(in) > 0 {
			if err := r.consumer.CommitRecords(context.WithoutCancel(ctx), in...); err != nil {
				r.opts.Log.Limitedf("route: commit %s: %v (those alerts are routed again: duplicates, no loss)", r.opts.From.Topic, err)
			}
		}
		r.consumer.AllowRebalance()
	}
}

// Keyed is the record route produces for one alert: key = the entity ID
// the plugin's correlation computes, value = the alert's JSON as received,
// timestamp = the alert's time (what the plugin's replay seeks by).
func Keyed(raw []byte, a *alert.Alert) *kgo.Record {
	id, _ := correlate.ResolveEntity(a)
	return &kgo.Record{Key: []byte(id), Value: slices.Clone(raw), Timestamp: time.Unix(0, a.Time)}
}
