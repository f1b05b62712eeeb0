package test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

var storyStart = time.Date(2026, 11, 21, 9, 14, 0, 0, time.UTC)

// storyAlert is a syscall alert on one container, with the upstream rule's
// own tags (the knowledge base maps it by name).
func storyAlert(rule, priority string, tags []string, container string, at time.Time, fields map[string]any) string {
	of := map[string]any{"container.id": container, "container.name": "shop-api", "k8s.ns.name": nil, "k8s.pod.name": nil,
		"proc.name": "sh", "user.uid": 0, "user.name": "root"}
	for k, v := range fields {
		of[k] = v
	}
	b, _ := json.Marshal(map[string]any{
		"rule": rule, "priority": priority, "source": "syscall", "hostname": "worker-3", "tags": tags,
		"time": at.Format(time.RFC3339Nano), "output": rule, "output_fields": of,
	})
	return string(b)
}

type storyStep struct {
	rule, priority string
	tags           []string
	fields         map[string]any
}

// The scripted attack: /dev/shm execution → fileless memfd execution →
// sensitive file read → outbound connection to a public IP, then a copy
// tool shipping data out.
var attack = []storyStep{
	{"Execution from /dev/shm", "Warning", []string{"maturity_stable", "mitre_execution", "T1059.004"}, map[string]any{"proc.exepath": "/dev/shm/x"}},
	{"Fileless execution via memfd_create", "Critical", []string{"maturity_stable", "mitre_defense_evasion", "T1620"}, map[string]any{"evt.arg.flags": "EXE_WRITABLE|EXE_FROM_MEMFD"}},
	{"Read sensitive file untrusted", "Warning", []string{"maturity_stable", "mitre_credential_access", "T1555"}, map[string]any{"fd.name": "/etc/shadow"}},
	{"Unexpected outbound connection destination", "Notice", []string{"maturity_deprecated", "mitre_command_and_control", "TA0011"}, map[string]any{"fd.rip": "8.8.8.8"}},
	{"Launch Remote File Copy Tools in Container", "Notice", []string{"maturity_incubating", "mitre_exfiltration", "T1020"}, map[string]any{"proc.name": "scp"}},
}

var corrFields = []string{"entity.id", "entity.kind", "entity.alerts", "entity.tactics", "entity.tactic.count", "entity.stage",
	"entity.escalated", "entity.escalation", "entity.risk.score", "entity.risk.sum", "incident.id", "incident.reasons",
	"dedup.count", "dedup.first", "dedup.storm", "entity.late"}

func sendAll(t *testing.T, w *webhookPlugin, alerts []string) []map[string]harness.Value {
	t.Helper()
	code, body := send(t, "POST", w.url, "application/x-ndjson", strings.Join(alerts, "\n"))
	require.Equal(t, 200, code, body)
	evts := w.collect(t, len(alerts))
	require.Len(t, evts, len(alerts))
	out := make([]map[string]harness.Value, len(evts))
	for i, e := range evts {
		out[i] = extractMap(t, w.p, e, corrFields...)
	}
	return out
}

func escalations(v map[string]harness.Value) []string {
	if !v["entity.escalation"].Present {
		return nil
	}
	return v["entity.escalation"].Str
}

func TestAttackStoryOnOneContainerEndToEnd(t *testing.T) {
	w := openWebhook(t, "")
	var alerts []string
	for i, s := range attack {
		alerts = append(alerts, storyAlert(s.rule, s.priority, s.tags, "4f2a9c1d7e30", storyStart.Add(time.Duration(i)*time.Minute), s.fields))
	}
	got := sendAll(t, w, alerts)

	multi, exfil := 0, 0
	for i, v := range got {
		assert.Equal(t, []string{"container:worker-3/4f2a9c1d7e30"}, v["entity.id"].Str)
		assert.Equal(t, []string{"container"}, v["entity.kind"].Str)
		assert.Equal(t, []uint64{uint64(i + 1)}, v["entity.alerts"].U64, "alert %d", i+1)
		assert.Equal(t, []uint64{uint64(i + 1)}, v["entity.tactic.count"].U64, "each step adds its tactic (alert %d)", i+1)
		assert.Equal(t, []bool{true}, v["dedup.first"].Bool)
		assert.Equal(t, []uint64{1}, v["dedup.count"].U64)
		assert.Equal(t, len(escalations(v)) > 0, v["entity.escalated"].Bool[0], "escalated iff escalation (alert %d)", i+1)
		for _, e := range escalations(v) {
			switch e {
			case "multi_tactic":
				multi++
				assert.Equal(t, 2, i, "the third tactic crosses the threshold")
			case "exfiltration_or_impact":
				exfil++
				assert.Equal(t, 4, i)
			}
		}
	}
	assert.Equal(t, 1, multi, "exactly one alert carries the multi-tactic escalation")
	assert.Equal(t, 1, exfil)
	assert.Equal(t, []string{"execution", "defense-evasion", "credential-access", "command-and-control", "exfiltration"}, got[4]["entity.tactics"].Str)
	assert.Equal(t, []string{"exfiltration"}, got[4]["entity.stage"].Str)
	assert.False(t, got[0]["incident.id"].Present, "one alert is not an incident")
	for i := 2; i < len(got); i++ {
		assert.Equal(t, got[1]["incident.id"].Str, got[i]["incident.id"].Str, "one incident for the episode")
	}
	assert.Contains(t, got[4]["incident.reasons"].Str, "multi_tactic")
	// Risk sums grow monotonically along the story.
	for i := 1; i < len(got); i++ {
		assert.Greater(t, got[i]["entity.risk.sum"].U64[0], got[i-1]["entity.risk.sum"].U64[0])
	}

	// 16 minutes after the last step the window has slid: the old tactics no
	// longer count, and a new episode begins.
	later := sendAll(t, w, []string{storyAlert(attack[2].rule, "Warning", attack[2].tags, "4f2a9c1d7e30", storyStart.Add(20*time.Minute), attack[2].fields)})
	assert.Equal(t, []uint64{1}, later[0]["entity.tactic.count"].U64)
	assert.Equal(t, []uint64{1}, later[0]["entity.alerts"].U64)
	// The 24 h risk window still holds the earlier scores, so it is an
	// incident, but a new episode's.
	assert.Contains(t, later[0]["incident.reasons"].Str, "risk_threshold")
	assert.NotEqual(t, got[4]["incident.id"].Str, later[0]["incident.id"].Str)
}

func TestAttackSpreadOverTwoContainersDoesNotEscalate(t *testing.T) {
	w := openWebhook(t, "")
	var alerts []string
	for i, s := range attack[:4] {
		c := []string{"aaaaaaaaaaaa", "bbbbbbbbbbbb"}[i/2]
		alerts = append(alerts, storyAlert(s.rule, s.priority, s.tags, c, storyStart.Add(time.Duration(i)*time.Minute), s.fields))
	}
	for i, v := range sendAll(t, w, alerts) {
		assert.NotContains(t, escalations(v), "multi_tactic", "alert %d", i+1)
		assert.LessOrEqual(t, v["entity.tactic.count"].U64[0], uint64(2))
	}
}

func TestDedupThousandRepeatsEndToEnd(t *testing.T) {
	w := openWebhook(t, `{"queueSize": 2048}`)
	s := attack[0]
	var alerts []string
	for i := 0; i < 1000; i++ {
		alerts = append(alerts, storyAlert(s.rule, s.priority, s.tags, "cccccccccccc", storyStart.Add(time.Duration(i)*time.Millisecond), s.fields))
	}
	got := sendAll(t, w, alerts)
	firsts, storms := 0, 0
	for i, v := range got {
		require.Equal(t, []uint64{uint64(i + 1)}, v["dedup.count"].U64)
		if v["dedup.first"].Bool[0] {
			firsts++
		}
		if v["dedup.storm"].Bool[0] {
			storms++
		}
	}
	assert.Equal(t, 1, firsts)
	assert.Equal(t, 10, storms, "one storm summary per 100 repeats")
}

func TestEntityEvictionEndToEnd(t *testing.T) {
	w := openWebhook(t, `{"correlation": {"maxEntities": 10}}`)
	s := attack[0]
	var alerts []string
	for i := 0; i < 20; i++ {
		alerts = append(alerts, storyAlert(s.rule, s.priority, s.tags, fmt.Sprintf("c%011d", i), storyStart.Add(time.Duration(i)*time.Second), s.fields))
	}
	// The first container again: evicted, so its story starts over; the
	// last one is still tracked.
	alerts = append(alerts,
		storyAlert(s.rule, s.priority, s.tags, fmt.Sprintf("c%011d", 0), storyStart.Add(30*time.Second), s.fields),
		storyAlert(s.rule, s.priority, s.tags, fmt.Sprintf("c%011d", 19), storyStart.Add(31*time.Second), s.fields))
	got := sendAll(t, w, alerts)
	assert.Equal(t, []uint64{1}, got[20]["entity.alerts"].U64)
	assert.Equal(t, []uint64{2}, got[21]["entity.alerts"].U64)
}

// Two plugin states replaying the same alerts give the same fields.
func TestCorrelationDeterministicReplay(t *testing.T) {
	requireShared(t, sharedAlerts)
	run := func() [][]string {
		p := newPlugin(t, "")
		var out [][]string
		for _, e := range replayFile(t, p, sharedAlerts) {
			v := extractMap(t, p, e, corrFields...)
			var row []string
			for _, f := range corrFields {
				row = append(row, fmt.Sprint(v[f]))
			}
			out = append(out, row)
		}
		return out
	}
	a, b := run(), run()
	require.Len(t, a, 242)
	assert.Equal(t, a, b)
}
