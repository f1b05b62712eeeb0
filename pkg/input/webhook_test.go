package input

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/logging"
)

func testAlert(rule string) string {
	return fmt.Sprintf(`{"output":"o","priority":"Warning","rule":%q,"source":"syscall","time":"2026-11-21T04:45:00.682554049Z","output_fields":{"proc.name":"bash"},"hostname":"h"}`, rule)
}

type webhookFixture struct {
	w   *Webhook
	q   *AlertQueue
	c   *Counters
	url string
}

func startWebhook(t *testing.T, rawURL string, mutate func(*config.Config)) *webhookFixture {
	t.Helper()
	cfg := config.Default()
	cfg.MaxEventBytes = 4096
	cfg.Webhook.MaxBodyBytes = 64 << 10
	if mutate != nil {
		mutate(&cfg)
	}
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	q := NewAlertQueue(cfg.QueueSize)
	c := &Counters{}
	w, err := ListenWebhook(u, cfg, q, c, logging.New(io.Discard, 100, time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	return &webhookFixture{w: w, q: q, c: c, url: w.URL()}
}

func (f *webhookFixture) drain() []*alert.Alert {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	out, _ := f.q.PopBatch(nil, f.q.Cap(), timer, time.Millisecond)
	return out
}

func post(t *testing.T, method, url, ctype, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestWebhookSingleAndBatch(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)

	code, body, _ := post(t, "POST", f.url, "application/json", testAlert("one"))
	require.Equal(t, 200, code, body)
	assert.JSONEq(t, `{"accepted":1,"loop_dropped":0}`, body)

	// Falcosidekick: PUT, charset parameter.
	code, _, _ = post(t, "PUT", f.url, "application/json; charset=utf-8", testAlert("two"))
	require.Equal(t, 200, code)

	var nd strings.Builder
	for i := 0; i < 50; i++ {
		nd.WriteString(testAlert(fmt.Sprintf("batch-%d", i)))
		nd.WriteString("\r\n")
		if i%10 == 0 {
			nd.WriteString("\n   \n") // blank lines are ignored
		}
	}
	code, body, _ = post(t, "POST", f.url, "application/x-ndjson", nd.String())
	require.Equal(t, 200, code, body)
	assert.JSONEq(t, `{"accepted":50,"loop_dropped":0}`, body)

	got := f.drain()
	require.Len(t, got, 52)
	assert.Equal(t, "one", got[0].Rule)
	assert.Equal(t, "two", got[1].Rule)
	for i := 0; i < 50; i++ {
		assert.Equal(t, fmt.Sprintf("batch-%d", i), got[2+i].Rule)
	}
	assert.Equal(t, uint64(52), f.c.Queued.Load())
}

func TestWebhookPrettyPrintedAlert(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/", nil)
	pretty := "{\n  \"rule\": \"pretty\",\n  \"priority\": \"Notice\",\n  \"time\": \"2026-11-21T04:45:00Z\"\n}\n"
	code, body, _ := post(t, "POST", f.url, "application/json", pretty)
	require.Equal(t, 200, code, body)
	got := f.drain()
	require.Len(t, got, 1)
	assert.Equal(t, "pretty", got[0].Rule)
}

func TestWebhookRejectsWholeBodyOnOneBadLine(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	body := testAlert("a") + "\n" + testAlert("b") + "\n" + `{"rule":"c","priority":"Severe","time":"2026-11-21T04:45:00Z"}` + "\n"
	code, msg, _ := post(t, "POST", f.url, "application/json", body)
	assert.Equal(t, 400, code)
	assert.Contains(t, msg, "line 3")
	assert.Contains(t, msg, "Severe")
	assert.Empty(t, f.drain(), "nothing of a rejected body may be queued")
	assert.Equal(t, uint64(1), f.c.Malformed.Load())
}

func TestWebhookStatusCodes(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	base := strings.TrimSuffix(f.url, "/alerts")
	cases := []struct {
		name, method, url, ctype, body string
		code                           int
		mention                        string
	}{
		{"get", "GET", f.url, "", "", 405, "POST or PUT"},
		{"delete", "DELETE", f.url, "", "", 405, "POST or PUT"},
		{"wrong path", "POST", base + "/other", "application/json", testAlert("x"), 404, "/alerts"},
		{"form content type", "POST", f.url, "application/x-www-form-urlencoded", testAlert("x"), 415, "application/json"},
		{"xml content type", "POST", f.url, "application/xml", "<a/>", 415, "content type"},
		{"empty body", "POST", f.url, "application/json", "", 400, "empty body"},
		{"whitespace body", "POST", f.url, "application/json", " \n\t\n", 400, "empty body"},
		{"not json", "POST", f.url, "application/json", "hello", 400, "malformed JSON"},
		{"json array", "POST", f.url, "application/json", "[" + testAlert("x") + "]", 400, "object"},
		{"missing rule", "POST", f.url, "application/json", `{"priority":"Warning","time":"2026-11-21T04:45:00Z"}`, 400, `"rule"`},
		{"oversize alert", "POST", f.url, "application/json", `{"rule":"` + strings.Repeat("x", 5000) + `","priority":"Warning","time":"2026-11-21T04:45:00Z"}`, 413, "maxEventBytes"},
		{"oversize body", "POST", f.url, "application/json", strings.Repeat(testAlert("x")+"\n", 500), 413, "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, msg, hdr := post(t, c.method, c.url, c.ctype, c.body)
			assert.Equal(t, c.code, code, msg)
			assert.Contains(t, msg, c.mention)
			if c.code == 405 {
				assert.Equal(t, "POST, PUT", hdr.Get("Allow"))
			}
		})
	}
	assert.Empty(t, f.drain())
}

func TestWebhookChunkedBodyOverCap(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 1000; i++ { // ~190 KB, over the 64 KiB cap
			if _, err := pw.Write([]byte(testAlert("x") + "\n")); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", f.url, pr) // no Content-Length: chunked
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 413, resp.StatusCode)
	assert.Empty(t, f.drain())
}

func TestWebhookQueueFullIs503AndAtomic(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) { c.QueueSize = 16 })
	var ten strings.Builder
	for i := 0; i < 10; i++ {
		ten.WriteString(testAlert("x") + "\n")
	}
	code, _, _ := post(t, "POST", f.url, "application/json", ten.String())
	require.Equal(t, 200, code)
	code, msg, hdr := post(t, "POST", f.url, "application/json", ten.String()) // 20 > 16
	assert.Equal(t, 503, code, msg)
	assert.Equal(t, "1", hdr.Get("Retry-After"))
	assert.Len(t, f.drain(), 10, "the refused body must not be partly queued")
	assert.Equal(t, uint64(10), f.c.QueueFull.Load())
	// After draining, the retry succeeds.
	code, _, _ = post(t, "POST", f.url, "application/json", ten.String())
	assert.Equal(t, 200, code)
}

func TestWebhookLoopGuard(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	own := strings.Replace(testAlert("triage rule"), `"source":"syscall"`, `"source":"falco_alert"`, 1)
	code, body, _ := post(t, "POST", f.url, "application/json", own+"\n"+testAlert("kept"))
	require.Equal(t, 200, code)
	assert.JSONEq(t, `{"accepted":1,"loop_dropped":1}`, body)
	got := f.drain()
	require.Len(t, got, 1)
	assert.Equal(t, "kept", got[0].Rule)
	assert.Equal(t, uint64(1), f.c.LoopDropped.Load())
}

func TestWebhookMissingPathMeansRoot(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0", nil)
	assert.True(t, strings.HasSuffix(f.url, "/"), f.url)
	code, _, _ := post(t, "POST", f.url, "application/json", testAlert("x"))
	assert.Equal(t, 200, code)
}

func TestWebhookEmptyHostBindsLoopback(t *testing.T) {
	f := startWebhook(t, "http://:0/a", nil)
	host, _, err := net.SplitHostPort(f.w.Addr())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)
}

func TestWebhookBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	u, _ := url.Parse("http://" + ln.Addr().String() + "/alerts")
	_, err = ListenWebhook(u, config.Default(), NewAlertQueue(16), &Counters{}, logging.Default())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already in use")
	assert.Contains(t, err.Error(), ln.Addr().String())
}

func TestWebhookRefusesNonLoopbackUnlessAllowed(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "[::]", "192.0.2.1", "example.com"} {
		u, _ := url.Parse("http://" + host + ":0/alerts")
		_, err := ListenWebhook(u, config.Default(), NewAlertQueue(16), &Counters{}, logging.Default())
		require.Error(t, err, host)
		assert.Contains(t, err.Error(), "allowNonLoopback", host)
	}
	f := startWebhook(t, "http://0.0.0.0:0/alerts", func(c *config.Config) { c.Webhook.AllowNonLoopback = true })
	assert.NotEmpty(t, f.w.Addr())
}

func TestWebhookRejectsBadURLs(t *testing.T) {
	for _, raw := range []string{"https://127.0.0.1:0/", "http://127.0.0.1:99999/", "http://127.0.0.1:0/a?x=1", "http://u:p@127.0.0.1:0/"} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		_, err = ListenWebhook(u, config.Default(), NewAlertQueue(16), &Counters{}, logging.Default())
		assert.Error(t, err, raw)
	}
}
