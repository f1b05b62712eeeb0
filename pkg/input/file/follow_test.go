package file

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Generous: only reached when something is broken, never a timing assertion.
const waitFor = 15 * time.Second

// follower under test, collecting what Follow emits.
type followed struct {
	t      *testing.T
	mu     sync.Mutex
	lines  []gotLine
	overs  []gotOversize
	logs   []string
	hook   func(line string) // called inside emit, may block
	cancel context.CancelFunc
	done   chan error
}

func startFollow(t *testing.T, path string, opts FollowOptions) *followed {
	return startFollowHook(t, path, opts, nil)
}

func startFollowHook(t *testing.T, path string, opts FollowOptions, hook func(string)) *followed {
	t.Helper()
	f := &followed{t: t, hook: hook, done: make(chan error, 1)}
	if opts.MaxLine == 0 {
		opts.MaxLine = 4096
	}
	opts.Logf = func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		f.mu.Lock()
		f.logs = append(f.logs, msg)
		f.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- Follow(ctx, path, opts, f.emit, f.oversize) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(waitFor):
			t.Error("Follow did not return after cancel")
		}
		if t.Failed() {
			for _, l := range f.snapshotLogs() {
				t.Log("follow log:", l)
			}
		}
	})
	return f
}

func (f *followed) emit(line []byte, pos LinePos) error {
	s := string(line)
	if f.hook != nil {
		f.hook(s)
	}
	f.mu.Lock()
	f.lines = append(f.lines, gotLine{s, pos})
	f.mu.Unlock()
	return nil
}

func (f *followed) oversize(pos LinePos, length int64) {
	f.mu.Lock()
	f.overs = append(f.overs, gotOversize{pos, length})
	f.mu.Unlock()
}

func (f *followed) snapshot() []gotLine {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]gotLine(nil), f.lines...)
}

func (f *followed) snapshotLogs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.logs...)
}

func (f *followed) texts() []string {
	var out []string
	for _, l := range f.snapshot() {
		out = append(out, l.line)
	}
	return out
}

// waitLine waits until line has been emitted.
func (f *followed) waitLine(line string) {
	f.t.Helper()
	require.Eventually(f.t, func() bool {
		for _, l := range f.snapshot() {
			if l.line == line {
				return true
			}
		}
		return false
	}, waitFor, 2*time.Millisecond, "line %q never emitted; got %d lines", line, len(f.snapshot()))
}

// waitLog waits until a log message containing substr has been written.
func (f *followed) waitLog(substr string) {
	f.t.Helper()
	require.Eventually(f.t, func() bool { return f.countLogs(substr) > 0 }, waitFor, 2*time.Millisecond, "no log containing %q", substr)
}

func (f *followed) countLogs(substr string) int {
	n := 0
	for _, l := range f.snapshotLogs() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func appendOpen(t *testing.T, path string) *os.File {
	t.Helper()
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	return w
}

func write(t *testing.T, w *os.File, s string) {
	t.Helper()
	_, err := w.WriteString(s)
	require.NoError(t, err)
}

func TestFollowStartAtEnd(t *testing.T) {
	for _, atEnd := range []bool{false, true} {
		t.Run(fmt.Sprint("StartAtEnd=", atEnd), func(t *testing.T) {
			p := writeTemp(t, "a\nb\npar")
			f := startFollow(t, p, FollowOptions{StartAtEnd: atEnd})
			f.waitLog("following")
			w := appendOpen(t, p)
			write(t, w, "tial\nc\n")
			f.waitLine("c")

			got := f.snapshot()
			want := []gotLine{
				{"a", LinePos{LineNo: 1, Offset: 2}},
				{"b", LinePos{LineNo: 2, Offset: 4}},
				// A line being written at start is not torn, even with StartAtEnd.
				{"partial", LinePos{LineNo: 3, Offset: 12}},
				{"c", LinePos{LineNo: 4, Offset: 14}},
			}
			if atEnd {
				want = want[2:]
			}
			require.Len(t, got, len(want))
			for i := range want {
				require.Equal(t, want[i].line, got[i].line)
				require.Equal(t, want[i].pos.LineNo, got[i].pos.LineNo, "line %q", want[i].line)
				require.Equal(t, want[i].pos.Offset, got[i].pos.Offset, "line %q", want[i].line)
				require.Equal(t, p, got[i].pos.Path)
				require.NotZero(t, got[i].pos.Inode)
			}
		})
	}
}

func TestFollowManySmallWrites(t *testing.T) {
	p := writeTemp(t, "")
	f := startFollow(t, p, FollowOptions{})
	f.waitLog("following")

	const n = 1000
	var all strings.Builder
	var want []string
	var ends []int64
	for i := range n {
		l := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("p", i%37))
		want = append(want, l)
		all.WriteString(l + "\n")
		ends = append(ends, int64(all.Len()))
	}
	data := all.String()

	// Random chunk sizes split lines anywhere; yielding now and then lets
	// the follower see (and hold) partial lines.
	w := appendOpen(t, p)
	rng := rand.New(rand.NewPCG(1, 2))
	for i, writes := 0, 0; i < len(data); writes++ {
		j := min(len(data), i+1+rng.IntN(120))
		write(t, w, data[i:j])
		i = j
		if writes%8 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	write(t, w, "END\n")
	f.waitLine("END")

	got := f.snapshot()
	require.Len(t, got, n+1)
	for i := range n {
		require.Equal(t, want[i], got[i].line)
		require.Equal(t, int64(i+1), got[i].pos.LineNo)
		require.Equal(t, ends[i], got[i].pos.Offset)
	}
}

func TestFollowRenameRotation(t *testing.T) {
	p := writeTemp(t, "")
	f := startFollow(t, p, FollowOptions{})
	f.waitLog("following")

	const rounds, perFile = 3, 300
	var want []string
	w := appendOpen(t, p)
	for r := range rounds {
		for i := range perFile {
			l := fmt.Sprintf(`{"r":%d,"i":%d}`, r, i)
			want = append(want, l)
			write(t, w, l+"\n")
		}
		// The old file ends with an unterminated line: emitted at rotation.
		last := fmt.Sprintf("r%d-unterminated", r)
		want = append(want, last)
		write(t, w, last)

		// logrotate "create": rename, then a new file at path, while the
		// follower may still be busy with the old one.
		require.NoError(t, os.Rename(p, fmt.Sprintf("%s.%d", p, r+1)))
		require.NoError(t, w.Close())
		w = appendOpen(t, p)
		// Before the next rotation, make sure the follower has opened this
		// file (two rotations it never saw would be beyond tail -F).
		first := fmt.Sprintf("r%d-first", r+1)
		want = append(want, first)
		write(t, w, first+"\n")
		f.waitLine(first)
	}
	write(t, w, "END\n")
	want = append(want, "END")
	f.waitLine("END")

	got := f.snapshot()
	require.Equal(t, want, f.texts())
	// LineNo restarts in each file, and Inode tells the files apart.
	idx := 0
	var inodes []uint64
	for r := 0; r <= rounds; r++ {
		inodes = append(inodes, got[idx].pos.Inode)
		n := perFile + 1
		if r > 0 {
			n++ // the "first" line
		}
		if r == rounds {
			n = 2 // "first" and END
		}
		for k := range n {
			require.Equal(t, int64(k+1), got[idx].pos.LineNo, "line %q", got[idx].line)
			require.Equal(t, inodes[r], got[idx].pos.Inode, "line %q", got[idx].line)
			idx++
		}
	}
	for i := 1; i < len(inodes); i++ {
		require.NotEqual(t, inodes[i-1], inodes[i])
	}
	require.Equal(t, rounds, f.countLogs("rotated"))
}

func TestFollowCopyTruncate(t *testing.T) {
	p := writeTemp(t, "")
	f := startFollow(t, p, FollowOptions{})
	f.waitLog("following")

	w := appendOpen(t, p)
	for i := range 100 {
		write(t, w, fmt.Sprintf(`{"old":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", 40)))
	}
	f.waitLine(fmt.Sprintf(`{"old":%d,"pad":"%s"}`, 99, strings.Repeat("x", 40)))
	oldInode := f.snapshot()[0].pos.Inode

	// A partial line cut off by the truncation is dropped, never emitted.
	write(t, w, "partial-dropped")
	require.NoError(t, os.Truncate(p, 0))
	// The writer's O_APPEND descriptor now writes from offset 0.
	write(t, w, "new-1\nnew-2\r\nnew-3\n")
	f.waitLine("new-3")

	got := f.snapshot()
	require.Len(t, got, 103)
	for i, want := range []gotLine{
		{"new-1", LinePos{Path: p, Inode: oldInode, LineNo: 1, Offset: 6}},
		{"new-2", LinePos{Path: p, Inode: oldInode, LineNo: 2, Offset: 13}},
		{"new-3", LinePos{Path: p, Inode: oldInode, LineNo: 3, Offset: 19}},
	} {
		require.Equal(t, want, got[100+i])
	}
	require.Equal(t, 1, f.countLogs("truncated"))
}

func TestFollowRemoveRecreate(t *testing.T) {
	p := writeTemp(t, "")
	// Events for a removed file do not reach the directory watch: polling finds them.
	f := startFollow(t, p, FollowOptions{PollInterval: 10 * time.Millisecond})
	f.waitLog("following")

	w := appendOpen(t, p)
	write(t, w, "old-1\nold-2\n")
	f.waitLine("old-2")
	require.NoError(t, os.Remove(p))
	f.waitLog("disappeared")

	// The writer still has the removed file open: its lines keep coming.
	write(t, w, "orphan-1\n")
	f.waitLine("orphan-1")
	write(t, w, "orphan-2\n") // written before the new file exists: read when switching

	w2 := appendOpen(t, p)
	write(t, w2, "new-1\nnew-2\n")
	f.waitLine("new-2")

	got := f.snapshot()
	require.Equal(t, []string{"old-1", "old-2", "orphan-1", "orphan-2", "new-1", "new-2"}, f.texts())
	require.Equal(t, int64(4), got[3].pos.LineNo)
	require.Equal(t, int64(1), got[4].pos.LineNo)
	require.Equal(t, int64(2), got[5].pos.LineNo)
	require.NotEqual(t, got[0].pos.Inode, got[4].pos.Inode)
}

func TestFollowFileAppearsLater(t *testing.T) {
	p := filepath.Join(t.TempDir(), "later.json")
	// StartAtEnd only applies to a file present at start: a file that
	// appears later is read from its beginning.
	f := startFollow(t, p, FollowOptions{StartAtEnd: true, PollInterval: 5 * time.Millisecond})
	f.waitLog("waiting for")
	time.Sleep(30 * time.Millisecond) // let a few polls run, to check the wait is logged once

	require.NoError(t, os.WriteFile(p, []byte("x\ny\n"), 0o600))
	f.waitLine("y")
	got := f.snapshot()
	require.Equal(t, []string{"x", "y"}, f.texts())
	require.Equal(t, int64(1), got[0].pos.LineNo)
	require.Equal(t, int64(2), got[1].pos.LineNo)
	require.Equal(t, 1, f.countLogs("waiting for"))
}

func TestFollowOversize(t *testing.T) {
	p := writeTemp(t, "")
	f := startFollow(t, p, FollowOptions{MaxLine: 100})
	f.waitLog("following")

	w := appendOpen(t, p)
	write(t, w, "a\n")
	f.waitLine("a")
	for range 3 { // the long line arrives in pieces
		write(t, w, strings.Repeat("x", 100))
	}
	write(t, w, "\n"+strings.Repeat("y", 100)+"\nb\n")
	f.waitLine("b")

	require.Equal(t, []string{"a", strings.Repeat("y", 100), "b"}, f.texts())
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.overs, 1)
	require.Equal(t, int64(300), f.overs[0].length)
	require.Equal(t, int64(2), f.overs[0].pos.LineNo)
	require.Equal(t, int64(2+301), f.overs[0].pos.Offset)
}

func TestFollowBackpressureAcrossRotation(t *testing.T) {
	// While emit blocks, the file is rotated and both files grow; once
	// unblocked, everything arrives once and in order.
	p := writeTemp(t, "")
	release := make(chan struct{})
	blocked := make(chan struct{})
	f := startFollowHook(t, p, FollowOptions{}, func(line string) {
		if line == "block" {
			close(blocked)
			<-release
		}
	})
	f.waitLog("following")

	w := appendOpen(t, p)
	write(t, w, "block\n")
	<-blocked
	write(t, w, "old-1\nold-2\n")
	require.NoError(t, os.Rename(p, p+".1"))
	w2 := appendOpen(t, p)
	write(t, w2, "new-1\n")
	write(t, w, "old-3\n") // late write to the old file, still before the switch
	close(release)
	write(t, w2, "new-2\n")
	f.waitLine("new-2")
	require.Equal(t, []string{"block", "old-1", "old-2", "old-3", "new-1", "new-2"}, f.texts())
}

func TestFollowCancel(t *testing.T) {
	for _, exists := range []bool{true, false} {
		t.Run(fmt.Sprint("exists=", exists), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "alerts.json")
			if exists {
				require.NoError(t, os.WriteFile(p, []byte("a\n"), 0o600))
			}
			ctx, cancel := context.WithCancel(context.Background())
			logged := make(chan struct{}, 1)
			done := make(chan error, 1)
			go func() {
				done <- Follow(ctx, p, FollowOptions{MaxLine: 100, Logf: func(string, ...any) {
					select {
					case logged <- struct{}{}:
					default:
					}
				}}, func([]byte, LinePos) error { return nil }, nil)
			}()
			<-logged // "following" or "waiting for"
			cancel()
			select {
			case err := <-done:
				require.ErrorIs(t, err, context.Canceled)
			case <-time.After(waitFor):
				t.Fatal("Follow did not return after cancel")
			}
		})
	}
}

func TestFollowEmitErrorStops(t *testing.T) {
	p := writeTemp(t, "a\nb\nc\n")
	errStop := errors.New("stop")
	var got []string
	err := Follow(context.Background(), p, FollowOptions{MaxLine: 100}, func(line []byte, _ LinePos) error {
		got = append(got, string(line))
		if len(got) == 2 {
			return errStop
		}
		return nil
	}, nil)
	require.ErrorIs(t, err, errStop)
	require.Equal(t, []string{"a", "b"}, got)
}

func TestFollowBadOptions(t *testing.T) {
	ctx := context.Background()
	emit := func([]byte, LinePos) error { return nil }
	dir := t.TempDir()

	require.ErrorContains(t, Follow(ctx, filepath.Join(dir, "a.json"), FollowOptions{}, emit, nil), "MaxLine")

	missing := filepath.Join(dir, "no-such-dir")
	err := Follow(ctx, filepath.Join(missing, "a.json"), FollowOptions{MaxLine: 10}, emit, nil)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, missing)

	file := writeTemp(t, "")
	err = Follow(ctx, filepath.Join(file, "a.json"), FollowOptions{MaxLine: 10}, emit, nil)
	require.ErrorContains(t, err, "not a directory")
	require.ErrorContains(t, err, file)
}
