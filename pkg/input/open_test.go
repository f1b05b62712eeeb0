package input

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/logging"
)

func TestParseOpenParams(t *testing.T) {
	for _, tc := range []struct {
		params string
		kind   Kind
		target string // URL for the webhook, path otherwise
	}{
		{"", KindWebhook, config.DefaultOpenParams},
		{"  HTTP://127.0.0.1:9000/x ", KindWebhook, "http://127.0.0.1:9000/x"},
		{"https://0.0.0.0:8443/alerts", KindWebhook, "https://0.0.0.0:8443/alerts"},
		{"file:///var/log/falco/../falco/events.json", KindFollow, "/var/log/falco/events.json"},
		{"file://localhost/tmp/a.json", KindFollow, "/tmp/a.json"},
		{"alerts.jsonl", KindOnce, "alerts.jsonl"},
		{"/abs/alerts.jsonl", KindOnce, "/abs/alerts.jsonl"},
	} {
		s, err := ParseOpenParams(tc.params)
		require.NoError(t, err, tc.params)
		require.Equal(t, tc.kind, s.Kind, tc.params)
		if tc.kind == KindWebhook {
			require.Equal(t, tc.target, s.URL.String(), tc.params)
		} else {
			require.Equal(t, tc.target, s.Path, tc.params)
		}
	}
	k, err := ParseOpenParams("KAFKA://k1:9092,k2:9092/falco-by-entity?group=central")
	require.NoError(t, err)
	require.Equal(t, KindKafka, k.Kind)
	require.Equal(t, "kafka://k1:9092,k2:9092/falco-by-entity?group=central", k.Kafka.String())
	for _, bad := range []string{"file://host/x", "file://relative", "kafka://broker:9092/t", "kafka://broker/t?group=g"} {
		_, err := ParseOpenParams(bad)
		require.Error(t, err, bad)
	}
}

func discard() *logging.Logger { return logging.New(io.Discard, 1, time.Hour) }

// TestStartOnceFeedsQueue reads a file once through the switchboard: good
// alerts are queued, bad and loop lines counted, then the queue ends.
func TestStartOnceFeedsQueue(t *testing.T) {
	good := `{"output":"o","priority":"Warning","rule":"R","source":"syscall","time":"2026-11-21T04:45:00Z","output_fields":{},"hostname":"h"}`
	p := filepath.Join(t.TempDir(), "a.jsonl")
	body := strings.Join([]string{good, "{bad", strings.Replace(good, "syscall", ingest.LoopSource, 1), good}, "\n") + "\n"
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))

	spec, err := ParseOpenParams(p)
	require.NoError(t, err)
	q := ingest.NewAlertQueue(16, 1<<30)
	var c ingest.Counters
	in, err := Start(spec, config.Default(), q, &c, discard())
	require.NoError(t, err)
	defer in.Stop(time.Second)
	require.True(t, in.Finite())
	require.Nil(t, in.Webhook)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var got int
	for {
		batch, err := q.PopBatch(nil, 16, timer, time.Second)
		got += len(batch)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	require.Equal(t, 2, got)
	require.Equal(t, ingest.Snapshot{Received: 4, Queued: 2, Malformed: 1, LoopDropped: 1}, c.Snapshot())
}

func TestStartWebhook(t *testing.T) {
	spec, err := ParseOpenParams("http://127.0.0.1:0/alerts")
	require.NoError(t, err)
	in, err := Start(spec, config.Default(), ingest.NewAlertQueue(4, 1<<30), &ingest.Counters{}, discard())
	require.NoError(t, err)
	defer in.Stop(time.Second)
	require.False(t, in.Finite())
	require.NotNil(t, in.Webhook)
	require.True(t, strings.HasPrefix(in.Webhook.URL(), "http://127.0.0.1:"), in.Webhook.URL())
}

func TestStartUserErrors(t *testing.T) {
	dir := t.TempDir()
	for _, spec := range []Spec{
		{Kind: KindOnce, Path: filepath.Join(dir, "missing.jsonl")},
		{Kind: KindOnce, Path: dir},
		{Kind: KindFollow, Path: filepath.Join(dir, "no", "such", "dir", "a.jsonl")},
		{Kind: "kafka"},
	} {
		_, err := Start(spec, config.Default(), ingest.NewAlertQueue(4, 1<<30), &ingest.Counters{}, discard())
		require.Error(t, err, "%+v", spec)
	}
}
