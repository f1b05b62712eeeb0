package webhook

import (
	"bufio"
	"context"
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

func ndjson(prefix string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(testAlert(fmt.Sprintf("%s-%d", prefix, i)) + "\n")
	}
	return b.String()
}

// waitUntil polls cond, bounded by waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A body that does not fit now is held, not refused: it is answered 200
// once the consumer made room, and its alerts come after the earlier ones.
func TestWebhookHoldsUntilDrained(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) { c.QueueSize = 16 })
	code, body, _ := post(t, "POST", f.url, "application/json", ndjson("a", 10))
	require.Equal(t, 200, code, body)

	type answer struct {
		code int
		body string
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := http.Post(f.url, "application/json", strings.NewReader(ndjson("b", 10)))
		if err != nil {
			done <- answer{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, string(b)}
	}()
	waitUntil(t, "the second body waits for room", func() bool { return f.q.Waiting() == 1 })
	select {
	case a := <-done:
		t.Fatalf("answered %d while the queue was still full: %s", a.code, a.body)
	default:
	}
	got := f.drain()
	require.Len(t, got, 10)
	var a answer
	select {
	case a = <-done:
	case <-time.After(waitFor):
		t.Fatal("the held request was not answered after the queue drained")
	}
	require.Equal(t, 200, a.code, a.body)
	assert.JSONEq(t, `{"accepted":10,"loop_dropped":0}`, a.body)
	got = f.drain()
	require.Len(t, got, 10)
	assert.Equal(t, "b-0", got[0].Rule)
	assert.Equal(t, uint64(0), f.c.QueueFull.Load())
	assert.Equal(t, uint64(1), f.w.in.held.Load())
	assert.Equal(t, uint64(10), f.w.in.heldAlerts.Load())
	assert.Equal(t, uint64(1), f.w.in.holdCounts[0].Load()+f.w.in.holdCounts[1].Load()+f.w.in.holdCounts[2].Load()+
		f.w.in.holdCounts[3].Load()+f.w.in.holdCounts[4].Load()+f.w.in.holdCounts[5].Load()+f.w.in.holdCounts[6].Load()+
		f.w.in.holdCounts[7].Load()+f.w.in.holdCounts[8].Load()+f.w.in.holdCounts[9].Load()+f.w.in.holdCounts[10].Load())
}

// A body the whole queue could never take gets 413 at once, naming the
// limit, even with an empty queue; never 503.
func TestWebhookBodyLargerThanQueueIs413(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) {
		c.QueueSize = 16
		c.QueueBytes = 1 << 20
		c.MaxEventBytes = 256 << 10
		c.Webhook.MaxBodyBytes = 4 << 20
		c.Webhook.Metrics = true
	})
	code, msg, _ := post(t, "POST", f.url, "application/json", ndjson("n", 17))
	assert.Equal(t, 413, code, msg)
	assert.Contains(t, msg, "queueSize 16")
	assert.Contains(t, msg, "spill")

	big := func(i int) string {
		return fmt.Sprintf(`{"rule":"big-%d","priority":"Warning","time":"2026-11-21T04:45:00Z","output":%q}`, i, strings.Repeat("x", 200<<10))
	}
	var b strings.Builder
	for i := 0; i < 6; i++ { // 6 × 200 KiB > queueBytes (1 MiB)
		b.WriteString(big(i) + "\n")
	}
	code, msg, _ = post(t, "POST", f.url, "application/json", b.String())
	assert.Equal(t, 413, code, msg)
	assert.Contains(t, msg, "queueBytes 1048576")
	assert.Empty(t, f.drain())
	assert.Equal(t, uint64(0), f.c.QueueFull.Load())
	assert.Equal(t, uint64(2), f.w.in.tooLarge.Load())

	// What fits still passes, and one alert over queueBytes passes an empty queue.
	code, msg, _ = post(t, "POST", f.url, "application/json", ndjson("m", 16))
	assert.Equal(t, 200, code, msg)
	assert.Len(t, f.drain(), 16)
}

// The body is parsed as it arrives: the first bad line is answered while
// the sender is still sending, with its line number, and the server reads
// only a small part of it. The client sends 1 MiB of a 16 MiB body and
// then waits for the answer; a server that read the whole body first would
// never answer.
func TestWebhookAnswersFirstBadLineBeforeTheRest(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) { c.Webhook.MaxBodyBytes = 16 << 20 })
	conn, err := net.Dial("tcp", f.w.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 16<<20)
	require.NoError(t, err)
	chunk := []byte(strings.Repeat("1\n", 32<<10)) // 64 KiB
	for i := 0; i < 16; i++ {
		_, err := conn.Write(chunk)
		require.NoError(t, err)
	}
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(waitFor)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no answer while the body is unfinished: the server waits for the whole body")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 400, resp.StatusCode)
	assert.Contains(t, string(b), "line 1:")
	assert.Equal(t, uint64(1), f.c.Malformed.Load())
	assert.Equal(t, uint64(1), f.c.Received.Load(), "only the first line was parsed")
}

// Line numbers count every line, blank ones included; a pretty-printed
// alert is still one alert, and a bad one is reported over its lines.
func TestWebhookLineNumbersAndPrettyPrinted(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	code, msg, _ := post(t, "POST", f.url, "application/json", "\n\r\n"+testAlert("a")+"\n\nnot json\n"+testAlert("b"))
	assert.Equal(t, 400, code)
	assert.Contains(t, msg, "line 5:")

	pretty := "\n  {\n  \"rule\": \"pretty\",\r\n  \"priority\": \"Notice\",\n\n  \"time\": \"2026-11-21T04:45:00Z\"\n}\n\n"
	code, msg, _ = post(t, "POST", f.url, "application/json", pretty)
	require.Equal(t, 200, code, msg)
	got := f.drain()
	require.Len(t, got, 1)
	assert.Equal(t, "pretty", got[0].Rule)

	code, msg, _ = post(t, "POST", f.url, "application/json", "{\n  \"rule\": \"pretty\",\n  \"time\": \"2026-11-21T04:45:00Z\"\n}\n")
	assert.Equal(t, 400, code)
	assert.Contains(t, msg, "lines 1-4")
	assert.Contains(t, msg, "priority")

	// A pretty-printed alert over maxEventBytes (4096 here) is oversize.
	code, msg, _ = post(t, "POST", f.url, "application/json", "{\n\"rule\": \"p\",\n"+strings.Repeat("\"k\": 1,\n", 1000)+"\"priority\":\"Notice\"}\n")
	assert.Equal(t, 413, code)
	assert.Contains(t, msg, "maxEventBytes")

	// A line longer than the read buffer but under maxEventBytes is whole.
	f2 := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) { c.MaxEventBytes, c.Webhook.MaxBodyBytes = 256<<10, 1<<20 })
	long := fmt.Sprintf(`{"rule":"long","priority":"Warning","time":"2026-11-21T04:45:00Z","output":%q}`, strings.Repeat("y", 100<<10))
	code, msg, _ = post(t, "POST", f2.url, "application/json", testAlert("s")+"\n"+long+"\n"+testAlert("t"))
	require.Equal(t, 200, code, msg)
	got = f2.drain()
	require.Len(t, got, 3)
	assert.Len(t, got[1].Output, 100<<10)
	assert.Equal(t, "t", got[2].Rule)
}

// The in-flight budget: the oldest request always gets what it asks (so
// half-read bodies cannot wait on each other forever); a younger one waits
// while the budget is spent and goes on once it is freed.
func TestInflightBudgetOldestFirst(t *testing.T) {
	cfg := config.Default()
	in := newIntake(cfg)
	in.budget.max = 100
	old, young := &request{}, &request{}
	in.budget.join(old)
	in.budget.join(young)
	never := func() context.Context { return context.Background() }
	require.NoError(t, in.budget.acquire(young, 80, never))
	require.NoError(t, in.budget.acquire(old, 80, never), "the oldest may go over the budget")
	assert.Equal(t, int64(160), in.budget.Used())

	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	go func() { defer wg.Done(); err = in.budget.acquire(young, 30, never) }()
	time.Sleep(10 * time.Millisecond) // not a timing assertion: the acquire must not have passed yet either way
	assert.Equal(t, int64(160), in.budget.Used(), "the younger request waits while the budget is spent")
	in.budget.leave(old)
	wg.Wait()
	require.NoError(t, err)
	assert.Equal(t, int64(110), in.budget.Used(), "now the oldest, it may go over")

	expired, cancel := context.WithCancel(context.Background())
	cancel()
	other := &request{}
	in.budget.join(other)
	assert.ErrorIs(t, in.budget.acquire(other, 1, func() context.Context { return expired }), context.Canceled)
	in.budget.leave(other)
	in.budget.leave(young)
	assert.Equal(t, int64(0), in.budget.Used())
}
