package ingest

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// Counters count every alert received, delivered, and every one dropped or
// rejected, by reason. Safe for concurrent use.
type Counters struct {
	Received    atomic.Uint64 // alerts (lines or bodies) that reached an input
	Queued      atomic.Uint64 // alerts put in the queue
	Delivered   atomic.Uint64 // events handed to Falco by next_batch
	Malformed   atomic.Uint64 // rejected: bad JSON, wrong types, missing keys, bad values
	Oversize    atomic.Uint64 // rejected: line or body over the size limits
	LoopDropped atomic.Uint64 // dropped: source falco_alert (triage's own alerts)
	QueueFull   atomic.Uint64 // refused with 503 after the hold expired (lost unless the sender retries: Falco and Falcosidekick do not)
	Skipped     atomic.Uint64 // dropped inside next_batch: a panic while processing or an event too large to encode
}

// Snapshot is a point-in-time copy of Counters.
type Snapshot struct {
	Received, Queued, Delivered, Malformed, Oversize, LoopDropped, QueueFull, Skipped uint64
}

// Snapshot copies the counters.
func (c *Counters) Snapshot() Snapshot {
	return Snapshot{
		Received: c.Received.Load(), Queued: c.Queued.Load(), Delivered: c.Delivered.Load(),
		Malformed: c.Malformed.Load(), Oversize: c.Oversize.Load(), LoopDropped: c.LoopDropped.Load(),
		QueueFull: c.QueueFull.Load(), Skipped: c.Skipped.Load(),
	}
}

// String renders the snapshot as one log line of key=value pairs.
func (s Snapshot) String() string {
	var b strings.Builder
	for _, kv := range []struct {
		k string
		v uint64
	}{
		{"received", s.Received}, {"queued", s.Queued}, {"delivered", s.Delivered},
		{"malformed", s.Malformed}, {"oversize", s.Oversize}, {"loop_dropped", s.LoopDropped},
		{"queue_full", s.QueueFull}, {"skipped", s.Skipped},
	} {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", kv.k, kv.v)
	}
	return b.String()
}
