package fields

import (
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/risk"
)

// riskDefs answer from the risk computed at ingest.
var riskDefs = []Def{
	{Name: "risk.score", Type: TypeUint64, Display: "Risk score",
		Desc: "Risk of the alert, 0-100: impact (priority, tactic) × confidence (rule maturity), plus context factors, with asset criticality as an odds update (docs/risk-model.md).",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			if !r.Risk.Scored {
				return nil, false
			}
			return uint64(r.Risk.Score), true
		}},
	{Name: "risk.level", Type: TypeString, Display: "Risk level",
		Desc: "Band of risk.score: low (0-21), medium (22-47), high (48-73), critical (74-100).",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			if !r.Risk.Scored {
				return nil, false
			}
			return risk.LevelOf(int(r.Risk.Score)), true
		}},
	{Name: "risk.factors", Type: TypeString, List: true, Display: "Risk factors",
		Desc:  "Every contribution to risk.score in the order applied, e.g. priority=Critical:+80, tactic=impact:+15, confidence=maturity_stable:x0.90, root:+10, asset=high:x1.5.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return list(r.Risk.Factors) }},
}

// knowledgeDefs answer from the knowledge-base enrichment in the payload.
// The payload carries IDs; names, texts and URLs are looked up here.
var knowledgeDefs = []Def{
	{Name: "mitre.techniques", Type: TypeString, List: true, Display: "ATT&CK techniques",
		Desc:  "ATT&CK technique IDs of the alert's rule: from triage's rule map, else from the rule's tags (T1234, T1234.001, T1562-impair-defenses).",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return list(r.KB.Techniques) }},
	{Name: "mitre.technique.names", Type: TypeString, List: true, Display: "ATT&CK technique names",
		Desc: "Names of mitre.techniques, in the same order (the ID itself for a technique the knowledge base does not know).",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			return mapList(r.KB.Techniques, func(id string) string {
				if t, ok := k.Technique(id); ok {
					return t.Name
				}
				return id
			})
		}},
	{Name: "mitre.tactics", Type: TypeString, List: true, Display: "ATT&CK tactics",
		Desc: "ATT&CK tactic shortnames in kill-chain order (e.g. execution, defense-evasion), from the techniques, else from TA#### and mitre_* tags.",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			return mapList(r.KB.Tactics, func(id string) string {
				if t, ok := k.TacticByID(id); ok {
					return t.Shortname
				}
				return id
			})
		}},
	{Name: "mitre.tactic.ids", Type: TypeString, List: true, Display: "ATT&CK tactic IDs",
		Desc:  "ATT&CK tactic IDs (TA####) in kill-chain order.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return list(r.KB.Tactics) }},
	{Name: "mitre.conflict", Type: TypeString, Display: "ATT&CK tag conflict",
		Desc:  "Why the rule's upstream ATT&CK tags disagree with triage's mapping; no value when they agree.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return nonEmpty(r.KB.Conflict) }},
	{Name: "mitre.mapping", Type: TypeString, Display: "ATT&CK mapping source",
		Desc:  "Where the mapping came from: rule_map (triage's knowledge base), tags (technique tags of a custom rule), tactic_tags (tactic tags only) or none.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return nonEmpty(r.KB.Via) }},
	{Name: "mitre.version", Type: TypeString, Display: "ATT&CK version",
		Desc:  "ATT&CK release of the knowledge base (" + kb.AttackVersion + ").",
		Value: func(*event.Record, *kb.KB, string) (any, bool) { return kb.AttackVersion, true }},
	{Name: "mitre.kind", Type: TypeString, Display: "What the rule detects",
		Desc: "technique (an ATT&CK technique), posture (a configuration or posture, mapped to no technique) or catch-all (every event of a kind, mapped to no technique); no value when the rule is unknown and untagged.",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			switch r.KB.Via {
			case kb.ViaRuleMap:
				if m, ok := k.Rule(r.Alert.Rule); ok {
					return m.MappingKind(), true
				}
			case kb.ViaTags:
				return kb.KindTechnique, true
			}
			return nil, false
		}},
	{Name: "mitigation.ids", Type: TypeString, List: true, Display: "Mitigation IDs",
		Desc:  "Mitigation IDs (ATT&CK M####) the playbooks apply, whether ATT&CK relates them to the alert's techniques (mitigation.attack_ids) or triage recommends them (mitigation.recommended_ids); for a custom rule without a playbook, the techniques' own mitigations.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return list(r.KB.Mitigations) }},
	{Name: "mitigation.attack_ids", Type: TypeString, List: true, Display: "ATT&CK mitigations",
		Desc: "The mitigation.ids that ATT&CK lists as mitigating one of the alert's techniques (its \"mitigates\" relationships).",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			return list(filterProvenance(r, k, kb.ProvenanceATTACK))
		}},
	{Name: "mitigation.recommended_ids", Type: TypeString, List: true, Display: "Mitigations triage recommends",
		Desc: "The mitigation.ids that triage's playbooks apply as sensible controls but ATT&CK does not relate to the alert's techniques.",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			return list(filterProvenance(r, k, kb.ProvenanceTriage))
		}},
	{Name: "mitigation.names", Type: TypeString, List: true, Display: "Mitigation names",
		Desc: "Names of mitigation.ids, in the same order.",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			return mapList(r.KB.Mitigations, func(id string) string {
				if m, ok := k.Mitigation(id); ok {
					return m.Name
				}
				return id
			})
		}},
	{Name: "mitigation.d3fend", Type: TypeString, List: true, Display: "D3FEND countermeasures",
		Desc:  "D3FEND countermeasure IDs (D3-…) for the alert's techniques.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return list(r.KB.D3FEND) }},
	{Name: "mitigation.playbooks", Type: TypeString, List: true, Display: "Playbooks",
		Desc:  "IDs of triage's playbooks for the alert (TRG-…), primary first; `triage explain ID` prints one.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return list(r.KB.Playbooks) }},
	{Name: "mitigation.env", Type: TypeString, Display: "Environment",
		Desc:  "Environment the guidance is for: host, container, k8s (from k8s.* fields or the k8s_audit source), or the cloud source (aws, gcp, okta, github).",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return nonEmpty(r.KB.Env) }},
	{Name: "mitigation.action", Type: TypeString, Display: "Primary action",
		Desc: "The primary playbook's one-line action for this environment.",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			if v := primaryVariant(r, k); v != nil {
				return v.Action, true
			}
			return nil, false
		}},
	{Name: "mitigation.safety", Type: TypeString, Display: "Safety class",
		Desc: "Most severe safety class among the primary playbook's steps for this environment: investigate < contain < harden < disrupt < destructive.",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			if v := primaryVariant(r, k); v != nil {
				return mostSevere(v), true
			}
			return nil, false
		}},
	{Name: "mitigation.url", Type: TypeString, Display: "Mitigation URL",
		Desc: "ATT&CK page of the first mitigation, else of the first technique.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			switch {
			case len(r.KB.Mitigations) > 0:
				return kb.MitigationURL(r.KB.Mitigations[0]), true
			case len(r.KB.Techniques) > 0:
				return kb.TechniqueURL(r.KB.Techniques[0]), true
			}
			return nil, false
		}},
	{Name: "guide.triage", Type: TypeString, Display: "First triage step",
		Desc: "First investigation step for the rule, from the knowledge base.",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			if m, ok := k.Rule(r.Alert.Rule); ok && r.KB.Via == kb.ViaRuleMap {
				return nonEmpty(m.Triage)
			}
			return nil, false
		}},
	{Name: "guide.false_positives", Type: TypeString, List: true, Display: "Known false positives",
		Desc: "Known benign causes of the rule and how to recognise them.",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			if m, ok := k.Rule(r.Alert.Rule); ok && r.KB.Via == kb.ViaRuleMap {
				return list(m.FalsePositives)
			}
			return nil, false
		}},
	{Name: "response.reversible", Type: TypeBool, Display: "Response reversible",
		Desc: "True when every step of the primary playbook for this environment can be undone: none disrupts (stops a process, container, session or instance) or destroys.",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			if v := primaryVariant(r, k); v != nil {
				return kb.SafetyRank[mostSevere(v)] < kb.SafetyRank[kb.SafetyDisrupt], true
			}
			return nil, false
		}},
}

func filterProvenance(r *event.Record, k *kb.KB, want string) []string {
	var out []string
	for _, id := range r.KB.Mitigations {
		if k.MitigationProvenance(id, r.KB.Techniques) == want {
			out = append(out, id)
		}
	}
	return out
}

func list(l []string) (any, bool) {
	if len(l) == 0 {
		return nil, false
	}
	return l, true
}

func mapList(ids []string, f func(string) string) (any, bool) {
	if len(ids) == 0 {
		return nil, false
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = f(id)
	}
	return out, true
}

func primaryVariant(r *event.Record, k *kb.KB) *kb.Variant {
	if len(r.KB.Playbooks) == 0 {
		return nil
	}
	p, ok := k.Playbook(r.KB.Playbooks[0])
	if !ok {
		return nil
	}
	_, v := p.Variant(r.KB.Env)
	return v
}

var severity = map[string]int{kb.SafetyInvestigate: 0, kb.SafetyContain: 1, kb.SafetyHarden: 2, kb.SafetyDisrupt: 3, kb.SafetyDestructive: 4}

func mostSevere(v *kb.Variant) string {
	worst := kb.SafetyInvestigate
	for _, s := range v.Steps {
		if severity[s.Safety] > severity[worst] {
			worst = s.Safety
		}
	}
	return worst
}
