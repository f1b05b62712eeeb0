package spill

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// One Ack of many records stays linear (re-seeking the head after each
// delete was quadratic).
func TestAckManyRecords(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 1 << 30})
	rec := bytes.Repeat([]byte("a"), 1024)
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = rec
	}
	for i := 0; i < 20; i++ {
		_, _, err := s.Append(batch)
		require.NoError(t, err)
	}
	start := time.Now()
	require.NoError(t, s.Ack(s.LastSeq()))
	t.Logf("acked 20,000 records in %v", time.Since(start))
	require.Zero(t, s.Len())
	require.Zero(t, s.Bytes())
}
