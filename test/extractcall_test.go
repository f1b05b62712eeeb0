package test

import (
	"bufio"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// TestSameFieldTwiceInOneCall: the plugin API lets one extract_fields call
// ask for the same field several times, e.g. alert.field[proc.name] and
// alert.field[fd.name]; Falco never does (falco-facts.md fact 7, it asks
// one field per call), but each request must get its own value. Every
// event of the sample file is asked, in one call (with and without
// value_offsets), for alert.field with several keys and for string-list
// and uint64 fields more than once, interleaved; each value must be the
// one the same request gets alone, and alert.field[KEY] must be the
// string the sender wrote under KEY.
func TestSameFieldTwiceInOneCall(t *testing.T) {
	requireShared(t, sharedAlerts)
	p := newPlugin(t, "{}")
	evts := replayFile(t, p, sharedAlerts)
	sent := sentOutputFields(t, sharedAlerts)
	require.Len(t, evts, len(sent), "one event per alert, in file order")

	keys := []string{"proc.name", "fd.name", "proc.cmdline", "user.name", "evt.type", "proc.pname"}
	var reqs []harness.Request
	var keyAt []string // the alert.field key of reqs[i], "" for other fields
	add := func(r harness.Request) {
		reqs = append(reqs, r)
		if r.Field == "alert.field" {
			keyAt = append(keyAt, r.Arg)
		} else {
			keyAt = append(keyAt, "")
		}
	}
	for i, k := range keys {
		add(harness.Request{Field: "alert.field", Arg: k})
		switch i % 3 {
		case 0:
			add(harness.Request{Field: "mitre.tactics"}) // string list
		case 1:
			add(harness.Request{Field: "risk.score"}) // uint64
		case 2:
			add(harness.Request{Field: "alert.tags"}) // string list
		}
	}
	noSuch := len(reqs)
	add(harness.Request{Field: "alert.field", Arg: "no.such.key"})
	add(harness.Request{Field: "alert.field", Arg: keys[0]}) // the same key again
	add(harness.Request{Field: "dedup.first_seen"})          // abstime
	add(harness.Request{Field: "dedup.first_seen"})

	distinct := 0 // events where two alert.field answers differ
	lists, numbers := 0, 0
	for i, e := range evts {
		alone, err := p.Extract(e, reqs...) // one call per request
		require.NoError(t, err)
		oneCall, err := p.ExtractOneCall(e, reqs...)
		require.NoError(t, err)
		require.Equal(t, alone, oneCall, "event %d: one call for all requests", i)
		withOffs, _, err := p.ExtractOneCallWithOffsets(e, reqs...)
		require.NoError(t, err)
		require.Equal(t, alone, withOffs, "event %d: one call with value_offsets", i)

		seen := map[string]bool{}
		for k, key := range keyAt {
			if key == "" {
				continue
			}
			want, isString := sent[i][key].(string)
			if !isString {
				continue
			}
			require.True(t, oneCall[k].Present, "event %d alert.field[%s]", i, key)
			assert.Equal(t, []string{want}, oneCall[k].Str, "event %d alert.field[%s]", i, key)
			seen[want] = true
		}
		if len(seen) > 1 {
			distinct++
		}
		assert.False(t, oneCall[noSuch].Present, "alert.field[no.such.key]")
		if len(oneCall[1].Str) > 1 {
			lists++
		}
		if oneCall[3].Present {
			numbers++
		}
	}
	require.Greater(t, distinct, 50, "events whose alert.field answers differ, or the test proves nothing")
	require.Positive(t, lists, "some events with several tactics")
	require.Positive(t, numbers, "risk.score present")
}

// sentOutputFields reads output_fields of each alert of a JSON-lines file.
func sentOutputFields(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		var a struct {
			OutputFields map[string]any `json:"output_fields"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &a), "line "+strconv.Itoa(n))
		out = append(out, a.OutputFields)
	}
	require.NoError(t, sc.Err())
	return out
}
