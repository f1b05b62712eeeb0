package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// connWait bounds every wait of these tests; the webhook's own timeouts
// are set far above it where the test must show they were not what acted.
const connWait = 15 * time.Second

// keptAlive is a client connection speaking HTTP/1.1 by hand.
type keptAlive struct {
	net.Conn
	br *bufio.Reader
}

func dialKeptAlive(t *testing.T, url string) *keptAlive {
	t.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/alerts")
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &keptAlive{Conn: c, br: bufio.NewReader(c)}
}

func (c *keptAlive) post(t *testing.T, alert string) {
	t.Helper()
	_, err := fmt.Fprintf(c, "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(alert), alert)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(connWait)))
	resp, err := http.ReadResponse(c.br, nil)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
}

// closed reports whether the server closed c, waiting at most d.
func (c *keptAlive) closed(t *testing.T, d time.Duration) bool {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	_, err := c.br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	require.Error(t, err, "the server sent bytes nobody asked for")
	return true
}

func metricValue(t *testing.T, url, name string) string {
	t.Helper()
	code, text := send(t, "GET", strings.TrimSuffix(url, "/alerts")+"/metrics", "", "")
	require.Equal(t, 200, code)
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	t.Fatalf("no metric %s in\n%s", name, text)
	return ""
}

// Idle keep-alive connections filling webhook.maxConnections do not keep
// a new client waiting: its POST is answered (within connWait, far below
// the 120 s idle timeout) and an idle connection was closed for it.
func TestWebhookIdleConnectionsDoNotBlockNewClient(t *testing.T) {
	const maxConns = 8
	w := openWebhook(t, fmt.Sprintf(`{"webhook": {"maxConnections": %d, "metrics": true, "idleTimeoutMs": 120000}}`, maxConns))
	var idle []*keptAlive
	for i := 0; i < maxConns; i++ {
		c := dialKeptAlive(t, w.url)
		c.post(t, falcoShape(fmt.Sprintf("idle-%d", i), i))
		idle = append(idle, c)
	}

	client := &http.Client{Timeout: connWait, Transport: &http.Transport{}}
	req, _ := http.NewRequest("POST", w.url, strings.NewReader(falcoShape("new client", 99)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	require.NoError(t, err, "the new client must be answered while %d idle connections hold the cap", maxConns)
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	closed := 0
	for _, c := range idle {
		if c.closed(t, 200*time.Millisecond) {
			closed++
		}
	}
	assert.GreaterOrEqual(t, closed, 1, "an idle connection was closed by the server to make room")
	assert.Less(t, closed, maxConns, "only what was needed was closed")
	assert.NotEqual(t, "0", metricValue(t, w.url, "triage_webhook_idle_closed_total"))

	evts := w.collect(t, maxConns+1)
	require.Len(t, evts, maxConns+1)
	assert.Equal(t, "new client", ruleOf(t, w.p, evts[maxConns], "alert.rule"))
}

// Clients that trickle their headers or their body hold their slot until
// webhook.readHeaderTimeoutMs / readTimeoutMs cut them, and no longer; a
// good POST meanwhile is answered, making room by closing the idle
// connection, never a trickling one.
func TestWebhookSlowlorisIsCutOthersServed(t *testing.T) {
	w := openWebhook(t, `{"webhook": {"maxConnections": 3, "metrics": true, "readHeaderTimeoutMs": 3000, "readTimeoutMs": 4000}}`)

	idle := dialKeptAlive(t, w.url)
	idle.post(t, falcoShape("before", 0))

	type trickler struct {
		name string
		c    *keptAlive
		cut  chan time.Time
	}
	// trickle writes the prefix, then one more byte of part every 100 ms
	// until a write fails or the server closes the connection.
	trickle := func(name, prefix, part string) trickler {
		c := dialKeptAlive(t, w.url)
		tr := trickler{name, c, make(chan time.Time, 1)}
		_, err := io.WriteString(c, prefix)
		require.NoError(t, err)
		go func() {
			defer func() { tr.cut <- time.Now() }()
			for i := 0; i < int(connWait/(100*time.Millisecond)); i++ {
				if _, err := io.WriteString(c, part[i%len(part):i%len(part)+1]); err != nil {
					return
				}
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) //nolint:errcheck
				if _, err := c.br.ReadByte(); err == nil || !isTimeoutErr(err) {
					return // closed by the server
				}
			}
		}()
		return tr
	}
	start := time.Now()
	headers := trickle("headers", "POST /alerts HTTP/1.1\r\nHost: x\r\n", "X-Slow: aaaaaaaa\r\n")
	body := trickle("body", "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"rule\":\"", `aaaaaaaaaa`)

	code, text := send(t, "POST", w.url, "application/json", falcoShape("good", 1))
	require.Equal(t, 200, code, text)
	for _, tr := range []trickler{headers, body} {
		select {
		case <-tr.cut:
			t.Fatalf("the %s trickler was cut before the good POST was answered (%v after start)", tr.name, time.Since(start))
		default:
		}
	}
	assert.True(t, idle.closed(t, connWait), "the idle connection made room")

	for _, tr := range []trickler{headers, body} {
		select {
		case at := <-tr.cut:
			t.Logf("%s trickler cut after %v", tr.name, at.Sub(start).Round(time.Millisecond))
			assert.GreaterOrEqual(t, at.Sub(start), 3*time.Second, "%s: cut by its timeout, not before", tr.name)
		case <-time.After(connWait):
			t.Fatalf("the %s trickler was not cut within %v", tr.name, connWait)
		}
	}
	assert.Equal(t, "1", metricValue(t, w.url, "triage_webhook_idle_closed_total"), "only the idle connection was closed to make room")

	evts := w.collect(t, 2)
	require.Len(t, evts, 2, "the trickled requests queued nothing")
	assert.Equal(t, "before", ruleOf(t, w.p, evts[0], "alert.rule"))
	assert.Equal(t, "good", ruleOf(t, w.p, evts[1], "alert.rule"))
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
