package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// Tests of issue 14 for the webhook: bodies are parsed as a stream, a body
// larger than the whole queue is refused with 413, and a body that does not
// fit now is held (not refused) so senders that never resend lose nothing.

// holdMetric reads one sample from /metrics (webhook.metrics: true).
func holdMetric(t *testing.T, alertsURL, name string) float64 {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(alertsURL, "/alerts") + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, line)
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// waitMetric polls /metrics until cond holds for the sample, bounded.
func waitMetric(t *testing.T, alertsURL, name string, cond func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond(holdMetric(t, alertsURL, name)) {
		require.True(t, time.Now().Before(deadline), "timed out waiting on %s", name)
		time.Sleep(5 * time.Millisecond)
	}
}

// The hostile body, 16 MiB of "1\n" lines, is answered 400 naming
// line 1 while the sender has sent only 1 MiB of it and waits: a server
// that read (or split) the whole body first would never answer.
func TestWebhookHostileBodyAnsweredEarly(t *testing.T) {
	w := openWebhook(t, `{"statsIntervalSec": 0, "webhook": {"metrics": true}}`)
	host := strings.TrimPrefix(strings.TrimSuffix(w.url, "/alerts"), "http://")
	conn, err := net.Dial("tcp", host)
	require.NoError(t, err)
	defer conn.Close()
	const total = 16 << 20
	_, err = fmt.Fprintf(conn, "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", total)
	require.NoError(t, err)
	chunk := []byte(strings.Repeat("1\n", 32<<10)) // 64 KiB
	sent := 0
	for i := 0; i < 16; i++ {
		n, err := conn.Write(chunk)
		require.NoError(t, err)
		sent += n
	}
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no answer after %d of %d bytes", sent, total)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode, string(b))
	assert.Contains(t, string(b), "line 1:")
	t.Logf("answered %d after the client sent %d of %d bytes: %s", resp.StatusCode, sent, total, strings.TrimSpace(string(b)))
	assert.Equal(t, 1.0, holdMetric(t, w.url, "triage_alerts_received_total"), "only line 1 was parsed")
	assert.Equal(t, 0.0, holdMetric(t, w.url, "triage_webhook_inflight_bytes"))
}

// A body with more alerts than queueSize, or more bytes than queueBytes, is
// refused with 413 naming the limit, at once and with an empty queue:
// never 503, which it would get forever.
func TestWebhookBodyLargerThanQueueIs413EndToEnd(t *testing.T) {
	w := openWebhook(t, `{"queueSize": 16, "queueBytes": 1048576, "webhook": {"metrics": true}}`)
	var nd strings.Builder
	for i := 0; i < 17; i++ {
		nd.WriteString(falcoShape(fmt.Sprintf("r%d", i), i) + "\n")
	}
	code, msg := send(t, "POST", w.url, "application/json", nd.String())
	assert.Equal(t, 413, code, msg)
	assert.Contains(t, msg, "queueSize 16")

	nd.Reset()
	for i := 0; i < 6; i++ { // 6 alerts of 200 KiB > 1 MiB
		fmt.Fprintf(&nd, `{"rule":"big %d","priority":"Warning","time":"2026-11-21T04:45:00Z","source":"syscall","output":%q}`+"\n", i, strings.Repeat("x", 200<<10))
	}
	code, msg = send(t, "POST", w.url, "application/json", nd.String())
	assert.Equal(t, 413, code, msg)
	assert.Contains(t, msg, "queueBytes 1048576")
	assert.Equal(t, 0.0, holdMetric(t, w.url, "triage_alerts_queue_full_total"))
	assert.Equal(t, 0.0, holdMetric(t, w.url, "triage_queue_alerts"))
	evts, rc, err := w.inst.NextBatch()
	require.NoError(t, err)
	assert.Equal(t, harness.Timeout, rc)
	assert.Empty(t, evts)
}

// With a stalled consumer and a small queue a POST is held, then answered
// 200 once Falco drains; with a short maxHoldMs, 503 after the hold.
func TestWebhookHoldEndToEnd(t *testing.T) {
	for _, c := range []struct {
		name, config string
		want         int
	}{
		{"drained", `{"queueSize": 16, "batchSize": 64, "webhook": {"metrics": true}}`, 200},
		{"expired", `{"queueSize": 16, "batchSize": 64, "webhook": {"metrics": true, "maxHoldMs": 200}}`, 503},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := openWebhook(t, c.config)
			body := func(prefix string) string {
				var b strings.Builder
				for i := 0; i < 12; i++ {
					b.WriteString(falcoShape(fmt.Sprintf("%s-%d", prefix, i), i) + "\n")
				}
				return b.String()
			}
			code, msg := send(t, "POST", w.url, "application/json", body("a"))
			require.Equal(t, 200, code, msg)
			type answer struct {
				code int
				msg  string
				err  error
			}
			done := make(chan answer, 1)
			go func() {
				resp, err := http.Post(w.url, "application/json", strings.NewReader(body("b")))
				if err != nil {
					done <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				done <- answer{code: resp.StatusCode, msg: string(b)}
			}()
			if c.want == 503 {
				a := <-done // nobody drains: the hold expires
				require.NoError(t, a.err)
				assert.Equal(t, 503, a.code, a.msg)
				assert.Contains(t, a.msg, "maxHoldMs")
				assert.Equal(t, 12.0, holdMetric(t, w.url, "triage_alerts_queue_full_total"))
				assert.Len(t, w.collect(t, 12), 12, "only the first body was queued")
				return
			}
			waitMetric(t, w.url, "triage_queue_waiting_producers", func(v float64) bool { return v == 1 })
			select {
			case a := <-done:
				t.Fatalf("answered %d %v while the queue was full", a.code, a.err)
			default:
			}
			evts := w.collect(t, 12) // Falco comes back: room for the held body
			require.Len(t, evts, 12)
			a := <-done
			require.NoError(t, a.err)
			require.Equal(t, 200, a.code, a.msg)
			evts = w.collect(t, 12)
			require.Len(t, evts, 12)
			assert.Equal(t, "b-0", ruleOf(t, w.p, evts[0], "alert.rule"))
			assert.Equal(t, 1.0, holdMetric(t, w.url, "triage_webhook_held_requests_total"))
			assert.Equal(t, 1.0, holdMetric(t, w.url, "triage_webhook_hold_seconds_count"))
			assert.Equal(t, 0.0, holdMetric(t, w.url, "triage_alerts_queue_full_total"))
		})
	}
}

// The non-retrying sender (Falcosidekick's webhook output behaves
// so): one request per alert, no retry on any status, a 10 s client
// timeout, a burst of 2,000 alerts paced 10× faster than a slowed consumer.
// Every alert it sent arrives exactly once and none is lost: requests that
// do not fit are held, so the sender is slowed to the consumer's pace.
// Sizes keep the hold far under 10 s: at most queueSize + senders alerts
// wait ahead of a held request, drained at ~400 alerts/s (~0.2 s).
func TestWebhookNonRetryingBurstLosesNothing(t *testing.T) {
	const (
		alerts      = 2000
		senders     = 16
		batch       = 8                     // batchSize: alerts per next_batch
		consumerGap = 20 * time.Millisecond // ~400 alerts/s
		sendRate    = 4000                  // alerts/s attempted: 10× the consumer
	)
	w := openWebhook(t, fmt.Sprintf(`{"queueSize": 64, "batchSize": %d, "statsIntervalSec": 0, "webhook": {"metrics": true}}`, batch))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	defer client.CloseIdleConnections()

	var lost atomic.Int64
	var sentOK sync.Map
	var failures sync.Map
	next := make(chan int)
	go func() { // pace the burst
		tick := time.NewTicker(time.Second / sendRate)
		defer tick.Stop()
		for i := 0; i < alerts; i++ {
			<-tick.C
			next <- i
		}
		close(next)
	}()
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				body := fmt.Sprintf(`{"uuid":"%d","rule":"burst","priority":"Notice","time":"2026-11-21T04:45:00Z","source":"syscall","hostname":"h"}`, id)
				resp, err := client.Post(w.url, "application/json; charset=utf-8", strings.NewReader(body))
				if err != nil {
					lost.Add(1)
					failures.Store(id, err.Error())
					continue // no retry
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					lost.Add(1)
					failures.Store(id, resp.Status)
					continue // no retry
				}
				sentOK.Store(id, true)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seen := map[int]int{}
	sendersDone := false
	for ctx.Err() == nil {
		evts, _, err := w.inst.NextBatch()
		require.NoError(t, err)
		for _, e := range evts {
			id, err := strconv.Atoi(ruleOf(t, w.p, e, "alert.uuid"))
			require.NoError(t, err)
			seen[id]++
			e.Free()
		}
		if !sendersDone {
			select {
			case <-done:
				sendersDone = true
			default:
			}
		}
		if sendersDone && len(evts) == 0 {
			break
		}
		time.Sleep(consumerGap) // the slowed consumer
	}
	require.NoError(t, ctx.Err())
	failures.Range(func(k, v any) bool { t.Errorf("alert %v: %v", k, v); return true })
	assert.Zero(t, lost.Load(), "alerts lost by the non-retrying sender")
	okCount, dupes := 0, 0
	sentOK.Range(func(k, _ any) bool {
		okCount++
		if seen[k.(int)] != 1 {
			t.Errorf("alert %d acknowledged but arrived %d times", k, seen[k.(int)])
		}
		return true
	})
	for id, n := range seen {
		if n > 1 {
			dupes++
		}
		if _, ok := sentOK.Load(id); !ok {
			t.Errorf("alert %d arrived but was not acknowledged", id)
		}
	}
	assert.Equal(t, alerts, okCount, "every alert acknowledged")
	assert.Equal(t, alerts, len(seen), "every alert arrived")
	assert.Zero(t, dupes, "none twice")
	held := holdMetric(t, w.url, "triage_webhook_held_requests_total")
	assert.Positive(t, held, "the queue filled up: requests were held")
	t.Logf("%d alerts, %d senders, %.0f requests held (hold time sum %.2f s over %.0f holds), lost %d",
		alerts, senders, held, holdMetric(t, w.url, "triage_webhook_hold_seconds_sum"),
		holdMetric(t, w.url, "triage_webhook_hold_seconds_count"), lost.Load())
}
