package talon

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/triage-dev/triage/pkg/kb"
)

// The triage rules (rules/triage_rules.yaml) whose alerts the generated
// Talon rules match. The chain is mutually exclusive, so one triage event
// reaches Talon under one of these names at most.
const (
	RuleGoal       = "Triage progression into exfiltration or impact"
	RuleMulti      = "Triage multi-tactic activity on one entity"
	RuleCritical   = "Triage critical risk alert"
	RuleThreshold  = "Triage entity risk threshold crossed"
	RuleHigh       = "Triage high risk alert"
	SourceTriage   = "falco_alert"
	notAvailable   = "<NA>" // how Falco renders an extra field without a value
	generatedTitle = "triage"
)

// EscalationRules are the triage rules raised when the alert escalated its
// entity (entity.escalation has a value: exfiltration_or_impact,
// multi_tactic, risk_threshold).
var EscalationRules = []string{RuleGoal, RuleMulti, RuleThreshold}

// Rule, Match, Action and Output are a Talon rules file's schema
// (internal/rules/rules.go of Talon v0.3.0), in the order Talon documents
// the keys. Boolean settings are strings in Talon ("true"/"false").
type Rule struct {
	Name        string   `yaml:"rule"`
	Description string   `yaml:"description,omitempty"`
	Match       Match    `yaml:"match"`
	DryRun      string   `yaml:"dry_run,omitempty"`
	Continue    string   `yaml:"continue,omitempty"`
	Notifiers   []string `yaml:"notifiers,omitempty"`
	Actions     []Action `yaml:"actions"`
}

type Match struct {
	Rules        []string `yaml:"rules,omitempty"`
	Priority     string   `yaml:"priority,omitempty"`
	Source       string   `yaml:"source,omitempty"`
	Tags         []string `yaml:"tags,omitempty"`
	OutputFields []string `yaml:"output_fields,omitempty"`
}

type Action struct {
	Name               string         `yaml:"action"`
	Description        string         `yaml:"description,omitempty"`
	Actionner          string         `yaml:"actionner"`
	Continue           string         `yaml:"continue,omitempty"`
	IgnoreErrors       string         `yaml:"ignore_errors,omitempty"`
	AdditionalContexts []string       `yaml:"additional_contexts,omitempty"`
	Parameters         map[string]any `yaml:"parameters,omitempty"`
	Output             *Output        `yaml:"output,omitempty"`
}

type Output struct {
	Target     string         `yaml:"target"`
	Parameters map[string]any `yaml:"parameters"`
}

// Options of the generator.
type Options struct {
	// Disruptive lists the playbook IDs whose disruptive actions
	// (terminate, cordon, drain) the user opted in to.
	Disruptive map[string]bool
	// Live writes dry_run: "false"; the default is a dry run.
	Live bool
	// OutputTarget and OutputParams say where evidence goes (log, tcpdump);
	// default local:file into DefaultEvidenceDir.
	OutputTarget string
	OutputParams map[string]any
}

// DefaultEvidenceDir is where Talon's local:file output writes evidence
// unless told otherwise; the folder must exist in Talon's container.
const DefaultEvidenceDir = "/var/lib/falco-talon/evidence"

// Tier is a generated rule's gate.
type Tier string

const (
	TierEscalation Tier = "escalation" // evidence + containment (+ opted-in disruption)
	TierCritical   Tier = "critical"   // evidence + containment (+ opted-in disruption)
	TierHigh       Tier = "high"       // evidence only
)

// Generated is the generator's result.
type Generated struct {
	Rules []Rule
	// Playbooks maps each playbook with a Talon mapping to the upstream
	// rules whose alerts it answers.
	Playbooks map[string][]string
	// Skipped lists upstream rules Talon's output_fields syntax cannot
	// match exactly (a name holding ',', '=', '!' or '"').
	Skipped []string
}

// Generate builds the Talon rules for every playbook of k with a Talon
// mapping, matching the syscall rules whose primary playbook it is.
func Generate(k *kb.KB, o Options) (*Generated, error) {
	if o.OutputTarget == "" {
		o.OutputTarget = "local:file"
	}
	if o.OutputTarget == "local:file" && o.OutputParams == nil {
		o.OutputParams = map[string]any{"destination": DefaultEvidenceDir}
	}
	if _, ok := LookupOutput(o.OutputTarget); !ok {
		return nil, fmt.Errorf("talon: unknown output target %q (Talon %s has %s)", o.OutputTarget, Version, outputNames())
	}
	for id := range o.Disruptive {
		p, ok := k.Playbook(id)
		if !ok {
			return nil, fmt.Errorf("talon: --allow-disruptive %s: no such playbook", id)
		}
		has := false
		for _, m := range MapPlaybook(p) {
			has = has || m.Gate() == GateDisrupt
		}
		if !has {
			return nil, fmt.Errorf("talon: --allow-disruptive %s: the playbook has no disruptive step Talon can run", id)
		}
	}
	byPlaybook := map[string][]string{}
	g := &Generated{Playbooks: map[string][]string{}}
	for _, r := range k.Rules() {
		if r.Source != "syscall" || len(r.Playbooks) == 0 {
			continue
		}
		if strings.ContainsAny(r.Rule, `,=!"`) {
			g.Skipped = append(g.Skipped, r.Rule)
			continue
		}
		byPlaybook[r.Playbooks[0]] = append(byPlaybook[r.Playbooks[0]], r.Rule)
	}
	ids := make([]string, 0, len(byPlaybook))
	for id := range byPlaybook {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p, _ := k.Playbook(id)
		ms := Ordered(MapPlaybook(p))
		if len(ms) == 0 {
			continue
		}
		rules := byPlaybook[id]
		g.Playbooks[id] = rules
		for _, tier := range []Tier{TierEscalation, TierCritical, TierHigh} {
			if r, ok := tierRule(p, ms, rules, tier, o); ok {
				g.Rules = append(g.Rules, r)
			}
		}
	}
	return g, nil
}

func outputNames() string {
	var s []string
	for _, o := range Outputs {
		s = append(s, o.Target)
	}
	return strings.Join(s, ", ")
}

func tierRule(p *kb.Playbook, ms []Mapped, upstream []string, tier Tier, o Options) (Rule, bool) {
	var picked []Mapped
	for _, m := range ms {
		switch m.Gate() {
		case GateEvidence:
			picked = append(picked, m)
		case GateContain:
			if tier != TierHigh {
				picked = append(picked, m)
			}
		case GateDisrupt:
			if tier != TierHigh && o.Disruptive[p.ID] {
				picked = append(picked, m)
			}
		}
	}
	if len(picked) == 0 {
		return Rule{}, false
	}
	disrupts := false
	for _, m := range picked {
		disrupts = disrupts || m.Gate() == GateDisrupt
	}
	r := Rule{
		Match:  Match{Source: SourceTriage},
		DryRun: "true",
	}
	if o.Live {
		r.DryRun = "false"
	}
	var level string
	switch tier {
	case TierEscalation:
		r.Name = fmt.Sprintf("%s %s: entity escalation", generatedTitle, p.ID)
		r.Description = "An alert answered by " + p.ID + " escalated its entity (exfiltration or impact, multi-tactic, risk threshold): evidence, then reversible containment."
		r.Match.Rules = append([]string(nil), EscalationRules...)
	case TierCritical:
		level = "critical"
		r.Name = fmt.Sprintf("%s %s: critical risk", generatedTitle, p.ID)
		r.Description = "An alert answered by " + p.ID + " scored critical: evidence, then reversible containment."
		r.Match.Rules = []string{RuleCritical}
	case TierHigh:
		level = "high"
		r.Name = fmt.Sprintf("%s %s: high risk", generatedTitle, p.ID)
		r.Description = "An alert answered by " + p.ID + " scored high: evidence only."
		r.Match.Rules = []string{RuleHigh}
	}
	if disrupts {
		r.Description += " Disruptive steps opted in with --allow-disruptive " + p.ID + "."
	}
	for _, u := range upstream {
		f := "alert.rule=" + u
		if level != "" {
			f += ", risk.level=" + level
		}
		f += ", k8s.pod.name!=" + notAvailable
		r.Match.OutputFields = append(r.Match.OutputFields, f)
	}
	for i, m := range picked {
		a := Action{
			Name:        fmt.Sprintf("%s step %d, %s: %s", p.ID, m.Step+1, m.Actionner, m.Title),
			Description: fmt.Sprintf("%s (%s) for the playbook step %q (%s)", m.Actionner, m.Why, m.Title, m.Safety),
			Actionner:   m.Actionner,
			Parameters:  m.Params,
		}
		if len(a.Parameters) == 0 {
			a.Parameters = nil
		}
		cat, _ := Lookup(m.Actionner)
		if cat.RequireOutput || cat.AllowOutput {
			a.Output = &Output{Target: o.OutputTarget, Parameters: o.OutputParams}
		}
		if i < len(picked)-1 {
			a.Continue = "true"
		}
		// A failed capture or label must not stop the containment that
		// follows it; with a disruptive action in the rule, any failure
		// stops the rule before the disruption.
		if !disrupts && i < len(picked)-1 {
			a.IgnoreErrors = "true"
		}
		r.Actions = append(r.Actions, a)
	}
	return r, true
}

// Header is the comment the generated file starts with.
func (g *Generated) Header(attackVersion string, o Options) string {
	mode := "every rule is a dry run (dry_run: \"true\"); regenerate with --live to act"
	if o.Live {
		mode = "LIVE: dry_run is \"false\""
	}
	var opted []string
	for id := range o.Disruptive {
		opted = append(opted, id)
	}
	sort.Strings(opted)
	optedText := "none"
	if len(opted) > 0 {
		optedText = strings.Join(opted, ", ")
	}
	return fmt.Sprintf(`Falco Talon %s rules generated by triage talon-rules from the knowledge base (ATT&CK %s).
%d playbooks with a Talon mapping, %d rules; %s.
Disruptive actions opted in for: %s.
Needs the Falco side of deploy/talon/ (append_output keys k8s.ns.name and k8s.pod.name); docs/response.md.
Do not edit: regenerate.`, Version, attackVersion, len(g.Playbooks), len(g.Rules), mode, optedText)
}

// Marshal writes the rules file with a header.
func (g *Generated) Marshal(header string) ([]byte, error) {
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
		b.WriteString("# " + l + "\n")
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(g.Rules); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}
