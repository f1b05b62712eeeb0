package loadgen

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBareBaseline runs the naive baseline end to end on loopback: every
// alert sent is counted as delivered, in both sending modes.
func TestBareBaseline(t *testing.T) {
	mix := filepath.Join(t.TempDir(), "mix.jsonl")
	require.NoError(t, os.WriteFile(mix, []byte(
		`{"rule":"a","priority":"Notice","time":"2026-11-21T04:45:00Z","output_fields":{"n":12345678901234567890}}`+"\n"+
			`{"rule":"b","priority":"Warning","time":"2026-11-21T04:45:00Z"}`+"\n"), 0o600))
	for _, o := range []Options{
		{Mode: "single", Conns: 3, Alerts: 301},
		{Mode: "ndjson", Batch: 7, Conns: 2, Alerts: 500},
	} {
		o.Bare, o.Mix, o.MaxDuration, o.WarmupAlerts = true, mix, 30*time.Second, 10
		res, err := Run(o)
		require.NoError(t, err, o.Mode)
		assert.Equal(t, o.Alerts, res.Sent, o.Mode)
		assert.Equal(t, o.Alerts, res.Delivered, o.Mode)
		assert.False(t, res.TimedOut)
		assert.Positive(t, res.AlertsPerSec)
	}
}
