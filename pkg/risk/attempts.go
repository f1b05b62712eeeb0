package risk

import (
	"github.com/triage-dev/triage/pkg/alert"
)

// Attempts remembers, per entity, the blocked attempts of the recent past:
// how many in the current run and when the run started and last grew. A
// run ends after a correlation window without a blocked attempt, as an
// episode does in pkg/correlate. Only entities with a blocked attempt are
// held, so the map stays small; it is bounded by maxAttemptEntities all
// the same.
//
// Not safe for concurrent use (the engine is serial).
type Attempts struct {
	entity func([]byte, *alert.Alert) []byte // correlate.AppendEntity, passed in (correlate imports risk)
	window int64                             // ns
	key    []byte                            // scratch: the entity ID of the alert looked up
	max    int
	runs   map[string]attemptRun
	newest int64
}

type attemptRun struct {
	first, last int64
	n           int
}

// maxAttemptEntities bounds the entities held; beyond it, runs older than
// a window go first, then an arbitrary half.
const maxAttemptEntities = 1 << 16

// NewAttempts returns a tracker whose runs last windowSec seconds after
// their latest attempt (correlation.windowSec); entity appends an alert's
// entity ID to a buffer as correlation names it (correlate.AppendEntity).
func NewAttempts(windowSec int, entity func([]byte, *alert.Alert) []byte) *Attempts {
	return &Attempts{entity: entity, window: int64(windowSec) * 1e9, max: maxAttemptEntities, runs: map[string]attemptRun{}}
}

// Prior returns the blocked attempts on a's entity before a's time within
// the window: all of the run when a comes after its start, none when the
// run ended a window before a or a is older than all of it.
func (t *Attempts) Prior(a *alert.Alert) int {
	if len(t.runs) == 0 {
		return 0 // no entity has a blocked attempt: nothing to look up
	}
	t.key = t.entity(t.key[:0], a)
	r, ok := t.runs[string(t.key)] // no allocation for a lookup
	if !ok || a.Time <= r.first || a.Time-r.last > t.window {
		return 0
	}
	return r.n
}

// Observe records a's outcome: a blocked attempt starts or extends its
// entity's run; anything else changes nothing. Drills are not recorded, so
// a test's blocked attempts never raise a later real alert.
func (t *Attempts) Observe(a *alert.Alert, res *Result) {
	if res.Outcome.State != OutcomeBlocked || res.Drill != "" {
		return
	}
	t.key = t.entity(t.key[:0], a)
	id := string(t.key)
	at := a.Time
	t.newest = max(t.newest, at)
	r, ok := t.runs[id]
	switch {
	case !ok, at-r.last > t.window, r.first-at > t.window:
		r = attemptRun{first: at, last: at, n: 1}
	default:
		r.n++
		r.first, r.last = min(r.first, at), max(r.last, at)
	}
	if !ok && len(t.runs) >= t.max {
		t.shrink()
	}
	t.runs[id] = r
}

// shrink drops runs that ended a window before the newest attempt, then,
// if that freed nothing, half of the rest (map order: arbitrary).
func (t *Attempts) shrink() {
	for id, r := range t.runs {
		if t.newest-r.last > t.window {
			delete(t.runs, id)
		}
	}
	if len(t.runs) < t.max {
		return
	}
	drop := len(t.runs) / 2
	for id := range t.runs {
		if drop == 0 {
			break
		}
		delete(t.runs, id)
		drop--
	}
}

// Drop forgets the runs of the entities match accepts (as the engine's
// Drop does for correlation state) and returns how many.
func (t *Attempts) Drop(match func(entityID string) bool) int {
	n := 0
	for id := range t.runs {
		if match(id) {
			delete(t.runs, id)
			n++
		}
	}
	return n
}

// Len is the number of entities with a run held.
func (t *Attempts) Len() int { return len(t.runs) }
