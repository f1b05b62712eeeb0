package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// A fileless execution in a plain container (no Kubernetes fields), written
// for these tests.
const memfdContainerAlert = `{"hostname":"node-7","output":"Fileless execution","output_fields":{"container.id":"0123456789ab","container.name":"web","evt.arg.flags":"EXE_WRITABLE|EXE_FROM_MEMFD","proc.exepath":"memfd:x (deleted)","proc.name":"x","proc.cmdline":"x","user.uid":0},"priority":"Critical","rule":"Fileless execution via memfd_create","source":"syscall","tags":["maturity_stable","host","container","process","mitre_defense_evasion","T1620"],"time":"2026-11-21T10:00:00Z"}`

// The same on a host, with an attacker-chosen process name and command line.
const hostileHostAlert = `{"hostname":"node-8","output":"Fileless execution","output_fields":{"container.id":"host","proc.exepath":"memfd:x (deleted)","proc.name":"$(reboot)` + "`id`" + `'q","proc.cmdline":"kworker $(reboot) ` + "`id`" + `","user.uid":0},"priority":"Critical","rule":"Fileless execution via memfd_create","source":"syscall","tags":["maturity_stable","mitre_defense_evasion","T1620"],"time":"2026-11-21T11:00:00Z"}`

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)\n```")

func TestReportMemfdInContainer(t *testing.T) {
	code, out, stderr := runCLI(t, memfdContainerAlert+"\n", "report")
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{
		"T1620", "Reflective Code Loading", "TRG-SYS-MEMFD-EXEC", "vm.memfd_noexec", "seccomp",
		"## Summary", "## ATT&CK mapping", "## Risk", "## Mitigations", "## Response", "Verify:",
		"## Triage notes and known false positives", "## References", "[investigate]", "[contain]",
		"(TRG-SYS-MEMFD-EXEC, container)", "exe_from_memfd:+15",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, strings.ToLower(out), "setenforce")
	assert.Contains(t, out, "ATT&CK lists no mitigation for these techniques")
}

func TestReportKeepsHostileValuesInert(t *testing.T) {
	code, out, stderr := runCLI(t, hostileHostAlert+"\n", "report")
	require.Equal(t, 0, code, stderr)
	blocks := shBlock.FindAllStringSubmatch(out, -1)
	require.NotEmpty(t, blocks)
	quotedName := `'$(reboot)` + "`id`" + `'\''q'`
	carried := 0
	for _, b := range blocks {
		cmd := b[1]
		if !strings.Contains(cmd, "reboot") {
			continue
		}
		carried++
		// The value only ever appears as one single-quoted word.
		assert.Equal(t, strings.Count(cmd, "$(reboot)"), strings.Count(cmd, quotedName), cmd)
		if _, err := exec.LookPath("bash"); err == nil {
			out, err := exec.Command("bash", "-n", "-c", cmd).CombinedOutput()
			assert.NoError(t, err, "%s\n%s", cmd, out)
		}
	}
	assert.Positive(t, carried, "some command carries the hostile process name")
	// In tables and text blocks the value is code, not markup.
	assert.NotContains(t, out, "| $(reboot)")
}

func TestReportOutAndMinRisk(t *testing.T) {
	low := `{"rule":"My custom rule","priority":"Debug","time":"2026-11-21T10:00:00Z","source":"syscall","hostname":"h","tags":[]}`
	dir := t.TempDir()
	code, out, stderr := runCLI(t, memfdContainerAlert+"\n"+low+"\n", "report", "--min-risk", "50", "--out", dir)
	require.Equal(t, 0, code, stderr)
	files, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	require.Len(t, files, 1, "the Debug custom alert is below --min-risk")
	assert.Equal(t, files[0]+"\n", out)
	data, _ := os.ReadFile(files[0])
	assert.Contains(t, string(data), "Fileless execution via memfd_create")

	code, _, stderr = runCLI(t, "", "report", "--min-risk", "101")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "--min-risk")
}

func TestEnrichSharedSamples(t *testing.T) {
	path := "../../../shared/data/alerts/upstream-rules.jsonl"
	if _, err := os.Stat(path); os.IsNotExist(err) {
		t.Skip("../shared/data not present")
	}
	code, out, stderr := runCLI(t, "", "enrich", path)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "242 alerts enriched")
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		var obj map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &obj), sc.Text())
		tri, ok := obj["triage"].(map[string]any)
		require.True(t, ok)
		assert.Equal(t, obj["rule"], tri["alert.rule"])
		for _, k := range []string{"risk.score", "risk.level", "mitre.kind", "mitigation.playbooks", "entity.id", "dedup.count"} {
			assert.Contains(t, tri, k, obj["rule"])
		}
		// a rule that detects a technique names it; posture and catch-all rules name none
		if tri["mitre.kind"] == "technique" {
			assert.Contains(t, tri, "mitre.techniques", obj["rule"])
		} else {
			assert.NotContains(t, tri, "mitre.techniques", obj["rule"])
		}
		n++
	}
	assert.Equal(t, 242, n)
}

func TestEnrichBadLines(t *testing.T) {
	in := memfdContainerAlert + "\n{not json\n\n" + `{"rule":"x","priority":"Severe","time":"2026-11-21T10:00:00Z"}` + "\n" + hostileHostAlert + "\n"
	code, out, stderr := runCLI(t, in, "enrich", "-")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "stdin:2: rejected: malformed JSON")
	assert.Contains(t, stderr, "stdin:4: rejected:")
	assert.Contains(t, stderr, "Severe")
	assert.Contains(t, stderr, "2 alerts enriched")
	assert.Equal(t, 2, strings.Count(out, "\n"), "the good lines are still written")

	code, _, stderr = runCLI(t, "", "enrich", "/no/such/file.jsonl")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "/no/such/file.jsonl")
}

func TestExplain(t *testing.T) {
	code, out, _ := runCLI(t, "", "explain", "Fileless execution via memfd_create")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "T1620 Reflective Code Loading")
	assert.Contains(t, out, "TRG-SYS-MEMFD-EXEC")

	code, out, _ = runCLI(t, "", "explain", "t1620")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "Reflective Code Loading")
	assert.Contains(t, out, "ATT&CK lists no mitigation")
	assert.Contains(t, out, "Fileless execution via memfd_create")

	code, out, _ = runCLI(t, "", "explain", "TRG-SYS-MEMFD-EXEC")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "vm.memfd_noexec")
	assert.Contains(t, out, "{{")

	code, out, _ = runCLI(t, "", "explain", "TRG-SYS-SETUID")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "M1028 Operating System Configuration (ATT&CK: mitigates", "ATT&CK lists M1028 for T1548.001")
	assert.Contains(t, out, "M1022 Restrict File and Directory Permissions (recommended by triage", "ATT&CK does not relate M1022 to T1548.001")
	assert.Contains(t, out, "Undo:", "contain and harden steps show their undo")

	code, out, _ = runCLI(t, "", "explain", "defense-evasion")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "TA0005")

	code, out, _ = runCLI(t, "", "explain", "M1038")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "Execution Prevention")

	code, _, stderr := runCLI(t, "", "explain", "No such thing")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `no rule, technique, tactic, mitigation or playbook named "No such thing"`)

	code, _, stderr = runCLI(t, "", "explain", "memfd")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "did you mean")

	code, _, _ = runCLI(t, "", "explain")
	assert.Equal(t, 2, code)
}

func TestDemo(t *testing.T) {
	code, out, stderr := runCLI(t, "", "demo")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "# Incident INC-")
	assert.Contains(t, out, "ESCALATED: multi_tactic")
	assert.NotContains(t, strings.ToLower(out), "setenforce")
}

func TestUsage(t *testing.T) {
	code, _, stderr := runCLI(t, "", "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "unknown command")
	for _, cmd := range []string{"enrich", "report", "explain", "demo"} {
		code, _, stderr := runCLI(t, "", cmd, "--help")
		assert.Equal(t, 0, code, cmd)
		assert.Contains(t, stderr, "Usage: triage "+cmd, cmd)
	}
}
