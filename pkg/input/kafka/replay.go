package kafka

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/ingest"
)

// replayTimeout bounds reading the window of newly assigned partitions
// (it runs inside the rebalance, whose default timeout is 60 s).
const replayTimeout = 45 * time.Second

// adjust runs when partitions are added, with their committed offsets,
// before they are fetched (AdjustFetchOffsetsFn). For each partition with
// a commit it reads the records of the replay span before the commit —
// from the first record stamped at or after (timestamp of the last
// committed record − kafka.replaySec), by ListOffsets — and queues an
// operation that drops whatever state the plugin held for the partition's
// entities and applies those alerts to the state without emitting events.
// Live records of the partition are queued only after it, so next_batch
// processes them on the rebuilt state. The offsets are not changed.
func (in *Input) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (_ map[string]map[int32]kgo.Offset, err error) {
	defer in.recoverIn("offset callback")
	parts := offsets[in.spec.Topic]
	if len(parts) == 0 {
		return offsets, nil
	}
	in.waitReady(ctx)
	if ctx.Err() != nil {
		return offsets, nil
	}
	if err := in.ensurePartitions(ctx); err != nil {
		in.log.Printf("kafka %s: cannot learn the partition count (%v): state of given-up entities will not be dropped", in.spec.Topic, err)
	}
	all := map[int32]bool{}
	ends := map[int32]int64{}
	for p, o := range parts {
		all[p] = true
		if eo := o.EpochOffset(); eo.Offset > 0 {
			ends[p] = eo.Offset
		}
	}
	began := time.Now()
	rctx, stop := context.WithTimeout(ctx, replayTimeout)
	values, err := ReadWindow(rctx, in.copts, in.spec.Topic, ends, time.Duration(in.cfg.Kafka.Replay(in.cfg.Correlation))*time.Second)
	stop()
	read := time.Since(began)
	if err != nil {
		in.log.Printf("kafka %s: replay of partitions %v incomplete (%v): their entities' stories restart from what was read", in.spec.Topic, sortedKeys(all), err)
	}
	maxEvent := in.cfg.MaxEventBytes
	in.enqueue(func(e *engine.Engine) {
		t0 := time.Now()
		in.Dropped.Add(uint64(e.Drop(in.matcher(all))))
		n := Apply(e, values, maxEvent)
		in.Replayed.Add(uint64(n))
		in.log.Printf("kafka %s: partitions %v: state rebuilt from %d alerts (read in %v, applied in %v)",
			in.spec.Topic, sortedKeys(all), n, read.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	})
	return offsets, nil
}

// Apply applies the alerts of record values to eng's state without
// events, in order, and returns how many alerts it applied.
func Apply(eng *engine.Engine, values [][]byte, maxEventBytes int) int {
	var p alert.Parser
	var c ingest.Counters // replayed alerts were counted when first delivered
	n := 0
	for _, v := range values {
		for _, a := range ParseRecord(&p, v, maxEventBytes, &c, func(int, error) {}) {
			eng.Apply(a)
			alert.Release(a)
			n++
		}
	}
	return n
}

func (in *Input) ensurePartitions(ctx context.Context) error {
	if in.nPart.Load() > 0 {
		return nil
	}
	mctx, stop := context.WithTimeout(ctx, defaultTimeout)
	defer stop()
	n, err := NumPartitions(mctx, in.cl, in.spec.Topic)
	if err != nil {
		return err
	}
	in.nPart.Store(int64(n))
	return nil
}

// ReadWindow returns, for each partition p of ends, the values of the
// records before offset ends[p] whose timestamps are at or after the
// timestamp of record ends[p]-1 minus span, in offset order, partition
// after partition.
func ReadWindow(ctx context.Context, copts []kgo.Opt, topic string, ends map[int32]int64, span time.Duration) ([][]byte, error) {
	if len(ends) == 0 {
		return nil, nil
	}
	// Phase 1: the timestamp of the last record before each end.
	last := map[int32]int64{}
	at := map[int32]kgo.Offset{}
	for p, end := range ends {
		at[p] = kgo.NewOffset().At(end - 1)
	}
	err := readUntil(ctx, copts, topic, at, func(r *kgo.Record) bool {
		if _, ok := last[r.Partition]; !ok {
			last[r.Partition] = r.Timestamp.UnixMilli()
			if r.Offset >= ends[r.Partition] {
				last[r.Partition] = -1 // retention took the committed records: nothing to replay
			}
		}
		return len(last) == len(ends)
	})
	if err != nil {
		return nil, fmt.Errorf("reading the last committed records: %w", err)
	}
	// Phase 2: from the first record stamped at or after last − span.
	from := map[int32]kgo.Offset{}
	for p, ms := range last {
		if ms < 0 {
			continue
		}
		from[p] = kgo.NewOffset().AfterMilli(max(ms-span.Milliseconds(), 1))
	}
	if len(from) == 0 {
		return nil, nil
	}
	byPart := map[int32][][]byte{}
	finished := map[int32]bool{}
	err = readUntil(ctx, copts, topic, from, func(r *kgo.Record) bool {
		end := ends[r.Partition]
		if r.Offset < end {
			byPart[r.Partition] = append(byPart[r.Partition], r.Value)
		}
		if r.Offset >= end-1 {
			finished[r.Partition] = true
		}
		return len(finished) == len(from)
	})
	var out [][]byte
	for _, p := range sortedKeys(finished) {
		out = append(out, byPart[p]...)
	}
	for p := range from {
		if !finished[p] {
			out = append(out, byPart[p]...)
		}
	}
	if err != nil {
		return out, fmt.Errorf("reading the replay span: %w", err)
	}
	return out, nil
}

// readUntil consumes the partitions from the given offsets with a client
// of its own (no group) until done says so.
func readUntil(ctx context.Context, copts []kgo.Opt, topic string, from map[int32]kgo.Offset, done func(*kgo.Record) bool) error {
	cl, err := kgo.NewClient(append(slices.Clone(copts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("partition %d: %w", p, err) })
		if ferr != nil {
			return ferr
		}
		stop := false
		fs.EachRecord(func(r *kgo.Record) {
			if !stop && done(r) {
				stop = true
			}
		})
		if stop {
			return nil
		}
	}
}

func sortedKeys[V any](m map[int32]V) []int32 {
	out := make([]int32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
