package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
)

func records(t *testing.T, lines ...string) []*event.Record {
	t.Helper()
	e, err := engine.New(config.Default())
	require.NoError(t, err)
	var out []*event.Record
	for _, l := range lines {
		var p alert.Parser
		a := &alert.Alert{}
		require.NoError(t, p.ParseInto([]byte(l), a))
		r := &event.Record{}
		e.Process(a, r)
		out = append(out, r)
	}
	return out
}

// Alerts of one entity's episode with an incident become one report;
// an alert without one gets its own.
func TestGroupRecordsByEpisode(t *testing.T) {
	recs := records(t,
		`{"rule":"Terminal shell in container","priority":"Notice","time":"2026-11-21T09:00:00Z","hostname":"n","tags":["mitre_execution"],"output_fields":{"container.id":"aaaaaaaaaaaa"}}`,
		`{"rule":"Read sensitive file untrusted","priority":"Warning","time":"2026-11-21T09:01:00Z","hostname":"n","tags":["mitre_credential_access"],"output_fields":{"container.id":"aaaaaaaaaaaa"}}`,
		`{"rule":"Terminal shell in container","priority":"Notice","time":"2026-11-21T09:02:00Z","hostname":"n","tags":["mitre_execution"],"output_fields":{"container.id":"bbbbbbbbbbbb"}}`,
	)
	groups := GroupRecords(recs, 15*time.Minute)
	require.Len(t, groups, 2)
	assert.NotEmpty(t, groups[0].IncidentID, "two alerts on one container are an incident")
	assert.Len(t, groups[0].Records, 2)
	assert.Empty(t, groups[1].IncidentID)
	assert.Equal(t, "container:n/bbbbbbbbbbbb", groups[1].EntityID)
	assert.True(t, strings.HasSuffix(groups[1].FileName(3), ".md"))
	assert.NotContains(t, groups[1].FileName(3), "/")
}

// Attacker-controlled values reach commands only shell-quoted, and a
// value cannot break out of its Markdown table cell.
func TestWriteQuotesAlertValues(t *testing.T) {
	evil := "0123'; rm -rf / #|`x"
	recs := records(t, `{"rule":"Fileless execution via memfd_create","priority":"Critical","time":"2026-11-21T09:00:00Z","hostname":"n",
		"tags":["maturity_stable","mitre_defense_evasion","T1620"],"output_fields":{"container.id":"`+evil+`","proc.pid":4242}}`)
	k, err := kb.Default()
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, Write(&b, k, &Group{EntityID: recs[0].Corr.EntityID, Records: recs}))
	out := b.String()
	assert.Contains(t, out, "T1620")
	inFence, commands := false, 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if !strings.Contains(line, "rm -rf") {
			continue
		}
		if inFence {
			commands++
			assert.Contains(t, line, `'0123'\''; rm -rf / #|`+"`"+`x'`, "a command carries the value shell-quoted: %q", line)
		} else if strings.HasPrefix(line, "|") {
			assert.Equal(t, 3, strings.Count(line, "|")-strings.Count(line, `\|`), "the value's | must not add a cell: %q", line)
		}
	}
	assert.Positive(t, commands, "the container playbook's commands use container.id")
}

// Every alert value the report shows is code-quoted: hostile rule names,
// hostnames, sources, entity IDs and field values add no heading, link,
// emphasis or HTML, and their control characters are shown, not sent to
// the terminal (issue 15, "Report injection").
func TestWriteHostileValuesAddNoStructure(t *testing.T) {
	hostile := "x\n# Injected heading\n[click](http://evil.example) <script>alert(1)</script> **bold** \x1b[31mred\r"
	esc := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	recs := records(t,
		`{"rule":`+esc(hostile)+`,"priority":"Critical","time":"2026-11-21T09:00:00Z","hostname":`+esc(hostile)+`,"source":`+esc(hostile)+`,
		"output":`+esc(hostile)+`,"output_fields":{"container.id":`+esc(hostile)+`,"proc.cmdline":`+esc(hostile)+`}}`,
		`{"rule":`+esc(hostile)+`,"priority":"Critical","time":"2026-11-21T09:01:00Z","hostname":`+esc(hostile)+`,"source":`+esc(hostile)+`,
		"output_fields":{"container.id":`+esc(hostile)+`}}`)
	k, err := kb.Default()
	require.NoError(t, err)
	for _, g := range GroupRecords(recs, 15*time.Minute) {
		var b bytes.Buffer
		require.NoError(t, Write(&b, k, g))
		out := b.String()
		assert.NotContains(t, out, "\x1b", "no raw escape character")
		assert.NotContains(t, out, "\r", "no raw carriage return")
		inFence := false
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "```") {
				inFence = !inFence
				continue
			}
			if inFence {
				continue
			}
			assert.False(t, strings.HasPrefix(line, "# Injected"), "a heading from an alert value: %q", line)
			for _, bad := range []string{"<script>", "](http://evil.example)", "**bold**"} {
				if i := strings.Index(line, bad); i >= 0 {
					assert.True(t, insideCodeSpan(line, i), "%q outside a code span in %q", bad, line)
				}
			}
		}
	}
}

// insideCodeSpan says whether byte i of a Markdown line lies inside an
// inline code span (backtick runs of equal length open and close one).
func insideCodeSpan(line string, i int) bool {
	open := 0 // length of the open span's backtick run, 0 outside
	for j := 0; j < len(line); {
		if line[j] != '`' {
			if j == i {
				return open > 0
			}
			j++
			continue
		}
		n := 0
		for j+n < len(line) && line[j+n] == '`' {
			n++
		}
		switch {
		case open == 0:
			open = n
		case open == n:
			open = 0
		}
		j += n
	}
	return false
}

// The Mitigations section says which mitigations ATT&CK relates to the
// alert's techniques and which triage recommends; contain and harden steps
// show their undo.
func TestWriteShowsProvenanceAndUndo(t *testing.T) {
	recs := records(t, `{"rule":"Set Setuid or Setgid bit","priority":"Notice","time":"2026-11-21T09:00:00Z","hostname":"n",
		"output_fields":{"fd.name":"/tmp/x","proc.name":"chmod","proc.cmdline":"chmod u+s /tmp/x","user.name":"root","container.id":"host"}}`)
	k, err := kb.Default()
	require.NoError(t, err)
	require.Contains(t, recs[0].KB.Techniques, "T1548.001")
	var b bytes.Buffer
	require.NoError(t, Write(&b, k, &Group{EntityID: recs[0].Corr.EntityID, Records: recs}))
	out := b.String()
	assert.Regexp(t, `(?m)^- \[M1028\]\([^)]*\) Operating System Configuration: ATT&CK: mitigates T1548\.001$`, out)
	assert.Regexp(t, `(?m)^- \[M1022\]\([^)]*\) [^:]+: recommended by triage \(ATT&CK does not relate it to these techniques\)$`, out)
}

// A step's undo is rendered with alert values shell-quoted, and an
// evidence step says what it preserves.
func TestWriteStepShowsUndoAndCaptures(t *testing.T) {
	m := &md{w: &bytes.Buffer{}}
	lookup := func(key string) (string, bool) { return "--all", true }
	writeStep(m, "1.", &kb.Step{Title: "Isolate", Safety: kb.SafetyContain, Command: "kubectl label pod -n ns -- {{k8s.pod.name}} triage/quarantine=true",
		Undo: &kb.Undo{Command: "kubectl label pod -n ns -- {{k8s.pod.name}} triage/quarantine-", Note: "Removes the label."}}, lookup)
	writeStep(m, "2.", &kb.Step{Title: "Export", Safety: kb.SafetyInvestigate, Captures: []string{kb.TargetContainer}, Command: "docker export -o /var/tmp/triage-evidence/c.tar -- x"}, lookup)
	out := m.w.(*bytes.Buffer).String()
	assert.Contains(t, out, "Undo:\n\n```sh\nkubectl label pod -n ns -- --all triage/quarantine-\n```")
	assert.Contains(t, out, "Removes the label.")
	assert.Contains(t, out, "Evidence: preserves the container")
}

// Playbook templates fill {{triage.payload}} with the script an
// interpreter ran (issue 16): the /dev/shm playbook preserves the script,
// not busybox.
func TestWriteFillsPayloadPlaceholder(t *testing.T) {
	recs := records(t, `{"rule":"Execution from /dev/shm","priority":"Warning","time":"2026-11-21T09:00:00Z","hostname":"n",
		"output_fields":{"proc.exepath":"/bin/busybox","proc.cmdline":"sh /dev/shm/x.sh","proc.name":"sh","user.name":"root","container.id":"host"}}`)
	k, err := kb.Default()
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, Write(&b, k, &Group{EntityID: recs[0].Corr.EntityID, Records: recs}))
	out := b.String()
	assert.Contains(t, out, "cp --preserve=ownership,timestamps -- /dev/shm/x.sh /var/tmp/triage-evidence/payload/", "the script, not /bin/busybox")
	assert.NotContains(t, out, "<triage.payload>")
}
