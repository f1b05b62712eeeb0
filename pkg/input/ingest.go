package input

import (
	"errors"
	"fmt"

	"github.com/triage-dev/triage/pkg/alert"
)

// LoopSource is the event source of triage's own events. Alerts from rules
// on that source must not be fed back in, or each would raise another.
const LoopSource = "falco_alert"

// errLoop marks an alert dropped by the loop guard.
var errLoop = errors.New("alert from source falco_alert dropped by the loop guard")

// parseAlert parses one line and applies the loop guard, counting the
// outcome. Lines over maxEventBytes are rejected as oversize.
func parseAlert(p *alert.Parser, line []byte, maxEventBytes int, c *Counters) (*alert.Alert, error) {
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
		return nil, errLoop
	}
	return a, nil
}
