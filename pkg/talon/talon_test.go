package talon

import (
	"bufio"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/triage-dev/triage/pkg/kb"
)

func defaultKB(t *testing.T) *kb.KB {
	t.Helper()
	k, err := kb.Default()
	require.NoError(t, err)
	return k
}

// The catalogue agrees with the listing derived from Talon v0.3.0's
// actionner sources (testdata/talon-v0.3.0-actionners.txt): names, continue /
// allow_output / require_output, required output fields and parameter names.
func TestCatalogueMatchesTalonSource(t *testing.T) {
	f, err := os.Open("testdata/talon-v0.3.0-actionners.txt")
	require.NoError(t, err)
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		parts := strings.Split(line, "|")
		require.Len(t, parts, 4, line)
		name := strings.TrimSpace(parts[0])
		seen[name] = true
		a, ok := Lookup(name)
		require.True(t, ok, "catalogue lacks %s", name)
		flags := strings.Fields(parts[1])
		assert.Equal(t, []string{fmtBool(a.Continue), fmtBool(a.AllowOutput), fmtBool(a.RequireOutput)}, flags, name)
		var params []string
		for _, p := range a.Params {
			params = append(params, p.Name)
		}
		assert.Equal(t, strings.Join(strings.Fields(parts[3]), " "), strings.Join(params, " "), "%s parameters", name)
		declared := strings.TrimSpace(parts[2])
		switch name {
		case "cilium:networkpolicy", "calico:networkpolicy":
			assert.Equal(t, "fd.sip / fd.rip", declared)
			assert.ElementsMatch(t, []string{"fd.rip", "fd.sip"}, a.AnyOutputFields)
		case "kubernetes:sysdig":
		default:
			var want []string
			if declared != "" {
				for _, s := range strings.Split(declared, ",") {
					want = append(want, strings.TrimSpace(s))
				}
			}
			assert.Equal(t, want, a.RequiredOutputFields, "%s required output fields", name)
		}
	}
	require.NoError(t, sc.Err())
	assert.Len(t, Catalogue, len(seen), "every catalogue entry is in Talon's source")
}

func fmtBool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func provided(t *testing.T, falco string) map[string]map[string]bool {
	t.Helper()
	rules, err := os.ReadFile("../../rules/triage_rules.yaml")
	require.NoError(t, err)
	var cfg []byte
	if falco != "" {
		cfg, err = os.ReadFile(falco)
		require.NoError(t, err)
	}
	p, err := ProvidedKeys(rules, cfg)
	require.NoError(t, err)
	return p
}

func generate(t *testing.T, o Options) (*Generated, []Rule, []byte) {
	t.Helper()
	g, err := Generate(defaultKB(t), o)
	require.NoError(t, err)
	b, err := g.Marshal(g.Header(kb.AttackVersion, o))
	require.NoError(t, err)
	rules, errs := Check(b)
	require.Empty(t, errs)
	return g, rules, b
}

// The generated file for the whole knowledge base passes the strict check
// and the gates, with every output field an actionner reads carried by the
// triage rules it matches once the Falco side of deploy/talon is in place.
func TestGenerateWholeKnowledgeBase(t *testing.T) {
	g, rules, _ := generate(t, Options{})
	assert.Empty(t, CheckGates(rules, GateOptions{Provides: provided(t, "../../deploy/talon/falco-talon.yaml")}))
	assert.Len(t, g.Playbooks, 28, "playbooks with a Talon mapping")
	assert.Len(t, rules, 3*len(g.Playbooks))
	for _, r := range rules {
		assert.Equal(t, "true", r.DryRun, r.Name)
		assert.Equal(t, SourceTriage, r.Match.Source, r.Name)
		for _, a := range r.Actions {
			cat, ok := Lookup(a.Actionner)
			require.True(t, ok)
			assert.NotEqual(t, GateDisrupt, cat.Gate, "%s: nothing disruptive without an opt-in", r.Name)
			if strings.HasSuffix(r.Name, "high risk") {
				assert.Equal(t, GateEvidence, cat.Gate, "%s: evidence only at high risk", r.Name)
			}
		}
		for _, f := range r.Match.OutputFields {
			assert.Contains(t, f, "k8s.pod.name!=<NA>", r.Name)
		}
	}
	assert.Empty(t, g.Skipped, "every syscall rule name is matchable")

	// Without the append_output keys, the triage rules carry the pod only
	// as alert.field[k8s.pod.name], which Talon does not read.
	errs := CheckGates(rules, GateOptions{Provides: provided(t, "")})
	require.NotEmpty(t, errs)
	assert.Contains(t, strings.Join(errs, "\n"), "reads output field k8s.pod.name")
}

func actionners(r Rule) []string {
	var out []string
	for _, a := range r.Actions {
		out = append(out, a.Actionner)
	}
	return out
}

func ruleNamed(t *testing.T, rules []Rule, name string) Rule {
	t.Helper()
	for _, r := range rules {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no rule %q", name)
	return Rule{}
}

// The worked example of docs/response.md: a reverse shell in a pod.
func TestReverseShellRules(t *testing.T) {
	_, rules, _ := generate(t, Options{})
	esc := ruleNamed(t, rules, "triage TRG-SYS-REVERSE-SHELL: entity escalation")
	assert.Equal(t, []string{"kubernetes:log", "kubernetes:tcpdump", "kubernetes:label", "kubernetes:networkpolicy"}, actionners(esc))
	assert.Equal(t, EscalationRules, esc.Match.Rules)
	assert.Contains(t, esc.Match.OutputFields, "alert.rule=Redirect STDOUT/STDIN to Network Connection in Container, k8s.pod.name!=<NA>")
	tcp := esc.Actions[1]
	assert.Equal(t, "true", tcp.Continue, "tcpdump stops later actions unless continue: true")
	require.NotNil(t, tcp.Output)
	assert.Equal(t, "local:file", tcp.Output.Target)
	assert.Equal(t, map[string]any{"labels": map[string]any{"triage/quarantine": "true"}, "level": "pod"}, esc.Actions[2].Parameters)
	crit := ruleNamed(t, rules, "triage TRG-SYS-REVERSE-SHELL: critical risk")
	assert.Equal(t, actionners(esc), actionners(crit))
	assert.Equal(t, []string{RuleCritical}, crit.Match.Rules)
	for _, f := range crit.Match.OutputFields {
		assert.Contains(t, f, "risk.level=critical")
	}
	high := ruleNamed(t, rules, "triage TRG-SYS-REVERSE-SHELL: high risk")
	assert.Equal(t, []string{"kubernetes:log", "kubernetes:tcpdump"}, actionners(high))

	// Talon's matching on the output_fields an escalated k8s alert carries.
	fields := map[string]any{"alert.rule": "Redirect STDOUT/STDIN to Network Connection in Container", "risk.level": "medium",
		"k8s.pod.name": "web-7d4b9", "k8s.ns.name": "shop", "entity.escalation": []any{"multi_tactic"}}
	var matched []string
	for _, r := range rules {
		if Matches(r, RuleMulti, SourceTriage, fields) {
			matched = append(matched, r.Name)
		}
	}
	assert.Equal(t, []string{esc.Name}, matched)
	fields["k8s.pod.name"] = "<NA>" // a container outside Kubernetes
	for _, r := range rules {
		assert.False(t, Matches(r, RuleMulti, SourceTriage, fields), r.Name)
		assert.False(t, Matches(r, RuleCritical, SourceTriage, fields), r.Name)
	}
}

// Disruptive actions only for the playbooks opted in, only at critical
// risk or on an escalation, after the evidence.
func TestGenerateDisruptiveOptIn(t *testing.T) {
	o := Options{Disruptive: map[string]bool{"TRG-SYS-REVERSE-SHELL": true}}
	_, rules, _ := generate(t, o)
	assert.Empty(t, CheckGates(rules, GateOptions{Disruptive: o.Disruptive, Provides: provided(t, "../../deploy/talon/falco-talon.yaml")}))
	esc := ruleNamed(t, rules, "triage TRG-SYS-REVERSE-SHELL: entity escalation")
	assert.Equal(t, []string{"kubernetes:log", "kubernetes:tcpdump", "kubernetes:label", "kubernetes:networkpolicy", "kubernetes:terminate"}, actionners(esc))
	for _, a := range esc.Actions {
		assert.Empty(t, a.IgnoreErrors, "a failed step stops the rule before the pod is deleted")
	}
	assert.NotContains(t, actionners(ruleNamed(t, rules, "triage TRG-SYS-REVERSE-SHELL: high risk")), "kubernetes:terminate")
	assert.NotContains(t, actionners(ruleNamed(t, rules, "triage TRG-SYS-MEMFD-EXEC: critical risk")), "kubernetes:terminate")
	// The same file fails the gates when the opt-in is not given.
	assert.NotEmpty(t, CheckGates(rules, GateOptions{}))

	_, err := Generate(defaultKB(t), Options{Disruptive: map[string]bool{"TRG-NOPE-X": true}})
	assert.Error(t, err)
	_, err = Generate(defaultKB(t), Options{Disruptive: map[string]bool{"TRG-SYS-PRIVILEGED-CONTAINER": true}})
	assert.Error(t, err, "a playbook without a disruptive Talon step")
}

// deploy/talon/rules.yaml is what `triage talon-rules` writes today.
func TestDeployRulesFileIsCurrent(t *testing.T) {
	_, _, b := generate(t, Options{})
	got, err := os.ReadFile("../../deploy/talon/rules.yaml")
	require.NoError(t, err)
	assert.Equal(t, string(b), string(got), "regenerate: go run ./cmd/triage talon-rules --out deploy/talon/rules.yaml")
}

func TestDeployTalonConfig(t *testing.T) {
	b, err := os.ReadFile("../../deploy/talon/talon-config.yaml")
	require.NoError(t, err)
	files, errs := CheckConfig(b)
	assert.Empty(t, errs)
	assert.Equal(t, []string{"/etc/falco-talon/rules.yaml"}, files)
	_, errs = CheckConfig([]byte("listen_port: 2803\nrule_files: [x]\n"))
	assert.NotEmpty(t, errs, "a misspelled key")
}

const validRule = `
- rule: 'triage TRG-SYS-REVERSE-SHELL: critical risk'
  match:
    rules: [Triage critical risk alert]
    source: falco_alert
    output_fields:
      - alert.rule=Redirect STDOUT/STDIN to Network Connection in Container, risk.level=critical, k8s.pod.name!=<NA>
  dry_run: true
  actions:
    - action: logs
      actionner: kubernetes:log
      continue: true
      parameters:
        tail_lines: 100
      output:
        target: local:file
        parameters:
          destination: /tmp
    - action: label
      actionner: kubernetes:label
      parameters:
        labels:
          triage/quarantine: "true"
`

// The strict checker refuses what Talon v0.3.0 accepts silently, and the
// gates refuse what the generator never writes.
func TestCheckStrict(t *testing.T) {
	rules, errs := Check([]byte(validRule))
	require.Empty(t, errs)
	require.Empty(t, CheckGates(rules, GateOptions{}))

	cases := []struct{ name, from, to, want string }{
		{"rule-level typo drops dry run", "  dry_run: true", "  dryrun: true", `unknown key "dryrun"`},
		{"match typo widens the rule", "    rules: [Triage", "    rulez: [Triage", `unknown key "rulez"`},
		{"misspelled parameter", "tail_lines: 100", "tail_line: 100", `unknown parameter "tail_line"`},
		{"unknown action key", "      continue: true", "      continu: true", `unknown key "continu"`},
		{"unknown actionner", "kubernetes:log", "kubernetes:logs", `unknown actionner "kubernetes:logs"`},
		{"wrong parameter type", "tail_lines: 100", "tail_lines: many", `parameter "tail_lines" is string`},
		{"required parameter", "        labels:\n          triage/quarantine: \"true\"\n", "        level: pod\n", `missing required parameter "labels"`},
		{"bad boolean", "  dry_run: true", "  dry_run: yes", "dry_run must be true or false"},
		{"value Talon drops", "k8s.pod.name!=<NA>", "k8s.pod.name!=a=b", "dropped by Talon"},
		{"bad priority", "    source: falco_alert", "    source: falco_alert\n    priority: Severe", "incorrect priority"},
		{"unknown output target", "target: local:file", "target: local:disk", "unknown output target"},
		{"output parameter", "destination: /tmp", "dest: /tmp", `unknown parameter "dest"`},
		{"output on an actionner that ignores it", "        labels:\n", "        labels:\n", ""},
	}
	for _, c := range cases {
		if c.want == "" {
			continue
		}
		mutated := strings.Replace(validRule, c.from, c.to, 1)
		require.NotEqual(t, validRule, mutated, c.name)
		_, errs := Check([]byte(mutated))
		assert.Contains(t, strings.Join(errs, "\n"), c.want, c.name)
	}

	gates := []struct{ name, from, to, want string }{
		{"live without --live", "  dry_run: true", "  dry_run: false", "dry_run"},
		{"containment at high risk", "[Triage critical risk alert]", "[Triage high risk alert]", "kubernetes:label (contain) is not allowed"},
		{"containment gated on high", "risk.level=critical", "risk.level=high", "kubernetes:label (contain) is not allowed"},
		{"no risk gate", "risk.level=critical, ", "", "no risk.level condition"},
		{"medium risk", "risk.level=critical", "risk.level=medium", "below high"},
		{"other alerts", "source: falco_alert", "source: syscall", "match.source"},
		{"disruptive without opt-in", "actionner: kubernetes:label\n      parameters:\n        labels:\n          triage/quarantine: \"true\"\n", "actionner: kubernetes:terminate\n", "kubernetes:terminate (disrupt) is not allowed"},
		{"code execution", "actionner: kubernetes:label\n      parameters:\n        labels:\n          triage/quarantine: \"true\"\n", "actionner: kubernetes:exec\n      parameters:\n        command: id\n", "never generated"},
		{"tcpdump stops the rule", "      actionner: kubernetes:log\n      continue: true\n      parameters:\n        tail_lines: 100\n", "      actionner: kubernetes:tcpdump\n      parameters:\n        duration: 5\n", "stops the rule's later actions"},
	}
	for _, c := range gates {
		mutated := strings.Replace(validRule, c.from, c.to, 1)
		require.NotEqual(t, validRule, mutated, c.name)
		rules, errs := Check([]byte(mutated))
		require.Empty(t, errs, c.name)
		assert.Contains(t, strings.Join(CheckGates(rules, GateOptions{}), "\n"), c.want, c.name)
	}

	// Evidence after a change.
	swapped := `
- rule: r TRG-SYS-REVERSE-SHELL
  match: {rules: [Triage multi-tactic activity on one entity], source: falco_alert}
  dry_run: "true"
  actions:
    - {action: a, actionner: kubernetes:label, continue: "true", parameters: {labels: {a: b}}}
    - {action: b, actionner: kubernetes:log, output: {target: local:file, parameters: {destination: /tmp}}}
`
	rules, errs = Check([]byte(swapped))
	require.Empty(t, errs)
	assert.Contains(t, strings.Join(CheckGates(rules, GateOptions{}), "\n"), "evidence after a change")

	// An output on an actionner that has none, and tcpdump without one.
	rules, errs = Check([]byte(`
- rule: x
  match: {rules: [Triage critical risk alert]}
  actions:
    - {action: a, actionner: kubernetes:label, parameters: {labels: {a: b}}, output: {target: local:file, parameters: {destination: /tmp}}}
    - {action: b, actionner: kubernetes:tcpdump}
    - {action: c, actionner: kubernetes:log, parameters: {tail_lines: 5}}
- rule: x
  match: {}
  actions: []
`))
	all := strings.Join(errs, "\n")
	assert.Contains(t, all, "ignores an output")
	assert.Contains(t, all, "needs an output target")
	assert.Contains(t, all, "defined twice")
	assert.Contains(t, all, "fires on every event")
	assert.Contains(t, all, "no action")
	assert.Len(t, rules, 2)
}

// Talon's output_fields parsing, including what it drops.
func TestParseOutputField(t *testing.T) {
	c, err := ParseOutputField("alert.rule=Terminal shell in container, risk.level=critical,k8s.pod.name!=<NA>")
	require.NoError(t, err)
	assert.Equal(t, []FieldCond{{Key: "alert.rule", Value: "Terminal shell in container"}, {Key: "risk.level", Value: "critical"},
		{Key: "k8s.pod.name", Value: "<NA>", Not: true}}, c)
	for _, bad := range []string{"risk.level", "a=b=c", "a!=b!c", `a="b"`, "risk_level=high"} {
		_, err := ParseOutputField(bad)
		assert.Error(t, err, bad)
	}
}

// response.talon's order: evidence first, then playbook order; one name
// per actionner.
func TestActionnersOrder(t *testing.T) {
	k := defaultKB(t)
	assert.Equal(t, []string{"kubernetes:log", "kubernetes:tcpdump", "kubernetes:label", "kubernetes:networkpolicy", "kubernetes:terminate"},
		Actionners(k, "TRG-SYS-REVERSE-SHELL"))
	assert.Nil(t, Actionners(k, "TRG-K8S-EXEC-ATTACH"), "audit-log playbooks name no pod Talon can act on")
	assert.Nil(t, Actionners(k, "TRG-AWS-ROOT-ACCOUNT-USE"))
	n := 0
	for _, p := range k.Playbooks() {
		names := Actionners(k, p.ID)
		if len(names) == 0 {
			continue
		}
		n++
		seenChange := false
		for _, name := range names {
			a, ok := Lookup(name)
			require.True(t, ok)
			if a.Gate != GateEvidence {
				seenChange = true
			} else {
				assert.False(t, seenChange, "%s: evidence first: %v", p.ID, names)
			}
		}
		sorted := append([]string(nil), names...)
		sort.Strings(sorted)
		for i := 1; i < len(sorted); i++ {
			assert.NotEqual(t, sorted[i-1], sorted[i], p.ID)
		}
	}
	assert.Equal(t, 28, n)
}

// The quarantine policy deploy/talon ships is the playbooks' own.
func TestDeployQuarantinePolicy(t *testing.T) {
	k := defaultKB(t)
	p, _ := k.Playbook("TRG-SYS-REVERSE-SHELL")
	var step string
	for _, s := range p.Variants[kb.EnvK8s].Steps {
		if strings.Contains(s.Command, "triage-quarantine.yaml") {
			step = s.YAML
		}
	}
	require.NotEmpty(t, step)
	b, err := os.ReadFile("../../deploy/talon/triage-quarantine.yaml")
	require.NoError(t, err)
	var want, got any
	require.NoError(t, yaml.Unmarshal([]byte(step), &want))
	require.NoError(t, yaml.Unmarshal(b, &got))
	assert.Equal(t, want, got)
}

// docs/response.md's YAML blocks are the deploy file's append_output entry
// and the generated reverse-shell rule (descriptions left out).
func TestDocsResponseSnippets(t *testing.T) {
	md, err := os.ReadFile("../../docs/response.md")
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?ms)^```yaml\\n(.*?)^```").FindAllStringSubmatch(string(md), -1)
	require.Len(t, blocks, 2)

	var doc, deploy struct {
		AppendOutput any `yaml:"append_output"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(blocks[0][1]), &doc))
	b, err := os.ReadFile("../../deploy/talon/falco-talon.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &deploy))
	assert.Equal(t, deploy.AppendOutput, doc.AppendOutput)

	shown, errs := Check([]byte(blocks[1][1]))
	require.Empty(t, errs)
	require.Len(t, shown, 1)
	_, rules, _ := generate(t, Options{})
	want := ruleNamed(t, rules, shown[0].Name)
	want.Description = ""
	for i := range want.Actions {
		want.Actions[i].Description = ""
	}
	assert.Equal(t, want, shown[0])
}
