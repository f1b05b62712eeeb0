// Package engine turns a parsed alert into the record an event carries.
// The plugin's next_batch and the CLI both go through it, so Falco rules
// and `triage enrich` see the same values. State changes (correlation)
// belong here, applied once per alert at ingest, never at extraction.
package engine

import (
	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/risk"
)

// Engine processes alerts in arrival order. Not safe for concurrent use:
// Falco drives one plugin instance from one thread, and the CLI is serial.
type Engine struct {
	kb   *kb.KB
	risk *risk.Scorer
}

// New returns an engine using the embedded knowledge base. The error can
// only come from a knowledge base that fails validation, which the tests
// rule out; callers still report it rather than panic.
func New(cfg config.Config) (*Engine, error) {
	k, err := kb.Default()
	if err != nil {
		return nil, err
	}
	return &Engine{kb: k, risk: risk.NewScorer(cfg.Risk)}, nil
}

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
}
