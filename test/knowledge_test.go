package test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/test/harness"
)

func extractMap(t *testing.T, p *harness.Plugin, e *harness.Event, names ...string) map[string]harness.Value {
	t.Helper()
	reqs := make([]harness.Request, len(names))
	for i, n := range names {
		reqs[i] = harness.Request{Field: n}
	}
	vals, err := p.Extract(e, reqs...)
	require.NoError(t, err)
	out := map[string]harness.Value{}
	for i, n := range names {
		out[n] = vals[i]
	}
	return out
}

// expectedEnv says where a sample alert happened, from its JSON alone.
func expectedEnv(a expectedAlert) string {
	switch a.Source {
	case "k8s_audit":
		return "k8s"
	case "aws_cloudtrail":
		return "aws"
	case "gcp_auditlog":
		return "gcp"
	case "okta", "github":
		return a.Source
	}
	for _, k := range []string{"k8s.pod.name", "k8s.ns.name"} {
		if v, ok := a.OutputFields[k].(string); ok && v != "" {
			return "k8s"
		}
	}
	if v, ok := a.OutputFields["container.id"].(string); ok && v != "" && v != "host" {
		return "container"
	}
	return "host"
}

// Every upstream sample alert gets its rule's mapping, playbooks and
// guidance from the knowledge base, through the C ABI.
func TestKnowledgeFieldsEndToEnd(t *testing.T) {
	requireShared(t, sharedAlerts)
	want := readExpected(t, sharedAlerts)
	k, err := kb.Default()
	require.NoError(t, err)

	p := newPlugin(t, "")
	evts := replayFile(t, p, sharedAlerts)
	require.Len(t, evts, len(want))

	names := []string{"mitre.mapping", "mitre.techniques", "mitre.technique.names", "mitre.tactics", "mitre.tactic.ids",
		"mitre.version", "mitigation.playbooks", "mitigation.env", "mitigation.action", "mitigation.safety",
		"mitigation.url", "guide.triage", "response.reversible", "mitre.conflict", "mitre.kind",
		"mitigation.ids", "mitigation.attack_ids", "mitigation.recommended_ids"}
	for i, e := range evts {
		w := want[i]
		rule, ok := k.Rule(w.Rule)
		require.True(t, ok, w.Rule)
		got := extractMap(t, p, e, names...)
		assert.Equal(t, []string{"rule_map"}, got["mitre.mapping"].Str, w.Rule)
		if len(rule.Techniques) > 0 {
			assert.Equal(t, rule.Techniques, got["mitre.techniques"].Str, w.Rule)
		}
		assert.Len(t, got["mitre.technique.names"].Str, len(rule.Techniques), w.Rule)
		assert.Equal(t, rule.Playbooks, got["mitigation.playbooks"].Str, w.Rule)
		assert.Equal(t, []string{"18.1"}, got["mitre.version"].Str)
		assert.Equal(t, []string{expectedEnv(w)}, got["mitigation.env"].Str, w.Rule)
		assert.True(t, got["mitigation.action"].Present, w.Rule)
		assert.Contains(t, []string{"investigate", "contain", "harden", "disrupt", "destructive"}, got["mitigation.safety"].Str[0], w.Rule)
		if rule.MappingKind() == kb.KindTechnique || len(got["mitigation.ids"].Str) > 0 {
			assert.True(t, strings.HasPrefix(got["mitigation.url"].Str[0], "https://attack.mitre.org/"), w.Rule)
		}
		assert.Equal(t, []string{rule.MappingKind()}, got["mitre.kind"].Str, w.Rule)
		// every mitigation is either ATT&CK's for one of the techniques or triage's, never both
		attack, recommended := got["mitigation.attack_ids"].Str, got["mitigation.recommended_ids"].Str
		assert.ElementsMatch(t, got["mitigation.ids"].Str, append(append([]string{}, attack...), recommended...), w.Rule)
		for _, m := range attack {
			related := false
			for _, tid := range rule.Techniques {
				te, _ := k.Technique(tid)
				for _, tm := range te.Mitigations {
					related = related || tm == m
				}
			}
			assert.True(t, related, "%s: %s is labelled ATT&CK's but mitigates none of %v", w.Rule, m, rule.Techniques)
		}
		assert.Equal(t, []string{rule.Triage}, got["guide.triage"].Str, w.Rule)
		assert.True(t, got["response.reversible"].Present, w.Rule)
		if rule.MappingKind() == kb.KindTechnique {
			assert.Equal(t, got["mitre.tactics"].IsList && len(got["mitre.tactics"].Str) > 0, true, w.Rule)
		} else {
			assert.False(t, got["mitre.techniques"].Present, "%s: a %s rule names no technique", w.Rule, rule.MappingKind())
			assert.False(t, got["mitre.tactics"].Present, "%s: and so no tactic", w.Rule)
		}
		assert.Len(t, got["mitre.tactic.ids"].Str, len(got["mitre.tactics"].Str), w.Rule)
		if rule.Conflict == "" {
			assert.False(t, got["mitre.conflict"].Present, w.Rule)
		} else {
			assert.Equal(t, []string{rule.Conflict}, got["mitre.conflict"].Str, w.Rule)
		}
	}
}

// Rules the knowledge base does not know fall back to their tags, then to
// nothing: no invented mapping.
func TestKnowledgeFallbackEndToEnd(t *testing.T) {
	w := openWebhook(t, "")
	custom := `{"rule":"My custom shell rule","priority":"Warning","time":"2026-11-21T04:45:00Z","source":"syscall","tags":["T1059-shells","mitre_execution","TA0005"],"output_fields":{"container.id":"abc123"}}`
	tacticOnly := `{"rule":"My tactic rule","priority":"Warning","time":"2026-11-21T04:45:00Z","source":"syscall","tags":["mitre_persistence"]}`
	bare := `{"rule":"My bare rule","priority":"Warning","time":"2026-11-21T04:45:00Z","source":"syscall","tags":["custom"]}`
	code, body := send(t, "POST", w.url, "application/json", custom+"\n"+tacticOnly+"\n"+bare)
	require.Equal(t, 200, code, body)
	evts := w.collect(t, 3)
	require.Len(t, evts, 3)

	names := []string{"mitre.mapping", "mitre.techniques", "mitre.tactics", "mitigation.env", "mitigation.playbooks", "mitigation.ids", "guide.triage"}
	got := extractMap(t, w.p, evts[0], names...)
	assert.Equal(t, []string{"tags"}, got["mitre.mapping"].Str)
	assert.Equal(t, []string{"T1059"}, got["mitre.techniques"].Str)
	assert.Equal(t, []string{"execution", "defense-evasion"}, got["mitre.tactics"].Str)
	assert.Equal(t, []string{"container"}, got["mitigation.env"].Str)
	assert.NotEmpty(t, got["mitigation.ids"].Str, "the technique's own ATT&CK mitigations")
	assert.False(t, got["guide.triage"].Present, "no rule-specific guidance for a custom rule")

	got = extractMap(t, w.p, evts[1], names...)
	assert.Equal(t, []string{"tactic_tags"}, got["mitre.mapping"].Str)
	assert.False(t, got["mitre.techniques"].Present)
	assert.Equal(t, []string{"persistence"}, got["mitre.tactics"].Str)
	assert.Equal(t, []string{"host"}, got["mitigation.env"].Str)

	got = extractMap(t, w.p, evts[2], names...)
	assert.Equal(t, []string{"none"}, got["mitre.mapping"].Str)
	for _, n := range []string{"mitre.techniques", "mitre.tactics", "mitigation.playbooks", "mitigation.ids"} {
		assert.False(t, got[n].Present, n)
	}
}
