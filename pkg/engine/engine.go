// Package engine turns a parsed alert into the record an event carries.
// The plugin's next_batch and the CLI both go through it, so Falco rules
// and `triage enrich` see the same values. State changes (correlation)
// belong here, applied once per alert at ingest, never at extraction.
package engine

import (
	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/correlate"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/risk"
)

// Engine processes alerts in arrival order. Not safe for concurrent use:
// Falco drives one plugin instance from one thread, and the CLI is serial.
type Engine struct {
	kb    *kb.KB
	risk  *risk.Scorer
	corr  *correlate.Tracker
	stage map[string]uint16 // tactic ID -> kill-chain bit
}

// New returns an engine using the embedded knowledge base. The error can
// only come from a knowledge base that fails validation, which the tests
// rule out; callers still report it rather than panic.
func New(cfg config.Config) (*Engine, error) {
	k, err := kb.Default()
	if err != nil {
		return nil, err
	}
	stage := map[string]uint16{}
	for i, t := range k.Tactics {
		stage[t.ID] = 1 << i
	}
	return &Engine{kb: k, risk: risk.NewScorer(cfg.Risk), corr: correlate.NewTracker(cfg.Correlation), stage: stage}, nil
}

// primaryTactic picks the one tactic an alert counts for in correlation:
// the rule's own mitre_*/TA tag when the mapping agrees with it, else the
// earliest kill-chain tactic of the first (primary) technique.
func (e *Engine) primaryTactic(a *alert.Alert, res *kb.Resolution) string {
	for _, tag := range e.kb.TagTactics(a.Tags) {
		for _, t := range res.Tactics {
			if t == tag {
				return t
			}
		}
	}
	if len(res.Techniques) > 0 {
		if tech, ok := e.kb.Technique(res.Techniques[0]); ok {
			best := ""
			for _, s := range tech.Tactics {
				if tac, ok := e.kb.TacticByShortname(s); ok && (best == "" || e.kb.Stage(tac.ID) < e.kb.Stage(best)) {
					best = tac.ID
				}
			}
			if best != "" {
				return best
			}
		}
	}
	if len(res.Tactics) > 0 {
		return res.Tactics[0]
	}
	return ""
}

// Tracker exposes correlation state counters (tracked, evicted, late).
func (e *Engine) Tracker() *correlate.Tracker { return e.corr }

// KB returns the knowledge base the engine uses.
func (e *Engine) KB() *kb.KB { return e.kb }

// Process fills rec for alert a, overwriting rec. The record does not keep
// references to engine state, so it can be encoded and dropped.
func (e *Engine) Process(a *alert.Alert, rec *event.Record) {
	rec.Alert = *a
	res := e.kb.Resolve(a.Rule, a.Tags)
	rec.KB = event.Enrichment{
		Env: kb.DetectEnv(a.Source, func(key string) (string, bool) {
			f, ok := a.Field(key)
			return f.Value, ok && f.Kind != alert.KindNull
		}),
		Via:         res.Via,
		Techniques:  res.Techniques,
		Tactics:     res.Tactics,
		Conflict:    res.Conflict,
		Playbooks:   res.Playbooks,
		Mitigations: res.Mitigations,
		D3FEND:      res.D3FEND,
	}
	r := e.risk.Score(risk.Input{Alert: a, Tactics: res.Tactics, KnownRule: res.Via == kb.ViaRuleMap})
	rec.Risk = event.Risk{Scored: true, Score: uint8(r.Score), Factors: r.Factors}

	c := e.corr.Observe(correlate.Input{Alert: a, Score: uint8(r.Score), Tactics: e.stage[e.primaryTactic(a, &res)]})
	rec.Corr = event.Correlation{
		Set: true, EntityID: c.EntityID, Kind: c.Kind, Alerts: c.Alerts, RiskSum: c.RiskSum,
		EntityScore: c.EntityScore, Tactics: c.Tactics, Rules: c.Rules, DedupCount: c.DedupCount,
		DedupFirst: c.DedupFirst, Storm: c.Storm, Late: c.Late, FirstSeen: c.FirstSeen, LastSeen: c.LastSeen,
		IncidentID: c.IncidentID, Escalation: c.Escalation, Reasons: c.Reasons,
	}
}
