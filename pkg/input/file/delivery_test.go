package file

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDeliveryMovesOnlyOverDeliveredLines(t *testing.T) {
	d := NewDelivery()
	d.newGeneration()
	pos := func(n int64) LinePos { return LinePos{Path: "p", Inode: 1, LineNo: n, Offset: 10 * n} }
	delivered := func() int64 {
		m, ok := d.deliveredMark()
		require.True(t, ok)
		return m.pos.LineNo
	}
	d.handled(pos(0)) // open
	assert.Equal(t, int64(0), delivered())

	t1 := d.Queue(pos(1))
	d.handled(pos(1))
	t2 := d.Queue(pos(2))
	d.handled(pos(2))
	d.handled(pos(3)) // malformed: not queued
	t4 := d.Queue(pos(4))
	d.handled(pos(4))
	d.handled(pos(5)) // oversize: not queued
	assert.Equal(t, int64(0), delivered(), "nothing acked yet")
	assert.Equal(t, 3, d.inFlight())

	d.Ack(t1)
	assert.Equal(t, int64(1), delivered())
	d.Ack(t2)
	assert.Equal(t, int64(3), delivered(), "the skipped line 3 goes with line 2")
	d.Ack(t4)
	assert.Equal(t, int64(5), delivered(), "the skipped line 5 goes with line 4")
	assert.Zero(t, d.inFlight())
	d.handled(pos(6)) // skipped with nothing in flight: delivered at once
	assert.Equal(t, int64(6), delivered())

	// The ring grows past its first size and keeps order.
	var last uint64
	for i := int64(7); i < 500; i++ {
		last = d.Queue(pos(i))
		d.handled(pos(i))
	}
	d.Ack(last - 100)
	assert.Equal(t, int64(399), delivered())
	d.Ack(last)
	assert.Equal(t, int64(499), delivered())
}

// ackRun is a Follow whose lines are queued through a Delivery and acked
// by the test, as the plugin's queue does once Falco took them.
type ackRun struct {
	*stateRun
	d      *Delivery
	tokens map[string]uint64
}

func startAckRun(t *testing.T, path, state string, startAtEnd bool, skip func(string) bool) *ackRun {
	t.Helper()
	r := &ackRun{stateRun: &stateRun{done: make(chan error, 1)}, d: NewDelivery(), tokens: map[string]uint64{}}
	opts := FollowOptions{
		MaxLine: 64, StartAtEnd: startAtEnd, PollInterval: 20 * time.Millisecond, StateFile: state, Delivery: r.d,
		Logf: func(format string, args ...any) {
			r.mu.Lock()
			r.logs = append(r.logs, fmt.Sprintf(format, args...))
			r.mu.Unlock()
		},
	}
	emit := func(line []byte, pos LinePos) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if skip != nil && skip(string(line)) {
			return nil // as a malformed or loop-dropped line: never queued
		}
		r.tokens[string(line)] = r.d.Queue(pos)
		r.lines = append(r.lines, gotLine{string(line), pos})
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- Follow(ctx, path, opts, emit, nil) }()
	t.Cleanup(func() { r.stop(t) })
	r.waitLog(t, "input: following")
	return r
}

func (r *ackRun) ack(t *testing.T, line string) {
	t.Helper()
	r.mu.Lock()
	tok, ok := r.tokens[line]
	r.mu.Unlock()
	require.True(t, ok, "line %q was not queued", line)
	r.d.Ack(tok)
}

func waitState(t *testing.T, state string, cond func(followState) bool, what string) followState {
	t.Helper()
	var st followState
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(state)
		if err != nil {
			return false
		}
		st = followState{}
		if json.Unmarshal(b, &st) != nil {
			return false
		}
		return cond(st)
	}, waitFor, 5*time.Millisecond, "state never %s", what)
	return st
}

// The state covers what was acked, never what was only queued; a line
// never queued is covered once every line before it is acked.
func TestFollowStateCoversOnlyDelivered(t *testing.T) {
	dir := t.TempDir()
	path, state := filepath.Join(dir, "events.json"), filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	r := startAckRun(t, path, state, true, func(l string) bool { return strings.HasPrefix(l, "bad") })
	w := appendOpen(t, path)
	write(t, w, "a1\na2\nbad3\na4\nbad5\n")
	r.waitN(t, 3)
	time.Sleep(3 * stateSaveEvery)
	assert.Equal(t, int64(0), readState(t, state).Offset, "nothing acked: the state stays at open")

	r.ack(t, "a1")
	waitState(t, state, func(st followState) bool { return st.LineNo == 1 }, "covered a1")
	r.ack(t, "a2")
	st := waitState(t, state, func(st followState) bool { return st.LineNo == 3 }, "covered a2 and the bad line after it")
	assert.Equal(t, int64(len("a1\na2\nbad3\n")), st.Offset)
	r.ack(t, "a4")
	waitState(t, state, func(st followState) bool { return st.LineNo == 5 }, "covered a4 and bad5")

	write(t, w, "a6\na7\n")
	r.waitN(t, 5)
	r.ack(t, "a6")
	r.stop(t) // a7 queued, never delivered
	st = readState(t, state)
	assert.Equal(t, int64(6), st.LineNo, "the final save covers a6, not a7")

	// A restart reads a7 again: queued but not delivered is not lost.
	r2 := startStateRun(t, path, state, true)
	r2.waitN(t, 1)
	assert.Equal(t, []string{"a7"}, r2.texts())
}

// Rotation with lines of the old file still in flight: the state keeps
// naming the old file (its inode, its fingerprint) until they are
// delivered, never the new file with the old file's offset, and a restart
// finds the rotated file in the directory, finishes it, then reads the new
// file from its start.
func TestFollowStateRotationWithLinesInFlight(t *testing.T) {
	dir := t.TempDir()
	path, state := filepath.Join(dir, "events.json"), filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	fiA, err := os.Stat(path)
	require.NoError(t, err)
	r := startAckRun(t, path, state, true, nil)
	w := appendOpen(t, path)
	write(t, w, "a1\na2\na3\n")
	r.waitN(t, 3)
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, os.WriteFile(path, []byte("b1\nb2\n"), 0o600))
	r.waitN(t, 5)
	fiB, err := os.Stat(path)
	require.NoError(t, err)

	r.ack(t, "a1")
	st := waitState(t, state, func(st followState) bool { return st.LineNo == 1 }, "covered a1")
	assert.Equal(t, inodeOf(fiA), st.Inode, "the old file's inode while its lines are in flight")
	assert.Equal(t, int64(3), st.Offset)
	r.stop(t)
	st = readState(t, state)
	assert.Equal(t, inodeOf(fiA), st.Inode)
	assert.NotEqual(t, inodeOf(fiB), st.Inode)

	r2 := startStateRun(t, path, state, true)
	r2.waitN(t, 4)
	assert.Equal(t, []string{"a2", "a3", "b1", "b2"}, r2.texts(), "rest of the rotated file, then the new one from its start")
	r2.waitLog(t, "was rotated to")

	// Once everything is delivered the state moves to the new file.
	r2.stop(t)
	st = readState(t, state)
	assert.Equal(t, inodeOf(fiB), st.Inode)
	assert.Equal(t, int64(len("b1\nb2\n")), st.Offset)
}

// Truncation (copytruncate) with lines of the old content in flight: the
// old content is gone, so its offsets must not be saved against the new
// content; the state moves to the start of the new content.
func TestFollowStateTruncationWithLinesInFlight(t *testing.T) {
	dir := t.TempDir()
	path, state := filepath.Join(dir, "events.json"), filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	r := startAckRun(t, path, state, true, nil)
	w := appendOpen(t, path)
	write(t, w, "old-line-1\nold-line-2\n")
	r.waitN(t, 2)
	require.NoError(t, os.Truncate(path, 0))
	write(t, w, "new-1\nnew-2\nnew-3\n") // O_APPEND: from offset 0, past the old offsets again
	r.waitN(t, 5)
	r.ack(t, "old-line-1")
	time.Sleep(3 * stateSaveEvery)
	r.stop(t)
	st := readState(t, state)
	assert.Equal(t, int64(0), st.Offset, "the start of the new content, not old-line-1's offset in it")

	r2 := startStateRun(t, path, state, true)
	r2.waitN(t, 3)
	assert.Equal(t, []string{"new-1", "new-2", "new-3"}, r2.texts())
}

// Rotated while stopped, the old file still in the directory: its rest is
// read, then the new file from its start, whatever startAt says.
func TestFollowStateResumesRotatedFile(t *testing.T) {
	dir := t.TempDir()
	path, state := filepath.Join(dir, "events.json"), filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(path, []byte("p1\np2\n"), 0o600))
	r1 := startStateRun(t, path, state, false)
	r1.waitN(t, 2)
	r1.stop(t)
	w := appendOpen(t, path)
	write(t, w, "p3\n")
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, os.WriteFile(path, []byte("n1\nn2\n"), 0o600))
	r2 := startStateRun(t, path, state, true)
	r2.waitN(t, 3)
	assert.Equal(t, []string{"p3", "n1", "n2"}, r2.texts())
}
