package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"go.yaml.in/yaml/v3"

	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/plugin"
	"github.com/triage-dev/triage/pkg/talon"
	"github.com/triage-dev/triage/test/harness"
)

// response.talon through the C ABI: a reverse shell in a Kubernetes pod
// lists the Talon actionners of TRG-SYS-REVERSE-SHELL's k8s steps, evidence
// first; the same alert in a plain container or on a host has no value.
func TestResponseTalonEndToEnd(t *testing.T) {
	const rule = "Redirect STDOUT/STDIN to Network Connection in Container"
	alert := func(ts, fields string) string {
		return `{"time":"` + ts + `","rule":"` + rule + `","priority":"Notice","source":"syscall","hostname":"node-1",` +
			`"output":"x","tags":["container","network"],"output_fields":{` + fields + `}}`
	}
	lines := []string{
		alert("2026-11-21T04:45:07.000000000Z", `"proc.name":"bash","fd.name":"10.0.0.9:4444","container.id":"c7708aa4248c","k8s.ns.name":"shop","k8s.pod.name":"web-7d4b9"`),
		alert("2026-11-21T04:45:08.000000000Z", `"proc.name":"bash","fd.name":"10.0.0.9:4444","container.id":"d7708aa4248c","k8s.ns.name":null,"k8s.pod.name":null`),
		alert("2026-11-21T04:45:09.000000000Z", `"proc.name":"bash","fd.name":"10.0.0.9:4444","container.id":"host"`),
	}
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	p := newPlugin(t, "")
	evts := replayFile(t, p, path)
	require.Len(t, evts, 3)

	k, err := kb.Default()
	require.NoError(t, err)
	want := talon.Actionners(k, "TRG-SYS-REVERSE-SHELL")
	require.Equal(t, []string{"kubernetes:log", "kubernetes:tcpdump", "kubernetes:label", "kubernetes:networkpolicy", "kubernetes:terminate"}, want)

	got := extractMap(t, p, evts[0], "response.talon", "mitigation.env", "mitigation.playbooks")
	assert.Equal(t, []string{"k8s"}, got["mitigation.env"].Str)
	assert.Equal(t, "TRG-SYS-REVERSE-SHELL", got["mitigation.playbooks"].Str[0])
	assert.Equal(t, want, got["response.talon"].Str, "k8s pod")

	for i, env := range []string{"container", "host"} {
		got := extractMap(t, p, evts[i+1], "response.talon", "mitigation.env")
		assert.Equal(t, []string{env}, got["mitigation.env"].Str)
		assert.False(t, got["response.talon"].Present, "%s: no value outside Kubernetes", env)
	}
}

// The Falco side of deploy/talon: the plugin accepts its init_config, its
// http_output and Falcosidekick's Talon output point at Talon's port, and
// the output_fields Falco would send for the triage rules (rendered as
// Falco renders them, plus the append_output extra fields) make Talon run
// exactly the generated rule the alert's tier and playbook call for, and
// nothing for a container outside Kubernetes.
func TestDeployTalonFalcoSide(t *testing.T) {
	const name = "talon/falco-talon.yaml"
	// falcoConfig (deploy_test.go) reads extra_fields as names only; the
	// {key: format} entries are read below.
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(readDeploy(t, name), &doc))
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "append_output" {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			break
		}
	}
	var c falcoConfig
	require.NoError(t, m.Decode(&c))
	initConfig, _ := triageEntry(t, name, c)
	checkInitConfig(t, name, localFiles(t, initConfig))
	assert.True(t, c.JSONOutput && c.JSONIncludeOutputProperty && c.JSONIncludeTagsProperty)
	assert.True(t, c.HTTPOutput.Enabled)
	assert.Contains(t, c.HTTPOutput.URL, ":2803/")
	var sk struct {
		Talon struct {
			Address string `yaml:"address"`
		} `yaml:"talon"`
	}
	require.NoError(t, yaml.Unmarshal(readDeploy(t, "talon/falcosidekick-talon.yaml"), &sk))
	assert.Equal(t, c.HTTPOutput.URL, sk.Talon.Address)

	// append_output of falco_alert: bare fields and {key: format} entries.
	var raw struct {
		AppendOutput []struct {
			Match struct {
				Source string `yaml:"source"`
			} `yaml:"match"`
			ExtraFields []any `yaml:"extra_fields"`
		} `yaml:"append_output"`
	}
	require.NoError(t, yaml.Unmarshal(readDeploy(t, name), &raw))
	extra := map[string]string{}
	for _, a := range raw.AppendOutput {
		require.Equal(t, plugin.EventSource, a.Match.Source)
		for _, ef := range a.ExtraFields {
			switch v := ef.(type) {
			case string:
				extra[v] = "%" + v
			case map[string]any:
				for k, f := range v {
					extra[k] = f.(string)
				}
			}
		}
	}
	assert.Equal(t, "%alert.field[k8s.pod.name]", extra["k8s.pod.name"])
	assert.Equal(t, "%alert.field[k8s.ns.name]", extra["k8s.ns.name"])

	var ruleFile []map[string]any
	require.NoError(t, yaml.Unmarshal(readRepo(t, "rules/triage_rules.yaml"), &ruleFile))
	outputs := map[string]string{}
	for _, r := range ruleFile {
		if n, ok := r["rule"].(string); ok {
			outputs[n] = r["output"].(string)
		}
	}
	talonRules, errs := talon.Check(readDeploy(t, "talon/rules.yaml"))
	require.Empty(t, errs)

	alert := `{"time":"2026-11-21T04:45:07.000000000Z","rule":"Redirect STDOUT/STDIN to Network Connection in Container","priority":"Notice","source":"syscall","hostname":"node-1","output":"x","tags":["container"],"output_fields":{"proc.name":"bash","container.id":"c7708aa4248c",%s}}`
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(alert, `"k8s.ns.name":"shop","k8s.pod.name":"web-7d4b9"`)+"\n"+
		strings.Replace(fmt.Sprintf(alert, `"k8s.ns.name":null,"k8s.pod.name":null`), "04:45:07", "04:45:09", 1)+"\n"), 0o600))
	p := newPlugin(t, "")
	evts := replayFile(t, p, path)
	require.Len(t, evts, 2)
	level := extractMap(t, p, evts[0], "risk.level")["risk.level"].Str[0]

	fieldsFor := func(e *harness.Event, rule string) map[string]any {
		out, err := p.FormatOutput(e, outputs[rule])
		require.NoError(t, err, rule)
		fields := out.Fields
		for k, f := range extra {
			o, err := p.FormatOutput(e, f)
			require.NoError(t, err)
			if strings.HasPrefix(f, "%") && !strings.Contains(f, "[") {
				fields[k] = o.Fields[f[1:]] // a bare field keeps its JSON type
			} else {
				fields[k] = o.Message // a {key: format} field is formatted text
			}
		}
		return fields
	}
	matched := func(e *harness.Event, rule string) []string {
		var names []string
		f := fieldsFor(e, rule)
		for _, r := range talonRules {
			if talon.Matches(r, rule, plugin.EventSource, f) {
				names = append(names, r.Name)
			}
		}
		return names
	}
	for _, rule := range talon.EscalationRules {
		f := fieldsFor(evts[0], rule)
		assert.Equal(t, "web-7d4b9", f["k8s.pod.name"], rule)
		assert.Equal(t, "shop", f["k8s.ns.name"], rule)
		assert.Equal(t, []string{"triage TRG-SYS-REVERSE-SHELL: entity escalation"}, matched(evts[0], rule), rule)
		assert.Empty(t, matched(evts[1], rule), "%s: a container outside Kubernetes", rule)
		assert.Equal(t, "<NA>", fieldsFor(evts[1], rule)["k8s.pod.name"])
	}
	for rule, tier := range map[string]string{talon.RuleCritical: "critical", talon.RuleHigh: "high"} {
		var want []string
		if level == tier {
			want = []string{"triage TRG-SYS-REVERSE-SHELL: " + tier + " risk"}
		}
		assert.Equal(t, want, matched(evts[0], rule), "%s with risk.level %s", rule, level)
		assert.Empty(t, matched(evts[1], rule))
	}
}

func readRepo(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", rel))
	require.NoError(t, err)
	return b
}
