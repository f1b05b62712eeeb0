// Package engine turns a parsed alert into the record an event carries.
// The plugin's next_batch and the CLI both go through it, so Falco rules
// and `triage enrich` see the same values. State changes (correlation)
// belong here, applied once per alert at ingest, never at extraction.
package engine

import (
	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/event"
)

// Engine processes alerts in arrival order. Not safe for concurrent use:
// Falco drives one plugin instance from one thread, and the CLI is serial.
type Engine struct{}

// New returns an engine.
func New() *Engine { return &Engine{} }

// Process fills rec for alert a, overwriting rec. The record does not keep
// references to engine state, so it can be encoded and dropped.
func (e *Engine) Process(a *alert.Alert, rec *event.Record) {
	rec.Alert = *a
}
