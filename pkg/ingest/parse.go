// Package ingest is what every input transport shares: the bounded queue
// they all feed (AlertQueue), the counters (Counters, Snapshot), and the
// per-alert parse step with the loop guard (Parse, LoopSource, ErrLoop).
package ingest

import (
	"errors"
	"fmt"

	"github.com/triage-dev/triage/pkg/alert"
)

// LoopSource is the event source of triage's own events. Alerts from rules
// on that source must not be fed back in, or each would raise another.
const LoopSource = "falco_alert"

// ErrLoop marks an alert dropped by the loop guard.
var ErrLoop = errors.New("alert from source falco_alert dropped by the loop guard")

// Parse parses one line and applies the loop guard, counting the
// outcome. Lines over maxEventBytes are rejected as oversize.
func Parse(p *alert.Parser, line []byte, maxEventBytes int, c *Counters) (*alert.Alert, error) {
	c.Received.Add(1)
	if len(line) > maxEventBytes {
		c.Oversize.Add(1)
		return nil, fmt.Errorf("alert is %d bytes, over maxEventBytes (%d)", len(line), maxEventBytes)
	}
	a := alert.Acquire() // the plugin releases it once encoded
	if err := p.ParseInto(line, a); err != nil {
		alert.Release(a)
		c.Malformed.Add(1)
		return nil, err
	}
	if a.Source == LoopSource {
		alert.Release(a)
		c.LoopDropped.Add(1)
		return nil, ErrLoop
	}
	return a, nil
}
