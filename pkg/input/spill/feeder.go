package spill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/ingest"
)

// Feeder moves spilled records into the in-memory queue, in order, and
// deletes them from the spill once Falco has them; Accept is the
// webhook's way in, choosing between the queue and the spill so that
// delivery order stays arrival order.
//
// Delivery is at-least-once. A record leaves the spill (Ack) only after
// the queue reported it delivered: the queue calls the acker with the
// highest token of the alerts handed to Falco when Falco comes back for
// the next batch, and the token of a spilled alert is its sequence number.
// A crash (kill -9) before that Ack reaches the disk delivers them again
// after the restart: at most the spilled alerts that were in the queue
// (queueSize) plus the batch Falco was processing, and those of an Ack in
// flight.
//
// Order: once a body went to the spill, every later body goes there too
// (Accept), until the feeder has moved every spilled record into the
// queue; only then do bodies go to the queue directly again. So an alert
// acknowledged to its sender is never overtaken by one acknowledged after
// it. (Requests in flight at the same moment have no order between them.)
type Feeder struct {
	s    *Spill
	q    *ingest.AlertQueue
	opts FeederOptions

	mu        sync.Mutex
	spilling  bool   // bodies go to the spill
	appending int    // Appends in flight through Accept
	fedTo     uint64 // highest sequence number moved to the queue (or skipped)
	pushed    uint64 // highest sequence number moved to the queue

	wake    chan struct{} // records were appended
	ackWake chan struct{} // ackTo moved
	ackTo   atomic.Uint64 // highest token reported delivered

	fed, acked, dropped atomic.Uint64
}

// FeederOptions configure NewFeeder.
type FeederOptions struct {
	// MaxEventBytes is passed to ingest.Parse (the init config's
	// maxEventBytes).
	MaxEventBytes int
	// Batch is the number of records read from the spill at a time
	// (0: 256).
	Batch int
	// Counters receive ingest.Parse's counts for records coming out of the
	// spill. nil (recommended) uses private counters: the webhook counted
	// these alerts as received when they arrived, and Parse would count
	// them again.
	Counters *ingest.Counters
	// Logf receives log lines; nil drops them.
	Logf func(format string, args ...any)
}

// FeederStats count what the feeder did since NewFeeder.
type FeederStats struct {
	Fed     uint64 // records moved into the queue
	Acked   uint64 // highest sequence number acked in the spill
	Dropped uint64 // records that did not parse (malformed, oversize, loop guard) and were skipped
	Corrupt uint64 // records that failed their checksum, skipped (Spill.Corrupt)
}

// NewFeeder returns a feeder from s into q and sets q's acker (a queue has
// one acker: the spill is then the only source of tokens for q). Run it.
func NewFeeder(s *Spill, q *ingest.AlertQueue, opts FeederOptions) *Feeder {
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	if opts.MaxEventBytes <= 0 {
		opts.MaxEventBytes = 256 << 10
	}
	if opts.Counters == nil {
		opts.Counters = &ingest.Counters{}
	}
	f := &Feeder{
		s: s, q: q, opts: opts,
		wake:    make(chan struct{}, 1),
		ackWake: make(chan struct{}, 1),
	}
	if s.Len() > 0 {
		// Records left by an earlier run come first.
		f.spilling = true
	} else {
		f.fedTo = s.LastSeq()
		f.acked.Store(f.fedTo)
	}
	q.SetAcker(f.delivered)
	return f
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// delivered is the queue's acker. It runs on next_batch's goroutine, so it
// only records the token; the fsync of the Ack happens in Run.
func (f *Feeder) delivered(token uint64) {
	for {
		cur := f.ackTo.Load()
		if token <= cur || f.ackTo.CompareAndSwap(cur, token) {
			break
		}
	}
	signal(f.ackWake)
}

// Stats returns the feeder's counts.
func (f *Feeder) Stats() FeederStats {
	return FeederStats{Fed: f.fed.Load(), Acked: f.acked.Load(), Dropped: f.dropped.Load(), Corrupt: f.s.Corrupt()}
}

// Spilling reports whether bodies currently go to the spill.
func (f *Feeder) Spilling() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spilling
}

// Placement says where Accept put a body.
type Placement int

const (
	Queued  Placement = iota + 1 // in the in-memory queue
	Spilled                      // in the spill, durable per its sync policy
)

func (p Placement) String() string {
	switch p {
	case Queued:
		return "queued"
	case Spilled:
		return "spilled"
	}
	return "none"
}

// Accept places one body's alerts, all or none, keeping arrival order.
// records[i] is the JSON text alerts[i] was parsed from (what the feeder
// parses again when it moves the record to the queue).
//
// Unless bodies are going to the spill already, it waits up to queueWait
// for room in the queue (in line with other producers, q.PushAll) and
// returns Queued. When the queue stays full, or the body is larger than
// the whole queue, it appends the records to the spill and returns Spilled
// once they are durable; the alerts are then released (alert.Release):
// the feeder parses the records again. When the spill is full it retries
// until ctx ends, then returns an error wrapping ErrFull; ErrTooLarge when
// the body is larger than the whole spill. On any error nothing of the
// body was placed. ctx bounds the whole call (the webhook's maximum hold).
//
// A negative queueWait writes ahead: every body goes to the spill first,
// so every accepted alert is on disk before the caller answers.
func (f *Feeder) Accept(ctx context.Context, queueWait time.Duration, alerts []*alert.Alert, records [][]byte) (Placement, error) {
	if len(alerts) != len(records) {
		return 0, fmt.Errorf("spill: Accept: %d alerts but %d records", len(alerts), len(records))
	}
	f.mu.Lock()
	if !f.spilling && queueWait >= 0 {
		f.mu.Unlock()
		if f.q.TryPushAll(alerts) {
			return Queued, nil
		}
		wctx, cancel := context.WithTimeout(ctx, queueWait)
		err := f.q.PushAll(wctx, alerts, 0)
		cancel()
		switch {
		case err == nil:
			return Queued, nil
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ingest.ErrTooLarge):
			// to the spill
		default:
			return 0, err
		}
		f.mu.Lock()
	}
	f.spilling = true
	f.appending++
	f.mu.Unlock()

	var err error
	for {
		_, _, err = f.s.Append(records)
		if !errors.Is(err, ErrFull) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
			continue
		}
		break
	}

	f.mu.Lock()
	f.appending--
	f.maybeCaughtUpLocked()
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	signal(f.wake)
	for _, a := range alerts {
		alert.Release(a)
	}
	return Spilled, nil
}

// maybeCaughtUpLocked ends spilling when every spilled record is in the
// queue and no Append is in flight.
func (f *Feeder) maybeCaughtUpLocked() {
	if f.spilling && f.appending == 0 && f.fedTo >= f.s.LastSeq() {
		f.spilling = false
	}
}

// Run moves records into the queue until ctx ends or the queue is closed,
// and acks delivered ones. Before returning it acks what was delivered so
// far (fewer duplicates after a clean stop). Close the spill after Run
// returned.
func (f *Feeder) Run(ctx context.Context) error {
	ackDone := make(chan struct{})
	actx, stopAcks := context.WithCancel(context.Background())
	go func() {
		defer close(ackDone)
		f.ackLoop(actx)
	}()
	err := f.feedLoop(ctx)
	stopAcks()
	<-ackDone
	f.ackNow()
	if errors.Is(err, context.Canceled) || errors.Is(err, io.ErrClosedPipe) {
		err = nil
	}
	return err
}

func (f *Feeder) feedLoop(ctx context.Context) error {
	parser := &alert.Parser{}
	f.mu.Lock()
	cursor := f.fedTo
	f.mu.Unlock()
	backoff := 10 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		recs, last, err := f.s.Next(cursor, f.opts.Batch, 0)
		if err != nil {
			// A corrupt tree (ErrCorrupt) or a closed spill: log, wait, retry.
			f.logf("spill: reading records after %d: %v", cursor, err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		for _, r := range recs {
			a, perr := ingest.Parse(parser, r.Data, f.opts.MaxEventBytes, f.opts.Counters)
			if perr != nil {
				// The webhook parsed it before spilling it, so this is a
				// record from another version or a changed maxEventBytes.
				f.dropped.Add(1)
				f.logf("spill: skipping record %d: %v", r.Seq, perr)
				continue
			}
			if err := f.q.PushToken(ctx, a, r.Seq); err != nil {
				alert.Release(a)
				return err
			}
			f.fed.Add(1)
			f.mu.Lock()
			f.fedTo, f.pushed = r.Seq, r.Seq
			f.mu.Unlock()
		}
		progressed := last > cursor
		cursor = last
		f.mu.Lock()
		f.fedTo = max(f.fedTo, last)
		f.maybeCaughtUpLocked()
		trailing := f.fedTo > f.pushed
		f.mu.Unlock()
		if progressed {
			continue // maybe more
		}
		if trailing {
			signal(f.ackWake) // skipped records after the last pushed one (see ackNow)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.wake:
		}
	}
}

func (f *Feeder) ackLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.ackWake:
			f.ackNow()
		}
	}
}

// ackNow deletes what was delivered. Records skipped (corrupt, not
// parsing) go with the delivered ones after them; those after the last
// pushed record go once everything pushed was delivered.
func (f *Feeder) ackNow() {
	t := f.ackTo.Load()
	f.mu.Lock()
	if t >= f.pushed {
		t = max(t, f.fedTo)
	}
	f.mu.Unlock()
	if t <= f.acked.Load() {
		return
	}
	if err := f.s.Ack(t); err != nil {
		f.logf("spill: acking records up to %d: %v (they will be delivered again after a restart)", t, err)
		return
	}
	f.acked.Store(t)
}

func (f *Feeder) logf(format string, args ...any) {
	if f.opts.Logf != nil {
		f.opts.Logf(format, args...)
	}
}
