package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// TestAsyncExtractionGivesTheSameValues replays the samples into one state
// with useAsync and one without, and asks both for every triage field of
// every event: the values must not depend on the extraction mode.
func TestAsyncExtractionGivesTheSameValues(t *testing.T) {
	requireShared(t, sharedAlerts)
	syncP := newPlugin(t, `{"useAsync": false}`)
	asyncP := newPlugin(t, `{"useAsync": true}`)
	syncEvts := replayFile(t, syncP, sharedAlerts)
	asyncEvts := replayFile(t, asyncP, sharedAlerts)
	require.Equal(t, len(syncEvts), len(asyncEvts))
	require.NotEmpty(t, syncEvts)
	reqs := triageRequests()
	for i := range syncEvts {
		want, err := syncP.ExtractOneCall(syncEvts[i], reqs...)
		require.NoError(t, err)
		got, err := asyncP.ExtractOneCall(asyncEvts[i], reqs...)
		require.NoError(t, err)
		require.Equal(t, want, got, "event %d", i)
		// and one field per call, as libsinsp asks
		each, err := asyncP.Extract(asyncEvts[i], reqs...)
		require.NoError(t, err)
		require.Equal(t, want, each, "event %d, one call per field", i)
	}
}

func TestUseAsyncMustBeBoolean(t *testing.T) {
	p, err := harness.Load(libPath)
	require.NoError(t, err)
	err = p.InitRaw(`{"useAsync": "yes"}`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "useAsync")
	p.Destroy()
}

// TestInitFailuresBetweenAsyncStates runs, in a fresh process, the
// sequence that made plugin-sdk-go panic inside plugin_destroy (and abort
// the host) before pkg/extractmode: failed inits destroyed after
// successful ones, with async on and off, while other states live and
// after all of them are gone.
func TestInitFailuresBetweenAsyncStates(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^TestInitFailuresChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "TRIAGE_EXTRACTMODE_CHILD=1", "TRIAGE_LIB="+libPath)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the host must survive destroying failed inits:\n%s", out)
	assert.Contains(t, string(out), "EXTRACTMODE-OK")
	assert.Contains(t, string(out), "field extraction: async requested", "useAsync is logged")
}

// TestInitFailuresChild runs only as the child of
// TestInitFailuresBetweenAsyncStates.
func TestInitFailuresChild(t *testing.T) {
	if os.Getenv("TRIAGE_EXTRACTMODE_CHILD") == "" {
		t.Skip("runs only as a child of TestInitFailuresBetweenAsyncStates")
	}
	file := sharedAlertsOrFixture(t)
	state := func(config string) *harness.Plugin {
		p, err := harness.Load(libPath)
		require.NoError(t, err)
		require.NoError(t, p.Init(config))
		return p
	}
	failed := func() {
		p, err := harness.Load(libPath)
		require.NoError(t, err)
		// InitRaw: past the harness's schema check, so the plugin itself fails.
		require.Error(t, p.InitRaw(`{"queueSize": 0}`))
		p.Destroy() // Falco destroys failed states too
	}
	extractRule := func(p *harness.Plugin) {
		evts := replayFile(t, p, file)
		require.Len(t, evts, 1)
		assert.Equal(t, "ok", ruleOf(t, p, evts[0], "alert.rule"))
	}

	failed() // before any success: the SDK's stop hook is not armed yet
	a := state(`{"useAsync": true}`)
	extractRule(a)
	b := state(`{}`)
	failed() // while an async and a sync state live
	extractRule(a)
	extractRule(b)
	a.Destroy()
	failed() // while only the sync state lives
	b.Destroy()
	failed() // after every state is gone (the SDK freed its async batch)
	failed()
	c := state(`{"useAsync": true}`)
	extractRule(c)
	failed()
	c.Destroy()
	if !t.Failed() {
		fmt.Println("EXTRACTMODE-OK")
	}
}

// TestOpenAfterFailedInitKeepsTheStateConfig: plugin-sdk-go v0.8.3 hands
// plugin_open to the plugin object it created last, here the one whose
// init failed. The input must still open with the configuration of the
// live state: its webhook keeps requiring the shared secret.
func TestOpenAfterFailedInitKeepsTheStateConfig(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	good := newPlugin(t, fmt.Sprintf(`{"webhook": {"secretFile": %q}}`, secret))

	bad, err := harness.Load(libPath)
	require.NoError(t, err)
	require.Error(t, bad.InitRaw(`{"queueSize": 0}`))
	defer bad.Destroy()

	url := fmt.Sprintf("http://127.0.0.1:%d/alerts", freePort(t))
	inst, err := good.Open(url)
	require.NoError(t, err)
	defer inst.Close()
	code, _ := send(t, "POST", url, "application/json", okAlert)
	assert.Equal(t, 401, code, "the live state's secret applies")
	code, _ = send(t, "POST", url, "application/json", okAlert, "X-Triage-Secret", "s3cret")
	assert.Equal(t, 200, code)
	evts := collectN(t, inst, 1)
	assert.Equal(t, "ok", ruleOf(t, good, evts[0], "alert.rule"))
}
