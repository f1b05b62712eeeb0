package ingest

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
	"unsafe"

	"github.com/triage-dev/triage/pkg/alert"
)

// ErrTooLarge is returned for a group of alerts that can never fit the
// queue, whatever it holds: more alerts than its capacity, or more bytes
// than its byte budget.
var ErrTooLarge = errors.New("more than the whole queue holds")

// AlertQueue is the bounded queue between the inputs and next_batch,
// bounded both in alerts and in bytes (AlertBytes of each).
//
// Producers push a group of alerts all at once or not at all, and waiting
// producers are served in arrival order, so a large group is not starved
// by small ones and delivery order stays arrival order. The webhook holds
// a request while it waits (Falco's http_output then queues behind it
// without loss, falco-facts.md fact 9); file inputs wait, which pauses
// reading instead of losing lines.
//
// An alert may carry a token from its source (a file position, a spill
// record number). After the consumer has handed a batch to Falco it calls
// Ack, which passes the highest token of that batch to the acker the
// source set, so a source forgets an alert only once it was delivered.
type AlertQueue struct {
	mu       sync.Mutex
	ring     []entry
	head     int // index of the oldest item
	size     int
	bytes    int64
	maxBytes int64
	closed   bool

	nextTicket, serving uint64          // waiting producers, served in ticket order
	abandoned           map[uint64]bool // tickets whose producer gave up
	changed             chan struct{}   // closed and replaced whenever room or order changes

	acker   func(token uint64)
	pending uint64 // highest token popped since the last Ack

	notEmpty chan struct{} // one pending wake-up for the consumer
}

type entry struct {
	a     *alert.Alert
	bytes int64
	token uint64
}

// NewAlertQueue returns a queue holding at most capacity alerts and
// maxBytes bytes of them.
func NewAlertQueue(capacity int, maxBytes int64) *AlertQueue {
	return &AlertQueue{
		ring:      make([]entry, capacity),
		maxBytes:  maxBytes,
		abandoned: map[uint64]bool{},
		changed:   make(chan struct{}),
		notEmpty:  make(chan struct{}, 1),
	}
}

// AlertBytes is what an alert is counted for: its strings (which share
// one buffer), its field and tag headers and the struct itself.
func AlertBytes(a *alert.Alert) int64 {
	n := int64(unsafe.Sizeof(*a)) + int64(len(a.Rule)+len(a.Source)+len(a.Hostname)+len(a.UUID)+len(a.Output))
	n += int64(len(a.Tags)) * int64(unsafe.Sizeof(""))
	for _, t := range a.Tags {
		n += int64(len(t))
	}
	n += int64(len(a.Fields)) * int64(unsafe.Sizeof(alert.Field{}))
	for _, f := range a.Fields {
		n += int64(len(f.Key) + len(f.Value))
	}
	return n
}

// Cap returns the capacity in alerts; MaxBytes the byte budget.
func (q *AlertQueue) Cap() int        { return len(q.ring) }
func (q *AlertQueue) MaxBytes() int64 { return q.maxBytes }

// Len returns the number of queued alerts.
func (q *AlertQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size
}

// Bytes returns the bytes of the queued alerts.
func (q *AlertQueue) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Waiting returns the producers waiting for room.
func (q *AlertQueue) Waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int(q.nextTicket-q.serving) - len(q.abandoned)
}

// SetAcker sets the function Ack calls with the highest delivered token.
func (q *AlertQueue) SetAcker(f func(token uint64)) {
	q.mu.Lock()
	q.acker = f
	q.mu.Unlock()
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// broadcastLocked wakes every waiting producer.
func (q *AlertQueue) broadcastLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func groupBytes(alerts []*alert.Alert, sizes []int64) int64 {
	var n int64
	for i, a := range alerts {
		sizes[i] = AlertBytes(a)
		n += sizes[i]
	}
	return n
}

// fitsLocked says whether n alerts of b bytes fit now. An empty queue
// takes one alert of any size (maxEventBytes bounds it), so a single alert
// larger than the byte budget is delivered rather than stuck: the queue
// holds at most maxBytes, or one alert.
func (q *AlertQueue) fitsLocked(n int, b int64) bool {
	return q.size+n <= len(q.ring) && (q.bytes+b <= q.maxBytes || (q.size == 0 && n == 1))
}

// tooLarge says a group can never fit.
func (q *AlertQueue) tooLarge(n int, b int64) bool {
	return n > len(q.ring) || (n > 1 && b > q.maxBytes)
}

func (q *AlertQueue) appendLocked(alerts []*alert.Alert, sizes []int64, token uint64) {
	for i, a := range alerts {
		q.ring[(q.head+q.size)%len(q.ring)] = entry{a: a, bytes: sizes[i], token: token}
		q.size++
		q.bytes += sizes[i]
	}
}

// TryPushAll queues all alerts, or none when they do not all fit now or
// producers are already waiting (who come first).
func (q *AlertQueue) TryPushAll(alerts []*alert.Alert) bool {
	sizes := make([]int64, len(alerts))
	b := groupBytes(alerts, sizes)
	q.mu.Lock()
	if q.closed || q.nextTicket != q.serving || !q.fitsLocked(len(alerts), b) {
		q.mu.Unlock()
		return false
	}
	q.appendLocked(alerts, sizes, 0)
	q.mu.Unlock()
	if len(alerts) > 0 {
		wake(q.notEmpty)
	}
	return true
}

// PushAll queues all alerts at once, waiting in line behind earlier
// producers until they fit. It returns ErrTooLarge at once for a group
// that can never fit, ctx.Err() when ctx ends first (nothing queued), and
// io.ErrClosedPipe after Close. token (0 for none) goes with each alert.
func (q *AlertQueue) PushAll(ctx context.Context, alerts []*alert.Alert, token uint64) error {
	sizes := make([]int64, len(alerts))
	b := groupBytes(alerts, sizes)
	if q.tooLarge(len(alerts), b) {
		return ErrTooLarge
	}
	q.mu.Lock()
	ticket := q.nextTicket
	q.nextTicket++
	for {
		if q.closed {
			q.giveUpLocked(ticket)
			q.mu.Unlock()
			return io.ErrClosedPipe
		}
		if q.serving == ticket && q.fitsLocked(len(alerts), b) {
			q.appendLocked(alerts, sizes, token)
			q.advanceLocked()
			q.broadcastLocked()
			q.mu.Unlock()
			if len(alerts) > 0 {
				wake(q.notEmpty)
			}
			return nil
		}
		changed := q.changed
		q.mu.Unlock()
		select {
		case <-changed:
			q.mu.Lock()
		case <-ctx.Done():
			q.mu.Lock()
			q.giveUpLocked(ticket)
			q.mu.Unlock()
			return ctx.Err()
		}
	}
}

// Push queues one alert, waiting while the queue is full (PushAll).
func (q *AlertQueue) Push(ctx context.Context, a *alert.Alert) error {
	return q.PushAll(ctx, []*alert.Alert{a}, 0)
}

// PushToken is Push with a token acked once the alert is delivered.
func (q *AlertQueue) PushToken(ctx context.Context, a *alert.Alert, token uint64) error {
	return q.PushAll(ctx, []*alert.Alert{a}, token)
}

// advanceLocked moves serving past the current ticket and any abandoned
// ones after it.
func (q *AlertQueue) advanceLocked() {
	q.serving++
	for q.abandoned[q.serving] {
		delete(q.abandoned, q.serving)
		q.serving++
	}
}

func (q *AlertQueue) giveUpLocked(ticket uint64) {
	if q.serving == ticket {
		q.advanceLocked()
	} else {
		q.abandoned[ticket] = true
	}
	q.broadcastLocked()
}

// Close marks the end of a finite input: once drained, PopBatch returns
// io.EOF. Alerts already queued are still delivered.
func (q *AlertQueue) Close() {
	q.mu.Lock()
	q.closed = true
	q.broadcastLocked()
	q.mu.Unlock()
	wake(q.notEmpty)
}

// PopBatch appends up to max queued alerts to dst. When the queue is empty
// it waits up to wait for the first one; it never waits once it has one.
// It returns io.EOF only when the queue is closed and drained.
func (q *AlertQueue) PopBatch(dst []*alert.Alert, max int, wait *time.Timer, d time.Duration) ([]*alert.Alert, error) {
	armed := false
	for {
		q.mu.Lock()
		if q.size > 0 {
			n := min(q.size, max)
			for i := 0; i < n; i++ {
				e := &q.ring[q.head]
				dst = append(dst, e.a)
				q.bytes -= e.bytes
				if e.token > q.pending {
					q.pending = e.token
				}
				*e = entry{}
				q.head = (q.head + 1) % len(q.ring)
			}
			q.size -= n
			more := q.size > 0
			q.broadcastLocked()
			q.mu.Unlock()
			if more {
				wake(q.notEmpty)
			}
			stopTimer(wait, armed)
			return dst, nil
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			stopTimer(wait, armed)
			return dst, io.EOF
		}
		if !armed {
			wait.Reset(d)
			armed = true
		}
		select {
		case <-q.notEmpty:
		case <-wait.C:
			return dst, nil
		}
	}
}

// Ack tells the source that everything popped so far was delivered: the
// acker gets the highest token among the popped alerts, once.
func (q *AlertQueue) Ack() {
	q.mu.Lock()
	token, acker := q.pending, q.acker
	q.pending = 0
	q.mu.Unlock()
	if token != 0 && acker != nil {
		acker(token)
	}
}

func stopTimer(t *time.Timer, armed bool) {
	if armed {
		t.Stop()
	}
}
