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
	q := NewAlertQueue(16)
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
	q := NewAlertQueue(16)
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
	q := NewAlertQueue(16)
	b, err := q.PopBatch(nil, 5, newTimer(), 5*time.Millisecond)
	require.NoError(t, err)
	assert.Empty(t, b)
}

func TestQueuePopWakesOnPush(t *testing.T) {
	q := NewAlertQueue(16)
	go func() {
		time.Sleep(10 * time.Millisecond)
		q.TryPushAll(alerts(1, "late"))
	}()
	b, err := q.PopBatch(nil, 5, newTimer(), 10*time.Second)
	require.NoError(t, err)
	require.Len(t, b, 1)
}

func TestQueueCloseDrainsThenEOF(t *testing.T) {
	q := NewAlertQueue(16)
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
	q := NewAlertQueue(16)
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
	q := NewAlertQueue(16)
	require.True(t, q.TryPushAll(alerts(16, "f")))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- q.Push(ctx, &alert.Alert{}) }()
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)
}
