package webhook

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/ingest"
)

// This file is the body half of the webhook: a request body is read as a
// stream, one line at a time, each line parsed as it arrives, so the first
// bad line is answered before the rest is read and nothing is allocated per
// line in advance. A body is still all-or-nothing (a fixed resend creates
// no duplicates), so its parsed alerts are held until its end; that is
// bounded per body by the whole queue (a body the queue could never take
// is refused with 413) and across bodies by webhook.maxInflightBytes. When
// the alerts do not fit the queue now, the request is held until they do
// (Falco's http_output and Falcosidekick's webhook then wait behind it
// without loss), for at most webhook.maxHoldMs; only then the answer is 503.

// readBufSize is the read buffer of one request body; lines longer than it
// are gathered in a buffer that grows up to maxEventBytes.
const readBufSize = 32 << 10

// lineSlack is the whitespace a line may carry around an alert of
// maxEventBytes ("\r", indentation) before the line counts as oversize.
const lineSlack = 64

// readers recycles the read buffers of bodies.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

// holdBuckets are the upper bounds (seconds) of the hold-time histogram.
var holdBuckets = [...]float64{0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60}

// intake is the webhook's shared state for bodies: the in-flight byte
// budget and the hold counters.
type intake struct {
	maxHold     time.Duration
	readTimeout time.Duration

	budget inflight

	held       atomic.Uint64 // requests that waited (for the queue or for in-flight budget)
	heldAlerts atomic.Uint64 // alerts of those requests
	abandoned  atomic.Uint64 // held requests whose sender went away before the answer
	tooLarge   atomic.Uint64 // bodies refused with 413 because the whole queue could not take them
	holdNanos  atomic.Uint64
	holdCounts [len(holdBuckets) + 1]atomic.Uint64 // per bucket, the last is +Inf
}

func newIntake(cfg config.Config) *intake {
	in := &intake{
		maxHold:     time.Duration(cfg.Webhook.MaxHoldMs) * time.Millisecond,
		readTimeout: time.Duration(cfg.Webhook.ReadTimeoutMs) * time.Millisecond,
	}
	in.budget.max = int64(cfg.Webhook.MaxInflightBytes)
	in.budget.changed = make(chan struct{})
	return in
}

func (in *intake) observeHold(d time.Duration) {
	in.holdNanos.Add(uint64(d))
	s := d.Seconds()
	for i, le := range holdBuckets {
		if s <= le {
			in.holdCounts[i].Add(1)
			return
		}
	}
	in.holdCounts[len(holdBuckets)].Add(1)
}

// inflight is a byte budget shared by the bodies being read or held: the
// alerts a body parsed, and its line buffer, are charged to it until the
// body is queued or refused. Requests are ordered by arrival; the oldest
// may always take what it needs (so it finishes and frees its share, and
// two half-read bodies can never wait on each other forever), the others
// wait while the budget is spent. In use it stays under max plus what the
// oldest body takes beyond it (at most one body: queueBytes).
type inflight struct {
	mu      sync.Mutex
	max     int64
	used    int64
	order   list.List     // of *request, arrival order
	waiters int           // requests waiting in acquire
	changed chan struct{} // closed and replaced when budget is freed and someone waits
}

func (f *inflight) join(rq *request) {
	f.mu.Lock()
	rq.elem = f.order.PushBack(rq)
	f.mu.Unlock()
}

// leave returns everything rq holds.
func (f *inflight) leave(rq *request) {
	f.mu.Lock()
	f.used -= rq.charged
	rq.charged = 0
	f.order.Remove(rq.elem)
	if f.waiters > 0 {
		close(f.changed)
		f.changed = make(chan struct{})
	}
	f.mu.Unlock()
}

// Used returns the bytes charged now.
func (f *inflight) Used() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.used
}

// acquire charges n bytes to rq, waiting while the budget is spent and rq
// is not the oldest request. wait gives the context of the wait (the
// request's hold) the first time it is needed.
func (f *inflight) acquire(rq *request, n int64, wait func() context.Context) error {
	for {
		f.mu.Lock()
		if f.used+n <= f.max || f.order.Front() == rq.elem {
			f.used += n
			rq.charged += n
			f.mu.Unlock()
			return nil
		}
		changed := f.changed
		f.waiters++
		f.mu.Unlock()
		var err error
		select {
		case <-changed:
		case <-wait().Done():
			err = wait().Err()
		}
		f.mu.Lock()
		f.waiters--
		f.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// request is one POST or PUT being served.
type request struct {
	w       *Server
	rw      http.ResponseWriter
	r       *http.Request
	start   time.Time
	elem    *list.Element
	charged int64

	holdStart time.Time
	holdCtx   context.Context
	cancel    context.CancelFunc
}

// hold starts the request's hold on first use and returns its context,
// which ends webhook.maxHoldMs after the first wait (or when the sender
// goes away). The connection's deadlines are moved so the hold does not
// run into them.
func (rq *request) hold() context.Context {
	if rq.holdCtx == nil {
		in := rq.w.in
		rq.holdStart = time.Now()
		rq.holdCtx, rq.cancel = context.WithDeadline(rq.r.Context(), rq.holdStart.Add(in.maxHold))
		rc := http.NewResponseController(rq.rw)
		// Not supported by test recorders; then there are no deadlines to move.
		_ = rc.SetReadDeadline(rq.start.Add(in.readTimeout + in.maxHold))
		_ = rc.SetWriteDeadline(rq.start.Add(in.readTimeout + in.maxHold + webhookWriteSlack))
	}
	return rq.holdCtx
}

func (rq *request) held() bool { return rq.holdCtx != nil }

// receive reads, parses and queues the body of a POST or PUT whose method,
// path, secret and content type were checked.
func (w *Server) receive(rw http.ResponseWriter, r *http.Request) {
	rq := &request{w: w, rw: rw, r: r, start: time.Now()}
	w.in.budget.join(rq)
	defer func() {
		w.in.budget.leave(rq)
		if rq.cancel != nil {
			rq.cancel()
		}
	}()

	alerts, records, loops, status, reason := w.readBody(rq)
	if status == http.StatusOK {
		status, reason = w.queueBody(rq, alerts, records)
	}
	if rq.held() {
		d := time.Since(rq.holdStart)
		w.in.held.Add(1)
		w.in.heldAlerts.Add(uint64(len(alerts)))
		w.in.observeHold(d)
		if status == http.StatusOK && d >= time.Second {
			w.log.Limitedf("webhook: held a request from %s for %v until its %d alerts fit the queue", r.RemoteAddr, d.Round(time.Millisecond), len(alerts))
		}
	}
	if status != http.StatusOK {
		for _, a := range alerts {
			alert.Release(a)
		}
		if status == http.StatusServiceUnavailable {
			rw.Header().Set("Retry-After", "1")
		} else {
			w.log.Limitedf("webhook: rejected request from %s: %d %s", r.RemoteAddr, status, reason)
		}
		http.Error(rw, reason, status)
		return
	}
	w.c.Queued.Add(uint64(len(alerts)))
	rw.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(rw, "{\"accepted\":%d,\"loop_dropped\":%d}\n", len(alerts), loops)
}

// queueBody queues the alerts of a whole body at once: at once when they
// fit, else holding the request in line (arrival order) for at most
// webhook.maxHoldMs. An expired hold is 503, counted as queue_full.
func (w *Server) queueBody(rq *request, alerts []*alert.Alert, records [][]byte) (int, string) {
	if w.spill != nil {
		return w.placeBody(rq, alerts, records)
	}
	if w.q.TryPushAll(alerts) {
		return http.StatusOK, ""
	}
	err := w.q.PushAll(rq.hold(), alerts, 0)
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.Is(err, ingest.ErrTooLarge): // readBody refuses these first
		w.c.Oversize.Add(1)
		w.in.tooLarge.Add(1)
		return http.StatusRequestEntityTooLarge, tooLargeReason(len(alerts), w.q)
	case rq.r.Context().Err() != nil:
		return w.abandon(rq, len(alerts))
	default:
		return w.busy(rq, len(alerts), "the queue stayed full")
	}
}

// abandon counts a held request whose sender gave up (its own timeout) or
// whose server is closing: nothing was queued and nobody reads the answer.
func (w *Server) abandon(rq *request, n int) (int, string) {
	w.in.abandoned.Add(1)
	w.log.Limitedf("webhook: %s went away after %v held; its %d alerts were not queued", rq.r.RemoteAddr, time.Since(rq.holdStart).Round(time.Millisecond), n)
	return http.StatusServiceUnavailable, "gave up"
}

// busy answers 503 after the hold expired: the alerts are counted as
// queue_full and the line is logged (Falco's http_output and
// Falcosidekick do not resend them).
func (w *Server) busy(rq *request, n int, why string) (int, string) {
	w.c.QueueFull.Add(uint64(n))
	w.log.Limitedf("webhook: %s for webhook.maxHoldMs (%v): answered 503 to %s for %d alerts (queue %d/%d alerts, %d/%d bytes); a sender that does not retry loses them",
		why, w.in.maxHold, rq.r.RemoteAddr, n, w.q.Len(), w.q.Cap(), w.q.Bytes(), w.q.MaxBytes())
	return http.StatusServiceUnavailable, fmt.Sprintf("queue full: %s for %v (webhook.maxHoldMs); nothing of this body was queued; retry later", why, w.in.maxHold)
}

func tooLargeReason(n int, q *ingest.AlertQueue) string {
	return fmt.Sprintf("body holds more than the whole queue takes (queueSize %d alerts, queueBytes %d bytes; this body: %d+ alerts): send it in smaller bodies, or raise queueSize/queueBytes (a configured spill is the other way); nothing of this body was queued", q.Cap(), q.MaxBytes(), n)
}

// lineReader reads a body line by line. Lines are numbered from 1, blank
// ones included; a line is returned without surrounding whitespace.
type lineReader struct {
	br   *bufio.Reader
	buf  []byte // gathers a line longer than the read buffer
	no   int    // lines read so far
	last int    // number of the last line returned
	max  int    // longest line kept (maxEventBytes plus slack)
	grow func(n int64) error
}

var errLineTooLong = errors.New("line too long")

// next returns the next non-blank line and its number, io.EOF at the end,
// errLineTooLong for a line over the limit (the rest of it unread), or the
// read error. The line is valid until the next call.
func (lr *lineReader) next() ([]byte, error) {
	for {
		lr.no++
		line := lr.buf[:0]
		gathering := false
		for {
			frag, err := lr.br.ReadSlice('\n')
			if !gathering && len(line) == 0 {
				frag = bytes.TrimLeft(frag, " \t\r\v\f")
			}
			if len(line)+len(frag) > lr.max {
				return nil, errLineTooLong
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				if cap(line)-len(line) < len(frag) {
					grown := max(2*cap(line), len(line)+len(frag), 4096)
					grown = min(grown, lr.max)
					if err := lr.grow(int64(grown - cap(line))); err != nil {
						return nil, err
					}
					nl := make([]byte, len(line), grown)
					copy(nl, line)
					line = nl
				}
				line = append(line, frag...)
				lr.buf = line[:0]
				gathering = true
				continue
			}
			if gathering {
				line = append(line, frag...)
				lr.buf = line[:0]
			} else {
				line = frag // no copy: parsed before the next read
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			line = bytes.TrimSpace(line)
			if len(line) > 0 {
				lr.last = lr.no
				return line, nil
			}
			if err != nil {
				return nil, io.EOF
			}
			break // blank line
		}
	}
}

// readBody reads and parses the body as a stream: one alert per line
// (NDJSON), or one alert spread over lines (pretty-printed) when its first
// line starts an object it does not close. It stops at the first line
// that does not parse (400), is too long (413), or makes the body larger
// than the whole queue (413). alerts are returned only with 200.
func (w *Server) readBody(rq *request) (alerts []*alert.Alert, records [][]byte, loops int, status int, reason string) {
	p := w.parsers.Get().(*alert.Parser)
	defer w.parsers.Put(p)
	var counted ingest.Counters
	defer w.addCounts(&counted)

	charge := func(n int64) error { return w.in.budget.acquire(rq, n, rq.hold) }
	if err := charge(readBufSize); err != nil {
		st, msg := w.busy(rq, 0, "the in-flight budget (webhook.maxInflightBytes) stayed spent")
		return nil, nil, 0, st, msg
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(http.MaxBytesReader(rq.rw, rq.r.Body, w.maxBody))
	defer func() { br.Reset(nil); readers.Put(br) }()
	lr := &lineReader{
		br:   br,
		max:  w.maxEvent + lineSlack,
		grow: charge,
	}
	fail := func(st int, msg string) ([]*alert.Alert, [][]byte, int, int, string) {
		for _, a := range alerts {
			alert.Release(a)
		}
		return nil, nil, 0, st, msg
	}
	var bytesQueued int64
	first := true
	for {
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if st, msg, ok := w.readError(rq, err, lr.no, len(alerts)); ok {
				return fail(st, msg)
			}
		}
		var body []byte = line
		spanFrom := lr.last
		if first && line[0] == '{' && line[len(line)-1] != '}' {
			// A pretty-printed alert: gather the rest of the body as one.
			doc, err := w.gatherDoc(lr, line, charge)
			if err != nil {
				if errors.Is(err, errLineTooLong) {
					counted.Received.Add(1)
					counted.Oversize.Add(1)
					return fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("line %d starts an alert spread over lines that is over maxEventBytes (%d) (nothing in this body was accepted)", spanFrom, w.maxEvent))
				}
				st, msg, _ := w.readError(rq, err, lr.no, 0)
				return fail(st, msg)
			}
			body = doc
		}
		first = false
		a, err := ingest.Parse(p, body, w.maxEvent, &counted)
		switch {
		case errors.Is(err, ingest.ErrLoop):
			loops++
			continue
		case err != nil:
			st := http.StatusBadRequest
			if counted.Oversize.Load() > 0 {
				st = http.StatusRequestEntityTooLarge
			}
			where := fmt.Sprintf("line %d", spanFrom)
			if lr.last != spanFrom {
				where = fmt.Sprintf("lines %d-%d (one alert spread over lines)", spanFrom, lr.last)
			}
			return fail(st, fmt.Sprintf("%s: %v (nothing in this body was accepted)", where, err))
		}
		alerts = append(alerts, a)
		n := ingest.AlertBytes(a)
		if w.spill != nil {
			// The spill keeps each alert as the JSON text it came as.
			records = append(records, bytes.Clone(body))
			n += int64(len(body))
		}
		bytesQueued += n
		if len(alerts) > w.q.Cap() || (len(alerts) > 1 && bytesQueued > w.q.MaxBytes()) {
			counted.Oversize.Add(1)
			w.in.tooLarge.Add(1)
			return fail(http.StatusRequestEntityTooLarge, tooLargeReason(len(alerts), w.q))
		}
		if err := charge(n); err != nil {
			st, msg := w.busy(rq, len(alerts), "the in-flight budget (webhook.maxInflightBytes) stayed spent")
			return fail(st, msg)
		}
	}
	if first {
		counted.Malformed.Add(1)
		return fail(http.StatusBadRequest, "empty body: expected one alert or one alert per line")
	}
	return alerts, records, loops, http.StatusOK, ""
}

// gatherDoc reads the rest of the body after the first line of a
// pretty-printed alert, up to maxEventBytes in all.
func (w *Server) gatherDoc(lr *lineReader, first []byte, charge func(int64) error) ([]byte, error) {
	limit := w.maxEvent + lineSlack
	if err := charge(int64(min(limit, 4*len(first)+4096))); err != nil {
		return nil, err
	}
	doc := make([]byte, 0, min(limit, 4*len(first)+4096))
	doc = append(doc, first...)
	doc = append(doc, '\n')
	for {
		line, err := lr.next()
		if err == io.EOF {
			return doc, nil
		}
		if err != nil {
			return nil, err
		}
		if len(doc)+len(line)+1 > limit {
			return nil, errLineTooLong
		}
		if cap(doc)-len(doc) < len(line)+1 {
			grown := min(max(2*cap(doc), len(doc)+len(line)+1), limit)
			if err := charge(int64(grown - cap(doc))); err != nil {
				return nil, err
			}
			nd := make([]byte, len(doc), grown)
			copy(nd, doc)
			doc = nd
		}
		doc = append(doc, line...)
		doc = append(doc, '\n')
	}
}

// readError turns an error met while reading the body into an answer.
func (w *Server) readError(rq *request, err error, lineNo, parsed int) (int, string, bool) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, errLineTooLong):
		w.c.Received.Add(1)
		w.c.Oversize.Add(1)
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("line %d: alert is over maxEventBytes (%d) (nothing in this body was accepted)", lineNo, w.maxEvent), true
	case errors.As(err, &tooBig):
		w.c.Oversize.Add(1)
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the limit of %d bytes (webhook.maxBodyBytes)", w.maxBody), true
	case rq.holdCtx != nil && rq.holdCtx.Err() != nil && rq.r.Context().Err() == nil:
		st, msg := w.busy(rq, parsed, "the in-flight budget (webhook.maxInflightBytes) stayed spent")
		return st, msg, true
	default:
		return http.StatusBadRequest, "cannot read body: " + err.Error(), true
	}
}

func (w *Server) addCounts(c *ingest.Counters) {
	w.c.Received.Add(c.Received.Load())
	w.c.Malformed.Add(c.Malformed.Load())
	w.c.Oversize.Add(c.Oversize.Load())
	w.c.LoopDropped.Add(c.LoopDropped.Load())
}

// bodyMetrics are the /metrics samples of the queue and of bodies in
// flight and held.
func (w *Server) bodyMetrics() []metric {
	return []metric{
		{"triage_queue_alerts", "gauge", "Alerts in the queue towards Falco.", uint64(w.q.Len())},
		{"triage_queue_max_alerts", "gauge", "Capacity of the queue in alerts (queueSize).", uint64(w.q.Cap())},
		{"triage_queue_bytes", "gauge", "Bytes of the alerts in the queue.", uint64(w.q.Bytes())},
		{"triage_queue_max_bytes", "gauge", "Byte budget of the queue (queueBytes).", uint64(w.q.MaxBytes())},
		{"triage_queue_waiting_producers", "gauge", "Producers (held requests, file inputs) waiting for room in the queue.", uint64(w.q.Waiting())},
		// The spill's bytes go here when the spill is wired in.
		{"triage_webhook_inflight_bytes", "gauge", "Bytes charged to request bodies being read or held (parsed alerts and buffers).", uint64(w.in.budget.Used())},
		{"triage_webhook_max_inflight_bytes", "gauge", "Budget of bytes for bodies in flight (webhook.maxInflightBytes).", uint64(w.in.budget.max)},
		{"triage_webhook_held_requests_total", "counter", "Requests held until their alerts fit (the queue or the in-flight budget was full when they came).", w.in.held.Load()},
		{"triage_webhook_held_alerts_total", "counter", "Alerts in held requests.", w.in.heldAlerts.Load()},
		{"triage_webhook_hold_abandoned_total", "counter", "Held requests whose sender went away before the answer (nothing of them queued).", w.in.abandoned.Load()},
		{"triage_webhook_too_large_total", "counter", "Bodies refused with 413 because they hold more than the whole queue takes.", w.in.tooLarge.Load()},
	}
}

// writeHoldHistogram writes the hold times of held requests as a
// Prometheus histogram.
func (w *Server) writeHoldHistogram(b *strings.Builder) {
	const name = "triage_webhook_hold_seconds"
	fmt.Fprintf(b, "# HELP %s Time held requests waited for room before their answer.\n# TYPE %s histogram\n", name, name)
	var cum uint64
	for i, le := range holdBuckets {
		cum += w.in.holdCounts[i].Load()
		fmt.Fprintf(b, "%s_bucket{le=\"%s\"} %d\n", name, strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	cum += w.in.holdCounts[len(holdBuckets)].Load()
	fmt.Fprintf(b, "%s_bucket{le=\"+Inf\"} %d\n", name, cum)
	fmt.Fprintf(b, "%s_sum %s\n", name, strconv.FormatFloat(time.Duration(w.in.holdNanos.Load()).Seconds(), 'f', -1, 64))
	fmt.Fprintf(b, "%s_count %d\n", name, cum)
}
