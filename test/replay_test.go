package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/fields"
	"github.com/triage-dev/triage/pkg/plugin"
	"github.com/triage-dev/triage/test/harness"
)

// expectedAlert is an alert decoded with encoding/json, independently of
// triage's fastjson parser, to say what the fields must return.
type expectedAlert struct {
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Source       string         `json:"source"`
	Hostname     string         `json:"hostname"`
	Time         string         `json:"time"`
	UUID         string         `json:"uuid"`
	Output       string         `json:"output"`
	Tags         []string       `json:"tags"`
	OutputFields map[string]any `json:"output_fields"`
}

// Falco's priority names and the ranks the README documents.
var priorityRank = map[string]uint64{
	"debug": 0, "informational": 1, "info": 1, "notice": 2, "warning": 3,
	"error": 4, "critical": 5, "alert": 6, "emergency": 7,
}
var falcoCasing = []string{"Debug", "Informational", "Notice", "Warning", "Error", "Critical", "Alert", "Emergency"}

func readExpected(t *testing.T, path string) []expectedAlert {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []expectedAlert
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber() // keep numbers as written
		var a expectedAlert
		require.NoError(t, dec.Decode(&a))
		out = append(out, a)
	}
	require.NoError(t, sc.Err())
	return out
}

// expectedFieldText is how alert.field[KEY] must render a JSON value.
func expectedFieldText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	default:
		b, _ := json.Marshal(x)
		return string(b), true
	}
}

func allAlertRequests() []harness.Request {
	var reqs []harness.Request
	for _, d := range fields.All() {
		if strings.HasPrefix(d.Name, "alert.") && !d.KeyArg {
			reqs = append(reqs, harness.Request{Field: d.Name})
		}
	}
	return reqs
}

func checkAlertFields(t *testing.T, p *harness.Plugin, e *harness.Event, want expectedAlert) {
	t.Helper()
	reqs := allAlertRequests()
	vals, err := p.Extract(e, reqs...)
	require.NoError(t, err)
	got := map[string]harness.Value{}
	for i, r := range reqs {
		got[r.Field] = vals[i]
	}
	rank, ok := priorityRank[strings.ToLower(want.Priority)]
	require.True(t, ok, want.Priority)
	wantTime, err := time.Parse(time.RFC3339Nano, want.Time)
	require.NoError(t, err)

	assert.Equal(t, []string{want.Rule}, got["alert.rule"].Str, "alert.rule")
	assert.Equal(t, []string{falcoCasing[rank]}, got["alert.priority"].Str, "alert.priority")
	assert.Equal(t, []uint64{rank}, got["alert.priority.rank"].U64, "alert.priority.rank")
	assert.Equal(t, []uint64{uint64(wantTime.UnixNano())}, got["alert.time"].U64, "alert.time")
	assert.Equal(t, uint64(wantTime.UnixNano()), e.Timestamp, "event timestamp = alert time")
	for field, w := range map[string]string{"alert.source": want.Source, "alert.hostname": want.Hostname, "alert.uuid": want.UUID, "alert.output": want.Output} {
		if w == "" {
			assert.False(t, got[field].Present, "%s should have no value", field)
		} else {
			assert.Equal(t, []string{w}, got[field].Str, field)
		}
	}
	if len(want.Tags) == 0 {
		assert.False(t, got["alert.tags"].Present)
	} else {
		assert.True(t, got["alert.tags"].IsList)
		assert.Equal(t, want.Tags, got["alert.tags"].Str, "alert.tags")
	}

	// alert.field[KEY], one call per key as libsinsp's filterchecks do.
	var keyReqs []harness.Request
	var wants []any
	for k, v := range want.OutputFields {
		keyReqs = append(keyReqs, harness.Request{Field: "alert.field", Arg: k})
		wants = append(wants, v)
	}
	keyReqs = append(keyReqs, harness.Request{Field: "alert.field", Arg: "no.such.key"})
	wants = append(wants, nil)
	kv, err := p.ExtractEach(e, keyReqs...)
	require.NoError(t, err)
	for i, r := range keyReqs {
		text, present := expectedFieldText(wants[i])
		if !present {
			assert.False(t, kv[i].Present, "alert.field[%s] should have no value", r.Arg)
			continue
		}
		assert.Equal(t, []string{text}, kv[i].Str, "alert.field[%s]", r.Arg)
	}
}

// The 242 upstream sample alerts, read once from a plain path: 242 events,
// then EOF, every alert.* field equal to the input.
func TestReplaySharedAlerts(t *testing.T) {
	requireShared(t, sharedAlerts)
	want := readExpected(t, sharedAlerts)
	require.Len(t, want, 242)

	p := newPlugin(t, `{"batchSize": 50}`)
	inst, err := p.Open(sharedAlerts)
	require.NoError(t, err)
	defer inst.Close()
	evts, err := inst.Collect(context.Background(), 0, 0)
	require.NoError(t, err)
	require.Len(t, evts, 242)

	// EOF is sticky, as Falco expects from a finite source.
	_, rc, err := inst.NextBatch()
	require.NoError(t, err)
	assert.Equal(t, harness.EOF, rc)

	for i, e := range evts {
		assert.Equal(t, uint64(i+1), e.Num)
		assert.Equal(t, uint32(plugin.PluginID), e.PluginID)
		checkAlertFields(t, p, e, want[i])
	}

	// Extraction is answered from the payload alone: going back to an
	// earlier event after others gives the same values.
	checkAlertFields(t, p, evts[0], want[0])
}

func TestEventToString(t *testing.T) {
	requireShared(t, sharedAlerts)
	p := newPlugin(t, "")
	inst, err := p.Open(sharedAlerts)
	require.NoError(t, err)
	defer inst.Close()
	evts, err := inst.Collect(context.Background(), 1, 10*time.Second)
	require.NoError(t, err)
	s, err := p.EventToString(evts[0])
	require.NoError(t, err)
	want := readExpected(t, sharedAlerts)[0]
	assert.NotContains(t, s, "\n")
	for _, part := range []string{want.Priority, want.Rule, want.Hostname, want.Source} {
		assert.Contains(t, s, part)
	}
}
