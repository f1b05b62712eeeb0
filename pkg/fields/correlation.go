package fields

import (
	"math/bits"
	"time"

	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/risk"
)

// corr answers a correlation field only when the payload has correlation.
func corr(f func(c *event.Correlation, k *kb.KB) (any, bool)) func(*event.Record, *kb.KB, string) (any, bool) {
	return func(r *event.Record, k *kb.KB, _ string) (any, bool) {
		if !r.Corr.Set {
			return nil, false
		}
		return f(&r.Corr, k)
	}
}

func tacticNames(mask uint16, k *kb.KB) []string {
	var out []string
	for i := range k.Tactics {
		if mask&(1<<i) != 0 {
			out = append(out, k.Tactics[i].Shortname)
		}
	}
	return out
}

// correlationDefs answer from the entity's state as of this alert, taken
// at ingest (docs/correlation.md).
var correlationDefs = []Def{
	{Name: "entity.id", Type: TypeString, Display: "Entity",
		Desc:  "Whose story the alert belongs to: pod:NS/POD, container:HOST/ID, host:NAME, k8s_user:NAME, aws:PRINCIPAL, gcp:USER@PROJECT, okta:ACTOR, github:USER@ORG.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return c.EntityID, true })},
	{Name: "entity.kind", Type: TypeString, Display: "Entity kind",
		Desc:  "host, container, pod, k8s_user, cloud_principal, gcp_principal, okta_user or github_user.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return c.Kind, true })},
	{Name: "entity.alerts", Type: TypeUint64, Display: "Entity alerts",
		Desc:  "Alerts on the entity within the correlation window, this one included.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return c.Alerts, true })},
	{Name: "entity.risk.sum", Type: TypeUint64, Display: "Entity risk sum",
		Desc:  "Sum of the risk scores of the entity's alerts within the risk window (Splunk RBA style).",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return c.RiskSum, true })},
	{Name: "entity.risk.score", Type: TypeUint64, Display: "Entity risk score",
		Desc:  "Bounded entity score 0-100 over the risk window: each rule's highest score, sorted, Σ sᵢ/i^1.5 divided by ζ(1.5) (Elastic style).",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return uint64(c.EntityScore), true })},
	{Name: "entity.risk.level", Type: TypeString, Display: "Entity risk level",
		Desc:  "Band of entity.risk.score: low, medium, high, critical.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return risk.LevelOf(int(c.EntityScore)), true })},
	{Name: "entity.tactics", Type: TypeString, List: true, Display: "Entity tactics",
		Desc: "ATT&CK tactics (shortnames, kill-chain order) the entity reached within the window; each alert counts for its primary tactic (the rule's own tactic tag when the mapping agrees, else the first technique's earliest tactic).",
		Value: corr(func(c *event.Correlation, k *kb.KB) (any, bool) {
			return list(tacticNames(c.Tactics, k))
		})},
	{Name: "entity.tactic.count", Type: TypeUint64, Display: "Entity tactic count",
		Desc:  "Number of distinct tactics in entity.tactics.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return uint64(bits.OnesCount16(c.Tactics)), true })},
	{Name: "entity.stage", Type: TypeString, Display: "Entity kill-chain stage",
		Desc: "Furthest kill-chain tactic the entity reached within the window (e.g. exfiltration); no value before any tactic.",
		Value: corr(func(c *event.Correlation, k *kb.KB) (any, bool) {
			s := bits.Len16(c.Tactics)
			if s == 0 || s > len(k.Tactics) {
				return nil, false
			}
			return k.Tactics[s-1].Shortname, true
		})},
	{Name: "entity.rules", Type: TypeUint64, Display: "Entity distinct rules",
		Desc:  "Distinct rules that fired on the entity within the window.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return c.Rules, true })},
	{Name: "entity.escalated", Type: TypeBool, Display: "Entity escalated",
		Desc:  "True only on the alert that escalated the entity (see entity.escalation), so a rule on it fires once per episode, not on every later alert.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return len(c.Escalation) > 0, true })},
	{Name: "entity.escalation", Type: TypeString, List: true, Display: "Entity escalation",
		Desc:  "What this alert made the entity cross, once per episode: multi_tactic (tacticThreshold tactics), risk_threshold (riskThreshold risk sum), exfiltration_or_impact (progression into those tactics after others), level_high, level_critical (entity score band).",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return list(c.Escalation) })},
	{Name: "entity.late", Type: TypeBool, Display: "Late alert",
		Desc:  "True for an alert more than correlation.outOfOrderSec older than the entity's newest alert. Information only: it is still applied at its own time (docs/correlation.md, Out of order).",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return c.Late, true })},
	{Name: "dedup.count", Type: TypeUint64, Display: "Repeat count",
		Desc:  "Times this rule fired on this entity within the window, this alert included.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return c.DedupCount, true })},
	{Name: "dedup.first", Type: TypeBool, Display: "Not a plain repeat",
		Desc:  "False only for a plain repeat: an alert of the same rule on the same entity within the window before it has at least its score and the same tactic. Arrival order never makes it false where time order makes it true.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return c.DedupFirst, true })},
	{Name: "dedup.first_seen", Type: TypeAbsTime, Display: "First seen",
		Desc:  "Time this rule first fired on this entity within the window.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return time.Unix(0, c.FirstSeen), true })},
	{Name: "dedup.last_seen", Type: TypeAbsTime, Display: "Last seen",
		Desc:  "Latest time this rule fired on this entity (this alert, unless a later one arrived first).",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return time.Unix(0, c.LastSeen), true })},
	{Name: "dedup.storm", Type: TypeBool, Display: "Storm summary",
		Desc:  "True on every correlation.stormEvery-th repeat of the rule on the entity: a summary point for alert storms.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return c.Storm, true })},
	{Name: "incident.id", Type: TypeString, Display: "Incident",
		Desc:  "Stable ID of the entity's correlated episode (INC-…), set once correlation has a reason; an episode ends after a window with no alert on the entity.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return nonEmpty(c.IncidentID) })},
	{Name: "incident.reasons", Type: TypeString, List: true, Display: "Incident reasons",
		Desc:  "Why the alert belongs to an incident: same_entity, tactic_progression, multi_tactic, risk_threshold, repeat.",
		Value: corr(func(c *event.Correlation, _ *kb.KB) (any, bool) { return list(c.Reasons) })},
}
