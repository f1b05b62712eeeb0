package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// loadAlerts is how many alerts the backpressure test sends.
const loadAlerts = 1_000_000

// Several senders post NDJSON batches into a small queue and retry on 503,
// as a careful sender would; Falco's side (the harness) drains it. Exactly
// the acknowledged alerts arrive: none lost, none twice. Batches that do
// not fit are held until they do (webhook.maxHoldMs), so 503s are not
// expected; the backpressure shows as held requests.
func TestBackpressureNoLossNoDuplicates(t *testing.T) {
	const senders, perBatch = 8, 100
	w := openWebhook(t, `{"queueSize": 2048, "batchSize": 512, "statsIntervalSec": 0, "webhook": {"metrics": true}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	var acked, refused atomic.Int64
	var sendErr atomic.Value
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	batches := loadAlerts / perBatch
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			var body bytes.Buffer
			for b := s; b < batches; b += senders {
				body.Reset()
				for i := 0; i < perBatch; i++ {
					id := b*perBatch + i
					fmt.Fprintf(&body, `{"uuid":"%d","rule":"load","priority":"Notice","time":"2026-11-21T04:45:00Z","source":"syscall","hostname":"h%d"}`+"\n", id, id%64)
				}
				for {
					if ctx.Err() != nil {
						return
					}
					resp, err := client.Post(w.url, "application/x-ndjson", bytes.NewReader(body.Bytes()))
					if err != nil {
						sendErr.Store(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						acked.Add(perBatch)
						break
					}
					if resp.StatusCode != http.StatusServiceUnavailable {
						sendErr.Store(fmt.Errorf("unexpected status %d", resp.StatusCode))
						return
					}
					refused.Add(1)
					time.Sleep(2 * time.Millisecond) // Retry-After says 1 s; a test need not wait that long
				}
			}
		}(s)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := make([]uint8, loadAlerts)
	received, dupes := 0, 0
	sendersDone := false
	for received < loadAlerts && ctx.Err() == nil {
		evts, _, err := w.inst.NextBatch()
		require.NoError(t, err)
		for _, e := range evts {
			v, err := w.p.Extract(e, harness.Request{Field: "alert.uuid"})
			require.NoError(t, err)
			id, err := strconv.Atoi(v[0].Str[0])
			require.NoError(t, err)
			if seen[id] != 0 {
				dupes++
			}
			seen[id]++
			received++
			e.Free()
		}
		if !sendersDone {
			select {
			case <-done:
				sendersDone = true
			default:
			}
		}
		if sendersDone && int64(received) >= acked.Load() && len(evts) == 0 {
			break
		}
	}
	<-done
	if err, ok := sendErr.Load().(error); ok {
		require.NoError(t, err)
	}
	// Whatever is still queued arrives; then nothing more.
	for i := 0; i < 5; i++ {
		evts, _, err := w.inst.NextBatch()
		require.NoError(t, err)
		received += len(evts)
	}
	assert.Equal(t, int64(loadAlerts), acked.Load(), "every batch was eventually acknowledged")
	assert.Equal(t, loadAlerts, received, "exactly the acknowledged alerts arrived")
	assert.Zero(t, dupes, "none twice")
	missing := 0
	for _, c := range seen {
		if c == 0 {
			missing++
		}
	}
	assert.Zero(t, missing, "none lost")
	held := holdMetric(t, w.url, "triage_webhook_held_requests_total")
	assert.Positive(t, held, "the queue filled up at least once (backpressure was exercised)")
	t.Logf("%d alerts from %d senders, %.0f requests held, %d refusals with 503, all delivered once", received, senders, held, refused.Load())
}
