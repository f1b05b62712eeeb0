package spill

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// The kill -9 test re-executes the test binary as a child that appends and
// acks in a loop, printing each Append and Ack after it returned; the
// parent kills it with SIGKILL at a random moment, reopens the spill and
// checks that everything the child reported is there, intact, and that
// nothing in the file is damaged.

const (
	childEnvDir    = "TRIAGE_SPILL_CHILD_DIR"
	childEnvSync   = "TRIAGE_SPILL_CHILD_SYNC"
	childEnvSeed   = "TRIAGE_SPILL_CHILD_SEED"
	crashMaxBytes  = 8 << 20
	childWriters   = 3
	crashRounds    = 12
	crashRoundsMax = 20 * time.Second // all rounds together
)

// crashRecord is the record a child writes as record i of batch b of
// writer w: a header naming it, then filler whose byte and length derive
// from the header, so any record found in the file can be checked alone.
func crashRecord(w, b, i int) []byte {
	head := fmt.Sprintf("w%d b%d i%d|", w, b, i)
	h := crc32.ChecksumIEEE([]byte(head))
	n := 40 + int(h%6000) // some records need overflow pages
	return append([]byte(head), bytes.Repeat([]byte{'a' + byte(h%26)}, n)...)
}

func checkCrashRecord(data []byte) (w, b, i int, err error) {
	head, _, ok := bytes.Cut(data, []byte("|"))
	if !ok {
		return 0, 0, 0, fmt.Errorf("no header in %.40q", data)
	}
	if _, err := fmt.Sscanf(string(head), "w%d b%d i%d", &w, &b, &i); err != nil {
		return 0, 0, 0, fmt.Errorf("bad header %q: %v", head, err)
	}
	if !bytes.Equal(data, crashRecord(w, b, i)) {
		return 0, 0, 0, fmt.Errorf("record %q has the wrong body", head)
	}
	return w, b, i, nil
}

// TestCrashChild is the child's body; it only runs when re-executed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(childEnvDir)
	if dir == "" {
		t.Skip("run by TestKill9 as its child")
	}
	seed, _ := strconv.ParseInt(os.Getenv(childEnvSeed), 10, 64)
	s, err := Open(dir, Options{MaxBytes: crashMaxBytes, Sync: SyncPolicy(os.Getenv(childEnvSync))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format+"\n", args...)
		out.Lock()
		os.Stdout.WriteString(line) // one write per line, unbuffered
		out.Unlock()
	}
	say("ready %d", s.LastSeq())
	for w := 0; w < childWriters; w++ {
		go func() {
			rng := rand.New(rand.NewSource(seed*100 + int64(w)))
			for b := 0; ; b++ {
				n := 1 + rng.Intn(8)
				batch := make([][]byte, n)
				for i := range batch {
					batch[i] = crashRecord(w, b, i)
				}
				for {
					f, l, err := s.Append(batch)
					if errors.Is(err, ErrFull) {
						time.Sleep(time.Millisecond)
						continue
					}
					if err != nil {
						fmt.Fprintln(os.Stderr, "child append:", err)
						os.Exit(4)
					}
					say("A %d %d %d %d", f, l, w, b)
					break
				}
			}
		}()
	}
	// Acker: trims the head now and then, as the feeder would.
	rng := rand.New(rand.NewSource(seed))
	var cursor uint64
	for {
		time.Sleep(time.Duration(1+rng.Intn(5)) * time.Millisecond)
		got, _, err := s.Next(cursor, 1+rng.Intn(200), 0)
		if err != nil || len(got) == 0 {
			continue
		}
		cursor = got[len(got)-1].Seq
		say("k %d", cursor) // about to ack: these may be gone after a kill
		if err := s.Ack(cursor); err != nil {
			fmt.Fprintln(os.Stderr, "child ack:", err)
			os.Exit(5)
		}
		say("K %d", cursor)
	}
}

type appended struct {
	first, last uint64
	w, b        int
}

func TestKill9(t *testing.T) {
	if os.Getenv(childEnvDir) != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(14))
	deadline := time.Now().Add(crashRoundsMax)
	var lastSeen uint64 // highest sequence number seen in the file or reported
	totalAppends, totalRecords := 0, 0
	for round := 0; round < crashRounds && time.Now().Before(deadline); round++ {
		pol := []SyncPolicy{SyncAlways, SyncNone}[round%2]
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnvDir+"="+dir, childEnvSync+"="+string(pol),
			childEnvSeed+"="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())

		lines := make(chan string, 1024)
		readDone := make(chan []string)
		go func() {
			var all []string
			br := bufio.NewReader(stdout)
			for {
				line, err := br.ReadString('\n')
				if err != nil { // a line without its newline was cut by the kill
					break
				}
				line = strings.TrimSuffix(line, "\n")
				if strings.HasPrefix(line, "ready") {
					lines <- line
				}
				all = append(all, line)
			}
			readDone <- all
		}()
		select {
		case l := <-lines:
			var startSeq uint64
			fmt.Sscanf(l, "ready %d", &startSeq)
			require.GreaterOrEqual(t, startSeq, lastSeen, "child sees the sequence so far")
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("child did not start: %s", stderr.String())
		}
		time.Sleep(time.Duration(30+rng.Intn(250)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		out := <-readDone
		_, _ = io.Copy(io.Discard, stdout)
		err = cmd.Wait()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal(), "child died of something else: %s", stderr.String())

		// What the child reported.
		var apps []appended
		var ackedTo, ackingTo uint64 // acks returned, acks begun
		for _, l := range out {
			switch {
			case strings.HasPrefix(l, "A "):
				var a appended
				_, err := fmt.Sscanf(l, "A %d %d %d %d", &a.first, &a.last, &a.w, &a.b)
				require.NoError(t, err, l)
				require.Greater(t, a.first, lastSeen, "sequence numbers never go back: %s", l)
				apps = append(apps, a)
			case strings.HasPrefix(l, "K "):
				var k uint64
				fmt.Sscanf(l, "K %d", &k)
				ackedTo = max(ackedTo, k)
			case strings.HasPrefix(l, "k "):
				var k uint64
				fmt.Sscanf(l, "k %d", &k)
				ackingTo = max(ackingTo, k)
			}
		}

		// What the file holds.
		s, err := Open(dir, Options{MaxBytes: crashMaxBytes})
		require.NoError(t, err, "round %d (%s): reopen after kill -9", round, pol)
		var checkErrs []string
		require.NoError(t, s.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				checkErrs = append(checkErrs, err.Error())
			}
			return nil
		}))
		require.Empty(t, checkErrs, "bbolt consistency check")
		got := all(t, s)
		require.Zero(t, s.Corrupt(), "no corrupt record")
		bySeq := make(map[uint64][]byte, len(got))
		var sum int64
		for _, r := range got {
			_, _, _, err := checkCrashRecord(r.Data)
			require.NoError(t, err, "record %d", r.Seq)
			require.Greater(t, r.Seq, ackedTo, "record %d was acked", r.Seq)
			bySeq[r.Seq] = r.Data
			sum += int64(len(r.Data)) + RecordOverhead
			lastSeen = max(lastSeen, r.Seq)
		}
		require.Equal(t, len(got), s.Len(), "count survives the kill")
		require.Equal(t, sum, s.Bytes(), "bytes survive the kill")
		missing := 0
		for _, a := range apps {
			lastSeen = max(lastSeen, a.last)
			for seq := max(a.first, ackingTo+1); seq <= a.last; seq++ {
				want := crashRecord(a.w, a.b, int(seq-a.first))
				if !bytes.Equal(bySeq[seq], want) {
					missing++
					if missing < 5 {
						t.Errorf("round %d (%s): record %d (w%d b%d) reported appended, missing or wrong", round, pol, seq, a.w, a.b)
					}
				}
			}
			totalRecords += int(a.last - a.first + 1)
		}
		require.Zero(t, missing)
		lastSeen = max(lastSeen, s.LastSeq())
		totalAppends += len(apps)
		if len(got) > 0 {
			require.True(t, got[0].Seq > ackingTo || ackingTo > ackedTo, "only an ack cut by the kill may be partly done")
		}
		t.Logf("round %d (%s): %d appends reported, acked to %d, %d records in the file, last seq %d", round, pol, len(apps), ackedTo, len(got), s.LastSeq())
		require.NoError(t, s.Close())
	}
	require.Greater(t, totalAppends, 0, "children appended something")
	t.Logf("%d appends (%d records) reported by killed children, all found", totalAppends, totalRecords)
}
