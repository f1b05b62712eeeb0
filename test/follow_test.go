package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

func appendLines(t *testing.T, path string, rules ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	require.NoError(t, err)
	defer f.Close()
	for _, r := range rules {
		_, err := f.WriteString(withKey("rule", fmt.Sprintf("%q", r)) + "\n")
		require.NoError(t, err)
	}
}

func rulesOf(t *testing.T, p *harness.Plugin, evts []*harness.Event) []string {
	out := make([]string, len(evts))
	for i, e := range evts {
		out[i] = ruleOf(t, p, e, "alert.rule")
	}
	return out
}

func collectN(t *testing.T, inst *harness.Instance, n int) []*harness.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evts, err := inst.Collect(ctx, n, 0)
	require.NoError(t, err)
	return evts
}

// Following Falco's file_output: appended lines, a rename rotation, a
// copytruncate and a remove+recreate all arrive, each line exactly once.
func TestFileFollowEndToEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	appendLines(t, path, "before open") // startAt end: not delivered

	p := newPlugin(t, `{"follow": {"pollIntervalMs": 20}}`)
	inst, err := p.Open("file://" + path)
	require.NoError(t, err)
	defer inst.Close()

	// Wait until the follower has positioned itself at the end: the first
	// appended line must then arrive.
	var got []string
	require.Eventually(t, func() bool {
		appendLines(t, path, "probe")
		evts, _, err := inst.NextBatch()
		require.NoError(t, err)
		got = append(got, rulesOf(t, p, evts)...)
		return len(got) > 0
	}, 10*time.Second, 50*time.Millisecond)
	probes := len(got)
	for _, r := range got {
		require.Equal(t, "probe", r)
	}

	var want []string
	step := func(names ...string) {
		appendLines(t, path, names...)
		want = append(want, names...)
	}
	step("a1", "a2", "a3")
	got = append(got, rulesOf(t, p, collectN(t, inst, probes+3-len(got)))...)

	// logrotate's create mode: rename, then the writer opens a new file.
	require.NoError(t, os.Rename(path, path+".1"))
	step("b1", "b2")
	got = append(got, rulesOf(t, p, collectN(t, inst, probes+5-len(got)))...)

	// copytruncate: the same file is truncated in place.
	require.NoError(t, os.Truncate(path, 0))
	step("c1")
	got = append(got, rulesOf(t, p, collectN(t, inst, probes+6-len(got)))...)

	// removed and created again.
	require.NoError(t, os.Remove(path))
	step("d1", "d2")
	got = append(got, rulesOf(t, p, collectN(t, inst, probes+8-len(got)))...)

	assert.Equal(t, want, got[probes:], "each line exactly once, in order")

	// Nothing else arrives.
	for i := 0; i < 5; i++ {
		evts, rc, err := inst.NextBatch()
		require.NoError(t, err)
		require.Empty(t, evts)
		require.Equal(t, harness.Timeout, rc)
	}
}

func TestFileFollowFromBeginning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	appendLines(t, path, "old 1", "old 2")
	p := newPlugin(t, `{"follow": {"startAt": "beginning", "pollIntervalMs": 20}}`)
	inst, err := p.Open("file://" + path)
	require.NoError(t, err)
	defer inst.Close()
	evts := collectN(t, inst, 2)
	appendLines(t, path, "new 1")
	evts = append(evts, collectN(t, inst, 1)...)
	assert.Equal(t, []string{"old 1", "old 2", "new 1"}, rulesOf(t, p, evts))
}

// With follow.stateFile, a reopened input resumes after the last queued
// line: nothing written while triage was down is lost, nothing repeats.
func TestFileFollowResumesFromStateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	state := filepath.Join(dir, "triage.state")
	appendLines(t, path, "before first start")
	cfg := fmt.Sprintf(`{"follow": {"startAt": "beginning", "pollIntervalMs": 20, "stateFile": %q}}`, state)

	p := newPlugin(t, cfg)
	inst, err := p.Open("file://" + path)
	require.NoError(t, err)
	evts := collectN(t, inst, 1)
	appendLines(t, path, "one", "two")
	evts = append(evts, collectN(t, inst, 2)...)
	assert.Equal(t, []string{"before first start", "one", "two"}, rulesOf(t, p, evts))
	inst.Close() // saves the state

	appendLines(t, path, "while down 1", "while down 2")
	inst, err = p.Open("file://" + path)
	require.NoError(t, err)
	defer inst.Close()
	evts = collectN(t, inst, 2)
	appendLines(t, path, "after restart")
	evts = append(evts, collectN(t, inst, 1)...)
	assert.Equal(t, []string{"while down 1", "while down 2", "after restart"}, rulesOf(t, p, evts))
	for i := 0; i < 3; i++ {
		more, _, err := inst.NextBatch()
		require.NoError(t, err)
		require.Empty(t, more, "nothing delivered twice")
	}
}
