package webhook

import (
	"bufio"
	"container/list"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/config"
)

// rawConn is a client connection speaking HTTP/1.1 by hand, so the test
// decides when it is idle, busy or silent.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) request(t *testing.T, rule string) {
	t.Helper()
	a := testAlert(rule)
	_, err := fmt.Fprintf(c, "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(a), a)
	require.NoError(t, err)
}

// status reads one answer, waiting at most d.
func (c *rawConn) status(t *testing.T, d time.Duration) (string, error) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	return resp.Status, nil
}

// roundTrip sends a request and requires a 200 within waitFor.
func (c *rawConn) roundTrip(t *testing.T, rule string) {
	t.Helper()
	c.request(t, rule)
	st, err := c.status(t, waitFor)
	require.NoError(t, err, rule)
	require.Equal(t, "200 OK", st, rule)
}

// closedByServer reports whether the server closed c within d.
func (c *rawConn) closedByServer(t *testing.T, d time.Duration) bool {
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// eventually polls cond for up to waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", waitFor, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counts returns the listener's idle connections and those it could close
// to make room (idle or new, nothing read).
func (l *limitListener) counts() (idle, silent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	idle = l.idle.Len()
	for _, ls := range []*list.List{&l.idle, &l.fresh} {
		for e := ls.Front(); e != nil; e = e.Next() {
			if !e.Value.(*trackedConn).busy() {
				silent++
			}
		}
	}
	return idle, silent
}

// With every slot held by a connection in the middle of a request, a new
// connection is not served (none of them is closed for it) until one
// closes; then it is.
func TestWebhookConnectionCap(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) { c.Webhook.MaxConnections = 2 })
	// Two kept-alive connections, each answered once, then each in the
	// middle of its next request's headers: busy, not idle.
	var held []*rawConn
	for i := 0; i < 2; i++ {
		c := dialRaw(t, f.w.Addr())
		c.roundTrip(t, fmt.Sprintf("held-%d", i))
		_, err := io.WriteString(c, "POST /alerts HTTP/1.1\r\nHost: x\r\n")
		require.NoError(t, err)
		held = append(held, c)
	}
	eventually(t, "both held connections read by the server", func() bool {
		_, silent := f.w.conns.counts()
		return silent == 0
	})
	require.Equal(t, 2, f.w.conns.Open())

	// A third connection is accepted by the kernel but not served.
	third := dialRaw(t, f.w.Addr())
	third.request(t, "third")
	_, err := third.status(t, 300*time.Millisecond)
	require.True(t, isTimeout(err), "the third connection must wait for a slot, got %v", err)
	assert.Equal(t, 2, f.w.conns.Open())
	assert.Zero(t, f.w.conns.ClosedIdle(), "a busy connection is never closed to make room")
	assert.False(t, held[1].closedByServer(t, 10*time.Millisecond))

	// Closing one held connection lets it in; its request is then answered.
	held[0].Close()
	st, err := third.status(t, waitFor)
	require.NoError(t, err)
	assert.Equal(t, "200 OK", st)
	assert.Len(t, f.drain(), 3)
	assert.Zero(t, f.w.conns.ClosedIdle())
}

// At the cap, a new client closes the connection idle the longest and is
// served; the other idle connection keeps working; /metrics counts it.
func TestWebhookIdleConnectionsMakeRoom(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.MaxConnections = 2
		c.Webhook.Metrics = true
	})
	a := dialRaw(t, f.w.Addr())
	a.roundTrip(t, "a")
	// The server turns a connection idle just after the client has its
	// answer: wait for it, so that a is idle the longest.
	eventually(t, "a idle", func() bool { idle, _ := f.w.conns.counts(); return idle == 1 })
	b := dialRaw(t, f.w.Addr())
	b.roundTrip(t, "b")
	eventually(t, "two idle connections", func() bool { idle, _ := f.w.conns.counts(); return idle == 2 })

	c := dialRaw(t, f.w.Addr())
	c.roundTrip(t, "c") // within waitFor, far below the 120 s idle timeout
	assert.True(t, a.closedByServer(t, waitFor), "the longest-idle connection is closed")
	assert.Equal(t, uint64(1), f.w.conns.ClosedIdle())
	assert.Equal(t, 2, f.w.conns.Open())
	// The server turns c idle after the client has its answer: wait, so
	// that b's next request makes b the most recently idle.
	eventually(t, "b and c idle", func() bool { idle, _ := f.w.conns.counts(); return idle == 2 })
	b.roundTrip(t, "b again") // the other one was left alone

	eventually(t, "b and c idle", func() bool { idle, _ := f.w.conns.counts(); return idle == 2 })
	// Fetching /metrics takes a connection too: c, idle the longest, makes room.
	resp, err := (&http.Client{Timeout: waitFor}).Get("http://" + f.w.Addr() + "/metrics")
	require.NoError(t, err)
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(text), "\n# TYPE triage_webhook_idle_closed_total counter\ntriage_webhook_idle_closed_total 2\n")
	assert.True(t, c.closedByServer(t, waitFor))
	assert.False(t, b.closedByServer(t, 10*time.Millisecond))

	var rules []string
	for _, al := range f.drain() {
		rules = append(rules, al.Rule)
	}
	assert.Equal(t, []string{"a", "b", "c", "b again"}, rules)
}

// Connections that connect and send nothing make room, oldest first, long
// before the header timeout would cut them.
func TestWebhookSilentConnectionsMakeRoom(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.MaxConnections = 2
		c.Webhook.ReadHeaderTimeoutMs = 120000
		c.Webhook.ReadTimeoutMs = 120000
	})
	first := dialRaw(t, f.w.Addr())
	eventually(t, "first accepted", func() bool { return f.w.conns.Open() == 1 })
	second := dialRaw(t, f.w.Addr())
	eventually(t, "second accepted", func() bool { return f.w.conns.Open() == 2 })

	c := dialRaw(t, f.w.Addr())
	c.roundTrip(t, "c")
	assert.True(t, first.closedByServer(t, waitFor), "the oldest silent connection is closed")
	assert.False(t, second.closedByServer(t, 10*time.Millisecond))
	assert.Equal(t, uint64(1), f.w.conns.ClosedIdle())
}

// TLS connections are followed through the *tls.Conn net/http holds.
func TestWebhookIdleTLSConnectionMakesRoom(t *testing.T) {
	pki := newTestPKI(t)
	f := startWebhook(t, "https://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.TLSCertFile, c.Webhook.TLSKeyFile = pki.certFile, pki.keyFile
		c.Webhook.MaxConnections = 1
	})
	dial := func() *rawConn {
		c, err := tls.Dial("tcp", f.w.Addr(), &tls.Config{RootCAs: pki.caPool, ServerName: "127.0.0.1"})
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return &rawConn{Conn: c, br: bufio.NewReader(c)}
	}
	a := dial()
	a.roundTrip(t, "a")
	eventually(t, "a idle", func() bool { idle, _ := f.w.conns.counts(); return idle == 1 })
	b := dial()
	b.roundTrip(t, "b")
	assert.True(t, a.closedByServer(t, waitFor))
	assert.Equal(t, uint64(1), f.w.conns.ClosedIdle())
}

// Many keep-alive clients over a small cap: every request is answered,
// and the listener never holds more than the cap.
func TestWebhookConnectionChurn(t *testing.T) {
	const maxConns, clients, requests = 3, 12, 15
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.MaxConnections = maxConns
		c.QueueSize = clients * requests
	})
	stop := make(chan struct{})
	var over sync.WaitGroup
	over.Add(1)
	peak := 0
	got := map[string]int{}
	go func() {
		defer over.Done()
		for {
			for _, a := range f.drain() {
				got[a.Rule]++
			}
			select {
			case <-stop:
				for _, a := range f.drain() {
					got[a.Rule]++
				}
				return
			default:
			}
			peak = max(peak, f.w.conns.Open())
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, clients*requests)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Idempotency-Key makes net/http's client resend a request
			// whose kept-alive connection the server closed, as curl does.
			client := &http.Client{Timeout: 2 * waitFor, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for j := 0; j < requests; j++ {
				req, _ := http.NewRequest("POST", f.url, strings.NewReader(testAlert(fmt.Sprintf("c%d-%d", i, j))))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", fmt.Sprintf("c%d-%d", i, j))
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	over.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.LessOrEqual(t, peak, maxConns)
	assert.Len(t, got, clients*requests, "every request arrived")
	for rule, n := range got {
		assert.Equal(t, 1, n, "%s arrived %d times", rule, n)
	}
}

// A flood of connections that send nothing does not queue a client with a
// request behind them: at the cap, silent newcomers are parked (not served,
// not counted) while the accept loop goes on, and the client with a request
// takes the slot of the oldest silent connection. The silent grace is an
// hour here, so nothing else could make room within the test.
func TestWebhookSilentFloodDoesNotQueueClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := newLimitListener(ln, 2, nil)
	l.grace, l.dataGrace = time.Hour, 0
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }), //nolint:errcheck
		ConnState: l.ConnState,
	}
	go srv.Serve(l) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	holders := []*rawConn{dialRaw(t, addr)}
	eventually(t, "first holder accepted", func() bool { return l.Open() == 1 })
	holders = append(holders, dialRaw(t, addr))
	eventually(t, "second holder accepted", func() bool { return l.Open() == 2 })
	const flood = 6
	for i := 0; i < flood; i++ {
		dialRaw(t, addr)
	}
	eventually(t, "the flood parked", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.parked) == flood
	})

	c := dialRaw(t, addr)
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	st, err := c.status(t, waitFor)
	require.NoError(t, err, "the client with a request must not wait behind silent connections")
	assert.Equal(t, "200 OK", st)
	assert.True(t, holders[0].closedByServer(t, waitFor), "the oldest silent connection made room")
	assert.False(t, holders[1].closedByServer(t, 10*time.Millisecond))
	assert.Equal(t, uint64(1), l.ClosedIdle())
	l.mu.Lock()
	assert.Len(t, l.parked, flood, "the silent newcomers are still parked, neither served nor closed")
	l.mu.Unlock()
}
