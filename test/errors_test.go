package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/fields"
	"github.com/triage-dev/triage/pkg/plugin"
	"github.com/triage-dev/triage/test/harness"
)

func TestPluginInfoAndFields(t *testing.T) {
	p, err := harness.Load(libPath)
	require.NoError(t, err)
	info := p.Info()
	assert.Equal(t, "triage", info.Name)
	assert.Equal(t, uint32(plugin.PluginID), info.ID)
	assert.GreaterOrEqual(t, info.ID, uint32(1073741824))
	assert.LessOrEqual(t, info.ID, uint32(2147483647))
	assert.Equal(t, "falco_alert", info.EventSource)
	assert.Equal(t, []string{"falco_alert"}, info.ExtractEventSources)
	assert.Equal(t, "3.11.0", info.RequiredAPIVersion)
	assert.Equal(t, plugin.Version, info.Version)
	assert.True(t, p.Capabilities()&harness.CapSourcing != 0)
	assert.True(t, p.Capabilities()&harness.CapExtraction != 0)

	// The field list Falco sees is the one in pkg/fields, in order.
	got, err := p.Fields()
	require.NoError(t, err)
	defs := fields.All()
	require.Len(t, got, len(defs))
	for i, d := range defs {
		assert.Equal(t, d.Name, got[i].Name)
		assert.Equal(t, d.Type, got[i].Type, d.Name)
		assert.Equal(t, d.List, got[i].IsList, d.Name)
		assert.Equal(t, d.KeyArg, got[i].Arg.IsKey && got[i].Arg.IsRequired, d.Name)
		assert.NotEmpty(t, got[i].Desc, d.Name)
	}

	schema, err := p.InitSchema()
	require.NoError(t, err)
	var s struct {
		Properties map[string]any `json:"properties"`
	}
	require.NoError(t, json.Unmarshal([]byte(schema), &s))
	for _, key := range []string{"queueSize", "maxEventBytes", "webhook", "follow"} {
		assert.Contains(t, s.Properties, key)
	}

	require.NoError(t, p.Init(""))
	defer p.Destroy()
	params, err := p.OpenParams()
	require.NoError(t, err)
	require.NotEmpty(t, params)
	assert.Equal(t, "http://127.0.0.1:2820/alerts", params[0].Value)
}

// A host may ask for the last error before anything failed.
func TestLastErrorBeforeAnyFailure(t *testing.T) {
	p := newPlugin(t, "")
	assert.Equal(t, "no error", p.QueryLastError())
	_, err := p.Open("ftp://nowhere")
	require.Error(t, err)
	assert.Contains(t, p.QueryLastError(), "unsupported scheme")
}

func TestInitErrorsNameTheKey(t *testing.T) {
	cases := map[string]string{
		`{"queueSize": 0}`:                  "queueSize",
		`{"queueSize": "many"}`:             "queueSize",
		`{"webhook": {"maxBodyBytes": 10}}`: "webhook.maxBodyBytes",
		`{"follow": {"startAt": "middle"}}`: "follow.startAt",
		`{"nosuchkey": 1}`:                  "nosuchkey",
		`{"idleTimeoutMs": 99999}`:          "idleTimeoutMs",
		`not json`:                          "malformed JSON",
	}
	for cfg, key := range cases {
		// InitRaw skips the harness's schema validation, so the plugin's
		// own check answers; Init (with the schema check, as Falco does)
		// must refuse too.
		p, err := harness.Load(libPath)
		require.NoError(t, err)
		err = p.InitRaw(cfg)
		require.Error(t, err, cfg)
		assert.Contains(t, err.Error(), key, cfg)
		assert.Contains(t, err.Error(), "init_config", cfg)
		p.Destroy()
		q, err := harness.Load(libPath)
		require.NoError(t, err)
		assert.Error(t, q.Init(cfg), cfg)
		q.Destroy()
	}
	// After failed inits (whose states were destroyed), a good one works.
	p := newPlugin(t, `{"queueSize": 64}`)
	inst, err := p.Open(sharedAlertsOrFixture(t))
	require.NoError(t, err)
	inst.Close()
}

func sharedAlertsOrFixture(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "one.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(okAlert+"\n"), 0o600))
	return path
}

func TestOpenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	dir := t.TempDir()
	cases := map[string]string{
		"http://" + busy.Addr().String() + "/alerts":   "already in use",
		"http://0.0.0.0:0/alerts":                      "non-loopback",
		"https://127.0.0.1:0/alerts":                   "https",
		"ftp://example.com/x":                          "unsupported scheme",
		"file://remote-host/var/log/falco/events.json": "three slashes",
		"file://" + dir + "/no-such-dir/events.json":   "does not exist",
		filepath.Join(dir, "missing.jsonl"):            "missing.jsonl",
		dir:                                            "directory",
		"http://127.0.0.1:99999/":                      "port",
	}
	p := newPlugin(t, "")
	for params, mention := range cases {
		_, err := p.Open(params)
		require.Error(t, err, params)
		assert.Contains(t, err.Error(), mention, params)
	}
	// The plugin state is still usable after failed opens.
	inst, err := p.Open(sharedAlertsOrFixture(t))
	require.NoError(t, err)
	evts, err := inst.Collect(context.Background(), 0, 10*time.Second)
	require.NoError(t, err)
	assert.Len(t, evts, 1)
	inst.Close()
}

func TestRequiredKeyArgument(t *testing.T) {
	p := newPlugin(t, "")
	inst, err := p.Open(sharedAlertsOrFixture(t))
	require.NoError(t, err)
	defer inst.Close()
	evts, err := inst.Collect(context.Background(), 1, 10*time.Second)
	require.NoError(t, err)
	// Falco refuses a rule using alert.field without a key; the harness
	// mirrors that check.
	_, err = p.Extract(evts[0], harness.Request{Field: "alert.field"})
	assert.ErrorContains(t, err, "requires an argument")
	_, err = p.Extract(evts[0], harness.Request{Field: "alert.rule", Arg: "x"})
	assert.Error(t, err)
	_, err = p.Extract(evts[0], harness.Request{Field: "alert.nosuch"})
	assert.Error(t, err)
}

// faultEntries are the SDK entry points a panic is injected into; each runs
// in a child process so the injected panics start from a fresh library.
var faultEntries = []string{"init", "open", "next_batch", "alert", "extract", "event_to_string", "close", "destroy"}

func TestPanicsAreRecovered(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, entry := range faultEntries {
		t.Run(entry, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run=^TestFaultChild$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), plugin.FaultEnv+"="+entry, "TRIAGE_FAULT_CHILD="+entry, "TRIAGE_LIB="+libPath)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "the host process must survive a panic in %s:\n%s", entry, out)
			assert.Contains(t, string(out), "FAULT-OK "+entry)
			assert.Contains(t, string(out), "recovered from panic", "the panic is logged")
		})
	}
}

// TestFaultChild runs only as the child of TestPanicsAreRecovered.
func TestFaultChild(t *testing.T) {
	entry := os.Getenv("TRIAGE_FAULT_CHILD")
	if entry == "" {
		t.Skip("runs only as a child of TestPanicsAreRecovered")
	}
	file := filepath.Join(t.TempDir(), "three.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(withKey("rule", `"one"`)+"\n"+withKey("rule", `"two"`)+"\n"+withKey("rule", `"three"`)+"\n"), 0o600))
	p, err := harness.Load(libPath)
	require.NoError(t, err)

	if entry == "init" {
		err := p.Init("")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "recovered from panic")
		fmt.Println("FAULT-OK init")
		return
	}
	require.NoError(t, p.Init(""))
	open := func() *harness.Instance {
		inst, err := p.Open(file)
		if entry == "open" {
			require.Error(t, err)
			assert.Contains(t, err.Error(), "recovered from panic")
			inst, err = p.Open(file) // fires once: the state is still good
		}
		require.NoError(t, err)
		return inst
	}
	inst := open()
	switch entry {
	case "next_batch":
		_, rc, err := inst.NextBatch()
		assert.Equal(t, harness.Failure, rc)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "recovered from panic")
	}
	evts, err := inst.Collect(context.Background(), 0, 10*time.Second)
	require.NoError(t, err)
	want := []string{"one", "two", "three"}
	if entry == "alert" {
		want = want[1:] // the alert being processed is skipped and counted
	}
	if entry == "extract" {
		_, err := p.Extract(evts[0], harness.Request{Field: "alert.rule"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "recovered from panic")
	}
	assert.Equal(t, want, rulesOf(t, p, evts))
	s, err := p.EventToString(evts[0])
	if entry == "event_to_string" {
		// The C API has no error code here: the SDK returns the error text.
		require.NoError(t, err)
		assert.Contains(t, s, "recovered from panic")
		s, err = p.EventToString(evts[0])
	}
	require.NoError(t, err)
	assert.True(t, strings.Contains(s, want[0]))
	inst.Close()
	p.Destroy()
	if !t.Failed() {
		fmt.Println("FAULT-OK " + entry)
	}
}
