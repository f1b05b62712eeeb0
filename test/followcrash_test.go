package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// Environment of the child process of TestFollowKill9LosesNothing.
const (
	crashChildEnv = "TRIAGE_FOLLOWCRASH_CHILD" // the directory of the run
	crashChildOut = "TRIAGE_FOLLOWCRASH_OUT"   // the file the child records deliveries in
)

// crashMalformed says which lines of the followed file are not alerts:
// they are never queued and must not hold the saved offset back.
func crashMalformed(lineNo int) bool { return lineNo%37 == 0 }

func crashLine(lineNo int) string {
	if crashMalformed(lineNo) {
		return `{"rule": "truncated`
	}
	return withKey("rule", fmt.Sprintf(`"L%d"`, lineNo))
}

// TestFollowKill9LosesNothing follows a file through the real plugin in a
// child process with a small queue and a slow consumer, kills the child
// with SIGKILL at seeded random moments while a writer keeps appending,
// restarts it, and checks across all runs: every alert line arrives at
// least once; every restart resumes exactly at the offset the state file
// held at the kill (so the state never covered an undelivered line); and
// the only duplicates are lines delivered after that state was saved.
func TestFollowKill9LosesNothing(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("child process")
	}
	if testing.Short() {
		t.Skip("runs child processes")
	}
	const (
		total  = 37 * 40 // lines written, malformed ones included; the last one is malformed
		pre    = 500     // written before the first start
		rounds = 5       // kills before the last run
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	state := filepath.Join(dir, "triage.state")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer f.Close()
	for i := 1; i <= pre; i++ {
		_, err := f.WriteString(crashLine(i) + "\n")
		require.NoError(t, err)
	}
	writerDone := make(chan error, 1)
	go func() {
		for i := pre + 1; i <= total; i++ {
			if _, err := f.WriteString(crashLine(i) + "\n"); err != nil {
				writerDone <- err
				return
			}
			if i%25 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		writerDone <- nil
	}()

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TRIAGE_FOLLOWCRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (TRIAGE_FOLLOWCRASH_SEED to repeat)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	alerts := 0
	for i := 1; i <= total; i++ {
		if !crashMalformed(i) {
			alerts++
		}
	}
	var runs [][]int
	var savedAtKill []int64
	seen := map[int]int{}
	for round := 0; round <= rounds; round++ {
		out := filepath.Join(dir, fmt.Sprintf("run-%d", round))
		cmd := exec.Command(os.Args[0], "-test.run=^TestFollowCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildOut+"="+out, "TRIAGE_LIB="+libPath)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		last := round == rounds
		if last {
			// Let the last run finish: everything delivered (the writer is
			// done by then), then kill it too.
			require.NoError(t, <-writerDone)
			require.Eventually(t, func() bool {
				n := 0
				for _, id := range readCrashRun(t, out) {
					if seen[id] == 0 {
						n++
					}
				}
				return n == alerts-len(seen)
			}, 40*time.Second, 20*time.Millisecond, "the last run never delivered the rest")
			// The malformed last line must not hold the state back: once
			// every alert before it is delivered, the state covers it.
			require.Eventually(t, func() bool { return readFollowState(t, state) == total }, 10*time.Second, 10*time.Millisecond,
				"the state never reached the last line")
		} else {
			// Kill once it has delivered something, at a random moment.
			require.Eventually(t, func() bool { return len(readCrashRun(t, out)) > 0 }, 30*time.Second, 5*time.Millisecond,
				"child delivered nothing; stderr:\n%s", &stderr)
			time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		}
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()
		saved := readFollowState(t, state) // stable: its writer is dead
		run := readCrashRun(t, out)
		runs = append(runs, run)
		savedAtKill = append(savedAtKill, saved)
		for _, id := range run {
			seen[id]++
		}
		if t.Failed() {
			t.Logf("child stderr:\n%s", stderr.String())
			return
		}
	}

	// Each run delivers in file order, starting right after the state the
	// previous kill left: nothing the state covered is read again, nothing
	// after it is skipped.
	dups := 0
	var perKill []int
	for r, run := range runs {
		require.NotEmpty(t, run, "run %d", r)
		for i := 1; i < len(run); i++ {
			require.Greater(t, run[i], run[i-1], "run %d delivers in order", r)
		}
		if r > 0 {
			saved := int(savedAtKill[r-1])
			want := saved + 1
			for crashMalformed(want) {
				want++
			}
			require.Equal(t, want, run[0], "run %d resumes right after the line the state covered at the kill (%d)", r, saved)
			prev := runs[r-1]
			require.LessOrEqual(t, saved, prev[len(prev)-1], "the state never covers a line that was not delivered")
			d := 0
			for _, id := range prev {
				if id > saved {
					d++
				}
			}
			perKill = append(perKill, d)
			dups += d
		}
	}
	for i := 1; i <= total; i++ {
		if !crashMalformed(i) {
			require.NotZero(t, seen[i], "line %d was appended and never delivered", i)
		}
	}
	// Duplicates are exactly the lines delivered after the state saved
	// before each kill (counted above from the state itself).
	require.Equal(t, dups, func() int {
		n := 0
		for _, c := range seen {
			n += c - 1
		}
		return n
	}())
	t.Logf("%d alert lines, %d kills; duplicates per kill (delivered after the last save): %v", alerts, rounds, perKill)
}

// readFollowState returns the line number the follow state file covers.
func readFollowState(t *testing.T, name string) int64 {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	var st struct {
		LineNo int64 `json:"line"`
	}
	require.NoError(t, json.Unmarshal(b, &st))
	return st.LineNo
}

// readCrashRun reads the line numbers a child recorded as delivered.
func readCrashRun(t *testing.T, name string) []int {
	f, err := os.Open(name)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var ids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "L") {
			continue // a torn last record cannot happen (one write per batch), but be lenient
		}
		id, err := strconv.Atoi(line[1:])
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// TestFollowCrashChild is the child of TestFollowKill9LosesNothing: it
// follows the file with a 64-alert queue and a slow consumer (8 alerts
// per 20 ms: the queue takes longer to drain than the state's save period) that records
// each batch (one write, fsync) before asking for the next one, which is
// when the plugin acks the batch to the follower's state. It runs until
// killed.
func TestFollowCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestFollowKill9LosesNothing")
	}
	out, err := os.OpenFile(os.Getenv(crashChildOut), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	require.NoError(t, err)
	cfg := fmt.Sprintf(`{"queueSize": 64, "batchSize": 8, "idleTimeoutMs": 5,
		"follow": {"startAt": "beginning", "pollIntervalMs": 20, "stateFile": %q}}`, filepath.Join(dir, "triage.state"))
	p := newPlugin(t, cfg)
	inst, err := p.Open("file://" + filepath.Join(dir, "events.json"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var buf strings.Builder
	for ctx.Err() == nil {
		evts, _, err := inst.NextBatch()
		require.NoError(t, err)
		if len(evts) == 0 {
			continue
		}
		buf.Reset()
		for _, e := range evts {
			v, err := p.Extract(e, harness.Request{Field: "alert.rule"})
			require.NoError(t, err)
			buf.WriteString(v[0].Str[0])
			buf.WriteByte('\n')
			e.Free()
		}
		_, err = out.WriteString(buf.String())
		require.NoError(t, err)
		require.NoError(t, out.Sync())
		time.Sleep(20 * time.Millisecond) // the slow consumer: the queue stays full
	}
}
