// Package test drives the built libtriage.so through the plugin C API, the
// way Falco does, with test/harness as Falco's stand-in.
package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// libPath is the plugin under test: $TRIAGE_LIB (make test sets it), else
// a fresh build into a temporary directory.
var libPath string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	libPath = os.Getenv("TRIAGE_LIB")
	if libPath == "" {
		dir, err := os.MkdirTemp("", "triage-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		libPath = filepath.Join(dir, "libtriage.so")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", libPath, "../plugin")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building libtriage.so:", err)
			return 1
		}
	}
	return m.Run()
}

// newPlugin loads the library and initializes one plugin state with
// config, destroyed when the test ends.
func newPlugin(t *testing.T, config string) *harness.Plugin {
	t.Helper()
	p, err := harness.Load(libPath)
	require.NoError(t, err)
	require.NoError(t, p.Init(config))
	t.Cleanup(p.Destroy)
	return p
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// replayFile opens a file read once and collects every event until EOF.
func replayFile(t *testing.T, p *harness.Plugin, path string) []*harness.Event {
	t.Helper()
	inst, err := p.Open(path)
	require.NoError(t, err)
	t.Cleanup(inst.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evts, err := inst.Collect(ctx, 0, 0)
	require.NoError(t, err, "a file read once must end with EOF")
	return evts
}

const sharedAlerts = "../../shared/data/alerts/upstream-rules.jsonl"

func requireShared(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		t.Skip("../shared/data not present")
	}
}
