package webhook

import (
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/input/spill"
)

// spillSide is the webhook's way to the on-disk spill: bodies the queue
// has no room for within queueWait are written to disk and answered 200
// once durable (spill.sync), so a sender's 2xx survives a kill -9 of
// triage; the spill's feeder moves them into the queue in arrival order.
type spillSide struct {
	feeder    *spill.Feeder
	store     *spill.Spill
	queueWait time.Duration
	spilled   atomic.Uint64 // alerts answered 200 from the spill
}

// SetSpill routes bodies that do not fit the queue to a spill. Call it
// before the first request (input.Start does, right after Listen).
func (w *Server) SetSpill(f *spill.Feeder, s *spill.Spill, queueWait time.Duration) {
	w.spill = &spillSide{feeder: f, store: s, queueWait: queueWait}
}

// placeBody queues a body, or spills it: in the queue when it fits within
// spill.queueWaitMs and nothing is waiting on disk, else on disk (200 once
// durable). Only when the spill stays full for the whole hold is the
// answer 503.
func (w *Server) placeBody(rq *request, alerts []*alert.Alert, records [][]byte) (int, string) {
	sp := w.spill
	placed, err := sp.feeder.Accept(rq.hold(), sp.queueWait, alerts, records)
	switch {
	case err == nil:
		if placed == spill.Spilled {
			sp.spilled.Add(uint64(len(alerts)))
		}
		return http.StatusOK, ""
	case errors.Is(err, spill.ErrTooLarge):
		w.c.Oversize.Add(1)
		w.in.tooLarge.Add(1)
		return http.StatusRequestEntityTooLarge, "body is larger than the whole spill (spill.maxBytes); send it in smaller bodies; nothing of this body was queued"
	case rq.r.Context().Err() != nil:
		return w.abandon(rq, len(alerts))
	case errors.Is(err, spill.ErrFull), rq.hold().Err() != nil:
		return w.busy(rq, len(alerts), "the queue and the spill stayed full")
	default:
		w.log.Limitedf("webhook: spill failed for %d alerts from %s: %v", len(alerts), rq.r.RemoteAddr, err)
		return http.StatusInternalServerError, "spill failed: " + err.Error() + "; nothing of this body was queued"
	}
}

func (w *Server) spillMetrics() []metric {
	sp := w.spill
	if sp == nil {
		return nil
	}
	st := sp.feeder.Stats()
	fileBytes, _ := sp.store.FileSize()
	return []metric{
		{"triage_spill_bytes", "gauge", "Bytes of alerts in the on-disk spill, not yet delivered to Falco.", uint64(sp.store.Bytes())},
		{"triage_spill_max_bytes", "gauge", "The spill's size limit (spill.maxBytes).", uint64(sp.store.MaxBytes())},
		{"triage_spill_alerts", "gauge", "Alerts in the on-disk spill, not yet delivered to Falco.", uint64(sp.store.Len())},
		{"triage_spill_file_bytes", "gauge", "Size of the spill's file on disk.", uint64(max(fileBytes, 0))},
		{"triage_spill_spilled_total", "counter", "Alerts answered 200 from the spill (the queue had no room).", sp.spilled.Load()},
		{"triage_spill_fed_total", "counter", "Spilled alerts moved into the queue.", st.Fed},
		{"triage_spill_dropped_total", "counter", "Spilled records that no longer parsed or were corrupt, skipped.", st.Dropped + st.Corrupt},
	}
}
