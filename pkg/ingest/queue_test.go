package ingest

import (
	"context"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
)

func alerts(n int, prefix string) []*alert.Alert {
	out := make([]*alert.Alert, n)
	for i := range out {
		out[i] = &alert.Alert{Rule: prefix + strconv.Itoa(i)}
	}
	return out
}

func newTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func TestQueueTryPushAllIsAllOrNothing(t *testing.T) {
	q := NewAlertQueue(16, 1<<30)
	require.True(t, q.TryPushAll(alerts(10, "a")))
	require.False(t, q.TryPushAll(alerts(7, "b")))
	assert.Equal(t, 10, q.Len())
	require.True(t, q.TryPushAll(alerts(6, "c")))
	got, err := q.PopBatch(nil, 100, newTimer(), time.Millisecond)
	require.NoError(t, err)
	require.Len(t, got, 16)
	assert.Equal(t, "a0", got[0].Rule)
	assert.Equal(t, "c5", got[15].Rule)
}

func TestQueuePopBatchRespectsMaxAndWraps(t *testing.T) {
	q := NewAlertQueue(16, 1<<30)
	timer := newTimer()
	seen := 0
	for round := 0; round < 5; round++ {
		require.True(t, q.TryPushAll(alerts(12, "r"+strconv.Itoa(round)+"-")))
		for got := 0; got < 12; {
			b, err := q.PopBatch(nil, 5, timer, time.Millisecond)
			require.NoError(t, err)
			require.LessOrEqual(t, len(b), 5)
			for _, a := range b {
				assert.Equal(t, "r"+strconv.Itoa(round)+"-"+strconv.Itoa(got), a.Rule)
				got++
				seen++
			}
		}
	}
	assert.Equal(t, 60, seen)
}

func TestQueueIdlePopReturnsEmptyWithoutError(t *testing.T) {
	q := NewAlertQueue(16, 1<<30)
	b, err := q.PopBatch(nil, 5, newTimer(), 5*time.Millisecond)
	require.NoError(t, err)
	assert.Empty(t, b)
}

func TestQueuePopWakesOnPush(t *testing.T) {
	q := NewAlertQueue(16, 1<<30)
	go func() {
		time.Sleep(10 * time.Millisecond)
		q.TryPushAll(alerts(1, "late"))
	}()
	b, err := q.PopBatch(nil, 5, newTimer(), 10*time.Second)
	require.NoError(t, err)
	require.Len(t, b, 1)
}

func TestQueueCloseDrainsThenEOF(t *testing.T) {
	q := NewAlertQueue(16, 1<<30)
	require.True(t, q.TryPushAll(alerts(3, "x")))
	q.Close()
	b, err := q.PopBatch(nil, 10, newTimer(), time.Millisecond)
	require.NoError(t, err)
	assert.Len(t, b, 3)
	_, err = q.PopBatch(nil, 10, newTimer(), time.Millisecond)
	assert.Equal(t, io.EOF, err)
	assert.ErrorIs(t, q.Push(context.Background(), &alert.Alert{}), io.ErrClosedPipe)
	assert.False(t, q.TryPushAll(alerts(1, "y")))
}

// Blocking producers lose nothing and keep order per producer.
func TestQueueBlockingPushUnderLoad(t *testing.T) {
	q := NewAlertQueue(16, 1<<30)
	const producers, each = 4, 2000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				a := &alert.Alert{Rule: strconv.Itoa(p), Time: int64(i)}
				if err := q.Push(context.Background(), a); err != nil {
					t.Error(err)
					return
				}
			}
		}(p)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); q.Close(); close(done) }()
	next := make([]int64, producers)
	timer := newTimer()
	total := 0
	for {
		b, err := q.PopBatch(nil, 7, timer, 50*time.Millisecond)
		for _, a := range b {
			p, _ := strconv.Atoi(a.Rule)
			require.Equal(t, next[p], a.Time, "producer %d out of order", p)
			next[p]++
			total++
		}
		if err == io.EOF {
			break
		}
	}
	<-done
	assert.Equal(t, producers*each, total)
}

func TestQueuePushHonoursCancel(t *testing.T) {
	q := NewAlertQueue(16, 1<<30)
	require.True(t, q.TryPushAll(alerts(16, "f")))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- q.Push(ctx, &alert.Alert{}) }()
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)
}

func sized(n, bytes int, prefix string) []*alert.Alert {
	out := alerts(n, prefix)
	for _, a := range out {
		a.Output = string(make([]byte, bytes))
	}
	return out
}

// The byte budget bounds the queue as well as the count.
func TestQueueByteBudget(t *testing.T) {
	one := AlertBytes(sized(1, 1000, "x")[0])
	require.Greater(t, one, int64(1000))
	q := NewAlertQueue(100, 3*one)
	require.True(t, q.TryPushAll(sized(3, 1000, "a")))
	assert.Equal(t, 3*one, q.Bytes())
	assert.False(t, q.TryPushAll(sized(1, 1000, "b")), "over the byte budget though far under the count")
	assert.False(t, q.TryPushAll(alerts(1, "tiny")), "a tiny alert does not fit either")

	// A group over the whole budget can never fit: refused at once.
	err := q.PushAll(context.Background(), sized(4, 1000, "c"), 0)
	assert.ErrorIs(t, err, ErrTooLarge)
	err = q.PushAll(context.Background(), alerts(101, "d"), 0)
	assert.ErrorIs(t, err, ErrTooLarge)

	got, err := q.PopBatch(nil, 10, newTimer(), time.Millisecond)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Zero(t, q.Bytes())

	// One alert larger than the budget still passes an empty queue.
	require.NoError(t, q.PushAll(context.Background(), sized(1, 10000, "big"), 0))
	assert.False(t, q.TryPushAll(alerts(1, "after")), "the queue holds at most its budget or one alert")
}

// Waiting producers are served in arrival order: a large group is not
// overtaken by small ones, and TryPushAll does not jump the line.
func TestQueueWaitersInArrivalOrder(t *testing.T) {
	q := NewAlertQueue(4, 1<<30)
	require.True(t, q.TryPushAll(alerts(4, "full")))
	ctx := context.Background()
	done := make(chan string, 2)
	go func() { done <- "big"; _ = q.PushAll(ctx, alerts(3, "big"), 0) }()
	<-done
	require.Eventually(t, func() bool { return q.Waiting() == 1 }, 10*time.Second, time.Millisecond)
	go func() { done <- "small"; _ = q.PushAll(ctx, alerts(1, "small"), 0) }()
	<-done
	require.Eventually(t, func() bool { return q.Waiting() == 2 }, 10*time.Second, time.Millisecond)
	assert.False(t, q.TryPushAll(alerts(1, "jumper")), "producers are waiting")

	timer := newTimer()
	var order []string
	for len(order) < 8 {
		b, err := q.PopBatch(nil, 1, timer, 10*time.Millisecond)
		require.NoError(t, err)
		for _, a := range b {
			order = append(order, a.Rule)
		}
	}
	assert.Equal(t, []string{"full0", "full1", "full2", "full3", "big0", "big1", "big2", "small0"}, order)
}

// A producer that gives up (its ctx ends) leaves nothing queued and does
// not block those behind it.
func TestQueueAbandonedWaiter(t *testing.T) {
	q := NewAlertQueue(2, 1<<30)
	require.True(t, q.TryPushAll(alerts(2, "full")))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, q.PushAll(ctx, alerts(2, "late"), 0), context.DeadlineExceeded)
	errc := make(chan error, 1)
	go func() { errc <- q.PushAll(context.Background(), alerts(1, "next"), 0) }()
	b, err := q.PopBatch(nil, 2, newTimer(), time.Millisecond)
	require.NoError(t, err)
	require.Len(t, b, 2)
	require.NoError(t, <-errc)
	b, err = q.PopBatch(nil, 2, newTimer(), time.Millisecond)
	require.NoError(t, err)
	require.Len(t, b, 1)
	assert.Equal(t, "next0", b[0].Rule)
	assert.Zero(t, q.Waiting())
}

// Ack passes the highest token of what was popped, once.
func TestQueueAckTokens(t *testing.T) {
	q := NewAlertQueue(8, 1<<30)
	var acked []uint64
	q.SetAcker(func(tok uint64) { acked = append(acked, tok) })
	ctx := context.Background()
	require.NoError(t, q.PushToken(ctx, alerts(1, "a")[0], 5))
	require.NoError(t, q.PushToken(ctx, alerts(1, "b")[0], 7))
	require.NoError(t, q.Push(ctx, alerts(1, "c")[0]))
	q.Ack()
	assert.Empty(t, acked, "nothing popped yet")
	_, err := q.PopBatch(nil, 1, newTimer(), time.Millisecond)
	require.NoError(t, err)
	q.Ack()
	q.Ack()
	assert.Equal(t, []uint64{5}, acked)
	_, err = q.PopBatch(nil, 5, newTimer(), time.Millisecond)
	require.NoError(t, err)
	q.Ack()
	assert.Equal(t, []uint64{5, 7}, acked)
}
