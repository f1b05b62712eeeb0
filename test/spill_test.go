package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// spillConfig is a small queue that overflows at once into a spill in dir.
func spillConfig(dir string, sync string) string {
	return fmt.Sprintf(`{"queueSize": 16, "batchSize": 8, "webhook": {"maxHoldMs": 2000}, "spill": {"dir": %q, "sync": %q, "queueWaitMs": 5, "maxBytes": 16777216}}`, dir, sync)
}

// postOnce is a sender that never retries (Falcosidekick's webhook output,
// falco-facts.md fact 10): one request, one answer, a 10 s timeout.
func postOnce(client *http.Client, url, body string) int {
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// With Falco not reading (a stalled consumer), a non-retrying sender's
// alerts go to the spill and are answered 200 at once; once Falco reads
// again every one arrives exactly once, in the order sent.
func TestWebhookSpillAbsorbsStalledConsumer(t *testing.T) {
	w := openWebhook(t, spillConfig(filepath.Join(t.TempDir(), "spill"), "always"))
	client := &http.Client{Timeout: 10 * time.Second}
	const n = 200
	for i := 0; i < n; i++ {
		code := postOnce(client, w.url, withKey("rule", fmt.Sprintf(`"S%d"`, i)))
		require.Equal(t, 200, code, "alert %d", i)
	}
	evts := w.collect(t, n)
	require.Len(t, evts, n)
	for i, e := range evts {
		assert.Equal(t, fmt.Sprintf("S%d", i), ruleOf(t, w.p, e, "alert.rule"), "arrival order")
	}
	more, err := w.inst.Collect(context.Background(), 1, 300*time.Millisecond)
	require.ErrorIs(t, err, harness.ErrIdle)
	assert.Empty(t, more, "nothing twice")

	code, body := send(t, "GET", strings.Replace(w.url, "/alerts", "/metrics", 1), "", "")
	if code == 200 {
		assert.Contains(t, body, "triage_spill_spilled_total")
	}
}

// Environment of the child process of TestWebhookSpillKill9.
const (
	spillChildDir  = "TRIAGE_SPILLCRASH_DIR"  // the spill directory
	spillChildOut  = "TRIAGE_SPILLCRASH_OUT"  // where the child records what it delivered
	spillChildMode = "TRIAGE_SPILLCRASH_MODE" // "stall": never read; "drain": read all, then exit
)

// TestWebhookSpillCrashChild is the child: triage's webhook with a spill,
// through the real .so. It prints its URL, then either never reads
// (stall) or reads everything until idle, recording each alert's rule.
func TestWebhookSpillCrashChild(t *testing.T) {
	dir := os.Getenv(spillChildDir)
	if dir == "" {
		t.Skip("child process of TestWebhookSpillKill9")
	}
	p, err := harness.Load(libPath)
	require.NoError(t, err)
	require.NoError(t, p.Init(spillConfig(dir, "always")))
	url := fmt.Sprintf("http://127.0.0.1:%d/alerts", freePort(t))
	inst, err := p.Open(url)
	require.NoError(t, err)
	fmt.Printf("URL %s\n", url)
	if os.Getenv(spillChildMode) == "stall" {
		time.Sleep(time.Minute) // killed long before
		return
	}
	out, err := os.OpenFile(os.Getenv(spillChildOut), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evts, err := inst.Collect(ctx, 0, 2*time.Second)
	require.ErrorIs(t, err, harness.ErrIdle, "drained until idle")
	for _, e := range evts {
		v, err := p.Extract(e, harness.Request{Field: "alert.rule"})
		require.NoError(t, err)
		fmt.Fprintln(out, v[0].Str[0])
	}
	inst.Close()
	p.Destroy()
}

// TestWebhookSpillKill9 sends alerts one request each (no retries) to a
// triage whose Falco does not read, kills triage with SIGKILL at seeded
// random moments, restarts it on the same spill, and finally lets it
// drain: every alert that was answered 200 is delivered (a 2xx from the
// spill survives kill -9), whatever the moment of the kill.
func TestWebhookSpillKill9(t *testing.T) {
	if os.Getenv(spillChildDir) != "" {
		t.Skip("child process")
	}
	if testing.Short() {
		t.Skip("runs child processes")
	}
	dir := filepath.Join(t.TempDir(), "spill")
	outFile := filepath.Join(t.TempDir(), "delivered")
	rng := rand.New(rand.NewPCG(14, 2026))
	client := &http.Client{Timeout: 10 * time.Second}

	start := func(mode string) (*exec.Cmd, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWebhookSpillCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), spillChildDir+"="+dir, spillChildOut+"="+outFile, spillChildMode+"="+mode, "TRIAGE_LIB="+libPath)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = nil
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
				go func() {
					for sc.Scan() {
					}
				}()
				return cmd, u
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not start")
		return nil, ""
	}

	acked := map[string]bool{}
	seq := 0
	for round := 0; round < 4; round++ {
		cmd, url := start("stall")
		// Several senders at once, so the kill lands during appends too.
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for s := 0; s < 4; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					seq++
					rule := fmt.Sprintf("K%d", seq)
					mu.Unlock()
					if postOnce(client, url, withKey("rule", fmt.Sprintf("%q", rule))) == 200 {
						mu.Lock()
						acked[rule] = true
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		require.NoError(t, cmd.Process.Kill()) // SIGKILL
		_ = cmd.Wait()
		close(stop)
		wg.Wait()
	}
	require.NotEmpty(t, acked, "some alerts were answered 200 before the kills")

	cmd, _ := start("drain")
	require.NoError(t, cmd.Wait())
	b, err := os.ReadFile(outFile)
	require.NoError(t, err)
	delivered := map[string]int{}
	for _, line := range strings.Fields(string(b)) {
		delivered[line]++
	}
	lost := 0
	for rule := range acked {
		if delivered[rule] == 0 {
			lost++
		}
	}
	assert.Zero(t, lost, "of %d alerts answered 200, %d never delivered", len(acked), lost)
	dups := 0
	for _, n := range delivered {
		dups += n - 1
	}
	assert.Zero(t, dups, "no batch reached Falco before the kills, so nothing was delivered twice")
	raw, _ := json.Marshal(map[string]int{"acked": len(acked), "delivered": len(delivered)})
	t.Logf("spill kill -9: %s", raw)
}
