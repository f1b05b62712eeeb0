package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/risk"
)

// outcomeSummary says in plain words, for the summary, which alerts were
// blocked attempts, which succeeded after blocked attempts, and which look
// like drills (docs/risk-model.md, "Outcome" and "Drills").
func outcomeSummary(recs []*event.Record) []string {
	var out []string
	var blocked, drills []string
	reasons := map[string]int{}
	after := 0
	drillTools := map[string]bool{}
	for _, r := range recs {
		o := risk.OutcomeOf(&r.Alert)
		if o.State == risk.OutcomeBlocked {
			blocked = append(blocked, r.Alert.Rule)
			reasons[o.Reason]++
		}
		for _, f := range r.Risk.Factors {
			if name, _ := risk.ParseFactor(f); name == "after_blocked_attempt" {
				after++
			}
		}
		if name, _ := risk.DrillOf(r.Risk.Factors); name != "" {
			drills = append(drills, r.Alert.Rule)
			drillTools[name] = true
		}
	}
	n := len(recs)
	if len(blocked) > 0 {
		var rs []string
		for reason, c := range reasons {
			rs = append(rs, fmt.Sprintf("%s ×%d", code(reason), c))
		}
		sort.Strings(rs)
		what := "The attempt was blocked"
		if n > 1 {
			what = fmt.Sprintf("%d of %d alerts were blocked attempts", len(blocked), n)
		}
		out = append(out, fmt.Sprintf("Outcome: %s (%s): it did not go through, so its risk counts half. Check what blocked it and whether it was retried.", what, strings.Join(rs, ", ")))
	} else if n == 1 && risk.OutcomeOf(&recs[0].Alert).State == risk.OutcomeSucceeded {
		out = append(out, "Outcome: the event succeeded; what the rule describes happened.")
	}
	if after > 0 {
		out = append(out, fmt.Sprintf("%d alert(s) on this entity came after a blocked attempt: blocked and then succeeded weighs more than either alone.", after))
	}
	if len(drills) > 0 {
		var tools []string
		for t := range drillTools {
			tools = append(tools, code(t))
		}
		sort.Strings(tools)
		what := "This alert looks like a detection test"
		if n > 1 {
			what = fmt.Sprintf("%d of %d alerts look like detection tests", len(drills), n)
		}
		out = append(out, fmt.Sprintf("Drill: %s by %s, so its risk is capped at %d. Confirm with whoever runs these tests that a run was planned at that time; if nobody ran one, handle the alert as real.", what, strings.Join(tools, ", "), risk.DrillCap))
	}
	return out
}

// outcomeNote is what the outcome and drill status add to an alert's
// "What happened" line, "" when there is nothing to add.
func outcomeNote(r *event.Record) string {
	var b strings.Builder
	if t := risk.OutcomeText(risk.OutcomeOf(&r.Alert)); t != "" {
		b.WriteString(" ")
		b.WriteString(t)
	}
	if p := risk.Payload(&r.Alert); p != "" {
		if exe, ok := r.Alert.Field("proc.exepath"); ok && exe.Value != p {
			fmt.Fprintf(&b, " The process ran the script %s.", code(p))
		}
	}
	if name, ev := risk.DrillOf(r.Risk.Factors); name != "" {
		b.WriteString(" ")
		b.WriteString(risk.DrillGuide(name, ev, code(r.Alert.Hostname), time.Unix(0, r.Alert.Time).UTC().Format(time.RFC3339)))
	}
	return b.String()
}
