package plugin

import (
	"fmt"
	"io"
	"time"

	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/source"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/cabi"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/input"
	"github.com/triage-dev/triage/pkg/input/webhook"
)

// payloadHeadroom is room in each event buffer beyond maxEventBytes for
// what the payload adds to the alert (section headers, later enrichment).
const payloadHeadroom = 64 << 10

// Instance is one opened input: the queue it feeds and the batches handed
// to Falco.
type Instance struct {
	source.BaseInstance

	p     *Plugin
	in    *input.Input
	q     *ingest.AlertQueue
	idle  time.Duration
	timer *time.Timer
	batch []*alert.Alert
	buf   []byte
	rec   event.Record
	eof   bool

	stopStats chan struct{}
	statsDone chan struct{}
}

func newInstance(p *Plugin, params string) (*Instance, error) {
	spec, err := input.ParseOpenParams(params)
	if err != nil {
		return nil, err
	}
	q := ingest.NewAlertQueue(p.cfg.QueueSize, int64(p.cfg.QueueBytes))
	in, err := input.Start(spec, p.cfg, q, &p.counters, p.log)
	if err != nil {
		return nil, err
	}
	evts, err := cabi.NewEventWriters(p.cfg.BatchSize, p.cfg.MaxEventBytes+payloadHeadroom)
	if err != nil {
		in.Stop(time.Second)
		return nil, fmt.Errorf("cannot allocate event buffers: %w", err)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	i := &Instance{
		p:         p,
		in:        in,
		q:         q,
		idle:      time.Duration(p.cfg.IdleTimeoutMs) * time.Millisecond,
		timer:     timer,
		batch:     make([]*alert.Alert, 0, p.cfg.BatchSize),
		stopStats: make(chan struct{}),
		statsDone: make(chan struct{}),
	}
	i.SetEvents(evts)
	go i.logStats(time.Duration(p.cfg.StatsIntervalSec) * time.Second)
	return i, nil
}

// NextBatch hands Falco the queued alerts as events. When nothing arrives
// within the idle timeout it returns ErrTimeout with no events — never
// success with zero events, which Falco treats as fatal. EOF comes only
// from a finite input, once drained.
func (i *Instance) NextBatch(pState sdk.PluginState, evts sdk.EventWriters) (n int, err error) {
	defer recoverInto(&err, "next_batch", i.p.log)
	i.p.faults.maybePanic("next_batch")
	// plugin-sdk-go v0.8.3 routes plugin_open to the most recently
	// initialized plugin state, whatever state Falco passed; next_batch
	// gets the right one, so enrichment uses the engine of the state
	// Falco drives.
	eng := i.p.engine
	if ps, ok := pState.(*Plugin); ok && ps.engine != nil {
		eng = ps.engine
	}
	// Falco asks for more only after processing what it got: the previous
	// batch is delivered, and its sources may forget it (file offsets,
	// spill records).
	i.q.Ack()
	if i.eof {
		return 0, sdk.ErrEOF
	}
	var popErr error
	i.batch, popErr = i.q.PopBatch(i.batch[:0], evts.Len(), i.timer, i.idle)
	i.in.BeforeBatch(eng) // state changes the input queued before these alerts (Kafka: replay, drop)
	for _, a := range i.batch {
		if i.writeEvent(eng, evts.Get(n), a) {
			n++
		}
	}
	for _, a := range i.batch {
		alert.Release(a) // encoded into the event: its slices can serve the next parse
	}
	clear(i.batch)
	i.rec.Alert = alert.Alert{} // the record shared the released alert's slices
	i.p.counters.Delivered.Add(uint64(n))
	switch {
	case n > 0:
		return n, nil
	case popErr == io.EOF:
		i.eof = true
		return 0, sdk.ErrEOF
	default:
		return 0, sdk.ErrTimeout
	}
}

// writeEvent encodes one alert into an event. A failure skips the alert,
// counted and logged, rather than failing the batch.
func (i *Instance) writeEvent(eng *engine.Engine, w sdk.EventWriter, a *alert.Alert) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			i.p.counters.Skipped.Add(1)
			i.p.log.Limitedf("alert %q skipped: recovered from panic: %v", a.Rule, v)
			ok = false
		}
	}()
	i.p.faults.maybePanic("alert")
	eng.Process(a, &i.rec)
	i.buf = event.Encode(i.buf[:0], &i.rec)
	if _, err := w.Writer().Write(i.buf); err != nil {
		i.p.counters.Skipped.Add(1)
		i.p.log.Limitedf("alert %q skipped: event payload of %d bytes does not fit: %v", a.Rule, len(i.buf), err)
		return false
	}
	w.SetTimestamp(uint64(a.Time))
	return true
}

// Close stops the input (the webhook finishes in-flight requests first).
func (i *Instance) Close() {
	defer recoverInto(nil, "close", i.p.log)
	close(i.stopStats)
	<-i.statsDone
	i.q.Ack() // Falco processed the last batch before closing
	i.in.Stop(5 * time.Second)
	tr := i.p.engine.Tracker()
	i.p.log.Printf("closed %s input; counters: %s entities=%d entities_evicted=%d late_alerts=%d; %d alerts left in the queue",
		i.in.Spec.Kind, i.p.counters.Snapshot(), tr.Tracked(), tr.Evicted(), tr.Late(), i.q.Len())
	i.p.faults.maybePanic("close")
}

// Webhook returns the webhook input, or nil (tests read its bound address).
func (i *Instance) Webhook() *webhook.Server { return i.in.Webhook }

func (i *Instance) logStats(every time.Duration) {
	defer close(i.statsDone)
	if every <= 0 {
		<-i.stopStats
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last ingest.Snapshot
	var lastEvicted uint64
	for {
		select {
		case <-i.stopStats:
			return
		case <-t.C:
			s := i.p.counters.Snapshot()
			tr := i.p.engine.Tracker()
			if s != last || tr.Evicted() != lastEvicted {
				i.p.log.Printf("counters: %s entities=%d entities_evicted=%d late_alerts=%d", s, tr.Tracked(), tr.Evicted(), tr.Late())
				if tr.Evicted() > lastEvicted {
					i.p.log.Printf("%d entities evicted at correlation.maxEntities=%d since the last report: their stories restart", tr.Evicted()-lastEvicted, i.p.cfg.Correlation.MaxEntities)
				}
				last, lastEvicted = s, tr.Evicted()
			}
		}
	}
}
