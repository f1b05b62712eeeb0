package test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRuleOutputsRenderAsFalco renders the output of every rule in
// rules/triage_rules.yaml the way Falco does for plugin fields
// (falco-facts.md fact 5; harness.FormatOutput, one field per
// extract_fields call, fact 7) for the second alert of the scripted attack
// story: memfd execution (defense-evasion) after /dev/shm execution
// (execution) on one container, a critical alert whose entity has seen two
// tactics. Falco trims a rule's output when it loads the rule
// (falco userspace/engine/rule_loader_reader.cpp), as done here.
func TestRuleOutputsRenderAsFalco(t *testing.T) {
	w := openWebhook(t, "")
	var alerts []string
	for i, s := range attack[:2] {
		alerts = append(alerts, storyAlert(s.rule, s.priority, s.tags, "4f2a9c1d7e30", storyStart.Add(time.Duration(i)*time.Minute), s.fields))
	}
	code, body := send(t, "POST", w.url, "application/x-ndjson", strings.Join(alerts, "\n"))
	require.Equal(t, 200, code, body)
	evts := w.collect(t, len(alerts))
	require.Len(t, evts, 2)
	first, second := evts[0], evts[1]

	rendered, withTactics := 0, 0
	for _, r := range loadRules(t) {
		if r.Rule == "" || r.Output == "" {
			continue
		}
		tmpl := strings.TrimSpace(r.Output)
		out, err := w.p.FormatOutput(second, tmpl)
		require.NoError(t, err, "rule %q: every %%token must be a triage field", r.Rule)
		rendered++
		t.Logf("%s: %s", r.Rule, out.Line)
		assert.NotContains(t, out.Message, "%", "rule %q: a token left unresolved", r.Rule)
		assert.NotEmpty(t, out.Fields, "rule %q", r.Rule)
		if strings.Contains(tmpl, "entity.tactics=%entity.tactics") {
			withTactics++
			assert.Contains(t, out.Message, "entity.tactics=(execution,defense-evasion)", "rule %q", r.Rule)
		}
		if _, ok := out.Fields["entity.tactics"]; ok {
			assert.Equal(t, []any{"execution", "defense-evasion"}, out.Fields["entity.tactics"], "rule %q: a list is an array in output_fields", r.Rule)
		}
		// json_output keeps types: numbers, arrays, booleans.
		js, err := json.Marshal(out.Fields)
		require.NoError(t, err)
		var back map[string]any
		require.NoError(t, json.Unmarshal(js, &back))
		for name, v := range back {
			switch name {
			case "risk.score", "entity.alerts", "entity.risk.sum", "entity.risk.score", "dedup.count",
				"entity.tactic.count", "dedup.first_seen", "dedup.last_seen", "alert.time", "evt.time":
				assert.IsType(t, float64(0), v, "rule %q: %s is a number", r.Rule, name)
			case "entity.tactics", "entity.escalation", "risk.factors", "mitre.techniques", "guide.false_positives":
				if v != nil {
					assert.IsType(t, []any{}, v, "rule %q: %s is an array", r.Rule, name)
				}
			case "entity.escalated", "dedup.first", "dedup.storm", "entity.late":
				assert.IsType(t, true, v, "rule %q: %s is a boolean", r.Rule, name)
			}
		}
	}
	require.Positive(t, rendered, "rules with outputs")
	require.Positive(t, withTactics, "some rule output shows entity.tactics=%entity.tactics")

	// Falco's list rendering inside literal parentheses, and a field with
	// no value: the first alert alone is no incident.
	out, err := w.p.FormatOutput(second, "tactics (%entity.tactics) score %risk.score")
	require.NoError(t, err)
	assert.Equal(t, "tactics ((execution,defense-evasion)) score 100", out.Message)
	assert.Equal(t, uint64(100), out.Fields["risk.score"])
	out, err = w.p.FormatOutput(first, "incident %incident.id tactics %entity.tactics")
	require.NoError(t, err)
	assert.Equal(t, "incident <NA> tactics (execution)", out.Message)
	assert.Nil(t, out.Fields["incident.id"])
	assert.Contains(t, out.Fields, "incident.id", "a field with no value is null, not left out")
}
