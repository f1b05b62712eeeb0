package kb

import (
	"regexp"
	"sort"
	"strings"
)

// How a resolution was found.
const (
	ViaRuleMap    = "rule_map"    // the rule is in the knowledge base
	ViaTags       = "tags"        // technique IDs in the rule's tags
	ViaTacticTags = "tactic_tags" // only tactic tags (TA####, mitre_*)
	ViaNone       = "none"        // nothing known: fields say unknown
)

// Resolution is what the knowledge base says about one alert's rule.
type Resolution struct {
	Via         string
	Rule        *Rule    // nil unless Via is rule_map
	Techniques  []string // ATT&CK IDs, in map or tag order
	Tactics     []string // TA IDs in kill-chain order
	Conflict    string
	Playbooks   []string
	Mitigations []string // M-IDs
	D3FEND      []string
}

var (
	techniqueTag = regexp.MustCompile(`^[Tt](\d{4})(\.\d{3})?`)
	tacticTag    = regexp.MustCompile(`^TA(\d{4})`)
)

// mitreTacticTags maps Falco's mitre_* tags to ATT&CK tactic shortnames.
var mitreTacticTags = map[string]string{
	"mitre_reconnaissance":       "reconnaissance",
	"mitre_resource_development": "resource-development",
	"mitre_initial_access":       "initial-access",
	"mitre_execution":            "execution",
	"mitre_persistence":          "persistence",
	"mitre_privilege_escalation": "privilege-escalation",
	"mitre_defense_evasion":      "defense-evasion",
	"mitre_credential_access":    "credential-access",
	"mitre_discovery":            "discovery",
	"mitre_lateral_movement":     "lateral-movement",
	"mitre_collection":           "collection",
	"mitre_command_and_control":  "command-and-control",
	"mitre_exfiltration":         "exfiltration",
	"mitre_impact":               "impact",
}

// TagTechniques extracts ATT&CK technique IDs from rule tags: T1234,
// T1234.001 and suffixed forms such as T1562-impair-defenses.
func TagTechniques(tags []string) []string {
	var out []string
	for _, t := range tags {
		if m := techniqueTag.FindStringSubmatch(t); m != nil {
			out = appendUnique(out, "T"+m[1]+m[2])
		}
	}
	return out
}

// TagTactics extracts tactic IDs from TA#### tags (suffixes allowed) and
// shortnames from mitre_* tags, as TA IDs.
func (k *KB) TagTactics(tags []string) []string {
	var out []string
	for _, t := range tags {
		if m := tacticTag.FindStringSubmatch(t); m != nil {
			if _, ok := k.tacticByID["TA"+m[1]]; ok {
				out = appendUnique(out, "TA"+m[1])
			}
			continue
		}
		if short, ok := mitreTacticTags[strings.ToLower(t)]; ok {
			if tac, ok := k.TacticByShortname(short); ok {
				out = appendUnique(out, tac.ID)
			}
		}
	}
	return out
}

// Resolve looks up a rule by name, falling back to its tags.
func (k *KB) Resolve(rule string, tags []string) Resolution {
	if r, ok := k.rules[rule]; ok {
		res := Resolution{Via: ViaRuleMap, Rule: r, Conflict: r.Conflict}
		res.Techniques = append(res.Techniques, r.Techniques...)
		res.Playbooks = append(res.Playbooks, r.Playbooks...)
		res.Tactics = k.tacticsOf(res.Techniques, nil)
		k.fillMitigations(&res)
		return res
	}
	techs := TagTechniques(tags)
	tagTactics := k.TagTactics(tags)
	switch {
	case len(techs) > 0:
		res := Resolution{Via: ViaTags, Techniques: techs}
		res.Tactics = k.tacticsOf(techs, tagTactics)
		res.Playbooks = k.playbooksFor(techs)
		k.fillMitigations(&res)
		return res
	case len(tagTactics) > 0:
		return Resolution{Via: ViaTacticTags, Tactics: k.sortTactics(tagTactics)}
	}
	return Resolution{Via: ViaNone}
}

// tacticsOf returns the tactics of techniques (plus extra TA IDs) in
// kill-chain order. Unknown techniques contribute nothing.
func (k *KB) tacticsOf(techs []string, extra []string) []string {
	var ids []string
	for _, id := range techs {
		t, ok := k.techniques[id]
		if !ok {
			continue
		}
		for _, s := range t.Tactics {
			if tac, ok := k.TacticByShortname(s); ok {
				ids = appendUnique(ids, tac.ID)
			}
		}
	}
	for _, id := range extra {
		ids = appendUnique(ids, id)
	}
	return k.sortTactics(ids)
}

func (k *KB) sortTactics(ids []string) []string {
	sort.SliceStable(ids, func(i, j int) bool { return k.tacticByID[ids[i]] < k.tacticByID[ids[j]] })
	return ids
}

// playbooksFor finds playbooks covering the techniques (or their parents)
// for custom rules that are not in the map.
func (k *KB) playbooksFor(techs []string) []string {
	var out []string
	for _, p := range k.Playbooks() {
		for _, pt := range p.Techniques {
			parent, _, _ := strings.Cut(pt, ".")
			hit := false
			for _, t := range techs {
				if t == pt || t == parent {
					hit = true
				}
			}
			if hit {
				out = appendUnique(out, p.ID)
				break
			}
		}
		if len(out) == 3 { // a short list beats an exhaustive one
			break
		}
	}
	return out
}

// fillMitigations takes M-IDs and D3FEND IDs from the playbooks, which
// name what they actually apply, and falls back to the techniques' own.
func (k *KB) fillMitigations(res *Resolution) {
	for _, id := range res.Playbooks {
		if p, ok := k.playbooks[id]; ok {
			for _, m := range p.Mitigations {
				res.Mitigations = appendUnique(res.Mitigations, m)
			}
			for _, d := range p.D3FEND {
				res.D3FEND = appendUnique(res.D3FEND, d)
			}
		}
	}
	for _, id := range res.Techniques {
		t, ok := k.techniques[id]
		if !ok {
			continue
		}
		if len(res.Playbooks) == 0 {
			for _, m := range t.Mitigations {
				res.Mitigations = appendUnique(res.Mitigations, m)
			}
		}
		if len(res.D3FEND) == 0 {
			for _, d := range t.D3FEND {
				res.D3FEND = appendUnique(res.D3FEND, d)
			}
		}
	}
}

// Provenance of a mitigation for an alert.
const (
	// ProvenanceATTACK: ATT&CK lists the mitigation as mitigating one of
	// the alert's techniques.
	ProvenanceATTACK = "attack"
	// ProvenanceTriage: triage's playbook applies it as a sensible control,
	// but ATT&CK does not relate it to these techniques.
	ProvenanceTriage = "triage"
)

// MitigationProvenance says whether ATT&CK relates mitigation id to one of
// techniques (exactly: ATT&CK lists sub-techniques' mitigations on their
// own) or triage recommends it.
func (k *KB) MitigationProvenance(id string, techniques []string) string {
	for _, tid := range techniques {
		if t, ok := k.techniques[tid]; ok {
			for _, m := range t.Mitigations {
				if m == id {
					return ProvenanceATTACK
				}
			}
		}
	}
	return ProvenanceTriage
}

func appendUnique(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// DetectEnv says where an alert happened, which picks the playbook
// variant: the cloud and SaaS sources have their own; otherwise
// Kubernetes when the alert carries k8s fields (or is a k8s audit alert),
// a container when container.id names one, else the host.
func DetectEnv(source string, field func(key string) (string, bool)) string {
	switch source {
	case "k8s_audit":
		return EnvK8s
	case "aws_cloudtrail":
		return EnvAWS
	case "gcp_auditlog":
		return EnvGCP
	case "okta":
		return EnvOkta
	case "github":
		return EnvGitHub
	}
	for _, key := range []string{"k8s.pod.name", "k8s.ns.name"} {
		if v, ok := field(key); ok && v != "" && v != "<NA>" {
			return EnvK8s
		}
	}
	if v, ok := field("container.id"); ok && v != "" && v != "host" && v != "<NA>" {
		return EnvContainer
	}
	return EnvHost
}
