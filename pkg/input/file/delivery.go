package file

import "sync"

// Delivery tracks which followed lines have been delivered, so that the
// state file only ever covers delivered lines (docs/reliability.md).
//
// The sink that queues a line calls Queue(pos) for a token and passes the
// token with the alert to the queue; the queue calls Ack(token) once
// everything up to that token was handed to Falco and Falco came back for
// more (pkg/ingest AlertQueue.Ack). The follower calls handled(pos) for
// every line it is done with, queued or not (malformed, oversize, loop
// dropped, blank), and at each new reading position (open, rotation,
// truncation).
//
// The delivered position is the position of the last line such that it
// and every line before it were either delivered or never queued. A line
// that is not queued therefore moves the delivered position past it as
// soon as every earlier queued line is delivered: it is folded into the
// newest queued line still in flight, or, with none in flight, it is
// delivered at once.
//
// Tokens increase in queueing order and one follower feeds one queue, so
// the queue hands them back in order. In flight are at most the queue's
// capacity plus one popped batch (popped lines are acked when Falco asks
// for the next batch); the ring grows to that and no further.
//
// A sink that never calls Queue (tests, the child of the crash test) makes
// every line delivered when the follower has handled it: the behaviour of
// a state that follows what was emitted.
type Delivery struct {
	mu        sync.Mutex
	ring      []inflight
	head, n   int
	last      uint64 // last token handed out
	gen       uint64 // current reading generation (set by the follower)
	delivered mark
	has       bool // delivered is set
}

// mark is a position in one reading generation: every open of a file and
// every restart after a truncation is a new generation, so that positions
// in content that no longer exists are never mistaken for positions in
// what replaced it.
type mark struct {
	pos LinePos
	gen uint64
}

type inflight struct {
	token uint64
	m     mark
}

// NewDelivery returns an empty tracker.
func NewDelivery() *Delivery { return &Delivery{} }

// Queue records that the line at pos is about to be queued and returns its
// token (never 0). Call it before pushing, so that an ack cannot come
// first.
func (d *Delivery) Queue(pos LinePos) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last++
	if d.n == len(d.ring) {
		d.grow()
	}
	d.ring[(d.head+d.n)%len(d.ring)] = inflight{token: d.last, m: mark{pos, d.gen}}
	d.n++
	return d.last
}

func (d *Delivery) grow() {
	nr := make([]inflight, max(64, 2*len(d.ring)))
	for i := 0; i < d.n; i++ {
		nr[i] = d.ring[(d.head+i)%len(d.ring)]
	}
	d.ring, d.head = nr, 0
}

// Ack marks every line queued with a token up to token as delivered.
func (d *Delivery) Ack(token uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.n > 0 && d.ring[d.head].token <= token {
		d.delivered, d.has = d.ring[d.head].m, true
		d.ring[d.head] = inflight{}
		d.head = (d.head + 1) % len(d.ring)
		d.n--
	}
}

// handled says the follower is done with the line ending at pos (queued
// or not), or that reading (re)starts at pos.
func (d *Delivery) handled(pos LinePos) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := mark{pos, d.gen}
	if d.n > 0 {
		// Delivered together with the newest line in flight.
		d.ring[(d.head+d.n-1)%len(d.ring)].m = m
		return
	}
	d.delivered, d.has = m, true
}

// newGeneration starts a new reading generation and returns its number.
func (d *Delivery) newGeneration() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	return d.gen
}

// deliveredMark returns the delivered position, if any.
func (d *Delivery) deliveredMark() (mark, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.delivered, d.has
}

// inFlight returns the number of lines queued and not yet acked.
func (d *Delivery) inFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}
