package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lab alerts of issue 16 (test/testdata/lab-alerts.jsonl) through the
// CLI: enrich gives the same outcome, drill and payload fields as the
// plugin, and the report says outcome and drill status in plain words.

func labLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../test/testdata/lab-alerts.jsonl")
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func enrichOne(t *testing.T, line string) map[string]any {
	t.Helper()
	code, out, stderr := runCLI(t, line+"\n", "enrich")
	require.Equal(t, 0, code, stderr)
	var got struct {
		Triage map[string]any `json:"triage"`
	}
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out)), &got))
	return got.Triage
}

func TestEnrichLabAlerts(t *testing.T) {
	lab := labLines(t)
	denied := enrichOne(t, lab[0])
	assert.Equal(t, "blocked", denied["risk.outcome"])
	assert.Equal(t, "EACCES", denied["risk.outcome.reason"])
	assert.EqualValues(t, 40, denied["risk.score"])
	succeeded := enrichOne(t, strings.Replace(lab[0], `"evt.res":"EACCES"`, `"evt.res":"SUCCESS"`, 1))
	assert.EqualValues(t, 80, succeeded["risk.score"])
	assert.Equal(t, "succeeded", succeeded["risk.outcome"])

	for _, line := range lab[1:] {
		d := enrichOne(t, line)
		assert.Equal(t, "event-generator", d["risk.drill"])
		assert.LessOrEqual(t, d["risk.score"].(float64), 20.0)
		assert.Contains(t, d["guide.drill"], "event-generator")
	}
	script := enrichOne(t, lab[1])
	assert.Equal(t, "/dev/shm/falco-event-generator-syscall-ExecutionFromDevShm-HEwfiE.sh", script["triage.payload"])

	// Only the parent differs: bash instead of event-generator (and a plain image).
	plain := strings.NewReplacer(`"proc.pname":"event-generator"`, `"proc.pname":"bash"`,
		`"proc.pcmdline":"event-generator run syscall --all"`, `"proc.pcmdline":"bash"`,
		`"proc.sname":"event-generator"`, `"proc.sname":"bash"`,
		`"container.image.repository":"docker.io/falcosecurity/event-generator"`, `"container.image.repository":"docker.io/library/alpine"`)
	s, m := enrichOne(t, plain.Replace(lab[1])), enrichOne(t, plain.Replace(lab[2]))
	assert.Nil(t, s["risk.drill"])
	assert.Nil(t, m["risk.drill"])
	assert.Greater(t, m["risk.score"].(float64), s["risk.score"].(float64))
	assert.Greater(t, s["risk.score"].(float64), denied["risk.score"].(float64))
}

func TestReportSaysOutcomeAndDrill(t *testing.T) {
	lab := labLines(t)
	code, out, stderr := runCLI(t, lab[0]+"\n", "report")
	require.Equal(t, 0, code, stderr)
	summary := out[strings.Index(out, "## Summary"):strings.Index(out, "## Alerts")]
	assert.Contains(t, summary, "Outcome: The attempt was blocked (`EACCES` ×1)")
	assert.Contains(t, summary, "Check what blocked it and whether it was retried")
	what := out[strings.Index(out, "## What happened"):strings.Index(out, "## ATT&CK mapping")]
	assert.Contains(t, what, "was denied by EACCES")

	code, out, stderr = runCLI(t, lab[1]+"\n", "report")
	require.Equal(t, 0, code, stderr)
	summary = out[strings.Index(out, "## Summary"):strings.Index(out, "## Alerts")]
	assert.Contains(t, summary, "Drill: This alert looks like a detection test by `event-generator`")
	assert.Contains(t, summary, "Outcome: the event succeeded")
	what = out[strings.Index(out, "## What happened"):strings.Index(out, "## ATT&CK mapping")]
	assert.Contains(t, what, "Looks like a detection test by event-generator")
	assert.Contains(t, what, "The process ran the script `/dev/shm/falco-event-generator-syscall-ExecutionFromDevShm-HEwfiE.sh`")
	assert.Contains(t, what, "`mini-debian-lab`", "the host in the guide line is a code span: it comes from the alert")
}
