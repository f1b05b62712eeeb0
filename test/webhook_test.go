package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// falcoShape is an alert as Falco's http_output posts it (json_output).
func falcoShape(rule string, i int) string {
	return fmt.Sprintf(`{"hostname":"node-%d","output":"12:00:00.000000001: Warning %s","output_fields":{"container.id":"c%d","evt.time":1795236300000000001,"proc.pid":%d,"k8s.ns.name":null},"priority":"Warning","rule":%q,"source":"syscall","tags":["T1059","container","mitre_execution"],"time":"2026-11-21T04:45:00.000000001Z"}`, i, rule, i, 1000+i, rule)
}

// sidekickShape is an alert as Falcosidekick's webhook output sends it: uuid
// first, its key order, trailing zeros of the nanoseconds trimmed.
func sidekickShape(rule string, i int) string {
	return fmt.Sprintf(`{"uuid":"00000000-0000-4000-8000-%012d","output":"x","priority":"critical","rule":%q,"time":"2026-11-21T04:45:00.5Z","output_fields":{"container.id":"c%d"},"source":"syscall","tags":["T1620"],"hostname":"node-%d"}`, i, rule, i, i)
}

type webhookPlugin struct {
	p    *harness.Plugin
	inst *harness.Instance
	url  string
}

func openWebhook(t *testing.T, config string) *webhookPlugin {
	t.Helper()
	p := newPlugin(t, config)
	url := fmt.Sprintf("http://127.0.0.1:%d/alerts", freePort(t))
	inst, err := p.Open(url)
	require.NoError(t, err)
	t.Cleanup(inst.Close)
	return &webhookPlugin{p: p, inst: inst, url: url}
}

func send(t *testing.T, method, url, contentType, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (w *webhookPlugin) collect(t *testing.T, n int) []*harness.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evts, err := w.inst.Collect(ctx, n, 0)
	require.NoError(t, err)
	return evts
}

func ruleOf(t *testing.T, p *harness.Plugin, e *harness.Event, field string) string {
	t.Helper()
	v, err := p.Extract(e, harness.Request{Field: field})
	require.NoError(t, err)
	if !v[0].Present {
		return ""
	}
	return v[0].Str[0]
}

// Single alerts and NDJSON batches in both shapes arrive exactly once, in
// order, and nothing more arrives after them.
func TestWebhookEndToEnd(t *testing.T) {
	w := openWebhook(t, `{"batchSize": 16}`)
	var want []string
	for i := 0; i < 20; i++ {
		rule := fmt.Sprintf("falco single %d", i)
		code, body := send(t, "POST", w.url, "application/json", falcoShape(rule, i))
		require.Equal(t, 200, code, body)
		want = append(want, rule)
	}
	for i := 0; i < 20; i++ {
		rule := fmt.Sprintf("sidekick single %d", i)
		code, body := send(t, "PUT", w.url, "application/json; charset=utf-8", sidekickShape(rule, i), "User-Agent", "Falcosidekick")
		require.Equal(t, 200, code, body)
		want = append(want, rule)
	}
	for b := 0; b < 5; b++ {
		var nd strings.Builder
		for i := 0; i < 100; i++ {
			rule := fmt.Sprintf("batch %d line %d", b, i)
			if i%2 == 0 {
				nd.WriteString(falcoShape(rule, i))
			} else {
				nd.WriteString(sidekickShape(rule, i))
			}
			nd.WriteString("\n")
			want = append(want, rule)
		}
		code, body := send(t, "POST", w.url, "application/x-ndjson", nd.String())
		require.Equal(t, 200, code, body)
		assert.JSONEq(t, `{"accepted":100,"loop_dropped":0}`, body)
	}

	evts := w.collect(t, len(want))
	require.Len(t, evts, len(want))
	for i, e := range evts {
		assert.Equal(t, want[i], ruleOf(t, w.p, e, "alert.rule"), "event %d", i+1)
	}
	// The Sidekick shape keeps its uuid and normalizes the priority.
	assert.Equal(t, "00000000-0000-4000-8000-000000000000", ruleOf(t, w.p, evts[20], "alert.uuid"))
	assert.Equal(t, "Critical", ruleOf(t, w.p, evts[20], "alert.priority"))
	assert.Equal(t, "", ruleOf(t, w.p, evts[0], "alert.uuid"))

	// Idle: a timeout with no events, never success with zero events.
	more, rc, err := w.inst.NextBatch()
	require.NoError(t, err)
	assert.Equal(t, harness.Timeout, rc)
	assert.Empty(t, more)
}

// The loop guard drops triage's own alerts and counts them in the response.
func TestWebhookLoopGuardEndToEnd(t *testing.T) {
	w := openWebhook(t, "")
	own := strings.Replace(falcoShape("Triage critical alert received", 1), `"source":"syscall"`, `"source":"falco_alert"`, 1)
	code, body := send(t, "POST", w.url, "application/json", own+"\n"+falcoShape("real", 2))
	require.Equal(t, 200, code)
	assert.JSONEq(t, `{"accepted":1,"loop_dropped":1}`, body)
	evts := w.collect(t, 1)
	require.Len(t, evts, 1)
	assert.Equal(t, "real", ruleOf(t, w.p, evts[0], "alert.rule"))
	more, rc, err := w.inst.NextBatch()
	require.NoError(t, err)
	assert.Equal(t, harness.Timeout, rc)
	assert.Empty(t, more)
}

// A queue that stays full for webhook.maxHoldMs (here 100 ms, nobody
// draining) answers 503 with Retry-After and queues nothing of the body;
// once Falco drains the queue, the resend is accepted: nothing lost.
// (The hold itself is tested in hold_test.go.)
func TestWebhookBackpressureEndToEnd(t *testing.T) {
	w := openWebhook(t, `{"queueSize": 16, "webhook": {"maxHoldMs": 100}}`)
	body := func(prefix string, n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteString(falcoShape(fmt.Sprintf("%s-%d", prefix, i), i) + "\n")
		}
		return b.String()
	}
	code, _ := send(t, "POST", w.url, "application/json", body("a", 12))
	require.Equal(t, 200, code)
	code, msg := send(t, "POST", w.url, "application/json", body("b", 12))
	require.Equal(t, 503, code, msg)
	evts := w.collect(t, 12)
	require.Len(t, evts, 12)
	code, _ = send(t, "POST", w.url, "application/json", body("b", 12))
	require.Equal(t, 200, code)
	evts = w.collect(t, 12)
	require.Len(t, evts, 12)
	assert.Equal(t, "b-0", ruleOf(t, w.p, evts[0], "alert.rule"))
	assert.Equal(t, "b-11", ruleOf(t, w.p, evts[11], "alert.rule"))
}
