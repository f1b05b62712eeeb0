package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/logging"
)

// pollMax bounds the records of one poll: rebalances wait for a poll's
// records to be queued (BlockRebalanceOnPoll), so a small bound keeps them
// prompt.
const pollMax = 500

// Input is the kafka:// input: a member of the group of Spec, feeding the
// queue.
//
// At-least-once: a record's alerts carry a token, the last alert of the
// record the record's own; the queue acks the highest token of a batch
// once Falco comes back for the next batch (ingest.AlertQueue.Ack), and
// only then is the record's offset (+1) committed. A record holding no
// valid alert is done once everything queued before it is.
//
// State: the engine is not safe for concurrent use, so changes to it (the
// replay of newly assigned partitions, the drop of given-up ones) are
// queued here as operations and run by the plugin on Falco's thread in
// next_batch (BeforeBatch) between popping a batch and processing it: an
// operation queued before an alert was pushed is then always run before
// that alert is processed.
type Input struct {
	spec  Spec
	cfg   config.Config
	q     *ingest.AlertQueue
	c     *ingest.Counters
	log   *logging.Logger
	cl    *kgo.Client
	ready chan struct{} // closed once cl is set: group callbacks start before NewClient returns
	copts []kgo.Opt     // for the replay clients
	nPart atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	owned     map[int32]bool
	pend      []pending       // queued records not yet delivered, in token order
	lastToken uint64          // last token issued
	acked     uint64          // highest token delivered
	done      map[int32]int64 // per owned partition: next offset to commit
	committed map[int32]int64
	ackedSig  chan struct{} // closed and replaced on every ack
	closing   bool

	kick chan struct{} // wakes the committer

	opsMu  sync.Mutex
	ops    []func(*engine.Engine)
	hasOps atomic.Bool

	// Stats for tests and logs.
	Replayed   atomic.Uint64 // alerts applied to state by replays
	Dropped    atomic.Uint64 // entities dropped on revocation
	BadRecords atomic.Uint64 // records with at least one malformed alert
	Panics     atomic.Uint64 // panics recovered in callbacks and goroutines
}

type pending struct {
	token     uint64
	partition int32
	offset    int64
}

// Start joins the group and starts consuming into q.
func Start(sp Spec, cfg config.Config, q *ingest.AlertQueue, c *ingest.Counters, log *logging.Logger) (*Input, error) {
	copts, err := ClientOpts(sp, cfg.Kafka, "triage")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &Input{
		spec: sp, cfg: cfg, q: q, c: c, log: log, copts: copts,
		ctx: ctx, cancel: cancel,
		owned: map[int32]bool{}, done: map[int32]int64{}, committed: map[int32]int64{},
		ackedSig: make(chan struct{}), kick: make(chan struct{}, 1), ready: make(chan struct{}),
	}
	opts := append(slices.Clone(copts),
		kgo.ConsumerGroup(sp.Group),
		kgo.ConsumeTopics(sp.Topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(time.Duration(cfg.Kafka.SessionTimeoutMs)*time.Millisecond),
		kgo.HeartbeatInterval(time.Duration(cfg.Kafka.SessionTimeoutMs)*time.Millisecond/10),
		kgo.OnPartitionsAssigned(in.assigned),
		kgo.OnPartitionsRevoked(in.revoked),
		kgo.OnPartitionsLost(in.lost),
		kgo.AdjustFetchOffsetsFn(in.adjust),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open_params: kafka client: %w", err)
	}
	in.cl = cl
	close(in.ready)
	pctx, stop := context.WithTimeout(ctx, defaultTimeout)
	err = cl.Ping(pctx)
	stop()
	if err != nil {
		cl.Close()
		cancel()
		return nil, fmt.Errorf("open_params: no Kafka broker of %s answers: %w", sp, err)
	}
	q.SetAcker(in.ack)
	in.wg.Add(2)
	go in.pollLoop()
	go in.committer()
	log.Printf("kafka input: group %s on %s", sp.Group, sp)
	return in, nil
}

// Spec returns what the input consumes.
func (in *Input) Spec() Spec { return in.spec }

// Owned returns the partitions the input holds now, sorted.
func (in *Input) Owned() []int32 {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []int32
	for p := range in.owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (in *Input) pollLoop() {
	defer in.wg.Done()
	defer in.recoverIn("poll loop")
	var p alert.Parser
	for {
		fs := in.cl.PollRecords(in.ctx, pollMax)
		if in.ctx.Err() != nil || fs.IsClientClosed() {
			in.cl.AllowRebalance()
			return
		}
		fs.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				in.log.Limitedf("kafka %s/%d: fetch: %v", t, part, err)
			}
		})
		var stopped bool
		fs.EachRecord(func(r *kgo.Record) {
			if !stopped && !in.handle(&p, r) {
				stopped = true
			}
		})
		in.cl.AllowRebalance()
		if stopped {
			return
		}
	}
}

// handle queues the alerts of one record; false when the input stops.
func (in *Input) handle(p *alert.Parser, r *kgo.Record) bool {
	w := Where{r.Topic, r.Partition, r.Offset}
	in.mu.Lock()
	owned := in.owned[r.Partition]
	in.mu.Unlock()
	if !owned {
		return true // revoked between fetch and poll: its new owner reads it
	}
	bad := false
	alerts := ParseRecord(p, r.Value, in.cfg.MaxEventBytes, in.c, func(line int, err error) {
		bad = true
		if line > 0 {
			in.log.Limitedf("kafka %s line %d: alert rejected: %v", w, line, err)
		} else {
			in.log.Limitedf("kafka %s: alert rejected: %v", w, err)
		}
	})
	if bad {
		in.BadRecords.Add(1)
	}
	if len(alerts) == 0 {
		in.mu.Lock()
		in.pend = append(in.pend, pending{token: in.lastToken, partition: r.Partition, offset: r.Offset})
		in.settleLocked()
		in.mu.Unlock()
		return true
	}
	in.mu.Lock()
	in.lastToken++
	tok := in.lastToken
	in.pend = append(in.pend, pending{token: tok, partition: r.Partition, offset: r.Offset})
	in.mu.Unlock()
	for i, a := range alerts {
		var t uint64
		if i == len(alerts)-1 {
			t = tok
		}
		if err := in.q.PushToken(in.ctx, a, t); err != nil {
			for _, rest := range alerts[i:] {
				alert.Release(rest)
			}
			return false
		}
		in.c.Queued.Add(1)
	}
	return true
}

// ack is the queue's acker: every token up to tok was delivered.
func (in *Input) ack(tok uint64) {
	in.mu.Lock()
	if tok > in.acked {
		in.acked = tok
	}
	in.settleLocked()
	in.mu.Unlock()
	select {
	case in.kick <- struct{}{}:
	default:
	}
}

// settleLocked moves delivered records from pend to done.
func (in *Input) settleLocked() {
	n := 0
	for _, pd := range in.pend {
		if pd.token > in.acked {
			break
		}
		if in.owned[pd.partition] {
			in.done[pd.partition] = max(in.done[pd.partition], pd.offset+1)
		}
		n++
	}
	if n > 0 {
		in.pend = slices.Delete(in.pend, 0, n)
		close(in.ackedSig)
		in.ackedSig = make(chan struct{})
	}
}

func (in *Input) committer() {
	defer in.wg.Done()
	defer in.recoverIn("committer")
	for {
		select {
		case <-in.ctx.Done():
			return
		case <-in.kick:
			in.commit(in.ctx, nil)
		}
	}
}

// commit commits the delivered offsets not committed yet, of the given
// partitions (nil: all owned).
func (in *Input) commit(ctx context.Context, only map[int32]bool) {
	in.mu.Lock()
	offs := map[int32]kgo.EpochOffset{}
	for p, o := range in.done {
		if (only == nil || only[p]) && in.committed[p] < o {
			offs[p] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
	}
	in.mu.Unlock()
	if len(offs) == 0 {
		return
	}
	var cerr error
	in.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{in.spec.Topic: offs}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		cerr = firstCommitError(resp)
	})
	if cerr != nil {
		if !errors.Is(cerr, context.Canceled) {
			in.log.Limitedf("kafka %s: commit: %v (the records are read again by whoever owns the partition next: duplicates, no loss)", in.spec.Topic, cerr)
		}
		return
	}
	in.mu.Lock()
	for p, o := range offs {
		in.committed[p] = max(in.committed[p], o.Offset)
	}
	in.mu.Unlock()
}

func (in *Input) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	defer in.recoverIn("assign callback")
	in.mu.Lock()
	for _, p := range m[in.spec.Topic] {
		in.owned[p] = true
	}
	in.mu.Unlock()
	in.log.Printf("kafka %s: assigned partitions %v", in.spec.Topic, m[in.spec.Topic])
}

// revoked gives partitions up: it waits (kafka.revokeWaitMs) for Falco to
// take their queued alerts, commits what was delivered, and has their
// entities' state dropped: the partition's next owner rebuilds it.
func (in *Input) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	defer in.recoverIn("revoke callback")
	parts := m[in.spec.Topic]
	if len(parts) == 0 {
		return
	}
	in.waitReady(ctx)
	set := map[int32]bool{}
	for _, p := range parts {
		set[p] = true
	}
	deadline := time.NewTimer(time.Duration(in.cfg.Kafka.RevokeWaitMs) * time.Millisecond)
	defer deadline.Stop()
	for {
		in.mu.Lock()
		waiting := !in.closing && slices.ContainsFunc(in.pend, func(pd pending) bool { return set[pd.partition] })
		sig := in.ackedSig
		in.mu.Unlock()
		if !waiting {
			break
		}
		select {
		case <-sig:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		break
	}
	cctx, stop := context.WithTimeout(context.Background(), defaultTimeout)
	in.commit(cctx, set)
	stop()
	in.release(parts, "revoked")
}

// lost is a revocation without a commit: the group already moved on.
func (in *Input) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	defer in.recoverIn("lost callback")
	if parts := m[in.spec.Topic]; len(parts) > 0 {
		in.release(parts, "lost")
	}
}

func (in *Input) release(parts []int32, why string) {
	set := map[int32]bool{}
	in.mu.Lock()
	for _, p := range parts {
		set[p] = true
		delete(in.owned, p)
		delete(in.done, p)
		delete(in.committed, p)
	}
	// Records of these partitions still queued are delivered (their new
	// owner delivers them again: at-least-once) but never committed here.
	in.pend = slices.DeleteFunc(in.pend, func(pd pending) bool { return set[pd.partition] && pd.token > in.acked })
	in.mu.Unlock()
	in.log.Printf("kafka %s: partitions %v %s; their entities' state is dropped", in.spec.Topic, parts, why)
	in.enqueue(func(e *engine.Engine) { in.Dropped.Add(uint64(e.Drop(in.matcher(set)))) })
}

// matcher says whether an entity belongs to one of the partitions.
func (in *Input) matcher(set map[int32]bool) func(string) bool {
	n := int(in.nPart.Load())
	if n <= 0 {
		return func(string) bool { return false }
	}
	return func(id string) bool { return set[PartitionOf(id, n)] }
}

func (in *Input) enqueue(op func(*engine.Engine)) {
	in.opsMu.Lock()
	in.ops = append(in.ops, op)
	in.hasOps.Store(true)
	in.opsMu.Unlock()
}

// BeforeBatch runs the queued state operations on eng. The plugin calls it
// on Falco's thread in next_batch after popping a batch and before
// processing it, so each runs before any alert pushed after it was
// queued. (Called before popping, an operation queued while the pop
// waited would run after the alerts that followed it.)
func (in *Input) BeforeBatch(eng *engine.Engine) {
	if !in.hasOps.Load() {
		return
	}
	in.opsMu.Lock()
	ops := in.ops
	in.ops = nil
	in.hasOps.Store(false)
	in.opsMu.Unlock()
	for _, op := range ops {
		op(eng)
	}
}

// Stop leaves the group after committing what Falco took (the plugin acks
// the last batch before), and waits for the input's goroutines.
func (in *Input) Stop() { in.stop(true) }

// Crash stops without the last commit, as a killed process would leave
// the group: what was delivered since the last commit is read again by
// the next owner (tests).
func (in *Input) Crash() { in.stop(false) }

func (in *Input) stop(commit bool) {
	in.mu.Lock()
	in.closing = true
	in.mu.Unlock()
	in.cancel()
	in.wg.Wait()
	if commit {
		ctx, stop := context.WithTimeout(context.Background(), defaultTimeout)
		in.commit(ctx, nil)
		stop()
	} else {
		in.mu.Lock()
		clear(in.done)
		in.mu.Unlock()
	}
	in.cl.CloseAllowingRebalance()
}

// recoverIn keeps a panic in code franz-go runs on its own goroutines
// (group callbacks) or in the input's goroutines from taking the host
// process down: it is logged and the input carries on or stops.
func (in *Input) recoverIn(where string) {
	if v := recover(); v != nil {
		in.Panics.Add(1)
		in.log.Printf("kafka %s: panic in %s recovered: %v", in.spec.Topic, where, v)
	}
}

// waitReady waits until Start has set in.cl: the client joins the group
// and may call back (assign, adjust offsets, revoke) before NewClient
// returns, and a callback using a nil client would panic on a franz-go
// goroutine, where no recover of ours runs.
func (in *Input) waitReady(ctx context.Context) {
	select {
	case <-in.ready:
	case <-ctx.Done():
	}
}

func firstCommitError(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, err)
			}
		}
	}
	return nil
}
