package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/plugin"
	"github.com/triage-dev/triage/test/harness"
)

// TestCPUProfileEnv: with TRIAGE_CPUPROFILE set, the plugin writes a pprof
// CPU profile of its own runtime, closed when the last state is destroyed;
// an unwritable path is logged and changes nothing else.
func TestCPUProfileEnv(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "cpu.pprof"), "writing a CPU profile"},
		{filepath.Join(dir, "no", "such", "dir", "cpu.pprof"), "cannot profile"},
	} {
		cmd := exec.Command(exe, "-test.run=^TestCPUProfileChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), plugin.ProfileEnv+"="+c.path, "TRIAGE_PROFILE_CHILD=1", "TRIAGE_LIB="+libPath)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "PROFILE-OK")
		assert.Contains(t, string(out), c.want)
	}
	data, err := os.ReadFile(filepath.Join(dir, "cpu.pprof"))
	require.NoError(t, err)
	require.Greater(t, len(data), 2)
	assert.Equal(t, []byte{0x1f, 0x8b}, data[:2], "a pprof profile is gzip-compressed")
}

// TestCPUProfileChild runs only as the child of TestCPUProfileEnv.
func TestCPUProfileChild(t *testing.T) {
	if os.Getenv("TRIAGE_PROFILE_CHILD") == "" {
		t.Skip("runs only as a child of TestCPUProfileEnv")
	}
	p, err := harness.Load(libPath)
	require.NoError(t, err)
	require.NoError(t, p.Init("{}"))
	evts := replayFile(t, p, sharedAlertsOrFixture(t))
	require.Len(t, evts, 1)
	assert.Equal(t, "ok", ruleOf(t, p, evts[0], "alert.rule"))
	p.Destroy()
	if !t.Failed() {
		fmt.Println("PROFILE-OK")
	}
}
