package webhook

import (
	"container/list"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/triage-dev/triage/pkg/logging"
)

// Connection management: at most webhook.maxConnections client
// connections are served at once, and connections that send nothing cannot
// keep a new client waiting.
//
// The listener accepts a new connection, then, when the cap is reached,
// closes one connection that has sent nothing to make room:
//
//  1. the connection idle the longest: kept alive after its last answer
//     (net/http's StateIdle) and nothing read from it since;
//  2. else the oldest connection that has sent nothing at all since it
//     was accepted, once silentGrace old (a client that connects sends its
//     request, or its TLS ClientHello, at once; the grace covers a client
//     slow to be scheduled: closing a new connection before its request
//     is lost for senders that do not retry, such as Falco's http_output).
//
// "Nothing read" also means nothing waiting in the socket: bytes that
// arrived but that the server has not read yet (peeked, not consumed) make
// a connection busy.
//
// A new connection with bytes already waiting (a request, a ClientHello)
// may close a silent one after only dataGrace. A new connection that has
// sent nothing either, when nothing can be closed for it, is parked: held
// aside, neither served nor counted, while the accept loop goes on, until
// its first bytes arrive (then it is placed like the others) or it has
// been silent for silentGrace (then it is closed). So a client with a
// request is never queued behind silent connections in the kernel's accept
// queue. At most max(maxConnections, minParked) are parked; beyond, the
// oldest parked one is closed.
//
// A connection from which one byte of a request was read is never closed
// this way: it is served, or cut by webhook.readHeaderTimeoutMs /
// readTimeoutMs like any slow client. When every connection is busy, a new
// one with a request waits (accepted, not yet served) until one closes or
// turns idle; further clients wait in the kernel's accept queue.
//
// So idle and silent connections, whatever their number, cost a new client
// one close; a client that trickles its headers or body holds one slot
// until its timeout and no more.
//
// A connection is chosen and its bytes read under one atomic state, so a
// request whose first bytes the server read is served in full and never
// cut by this; a request arriving at the instant its connection is chosen
// is dropped unread, as with any idle timeout: HTTP clients resend a
// request on a reused connection that closed without an answer (RFC 9112,
// 9.3.1; curl and Go do), and choosing the longest-idle connection makes
// that the least likely. Nothing is queued twice by it.

// silentGrace is how long a just-accepted connection may stay silent
// before it can be closed to make room.
const silentGrace = time.Second

// minParked is the least number of connections parked at the cap.
const minParked = 1024

// limitListener is the capped, room-making listener. ConnState must be
// set as the http.Server's ConnState hook.
type limitListener struct {
	net.Listener
	max int
	log *logging.Logger

	mu    sync.Mutex
	open  int       // connections accepted and not yet closed
	idle  list.List // *trackedConn in StateIdle, longest idle first
	fresh list.List // *trackedConn not yet past StateNew, oldest first
	wake  chan struct{}

	// Connections accepted while at the cap that had sent nothing yet
	// wait here (parked, not counted) for their first bytes, so that the
	// accept loop goes on and a client with a request is not queued
	// behind silent ones.
	grace     time.Duration // silentGrace (a field for tests)
	dataGrace time.Duration // the same for a connection with bytes waiting
	accepted  chan acceptResult
	ready     chan *trackedConn
	parked    map[*trackedConn]struct{} // guarded by mu

	stop chan struct{}
	once sync.Once

	closedIdle atomic.Uint64 // connections closed to make room
}

type acceptResult struct {
	c   net.Conn
	err error
}

func newLimitListener(ln net.Listener, max int, log *logging.Logger) *limitListener {
	l := &limitListener{
		Listener:  ln,
		max:       max,
		log:       log,
		wake:      make(chan struct{}, 1),
		grace:     silentGrace,
		dataGrace: silentGrace / 10,
		accepted:  make(chan acceptResult),
		ready:     make(chan *trackedConn),
		parked:    map[*trackedConn]struct{}{},
		stop:      make(chan struct{}),
	}
	go l.acceptLoop()
	return l
}

// acceptLoop accepts from the kernel and hands connections to Accept.
func (l *limitListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.stop:
			if c != nil {
				c.Close() //nolint:errcheck // shutting down
			}
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			select { // a permanent error (closed listener): Accept has it
			case <-l.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// Open returns the number of connections currently held.
func (l *limitListener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// ClosedIdle returns how many connections were closed to make room.
func (l *limitListener) ClosedIdle() uint64 { return l.closedIdle.Load() }

// trackedConn is a connection of the listener. Its Read records that bytes
// arrived, which is what tells a connection in the middle of sending a
// request from one that is silent.
type trackedConn struct {
	net.Conn
	l *limitListener

	// rstate is connSilent, connRead (bytes read since accept or since
	// it last turned idle) or connEvicted. Read and the choice of a
	// connection to close race for it, so a connection is either closed
	// before the server saw any byte of its next request, or not at all.
	rstate atomic.Int32

	// Guarded by l.mu.
	elem   *list.Element // in l.idle or l.fresh; nil when in neither
	inIdle bool
	since  time.Time // when accepted, or when it last turned idle
	closed bool
}

const (
	connSilent int32 = iota
	connRead
	connEvicted
)

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.rstate.CompareAndSwap(connSilent, connRead) && c.rstate.Load() == connEvicted {
		// Chosen to make room while these bytes were arriving: drop
		// them rather than serve a request on a connection being closed
		// (its answer would be lost and the sender would resend it).
		return 0, net.ErrClosed
	}
	return n, err
}

// busy reports whether bytes were read since accept or the last answer.
func (c *trackedConn) busy() bool { return c.rstate.Load() == connRead }

// Close closes the connection and gives its slot back (once).
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.l.release(c)
	return err
}

// Accept returns the next connection to serve, making room for it when
// the cap is reached (see the top of this file).
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		var c *trackedConn
		hasData := false
		select {
		case r := <-l.accepted:
			if r.err != nil {
				return nil, r.err
			}
			c = &trackedConn{Conn: r.c, l: l}
		case c = <-l.ready:
			l.mu.Lock()
			_, still := l.parked[c]
			delete(l.parked, c)
			l.mu.Unlock()
			if !still {
				continue // closed to make room among the parked
			}
			hasData = true
		case <-l.stop:
			return nil, net.ErrClosed
		}
		if l.place(c, hasData) {
			return c, nil
		}
		// place parked c or gave up on it; accept the next.
	}
}

// place takes a slot for c, closing a connection to make room if need be
// (true), or parks c while it has sent nothing (false). When every
// connection is busy it waits for a slot.
func (l *limitListener) place(c *trackedConn, hasData bool) bool {
	for {
		l.mu.Lock()
		now := time.Now()
		if l.open < l.max {
			l.open++
			c.since = now
			c.elem = l.fresh.PushBack(c)
			l.mu.Unlock()
			return true
		}
		hasData = hasData || pending(c.Conn)
		// A connection with bytes waiting beats silent ones sooner.
		grace := l.grace
		if hasData {
			grace = l.dataGrace
		}
		victim, wait := l.victimLocked(now, grace)
		if victim != nil {
			idleFor := now.Sub(victim.since)
			l.forgetLocked(victim)
			l.mu.Unlock()
			l.closeVictim(victim.Conn, idleFor, c.RemoteAddr())
			continue
		}
		if !hasData {
			// c has sent nothing either: park it rather than stop
			// accepting, so a client with a request behind it in the
			// kernel's queue is not kept waiting.
			l.parkLocked(c)
			l.mu.Unlock()
			return false
		}
		l.mu.Unlock()
		// Every connection is busy, or only young silent ones could make
		// room: wait for one to close, turn idle, or come of age.
		var timeout <-chan time.Time
		var timer *time.Timer
		if wait > 0 {
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		select {
		case <-l.wake:
		case <-timeout:
		case <-l.stop:
			c.Conn.Close() //nolint:errcheck // shutting down
			return false
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (l *limitListener) closeVictim(c net.Conn, idleFor time.Duration, forAddr net.Addr) {
	c.Close() //nolint:errcheck // closing to make room; its server goroutine sees the error and ends
	l.closedIdle.Add(1)
	if l.log != nil && forAddr == nil {
		l.log.Limitedf("webhook: %d connections open (webhook.maxConnections): closed the waiting connection from %s, silent for %s", l.max, c.RemoteAddr(), idleFor.Round(time.Millisecond))
	} else if l.log != nil {
		l.log.Limitedf("webhook: %d connections open (webhook.maxConnections): closed the connection from %s, silent for %s, to serve %s", l.max, c.RemoteAddr(), idleFor.Round(time.Millisecond), forAddr)
	}
}

// parkLocked holds c, not served and not counted, until its first bytes
// arrive (then Accept places it, ahead of silent connections) or it has
// been silent for grace (then it is closed, like a silent connection
// making room). At most max(maxConnections, minParked) connections are
// parked; beyond, the oldest parked one is closed.
func (l *limitListener) parkLocked(c *trackedConn) {
	if len(l.parked) >= max(l.max, minParked) {
		var oldest *trackedConn
		for p := range l.parked {
			if oldest == nil || p.since.Before(oldest.since) {
				oldest = p
			}
		}
		delete(l.parked, oldest)
		oldest.Conn.Close() //nolint:errcheck // unblocks its watcher, which then gives up
		l.closedIdle.Add(1)
	}
	c.since = time.Now()
	l.parked[c] = struct{}{}
	go l.watchParked(c)
}

// watchParked waits for c's first bytes; c stays in l.parked (and
// counted against its bound) until Accept takes it.
func (l *limitListener) watchParked(c *trackedConn) {
	ok := waitReadable(c.Conn, l.grace)
	if !ok {
		l.mu.Lock()
		_, still := l.parked[c]
		delete(l.parked, c)
		l.mu.Unlock()
		if still {
			l.closeVictim(c.Conn, time.Since(c.since), nil)
		}
		return
	}
	select {
	case l.ready <- c:
	case <-l.stop:
		c.Conn.Close() //nolint:errcheck // shutting down
	}
}

// socketOf returns c's socket for polling; false for a connection that has
// none.
func socketOf(c net.Conn) (syscall.RawConn, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	return raw, err == nil
}

// waitReadable waits up to d for bytes (or EOF) in c's socket, without
// consuming them.
func waitReadable(c net.Conn, d time.Duration) bool {
	raw, ok := socketOf(c)
	if !ok {
		return false
	}
	if c.SetReadDeadline(time.Now().Add(d)) != nil {
		return false
	}
	defer c.SetReadDeadline(time.Time{}) //nolint:errcheck // the server sets its own
	var b [1]byte
	readable := false
	err := raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK {
			return false // wait for the poller
		}
		readable = n > 0
		return true
	})
	return err == nil && readable
}

// victimLocked returns the connection to close to make room, or nil and
// how long until the oldest silent new connection is silentGrace old (0:
// nothing to wait for but a close or an idle connection).
func (l *limitListener) victimLocked(now time.Time, grace time.Duration) (*trackedConn, time.Duration) {
	for e := l.idle.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*trackedConn); l.silent(c) && c.rstate.CompareAndSwap(connSilent, connEvicted) {
			return c, 0
		}
	}
	for e := l.fresh.Front(); e != nil; e = e.Next() {
		c := e.Value.(*trackedConn)
		if !l.silent(c) {
			continue
		}
		if age := now.Sub(c.since); age < grace {
			return nil, grace - age // younger ones follow
		}
		if c.rstate.CompareAndSwap(connSilent, connEvicted) {
			return c, 0
		}
	}
	return nil, 0
}

// silent reports whether nothing was read from c and nothing waits in its
// socket; bytes waiting make it busy.
func (l *limitListener) silent(c *trackedConn) bool {
	if c.busy() {
		return false
	}
	if pending(c.Conn) {
		c.rstate.CompareAndSwap(connSilent, connRead)
		return false
	}
	return true
}

// pending reports whether bytes wait in c's socket, unread (a request
// arriving). It does not block or consume them.
func pending(c net.Conn) bool {
	raw, ok := socketOf(c)
	if !ok {
		return false
	}
	var n int
	var b [1]byte
	raw.Control(func(fd uintptr) { //nolint:errcheck // a closed socket has nothing pending
		n, _, _ = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return n > 0
}

// forgetLocked marks c closed and frees its slot.
func (l *limitListener) forgetLocked(c *trackedConn) {
	if c.closed {
		return
	}
	c.closed = true
	l.unlistLocked(c)
	l.open--
	l.notifyLocked()
}

func (l *limitListener) unlistLocked(c *trackedConn) {
	if c.elem == nil {
		return
	}
	if c.inIdle {
		l.idle.Remove(c.elem)
	} else {
		l.fresh.Remove(c.elem)
	}
	c.elem, c.inIdle = nil, false
}

// notifyLocked wakes an Accept waiting for room (there is at most one:
// http.Server calls Accept from one goroutine).
func (l *limitListener) notifyLocked() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *limitListener) release(c *trackedConn) {
	l.mu.Lock()
	l.forgetLocked(c)
	l.mu.Unlock()
}

// ConnState is the http.Server ConnState hook: it follows connections in
// and out of the idle state.
func (l *limitListener) ConnState(nc net.Conn, st http.ConnState) {
	c := trackedOf(nc)
	if c == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.closed {
		return
	}
	switch st {
	case http.StateActive:
		l.unlistLocked(c)
	case http.StateIdle:
		l.unlistLocked(c)
		// net/http may have read one byte of a next request already while
		// the handler ran; the rest is read at once, and until then the
		// connection counts as silent (the race of any idle close, above).
		c.rstate.CompareAndSwap(connRead, connSilent)
		c.since = time.Now()
		c.elem, c.inIdle = l.idle.PushBack(c), true
		l.notifyLocked()
	case http.StateClosed, http.StateHijacked:
		l.forgetLocked(c)
	}
}

// trackedOf finds the listener's connection under what net/http holds
// (the connection itself, or the TLS connection over it).
func trackedOf(nc net.Conn) *trackedConn {
	switch c := nc.(type) {
	case *trackedConn:
		return c
	case *tls.Conn:
		t, _ := c.NetConn().(*trackedConn)
		return t
	}
	return nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() {
		close(l.stop)
		l.mu.Lock()
		for c := range l.parked {
			c.Conn.Close() //nolint:errcheck // shutting down
			delete(l.parked, c)
		}
		l.mu.Unlock()
	})
	return l.Listener.Close()
}
