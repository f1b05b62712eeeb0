package ingest

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
)

// AlertQueue is the bounded queue between the inputs and next_batch. The
// webhook pushes a whole request body or nothing (so it never acknowledges
// an alert it then drops); file inputs block while it is full, which
// pauses reading instead of losing lines.
type AlertQueue struct {
	mu     sync.Mutex
	ring   []*alert.Alert
	head   int // index of the oldest item
	size   int
	closed bool

	notEmpty chan struct{} // one pending wake-up for the consumer
	notFull  chan struct{} // one pending wake-up for blocked producers
}

// NewAlertQueue returns a queue holding at most capacity alerts.
func NewAlertQueue(capacity int) *AlertQueue {
	return &AlertQueue{
		ring:     make([]*alert.Alert, capacity),
		notEmpty: make(chan struct{}, 1),
		notFull:  make(chan struct{}, 1),
	}
}

// Cap returns the capacity.
func (q *AlertQueue) Cap() int { return len(q.ring) }

// Len returns the number of queued alerts.
func (q *AlertQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// TryPushAll queues all alerts, or none when they do not all fit.
func (q *AlertQueue) TryPushAll(alerts []*alert.Alert) bool {
	q.mu.Lock()
	if q.closed || q.size+len(alerts) > len(q.ring) {
		q.mu.Unlock()
		return false
	}
	for _, a := range alerts {
		q.ring[(q.head+q.size)%len(q.ring)] = a
		q.size++
	}
	q.mu.Unlock()
	if len(alerts) > 0 {
		wake(q.notEmpty)
	}
	return true
}

// Push queues one alert, waiting while the queue is full. It returns
// ctx.Err() when canceled and io.ErrClosedPipe after Close.
func (q *AlertQueue) Push(ctx context.Context, a *alert.Alert) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return io.ErrClosedPipe
		}
		if q.size < len(q.ring) {
			q.ring[(q.head+q.size)%len(q.ring)] = a
			q.size++
			q.mu.Unlock()
			wake(q.notEmpty)
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close marks the end of a finite input: once drained, PopBatch returns
// io.EOF. Alerts already queued are still delivered.
func (q *AlertQueue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	wake(q.notEmpty)
	wake(q.notFull)
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
				dst = append(dst, q.ring[q.head])
				q.ring[q.head] = nil
				q.head = (q.head + 1) % len(q.ring)
			}
			q.size -= n
			more := q.size > 0
			q.mu.Unlock()
			wake(q.notFull)
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

func stopTimer(t *time.Timer, armed bool) {
	if armed {
		t.Stop()
	}
}
