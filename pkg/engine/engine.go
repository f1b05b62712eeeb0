// Package engine turns a parsed alert into the record an event carries.
// The plugin's next_batch and the CLI both go through it, so Falco rules
// and `triage enrich` see the same values. State changes (correlation)
// belong here, applied once per alert at ingest, never at extraction.
package engine

import (
	"slices"
	"strings"

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
	tries *risk.Attempts // blocked attempts per entity, for the outcome factors
	corr  *correlate.Tracker
	stage map[string]uint16 // tactic ID -> kill-chain bit

	// resolved caches what the knowledge base says per rule (and the tags
	// it came with): the answer depends on nothing else, and alerts repeat
	// a small set of rules. Bounded by maxResolved; beyond it, alerts are
	// resolved without caching.
	resolved map[string]*resolution

	scratch event.Record // Apply's record, never handed out
}

// resolution is the knowledge-base answer for one rule and tag list. Its
// slices are shared by every record of that rule and never modified.
type resolution struct {
	tags     []string
	res      kb.Resolution
	tactic   uint16 // kill-chain bit of the primary tactic
	tacticID string // the primary tactic (TA ID), which scoring uses too
}

const maxResolved = 4096

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
	return &Engine{kb: k, risk: risk.NewScorer(cfg.Risk), tries: risk.NewAttempts(cfg.Correlation.WindowSec, correlate.AppendEntity),
		corr: correlate.NewTracker(cfg.Correlation), stage: stage,
		resolved: make(map[string]*resolution)}, nil
}

// primaryTactic picks the one tactic an alert counts for, in correlation
// and in scoring alike: risk.PrimaryTactic, the one rule for both.
func (e *Engine) primaryTactic(a *alert.Alert, res *kb.Resolution) string {
	return risk.PrimaryTactic(e.kb, a.Tags, res)
}

// Tracker exposes correlation state counters (tracked, evicted, late).
func (e *Engine) Tracker() *correlate.Tracker { return e.corr }

// KB returns the knowledge base the engine uses.
func (e *Engine) KB() *kb.KB { return e.kb }

// resolve returns the knowledge-base answer for a rule and its tags.
func (e *Engine) resolve(a *alert.Alert) *resolution {
	if r, ok := e.resolved[a.Rule]; ok && slices.Equal(r.tags, a.Tags) {
		return r
	}
	r := &resolution{res: e.kb.Resolve(a.Rule, a.Tags)}
	r.tacticID = e.primaryTactic(a, &r.res)
	r.tactic = e.stage[r.tacticID]
	if _, ok := e.resolved[a.Rule]; ok || len(e.resolved) < maxResolved {
		// Own copies: the alert's strings may share one buffer with the
		// rest of the alert, which the cache must not keep alive.
		r.tags = make([]string, len(a.Tags))
		for i, t := range a.Tags {
			r.tags[i] = strings.Clone(t)
		}
		e.resolved[strings.Clone(a.Rule)] = r
	}
	return r
}

// Process fills rec for alert a, overwriting rec and reusing the capacity
// of its slices. The record does not keep references to mutable engine
// state, so it can be encoded and dropped; its knowledge-base and
// correlation lists are shared, read-only.
func (e *Engine) Process(a *alert.Alert, rec *event.Record) {
	factors := rec.Risk.Factors
	rec.Alert = *a
	r := e.resolve(a)
	res := &r.res
	rec.KB = event.Enrichment{
		Env:         kb.DetectEnv(a.Source, a.Value),
		Via:         res.Via,
		Techniques:  res.Techniques,
		Tactics:     res.Tactics,
		Conflict:    res.Conflict,
		Playbooks:   res.Playbooks,
		Mitigations: res.Mitigations,
		D3FEND:      res.D3FEND,
	}
	rs := e.risk.ScoreInto(risk.Input{Alert: a, Tactic: r.tacticID, KnownRule: res.Via == kb.ViaRuleMap,
		PriorBlocked: e.tries.Prior(a)}, factors)
	e.tries.Observe(a, &rs)
	rec.Risk = event.Risk{Scored: true, Score: uint8(rs.Score), Factors: rs.Factors}

	c := e.corr.Observe(correlate.Input{Alert: a, Score: uint8(rs.Score), Tactics: r.tactic})
	rec.Corr = event.Correlation{
		Set: true, EntityID: c.EntityID, Kind: c.Kind, Alerts: c.Alerts, RiskSum: c.RiskSum,
		EntityScore: c.EntityScore, Tactics: c.Tactics, Rules: c.Rules, DedupCount: c.DedupCount,
		DedupFirst: c.DedupFirst, Storm: c.Storm, Late: c.Late, FirstSeen: c.FirstSeen, LastSeen: c.LastSeen,
		IncidentID: c.IncidentID, Escalation: c.Escalation, Reasons: c.Reasons,
	}
}

// Apply changes the correlation state exactly as Process does for a, but
// produces no record: the Kafka input replays a partition's recent alerts
// through it to rebuild their entities' state without emitting events.
func (e *Engine) Apply(a *alert.Alert) {
	e.Process(a, &e.scratch)
	e.scratch.Alert = alert.Alert{} // do not keep the caller's alert alive
}

// Drop forgets the correlation state of every entity whose ID match
// accepts (correlate.ResolveEntity names them) and returns how many.
func (e *Engine) Drop(match func(entityID string) bool) int {
	e.tries.Drop(match)
	return e.corr.Drop(match)
}
