package kb

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A tiny but complete knowledge base, written for these tests.
const fixtureCatalogue = `
tactics:
  - {id: TA0043, shortname: reconnaissance, name: Reconnaissance}
  - {id: TA0042, shortname: resource-development, name: Resource Development}
  - {id: TA0001, shortname: initial-access, name: Initial Access}
  - {id: TA0002, shortname: execution, name: Execution}
  - {id: TA0003, shortname: persistence, name: Persistence}
  - {id: TA0004, shortname: privilege-escalation, name: Privilege Escalation}
  - {id: TA0005, shortname: defense-evasion, name: Defense Evasion}
  - {id: TA0006, shortname: credential-access, name: Credential Access}
  - {id: TA0007, shortname: discovery, name: Discovery}
  - {id: TA0008, shortname: lateral-movement, name: Lateral Movement}
  - {id: TA0009, shortname: collection, name: Collection}
  - {id: TA0011, shortname: command-and-control, name: Command and Control}
  - {id: TA0010, shortname: exfiltration, name: Exfiltration}
  - {id: TA0040, shortname: impact, name: Impact}
techniques:
  - {id: T1059, name: Command and Scripting Interpreter, tactics: [execution], mitigations: [M1038], d3fend: [D3-PSA]}
  - {id: T1059.004, name: Unix Shell, tactics: [execution], mitigations: [M1038], d3fend: []}
  - {id: T1620, name: Reflective Code Loading, tactics: [defense-evasion], mitigations: [], d3fend: []}
mitigations:
  - {id: M1038, name: Execution Prevention}
d3fend:
  - {id: D3-PSA, name: Process Spawn Analysis}
`

const fixturePlaybooks = `
playbooks:
  - id: TRG-TEST-SHELL
    title: Shell in a container
    summary: Someone ran an interactive shell.
    techniques: [T1059.004]
    mitigations: [M1038]
    d3fend: [D3-PSA]
    variants:
      container:
        action: Find who opened the shell and why.
        steps:
          - {title: Inspect the container, safety: investigate, command: "crictl inspect -- {{container.id}}"}
          - {title: Export it, safety: investigate, captures: [container], command: "umask 077; docker export -o /var/tmp/triage-evidence/c.tar -- {{container.id}}"}
          - {title: Copy it off, safety: investigate, command: "sha256sum /var/tmp/triage-evidence/c.tar && scp /var/tmp/triage-evidence/c.tar \"$EVIDENCE_DEST\""}
          - {title: Stop it, safety: disrupt, note: Its memory is lost., command: "crictl stop -- {{container.id}}"}
        verify: {title: Check it is stopped, safety: investigate, command: "crictl ps --id {{container.id}}"}
        side_effects: [The workload is down until restarted.]
    references:
      - {title: ATT&CK T1059.004, url: "https://attack.mitre.org/techniques/T1059/004/"}
rules:
  - rule: Terminal shell in container
    source: syscall
    techniques: [T1059.004]
    conflict: ""
    playbooks: [TRG-TEST-SHELL]
    triage: Check the parent process.
    false_positives: [Operators debugging.]
`

func fixtureFS(extra map[string]string) fstest.MapFS {
	fs := fstest.MapFS{
		"attack.yaml":    {Data: []byte(fixtureCatalogue)},
		"sub/rules.yaml": {Data: []byte(fixturePlaybooks)},
	}
	for name, data := range extra {
		fs[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fs
}

func TestLoadFixture(t *testing.T) {
	k, err := Load(fixtureFS(nil))
	require.NoError(t, err)
	r, ok := k.Rule("Terminal shell in container")
	require.True(t, ok)
	assert.Equal(t, []string{"T1059.004"}, r.Techniques)
	p, ok := k.Playbook("TRG-TEST-SHELL")
	require.True(t, ok)
	env, v := p.Variant(EnvK8s)
	assert.Equal(t, EnvContainer, env, "k8s falls back to the container variant")
	require.NotNil(t, v)
	assert.Equal(t, 3, k.Stage("TA0001"))
	assert.Equal(t, "https://attack.mitre.org/techniques/T1059/004/", TechniqueURL("T1059.004"))
}

func TestLoadRejects(t *testing.T) {
	cases := map[string]struct {
		file, data, mention string
	}{
		"unknown key":           {"x.yaml", "techniques:\n  - {id: T1105, name: Ingress Tool Transfer, tactics: [command-and-control], mitigations: [], d3fend: [], extra: 1}\n", "extra"},
		"duplicate technique":   {"x.yaml", "techniques:\n  - {id: T1620, name: Reflective Code Loading, tactics: [defense-evasion], mitigations: [], d3fend: []}\n", "already defined in attack.yaml"},
		"unknown tactic":        {"x.yaml", "techniques:\n  - {id: T1105, name: Ingress Tool Transfer, tactics: [c2], mitigations: [], d3fend: []}\n", "unknown tactic"},
		"missing parent":        {"x.yaml", "techniques:\n  - {id: T1552.007, name: Container API, tactics: [credential-access], mitigations: [], d3fend: []}\n", "parent T1552"},
		"unknown mitigation":    {"x.yaml", "techniques:\n  - {id: T1105, name: Ingress Tool Transfer, tactics: [command-and-control], mitigations: [M9999], d3fend: []}\n", "M9999"},
		"rule without playbook": {"x.yaml", "rules:\n  - {rule: R, source: syscall, techniques: [T1620], playbooks: [], triage: t}\n", "no playbooks"},
		"rule unknown source":   {"x.yaml", "rules:\n  - {rule: R, source: kafka, techniques: [T1620], playbooks: [TRG-TEST-SHELL], triage: t}\n", "unknown source"},
		"rule bad technique":    {"x.yaml", "rules:\n  - {rule: R, source: syscall, techniques: [T9999], playbooks: [TRG-TEST-SHELL], triage: t}\n", "T9999"},
		"duplicate rule":        {"x.yaml", "rules:\n  - {rule: Terminal shell in container, source: syscall, techniques: [T1620], playbooks: [TRG-TEST-SHELL], triage: t}\n", "already defined"},
		"bad yaml":              {"x.yaml", "rules: [\n", "x.yaml"},
		"second tactics":        {"x.yaml", "tactics:\n  - {id: TA0001, shortname: initial-access, name: Initial Access}\n", "already defined"},
		"quoted placeholder": {"x.yaml", strings.ReplaceAll(strings.ReplaceAll(fixturePlaybooks, "TRG-TEST-SHELL", "TRG-TEST-OTHER"), "rule: Terminal shell in container", "rule: Other") + "\n",
			""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			data := c.data
			if name == "quoted placeholder" {
				data = strings.Replace(data, `"crictl inspect -- {{container.id}}"`, `"crictl inspect -- '{{container.id}}'"`, 1)
				c.mention = "inside ' quotes"
			}
			_, err := Load(fixtureFS(map[string]string{c.file: data}))
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.mention)
		})
	}
}

func TestPlaybookValidation(t *testing.T) {
	k, err := Load(fixtureFS(nil))
	require.NoError(t, err)
	base, _ := k.Playbook("TRG-TEST-SHELL")
	mutate := func(f func(p *Playbook)) []string {
		cp := *base
		v := *base.Variants[EnvContainer]
		cp.Variants = map[string]*Variant{EnvContainer: &v}
		f(&cp)
		return k.validatePlaybook(&cp)
	}
	assert.Empty(t, mutate(func(*Playbook) {}))
	assert.NotEmpty(t, mutate(func(p *Playbook) { p.ID = "shell" }))
	assert.NotEmpty(t, mutate(func(p *Playbook) { p.Variants[EnvContainer].Verify = nil }))
	assert.NotEmpty(t, mutate(func(p *Playbook) { p.Variants[EnvContainer].SideEffects = nil }))
	assert.NotEmpty(t, mutate(func(p *Playbook) { p.Variants[EnvContainer].Action = "two\nlines" }))
	assert.NotEmpty(t, mutate(func(p *Playbook) { p.Variants["mainframe"] = p.Variants[EnvContainer] }))
	assert.NotEmpty(t, mutate(func(p *Playbook) { p.References = nil }))
	assert.NotEmpty(t, mutate(func(p *Playbook) { p.References = []Reference{{Title: "x", URL: "http://insecure"}} }))
	assert.NotEmpty(t, mutate(func(p *Playbook) {
		v := *p.Variants[EnvContainer]
		v.Verify = &Step{Title: "kill", Safety: SafetyContain, Command: "true"}
		p.Variants[EnvContainer] = &v
	}))
}

func TestResolveFallbacks(t *testing.T) {
	k, err := Load(fixtureFS(nil))
	require.NoError(t, err)

	r := k.Resolve("Terminal shell in container", []string{"T1059", "mitre_execution"})
	assert.Equal(t, ViaRuleMap, r.Via)
	assert.Equal(t, []string{"T1059.004"}, r.Techniques)
	assert.Equal(t, []string{"TA0002"}, r.Tactics)
	assert.Equal(t, []string{"M1038"}, r.Mitigations)
	assert.Equal(t, []string{"TRG-TEST-SHELL"}, r.Playbooks)

	r = k.Resolve("My custom rule", []string{"T1059-shells", "TA0005-defense-evasion", "custom"})
	assert.Equal(t, ViaTags, r.Via)
	assert.Equal(t, []string{"T1059"}, r.Techniques)
	assert.Equal(t, []string{"TA0002", "TA0005"}, r.Tactics, "kill-chain order")
	assert.Equal(t, []string{"TRG-TEST-SHELL"}, r.Playbooks, "a playbook covering a sub-technique of the tagged technique")

	r = k.Resolve("Other custom", []string{"t1620.001"})
	assert.Equal(t, ViaTags, r.Via)
	assert.Equal(t, []string{"T1620.001"}, r.Techniques)

	r = k.Resolve("Tactic only", []string{"mitre_persistence", "TA0040"})
	assert.Equal(t, ViaTacticTags, r.Via)
	assert.Equal(t, []string{"TA0003", "TA0040"}, r.Tactics)
	assert.Empty(t, r.Techniques)

	r = k.Resolve("Nothing", []string{"container", "mitre_unknown"})
	assert.Equal(t, ViaNone, r.Via)
	assert.Empty(t, r.Tactics)
}

func TestDetectEnv(t *testing.T) {
	fields := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	assert.Equal(t, EnvK8s, DetectEnv("k8s_audit", fields(nil)))
	assert.Equal(t, EnvAWS, DetectEnv("aws_cloudtrail", fields(nil)))
	assert.Equal(t, EnvGCP, DetectEnv("gcp_auditlog", fields(nil)))
	assert.Equal(t, EnvOkta, DetectEnv("okta", fields(nil)))
	assert.Equal(t, EnvGitHub, DetectEnv("github", fields(nil)))
	assert.Equal(t, EnvK8s, DetectEnv("syscall", fields(map[string]string{"container.id": "abc", "k8s.pod.name": "p"})))
	assert.Equal(t, EnvContainer, DetectEnv("syscall", fields(map[string]string{"container.id": "abc"})))
	assert.Equal(t, EnvHost, DetectEnv("syscall", fields(map[string]string{"container.id": "host"})))
	assert.Equal(t, EnvHost, DetectEnv("syscall", fields(map[string]string{"k8s.ns.name": ""})))
	assert.Equal(t, EnvHost, DetectEnv("", fields(nil)))
}

// The loader refuses a knowledge base whose commands break the safety
// taxonomy or the value lints, naming the lint: the embedded one loads
// only because none does.
func TestLoadRefusesLintProblems(t *testing.T) {
	// the review's examples: a stop classed contain, before any capture, with the ID in option position
	bad := strings.Replace(fixturePlaybooks, `- {title: Stop it, safety: disrupt, note: Its memory is lost., command: "crictl stop -- {{container.id}}"}`, ``, 1)
	bad = strings.Replace(bad, `- {title: Inspect the container, safety: investigate, command: "crictl inspect -- {{container.id}}"}`,
		`- {title: Stop it, safety: contain, command: "crictl stop {{container.id}}"}`, 1)
	require.NotEqual(t, fixturePlaybooks, bad)
	_, err := Load(fixtureFS(map[string]string{"sub/rules.yaml": bad}))
	require.Error(t, err)
	for _, want := range []string{"[class]", "[undo]", "[option]", "[evidence-first]"} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = Default()
	require.NoError(t, err, "the embedded knowledge base meets every lint")
}
