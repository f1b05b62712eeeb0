package talon

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// GateOptions are what CheckGates holds a rules file to.
type GateOptions struct {
	// Disruptive lists the playbooks whose disruptive actions are opted in.
	Disruptive map[string]bool
	// Live allows dry_run "false".
	Live bool
	// Provides maps each triage rule name to the output_fields keys its
	// events carry when they reach Talon (ProvidedKeys); nil skips the
	// required-field check.
	Provides map[string]map[string]bool
}

var playbookInName = regexp.MustCompile(`TRG-[A-Z0-9]+(-[A-Z0-9]+)+`)

var gateRank = map[Gate]int{GateEvidence: 0, GateContain: 1, GateDisrupt: 2, GateNever: 3}

// CheckGates holds generated rules to triage's gates (docs/response.md):
// evidence from high risk up, reversible containment only at critical risk
// or on an entity escalation, disruptive actions only for opted-in
// playbooks and never at high risk, never exec/script/functions, evidence
// before any change, dry run unless live, only triage's own alerts, and
// every output field an actionner reads present in the events it matches.
func CheckGates(rules []Rule, o GateOptions) []string {
	var errs []string
	for _, r := range rules {
		bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf("rule %q: ", r.Name)+fmt.Sprintf(f, a...)) }
		switch {
		case r.DryRun == "true":
		case r.DryRun == "false" && o.Live:
		default:
			bad("dry_run is %q; generated rules are dry runs unless made live", r.DryRun)
		}
		if r.Match.Source != SourceTriage {
			bad("match.source is %q, want %s (only triage's alerts carry risk and escalation)", r.Match.Source, SourceTriage)
		}
		if len(r.Match.Rules) == 0 {
			bad("match.rules is empty")
		}
		// The most a rule may do: the least any of its triage rules and
		// output_fields entries allows.
		allowed := GateDisrupt
		lower := func(g Gate) {
			if gateRank[g] < gateRank[allowed] {
				allowed = g
			}
		}
		needLevel := false
		for _, n := range r.Match.Rules {
			switch n {
			case RuleGoal, RuleMulti, RuleThreshold:
			case RuleCritical:
				needLevel = true
			case RuleHigh:
				needLevel = true
				lower(GateEvidence)
			default:
				bad("matches %q, not one of triage's risk or escalation rules", n)
				lower(GateNever)
			}
		}
		if len(r.Match.OutputFields) == 0 && needLevel {
			bad("no output_fields: gate on risk.level")
			lower(GateNever)
		}
		for _, f := range r.Match.OutputFields {
			conds, err := ParseOutputField(f)
			if err != nil {
				bad("%v", err)
				continue
			}
			level := ""
			for _, c := range conds {
				if !c.Not && o.Provides != nil {
					for _, n := range r.Match.Rules {
						if !o.Provides[n][c.Key] {
							bad("output_fields %q: %q does not carry %s, so the entry never matches", f, n, c.Key)
						}
					}
				}
				if c.Key == "risk.level" && !c.Not {
					level = c.Value
				}
			}
			switch {
			case level == "critical":
			case level == "high":
				lower(GateEvidence)
			case level != "":
				bad("output_fields %q: risk.level=%s is below high", f, level)
				lower(GateNever)
			case needLevel:
				bad("output_fields %q: no risk.level condition for a risk rule", f)
				lower(GateNever)
			}
		}
		pb := playbookInName.FindString(r.Name)
		if !o.Disruptive[pb] {
			lower(GateContain)
		}
		changed := false
		for i, a := range r.Actions {
			cat, ok := Lookup(a.Actionner)
			if !ok {
				bad("action %q: unknown actionner %q", a.Name, a.Actionner)
				continue
			}
			if cat.Gate == GateNever {
				bad("action %q: %s runs code triage did not write; never generated", a.Name, a.Actionner)
				continue
			}
			if gateRank[cat.Gate] > gateRank[allowed] {
				bad("action %q: %s (%s) is not allowed here (this rule allows up to %s)", a.Name, a.Actionner, cat.Gate, allowed)
			}
			if cat.Gate == GateEvidence && changed {
				bad("action %q: evidence after a change; evidence comes first", a.Name)
			}
			if cat.Gate != GateEvidence {
				changed = true
			}
			stops := a.Continue == "false" || (a.Continue != "true" && !cat.Continue)
			if stops && i < len(r.Actions)-1 {
				bad("action %q: %s stops the rule's later actions; set continue: true", a.Name, a.Actionner)
			}
			if o.Provides != nil {
				for _, n := range r.Match.Rules {
					keys := o.Provides[n]
					for _, f := range cat.RequiredOutputFields {
						if !keys[f] {
							bad("action %q: %s reads output field %s, which %q does not carry", a.Name, a.Actionner, f, n)
						}
					}
					if len(cat.AnyOutputFields) > 0 {
						any := false
						for _, f := range cat.AnyOutputFields {
							any = any || keys[f]
						}
						if !any {
							bad("action %q: %s needs one of %s, which %q does not carry", a.Name, a.Actionner, strings.Join(cat.AnyOutputFields, ", "), n)
						}
					}
				}
			}
		}
	}
	return errs
}

var outputToken = regexp.MustCompile(`%([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+(?:\[[^\]\s]+\])?)`)

// ProvidedKeys returns, for each enabled rule of a Falco rules file, the
// output_fields keys its events carry in Falco's JSON: one per %field token
// of its output (the field name with its [arg], as Falco keys it), plus the
// keys that append_output entries of a Falco configuration add to rules of
// that source (extra_fields: a bare field, or a {key: format} map whose key
// is used as written).
func ProvidedKeys(rulesYAML, falcoYAML []byte) (map[string]map[string]bool, error) {
	var items []map[string]any
	if err := yaml.Unmarshal(rulesYAML, &items); err != nil {
		return nil, err
	}
	var cfg struct {
		AppendOutput []struct {
			Match struct {
				Source string   `yaml:"source"`
				Tags   []string `yaml:"tags"`
				Rule   string   `yaml:"rule"`
			} `yaml:"match"`
			ExtraFields []any `yaml:"extra_fields"`
		} `yaml:"append_output"`
	}
	if falcoYAML != nil {
		if err := yaml.Unmarshal(falcoYAML, &cfg); err != nil {
			return nil, err
		}
	}
	out := map[string]map[string]bool{}
	for _, it := range items {
		name, _ := it["rule"].(string)
		if name == "" {
			continue
		}
		keys := map[string]bool{}
		output, _ := it["output"].(string)
		for _, m := range outputToken.FindAllStringSubmatch(output, -1) {
			keys[m[1]] = true
		}
		source, _ := it["source"].(string)
		var tags []string
		if l, ok := it["tags"].([]any); ok {
			for _, t := range l {
				tags = append(tags, fmt.Sprint(t))
			}
		}
		for _, ao := range cfg.AppendOutput {
			if ao.Match.Source != "" && ao.Match.Source != source {
				continue
			}
			if ao.Match.Rule != "" && ao.Match.Rule != name {
				continue
			}
			if !hasAllTags(tags, ao.Match.Tags) {
				continue
			}
			for _, ef := range ao.ExtraFields {
				switch v := ef.(type) {
				case string:
					keys[v] = true
				case map[string]any:
					for k := range v {
						keys[k] = true
					}
				}
			}
		}
		out[name] = keys
	}
	return out, nil
}

// hasAllTags: Falco's append_output match on tags needs every listed tag
// (falco userspace/engine/rule_loader_compiler.cpp: std::includes of the
// entry's tags in the rule's).
func hasAllTags(have, want []string) bool {
	for _, w := range want {
		ok := false
		for _, h := range have {
			ok = ok || h == w
		}
		if !ok {
			return false
		}
	}
	return true
}

// ConfigKeys are the keys of Talon v0.3.0's config.yaml
// (configuration/configuration.go, mapstructure names).
var ConfigKeys = []string{"listen_address", "listen_port", "rules_files", "kubeconfig", "log_format", "watch_rules",
	"print_all_events", "otel", "deduplication", "default_notifiers", "aws", "gcp", "minio", "notifiers"}

// CheckConfig refuses unknown keys in a Talon config.yaml (Talon ignores
// them) and returns its rules_files.
func CheckConfig(data []byte) ([]string, []string) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil || len(n.Content) == 0 {
		return nil, []string{fmt.Sprint("config: ", err)}
	}
	var errs []string
	checkKeys(n.Content[0], ConfigKeys, "config", func(w, f string, a ...any) { errs = append(errs, w+": "+fmt.Sprintf(f, a...)) })
	checkKeys(child(n.Content[0], "deduplication"), []string{"leader_election", "time_window_seconds"}, "config deduplication",
		func(w, f string, a ...any) { errs = append(errs, w+": "+fmt.Sprintf(f, a...)) })
	var c struct {
		RulesFiles []string `yaml:"rules_files"`
	}
	if err := n.Content[0].Decode(&c); err != nil {
		errs = append(errs, err.Error())
	}
	return c.RulesFiles, errs
}
