package file

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// run is one Follow with a state file that can be stopped and restarted.
type stateRun struct {
	mu     sync.Mutex
	lines  []gotLine
	logs   []string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startStateRun(t *testing.T, path, state string, startAtEnd bool) *stateRun {
	t.Helper()
	r := &stateRun{done: make(chan error, 1)}
	opts := FollowOptions{
		MaxLine: 64, StartAtEnd: startAtEnd, PollInterval: 20 * time.Millisecond, StateFile: state,
		Logf: func(format string, args ...any) {
			r.mu.Lock()
			r.logs = append(r.logs, fmt.Sprintf(format, args...))
			r.mu.Unlock()
		},
	}
	emit := func(line []byte, pos LinePos) error {
		r.mu.Lock()
		r.lines = append(r.lines, gotLine{string(line), pos})
		r.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- Follow(ctx, path, opts, emit, nil) }()
	t.Cleanup(func() { r.stop(t) })
	r.waitLog(t, "input: following")
	return r
}

func (r *stateRun) stop(t *testing.T) {
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(waitFor):
			t.Error("Follow did not return after cancel")
		}
	})
}

func (r *stateRun) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		out = append(out, l.line)
	}
	return out
}

func (r *stateRun) waitN(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.texts()) >= n }, waitFor, 2*time.Millisecond, "got %v", r.texts())
}

func (r *stateRun) waitLog(t *testing.T, substr string) {
	t.Helper()
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, l := range r.logs {
			if strings.Contains(l, substr) {
				return true
			}
		}
		return false
	}, waitFor, 2*time.Millisecond, "no log containing %q", substr)
}

func readState(t *testing.T, name string) followState {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	var st followState
	require.NoError(t, json.Unmarshal(b, &st))
	return st
}

func TestFollowStateResumesAfterStop(t *testing.T) {
	dir := t.TempDir()
	path, state := filepath.Join(dir, "events.json"), filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(path, []byte("old1\nold2\n"), 0o600))

	r1 := startStateRun(t, path, state, true)
	w := appendOpen(t, path)
	write(t, w, "a1\na2\n")
	r1.waitN(t, 2)
	r1.stop(t)
	assert.Equal(t, []string{"a1", "a2"}, r1.texts())
	st := readState(t, state)
	assert.Equal(t, int64(len("old1\nold2\na1\na2\n")), st.Offset, "the state is saved on stop")
	assert.Equal(t, int64(4), st.LineNo)

	write(t, w, "b1\nb2\n") // while stopped
	r2 := startStateRun(t, path, state, true)
	r2.waitLog(t, "resuming")
	write(t, w, "c1\n")
	r2.waitN(t, 3)
	assert.Equal(t, []string{"b1", "b2", "c1"}, r2.texts(), "resumes at the saved offset: nothing lost, nothing repeated")
	r2.mu.Lock()
	assert.Equal(t, int64(5), r2.lines[0].pos.LineNo, "line numbers continue")
	r2.mu.Unlock()
}

// The position is saved at open too: a run stopped before any new line
// still makes the next one resume where it started, not per startAt.
func TestFollowStateSavedAtOpen(t *testing.T) {
	dir := t.TempDir()
	path, state := filepath.Join(dir, "events.json"), filepath.Join(dir, "state.json")
	require.NoError(t, os.WriteFile(path, []byte("old\n"), 0o600))
	r1 := startStateRun(t, path, state, true)
	r1.stop(t)
	assert.Empty(t, r1.texts())
	w := appendOpen(t, path)
	write(t, w, "while-down\n")
	r2 := startStateRun(t, path, state, true)
	r2.waitN(t, 1)
	assert.Equal(t, []string{"while-down"}, r2.texts())
}

func TestFollowStateNotResumed(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, path, state string)
		log    string
	}{
		{"rotated away", func(t *testing.T, path, _ string) {
			// Moved out of the directory (archived elsewhere): the old
			// file cannot be found, so the state is not used.
			require.NoError(t, os.Rename(path, filepath.Join(t.TempDir(), "archived.json")))
			require.NoError(t, os.WriteFile(path, []byte("n1\nn2\nn3\nn4\nn5\n"), 0o600))
		}, "rotated while stopped"},
		{"truncated", func(t *testing.T, path, _ string) {
			require.NoError(t, os.WriteFile(path, []byte("x\n"), 0o600)) // same inode, shorter
		}, "truncated while stopped"},
		{"rewritten", func(t *testing.T, path, _ string) {
			require.NoError(t, os.WriteFile(path, []byte(strings.Repeat("zzzzzzzzz\n", 20)), 0o600))
		}, "rewritten while stopped"},
		{"corrupt state", func(t *testing.T, _, state string) {
			require.NoError(t, os.WriteFile(state, []byte("{not json"), 0o600))
		}, "ignoring follow state"},
		{"other path", func(t *testing.T, _, state string) {
			st := readState(t, state)
			st.Path = "/elsewhere"
			b, _ := json.Marshal(st)
			require.NoError(t, os.WriteFile(state, b, 0o600))
		}, "it is for /elsewhere"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, state := filepath.Join(dir, "events.json"), filepath.Join(dir, "state.json")
			require.NoError(t, os.WriteFile(path, []byte("p1\np2\np3\n"), 0o600))
			r1 := startStateRun(t, path, state, false)
			r1.waitN(t, 3)
			r1.stop(t)
			tc.change(t, path, state)
			r2 := startStateRun(t, path, state, true)
			r2.waitLog(t, tc.log)
			// Started per startAt (end): only lines appended now arrive.
			w := appendOpen(t, path)
			write(t, w, "after\n")
			r2.waitN(t, 1)
			assert.Equal(t, []string{"after"}, r2.texts())
		})
	}
}

// childOutput collects the lines a child process prints.
type childOutput struct {
	mu    sync.Mutex
	lines []string
	eof   chan struct{}
}

func startChild(t *testing.T, bin, path, state string) (*exec.Cmd, *childOutput) {
	t.Helper()
	cmd := exec.Command(bin, path, state)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	out := &childOutput{eof: make(chan struct{})}
	go func() {
		defer close(out.eof)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.mu.Lock()
			out.lines = append(out.lines, sc.Text())
			out.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child stderr:\n%s", stderr.String())
		}
	})
	return cmd, out
}

func (o *childOutput) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.lines...)
}

func (o *childOutput) waitFor(t *testing.T, what string, cond func([]string) bool) {
	t.Helper()
	require.Eventually(t, func() bool { return cond(o.snapshot()) }, 45*time.Second, 5*time.Millisecond, "child never printed %s", what)
}

// TestFollowStateSurvivesKill9 kills a real follower process with SIGKILL
// in the middle of a stream and restarts it: every line arrives, and the
// only lines delivered twice are those after the offset the state file
// held at the kill.
func TestFollowStateSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a child process")
	}
	bin := filepath.Join(t.TempDir(), "followchild")
	build := exec.Command("go", "build", "-o", bin, "./testdata/followchild")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	dir := t.TempDir()
	path, state := filepath.Join(dir, "events.json"), filepath.Join(dir, "state.json")
	const pre, total, killAfter = 100, 30000, 5000
	var preLines strings.Builder
	for i := 1; i <= pre; i++ {
		fmt.Fprintf(&preLines, "pre-%d\n", i)
	}
	require.NoError(t, os.WriteFile(path, []byte(preLines.String()), 0o600))

	cmd1, out1 := startChild(t, bin, path, state)
	out1.waitFor(t, "#following", func(l []string) bool { return len(l) > 0 })

	// The writer appends steadily, across the kill and the restart.
	writerDone := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			writerDone <- err
			return
		}
		defer w.Close()
		for i := 1; i <= total; i++ {
			if _, err := fmt.Fprintf(w, "line-%d\n", i); err != nil {
				writerDone <- err
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		writerDone <- nil
	}()

	out1.waitFor(t, fmt.Sprintf("%d lines", killAfter), func(l []string) bool { return len(l) > killAfter })
	require.NoError(t, cmd1.Process.Kill()) // SIGKILL: no chance to save anything
	_ = cmd1.Wait()
	<-out1.eof
	st := readState(t, state) // stable: its writer is dead
	run1 := out1.snapshot()[1:]

	cmd2, out2 := startChild(t, bin, path, state)
	require.NoError(t, <-writerDone)
	want := fmt.Sprintf("line-%d", total)
	out2.waitFor(t, want, func(l []string) bool { return len(l) > 0 && l[len(l)-1] == want })
	run2 := out2.snapshot()[1:]
	require.NoError(t, cmd2.Process.Kill())

	// Run 1 delivered line-1..line-L1 in order (startAt end: no pre- lines).
	for i, l := range run1 {
		require.Equal(t, fmt.Sprintf("line-%d", i+1), l, "run 1, delivery %d", i+1)
	}
	saved := int(st.LineNo) - pre // last line the state covers
	require.GreaterOrEqual(t, saved, 0)
	require.LessOrEqual(t, saved, len(run1), "the state never runs ahead of what was delivered")
	// Run 2 resumed right after the saved offset and went on to the end.
	require.NotEmpty(t, run2)
	for i, l := range run2 {
		require.Equal(t, fmt.Sprintf("line-%d", saved+1+i), l, "run 2, delivery %d", i+1)
	}
	require.Equal(t, total, saved+len(run2))
	seen := map[string]int{}
	for _, l := range append(run1, run2...) {
		seen[l]++
	}
	for i := 1; i <= total; i++ {
		n := seen[fmt.Sprintf("line-%d", i)]
		switch {
		case n == 0:
			t.Fatalf("line-%d was lost", i)
		case n > 1 && i <= saved:
			t.Fatalf("line-%d was delivered twice although the state covered it", i)
		}
	}
	t.Logf("killed after %d deliveries; state covered %d; %d delivered twice; run 2 delivered %d", len(run1), saved, len(run1)-saved, len(run2))
}
