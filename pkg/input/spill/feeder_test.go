package spill

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/ingest"
)

func alertLine(rule string) []byte {
	return []byte(fmt.Sprintf(`{"rule":%q,"priority":"Warning","time":"2026-01-01T00:00:00Z","output":"x","source":"syscall","output_fields":{}}`, rule))
}

func parseAll(t testing.TB, lines [][]byte) []*alert.Alert {
	t.Helper()
	p := &alert.Parser{}
	out := make([]*alert.Alert, len(lines))
	for i, l := range lines {
		a, err := ingest.Parse(p, l, 1<<20, &ingest.Counters{})
		require.NoError(t, err)
		out[i] = a
	}
	return out
}

// consumer plays next_batch: pops, records the rules, acks the previous
// batch when it comes back (as the plugin does), until stop.
type consumer struct {
	q      *ingest.AlertQueue
	mu     sync.Mutex
	rules  []string
	paused chan struct{} // closed: running
	stop   chan struct{}
	done   chan struct{}
	noAck  bool
}

func newConsumer(q *ingest.AlertQueue, running bool) *consumer {
	c := &consumer{q: q, paused: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	if running {
		close(c.paused)
	}
	go func() {
		defer close(c.done)
		timer := time.NewTimer(time.Hour)
		var buf []*alert.Alert
		for {
			select {
			case <-c.stop:
				return
			case <-c.paused:
			}
			if !c.noAck {
				q.Ack()
			}
			var err error
			buf, err = q.PopBatch(buf[:0], 7, timer, 5*time.Millisecond)
			if err != nil {
				return
			}
			c.mu.Lock()
			for _, a := range buf {
				c.rules = append(c.rules, a.Rule)
			}
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *consumer) resume() { close(c.paused) }
func (c *consumer) halt()   { close(c.stop); <-c.done }
func (c *consumer) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.rules...)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func runFeeder(t testing.TB, f *Feeder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	return func() {
		cancel()
		require.NoError(t, <-done)
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func lines(rules []string) [][]byte {
	out := make([][]byte, len(rules))
	for i, r := range rules {
		out[i] = alertLine(r)
	}
	return out
}

// Records left in the spill are fed in order through a small queue and
// deleted once the consumer came back after them.
func TestFeederDeliversInOrderAndAcks(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	want := names("r", 100)
	_, _, err := s.Append(lines(want[:60]))
	require.NoError(t, err)
	_, _, err = s.Append(lines(want[60:]))
	require.NoError(t, err)

	q := ingest.NewAlertQueue(4, 1<<20)
	f := NewFeeder(s, q, FeederOptions{})
	require.True(t, f.Spilling(), "records from an earlier run come first")
	stop := runFeeder(t, f)
	c := newConsumer(q, true)
	waitFor(t, "all delivered", func() bool { return len(c.got()) == 100 })
	waitFor(t, "spill emptied", func() bool { return s.Len() <= 7 }) // the last batch is acked when the consumer comes back
	c.halt()
	stop()
	require.Equal(t, want, c.got())
	require.False(t, f.Spilling())
	require.Equal(t, uint64(100), f.Stats().Fed)
}

// Alerts handed to the consumer but never acked stay in the spill and come
// back after a restart (at-least-once).
func TestFeederRedeliversUnacked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MaxBytes: 1 << 20, Sync: SyncNone})
	require.NoError(t, err)
	_, _, err = s.Append(lines(names("r", 10)))
	require.NoError(t, err)
	q := ingest.NewAlertQueue(100, 1<<20)
	f := NewFeeder(s, q, FeederOptions{})
	stop := runFeeder(t, f)
	c := newConsumer(q, false)
	c.noAck = true
	c.resume()
	waitFor(t, "popped", func() bool { return len(c.got()) == 10 })
	c.halt()
	stop()
	require.Equal(t, 10, s.Len())
	require.NoError(t, s.Close())

	s = open(t, dir, Options{})
	q = ingest.NewAlertQueue(100, 1<<20)
	f = NewFeeder(s, q, FeederOptions{})
	stop = runFeeder(t, f)
	c = newConsumer(q, true)
	waitFor(t, "redelivered", func() bool { return len(c.got()) == 10 })
	waitFor(t, "acked", func() bool { q.Ack(); return s.Len() == 0 })
	c.halt()
	stop()
	require.Equal(t, names("r", 10), c.got())
}

// Accept keeps arrival order across the queue and the spill: bodies go to
// the queue while it has room, to the spill once it stays full, and keep
// going to the spill until the feeder caught up.
func TestAcceptKeepsArrivalOrder(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	q := ingest.NewAlertQueue(10, 1<<20)
	f := NewFeeder(s, q, FeederOptions{})
	require.False(t, f.Spilling())
	stop := runFeeder(t, f)
	c := newConsumer(q, false) // stalled consumer

	var want []string
	var placed []Placement
	body := 0
	accept := func() Placement {
		rules := names(fmt.Sprintf("b%02d-", body), 3)
		body++
		p, err := f.Accept(context.Background(), 5*time.Millisecond, parseAll(t, lines(rules)), lines(rules))
		require.NoError(t, err)
		want = append(want, rules...)
		placed = append(placed, p)
		return p
	}
	for i := 0; i < 3; i++ {
		require.Equal(t, Queued, accept()) // 9 of 10
	}
	require.Equal(t, Spilled, accept(), "the queue stays full")
	require.True(t, f.Spilling())
	c.resume()
	// While spilled records wait, new bodies go behind them.
	for i := 0; i < 5; i++ {
		p := accept()
		if !f.Spilling() {
			break
		}
		_ = p
	}
	waitFor(t, "caught up", func() bool { return !f.Spilling() })
	require.Equal(t, Queued, accept(), "back to the queue once caught up")

	// A body larger than the whole queue goes through the spill.
	rules := names("big-", 25)
	p, err := f.Accept(context.Background(), time.Millisecond, parseAll(t, lines(rules)), lines(rules))
	require.NoError(t, err)
	require.Equal(t, Spilled, p)
	want = append(want, rules...)

	waitFor(t, "all delivered", func() bool { return len(c.got()) == len(want) })
	waitFor(t, "spill emptied", func() bool { q.Ack(); return s.Len() == 0 })
	c.halt()
	stop()
	require.Equal(t, want, c.got())
	t.Logf("placements: %v", placed)
}

func TestAcceptSpillFull(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 4096})
	q := ingest.NewAlertQueue(1, 1<<20)
	f := NewFeeder(s, q, FeederOptions{})
	// No Run: nothing drains. The queue takes one alert.
	one := lines(names("a", 1))
	p, err := f.Accept(context.Background(), time.Millisecond, parseAll(t, one), one)
	require.NoError(t, err)
	require.Equal(t, Queued, p)

	body := lines(names("b", 10)) // ~1.3 KiB
	for i := 0; i < 3; i++ {
		p, err = f.Accept(context.Background(), time.Millisecond, parseAll(t, body), body)
		require.NoError(t, err)
		require.Equal(t, Spilled, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = f.Accept(ctx, time.Millisecond, parseAll(t, body), body)
	require.ErrorIs(t, err, ErrFull)
	require.Equal(t, 30, s.Len(), "nothing of the refused body stored")

	huge := lines(names("c", 40))
	_, err = f.Accept(context.Background(), time.Millisecond, parseAll(t, huge), huge)
	require.ErrorIs(t, err, ErrTooLarge)
}

// Corrupt and unparsable records are skipped, counted, and acked with the
// rest, also when they are the last ones.
func TestFeederSkipsBadRecords(t *testing.T) {
	var logs []string
	var mu sync.Mutex
	logf := func(format string, a ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	s := open(t, t.TempDir(), Options{Logf: logf})
	recsIn := lines(names("r", 6))
	recsIn[1] = []byte(`{"rule":"no priority"}`)
	_, _, err := s.Append(recsIn)
	require.NoError(t, err)
	require.NoError(t, s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		v := append([]byte(nil), b.Get(u64(6))...)
		v[len(v)-2] ^= 1
		return b.Put(u64(6), v)
	}))
	q := ingest.NewAlertQueue(100, 1<<20)
	f := NewFeeder(s, q, FeederOptions{Logf: logf})
	stop := runFeeder(t, f)
	c := newConsumer(q, true)
	waitFor(t, "delivered", func() bool { return len(c.got()) == 4 })
	waitFor(t, "all acked, bad ones too", func() bool { q.Ack(); return s.Len() == 0 })
	c.halt()
	stop()
	require.Equal(t, []string{"r000", "r002", "r003", "r004"}, c.got())
	st := f.Stats()
	require.Equal(t, uint64(1), st.Dropped)
	require.Equal(t, uint64(1), st.Corrupt)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, logs, 2)
}
