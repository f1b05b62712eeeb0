package ingest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
)

const goodLine = `{"output":"o","priority":"Warning","rule":"r","source":"syscall","time":"2026-11-21T04:45:00Z","output_fields":{"proc.name":"bash"},"hostname":"h"}`

func TestParseCountsEachOutcome(t *testing.T) {
	var p alert.Parser
	var c Counters

	a, err := Parse(&p, []byte(goodLine), 4096, &c)
	require.NoError(t, err)
	require.Equal(t, "r", a.Rule)
	alert.Release(a)

	_, err = Parse(&p, []byte(`{"rule":`), 4096, &c)
	require.Error(t, err)

	_, err = Parse(&p, []byte(goodLine), 10, &c)
	require.ErrorContains(t, err, "over maxEventBytes")

	_, err = Parse(&p, []byte(strings.Replace(goodLine, "syscall", LoopSource, 1)), 4096, &c)
	require.ErrorIs(t, err, ErrLoop)

	require.Equal(t, Snapshot{Received: 4, Malformed: 1, Oversize: 1, LoopDropped: 1}, c.Snapshot())
	require.Equal(t, "received=4 queued=0 delivered=0 malformed=1 oversize=1 loop_dropped=1 queue_full=0 skipped=0", c.Snapshot().String())
}
