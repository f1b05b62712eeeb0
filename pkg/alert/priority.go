package alert

import (
	"fmt"
	"strings"
)

// Priority is a Falco rule priority. Its numeric value is the rank used by the
// alert.priority.rank field: higher means more severe (Debug 0 … Emergency 7),
// the reverse of Falco's internal enum, so that rules can write `> 4`.
type Priority uint8

const (
	PriorityDebug Priority = iota
	PriorityInformational
	PriorityNotice
	PriorityWarning
	PriorityError
	PriorityCritical
	PriorityAlert
	PriorityEmergency
)

// priorityNames holds Falco's own spelling of each priority, indexed by rank.
var priorityNames = [...]string{
	PriorityDebug:         "Debug",
	PriorityInformational: "Informational",
	PriorityNotice:        "Notice",
	PriorityWarning:       "Warning",
	PriorityError:         "Error",
	PriorityCritical:      "Critical",
	PriorityAlert:         "Alert",
	PriorityEmergency:     "Emergency",
}

// String returns Falco's casing of the priority.
func (p Priority) String() string {
	if int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return fmt.Sprintf("Priority(%d)", uint8(p))
}

// Valid reports whether p is one of Falco's eight priorities.
func (p Priority) Valid() bool { return int(p) < len(priorityNames) }

// ParsePriority accepts a priority in any casing, plus the aliases Falco
// itself accepts in rule files ("info", "warn").
func ParsePriority(s string) (Priority, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for i, n := range priorityNames {
		if strings.ToLower(n) == name {
			return Priority(i), nil
		}
	}
	switch name {
	case "info":
		return PriorityInformational, nil
	case "warn":
		return PriorityWarning, nil
	case "err":
		return PriorityError, nil
	case "crit":
		return PriorityCritical, nil
	case "emerg":
		return PriorityEmergency, nil
	}
	return 0, fmt.Errorf("unknown priority %q (want one of Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)", truncate(s, 40))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
