package talon

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Check parses a Talon rules file and reports every problem Talon v0.3.0's
// own validation reports (internal/rules/rules.go isValid: names, actionner
// syntax, true/false settings, priority, tags, output field keys, an output
// target without parameters) and more, because Talon accepts silently what
// changes a rule's meaning:
//   - unknown keys at rule level (a `dryrun:` typo drops the dry run), under
//     `match:` (a `rulez:` typo widens the rule to every event), in an action
//     or its output;
//   - actionners and output targets missing from the catalogue, parameter
//     names the actionner does not have, parameters of the wrong type,
//     missing required parameters, an output an actionner needs or ignores;
//   - output_fields entries Talon would drop (a value holding '=' or '!', no
//     '=' at all) and duplicate rule names (Talon merges them).
//
// Top-level action definitions (`- action:`, shared by rules by name) are
// checked too. The file's rules are returned when it parses.
func Check(data []byte) ([]Rule, []string) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []string{err.Error()}
	}
	if len(doc.Content) == 0 {
		return nil, []string{"empty rules file"}
	}
	top := doc.Content[0]
	if top.Kind != yaml.SequenceNode {
		return nil, []string{"a rules file is a list of rules and actions"}
	}
	var errs []string
	bad := func(where, f string, a ...any) { errs = append(errs, where+": "+fmt.Sprintf(f, a...)) }
	var rules []Rule
	names := map[string]bool{}
	for i, item := range top.Content {
		where := fmt.Sprintf("item %d (line %d)", i+1, item.Line)
		if item.Kind != yaml.MappingNode {
			bad(where, "not a mapping")
			continue
		}
		switch {
		case hasKey(item, "rule"):
			var r Rule
			if err := item.Decode(&r); err != nil {
				bad(where, "%v", err)
				continue
			}
			where = fmt.Sprintf("rule %q (line %d)", r.Name, item.Line)
			if names[r.Name] {
				bad(where, "defined twice (Talon appends the second to the first)")
			}
			names[r.Name] = true
			checkKeys(item, ruleKeys, where, bad)
			checkRule(item, &r, where, bad)
			rules = append(rules, r)
		case hasKey(item, "action"):
			var a Action
			if err := item.Decode(&a); err != nil {
				bad(where, "%v", err)
				continue
			}
			checkAction(item, &a, fmt.Sprintf("action %q (line %d)", a.Name, item.Line), bad)
		default:
			bad(where, "neither a rule nor an action")
		}
	}
	return rules, errs
}

var (
	ruleKeys   = []string{"rule", "description", "continue", "dry_run", "actions", "notifiers", "match"}
	matchKeys  = []string{"rules", "output_fields", "priority", "source", "tags"}
	actionKeys = []string{"action", "description", "actionner", "continue", "ignore_errors", "additional_contexts", "parameters", "output"}
	outputKeys = []string{"target", "parameters"}

	// Talon v0.3.0's own expressions (internal/rules/rules.go init).
	priorityCheck = regexp.MustCompile(`(?i)^(<|>)?(=)?(Debug|Informational|Notice|Warning|Error|Critical|Alert|Emergency|)$`)
	actionCheck   = regexp.MustCompile(`[a-z]+:[a-z]+`)
	tagCheck      = regexp.MustCompile(`(?i)^[a-z_0-9.]*[a-z0-9]$`)
	fieldKeyCheck = regexp.MustCompile(`(?i)^[a-z0-9.\[\]]*(!)?(=)`)
)

func hasKey(m *yaml.Node, k string) bool { return child(m, k) != nil }

func child(m *yaml.Node, k string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == k {
			return m.Content[i+1]
		}
	}
	return nil
}

func checkKeys(m *yaml.Node, allowed []string, where string, bad func(string, string, ...any)) {
	if m == nil || m.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i].Value
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			bad(where, "unknown key %q (line %d; Talon ignores it silently; known: %s)", k, m.Content[i].Line, strings.Join(allowed, ", "))
		}
	}
}

func trueFalse(v, what, where string, bad func(string, string, ...any)) {
	if v != "" && v != "true" && v != "false" {
		bad(where, "%s must be true or false, not %q", what, v)
	}
}

func checkRule(n *yaml.Node, r *Rule, where string, bad func(string, string, ...any)) {
	if r.Name == "" {
		bad(where, "a rule needs a name")
	}
	trueFalse(r.Continue, "continue", where, bad)
	trueFalse(r.DryRun, "dry_run", where, bad)
	mn := child(n, "match")
	checkKeys(mn, matchKeys, where+" match", bad)
	if !priorityCheck.MatchString(r.Match.Priority) {
		bad(where, "incorrect priority %q", r.Match.Priority)
	}
	for _, t := range r.Match.Tags {
		for _, j := range strings.Split(strings.ReplaceAll(t, " ", ""), ",") {
			if !tagCheck.MatchString(j) {
				bad(where, "incorrect tag %q", j)
			}
		}
	}
	for _, f := range r.Match.OutputFields {
		if _, err := ParseOutputField(f); err != nil {
			bad(where, "output_fields %q: %v", f, err)
		}
	}
	if len(r.Match.Rules) == 0 && len(r.Match.OutputFields) == 0 && len(r.Match.Tags) == 0 && r.Match.Priority == "" && r.Match.Source == "" {
		bad(where, "match is empty: the rule fires on every event")
	}
	if len(r.Actions) == 0 {
		bad(where, "no action")
	}
	an := child(n, "actions")
	for i := range r.Actions {
		var node *yaml.Node
		if an != nil && i < len(an.Content) {
			node = an.Content[i]
		}
		checkAction(node, &r.Actions[i], fmt.Sprintf("%s action %q", where, r.Actions[i].Name), bad)
	}
}

func checkAction(n *yaml.Node, a *Action, where string, bad func(string, string, ...any)) {
	checkKeys(n, actionKeys, where, bad)
	if a.Name == "" {
		bad(where, "an action needs a name")
	}
	trueFalse(a.Continue, "continue", where, bad)
	trueFalse(a.IgnoreErrors, "ignore_errors", where, bad)
	if !actionCheck.MatchString(a.Actionner) {
		bad(where, "incorrect actionner %q", a.Actionner)
		return
	}
	cat, ok := Lookup(a.Actionner)
	if !ok {
		bad(where, "unknown actionner %q (not in Talon %s's catalogue)", a.Actionner, Version)
		return
	}
	checkParams(a.Parameters, cat.Params, where+" parameters", bad)
	if a.Actionner == "kubernetes:networkpolicy" || a.Actionner == "cilium:networkpolicy" || a.Actionner == "calico:networkpolicy" {
		if l, ok := a.Parameters["allow_cidr"].([]any); ok {
			for _, c := range l {
				if _, _, err := net.ParseCIDR(fmt.Sprint(c)); err != nil {
					bad(where, "allow_cidr %q is not a CIDR", c)
				}
			}
		}
	}
	var on *yaml.Node
	if n != nil {
		on = child(n, "output")
	}
	checkKeys(on, outputKeys, where+" output", bad)
	switch {
	case a.Output == nil && cat.RequireOutput:
		bad(where, "%s needs an output target (Talon fails the action without one)", a.Actionner)
	case a.Output != nil && !cat.RequireOutput && !cat.AllowOutput:
		bad(where, "%s ignores an output; remove it", a.Actionner)
	case a.Output != nil:
		o, ok := LookupOutput(a.Output.Target)
		if !ok {
			bad(where, "unknown output target %q (Talon %s has %s)", a.Output.Target, Version, outputNames())
			break
		}
		if len(a.Output.Parameters) == 0 {
			bad(where, "missing 'parameters' for the output")
		}
		checkParams(a.Output.Parameters, o.Params, where+" output parameters", bad)
	}
}

func checkParams(got map[string]any, want []Param, where string, bad func(string, string, ...any)) {
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var p *Param
		for i := range want {
			if want[i].Name == k {
				p = &want[i]
			}
		}
		if p == nil {
			var names []string
			for _, w := range want {
				names = append(names, w.Name)
			}
			bad(where, "unknown parameter %q (Talon ignores it; known: %s)", k, strings.Join(names, ", "))
			continue
		}
		if !kindOK(got[k], p.Kind) {
			bad(where, "parameter %q is %T, want %s", k, got[k], p.Kind)
		}
	}
	for _, w := range want {
		if _, ok := got[w.Name]; w.Required && !ok {
			bad(where, "missing required parameter %q", w.Name)
		}
	}
}

func kindOK(v any, k ParamKind) bool {
	switch k {
	case KindString:
		_, ok := v.(string)
		return ok
	case KindInt:
		_, ok := v.(int)
		return ok
	case KindBool:
		_, ok := v.(bool)
		return ok
	case KindStrings:
		l, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range l {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	case KindStringMap:
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for _, e := range m {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}

// FieldCond is one key=value or key!=value of an output_fields entry.
type FieldCond struct {
	Key, Value string
	Not        bool
}

// ParseOutputField parses one output_fields entry as Talon v0.3.0 does
// (ParseRules: "!=" becomes "!", ", " becomes ",", split on ',', each part
// split on '=' or '!' into exactly two, '"' removed from the value), and
// refuses the parts Talon would silently drop.
func ParseOutputField(entry string) ([]FieldCond, error) {
	var out []FieldCond
	for _, part := range strings.Split(strings.ReplaceAll(entry, ", ", ","), ",") {
		if !fieldKeyCheck.MatchString(part) {
			return nil, fmt.Errorf("incorrect output field key in %q", part)
		}
		t := strings.ReplaceAll(part, "!=", "!")
		switch {
		case strings.Contains(t, "!"):
			p := strings.Split(t, "!")
			if len(p) != 2 || strings.Contains(p[1], "=") {
				return nil, fmt.Errorf("%q: a value holding '=' or '!' is dropped by Talon", part)
			}
			out = append(out, FieldCond{Key: p[0], Value: strings.ReplaceAll(p[1], `"`, ""), Not: true})
		default:
			p := strings.Split(t, "=")
			if len(p) != 2 {
				return nil, fmt.Errorf("%q: a value holding '=' or '!' is dropped by Talon", part)
			}
			if strings.Contains(p[1], `"`) {
				return nil, fmt.Errorf("%q: Talon removes '\"' from the value", part)
			}
			out = append(out, FieldCond{Key: p[0], Value: p[1]})
		}
	}
	return out, nil
}

// Matches says whether Talon v0.3.0 would run r for an event (Rule.CompareRule
// in internal/rules/rules.go): match.rules by exact name, output_fields
// entries ORed, each a comma-separated AND of exact string comparisons of
// fmt's %v of the event's value (a JSON list is "[a b]"), a `!=` failing only
// when the key is present with that value; source exact; tags and priority
// are not used by triage's rules and not modelled (a rule using them does
// not match here).
func Matches(r Rule, eventRule, source string, fields map[string]any) bool {
	if len(r.Match.Tags) > 0 || r.Match.Priority != "" {
		return false
	}
	if len(r.Match.Rules) > 0 {
		ok := false
		for _, n := range r.Match.Rules {
			ok = ok || n == eventRule
		}
		if !ok {
			return false
		}
	}
	if r.Match.Source != "" && r.Match.Source != source {
		return false
	}
	if len(r.Match.OutputFields) == 0 {
		return true
	}
	for _, entry := range r.Match.OutputFields {
		conds, err := ParseOutputField(entry)
		if err != nil {
			continue
		}
		ok := true
		for _, c := range conds {
			v, present := fields[c.Key]
			s := fmt.Sprintf("%v", v)
			if c.Not {
				ok = ok && !(present && s == c.Value)
			} else {
				ok = ok && present && v != nil && s == c.Value
			}
		}
		if ok {
			return true
		}
	}
	return false
}
