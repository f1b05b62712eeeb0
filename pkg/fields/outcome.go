package fields

import (
	"time"

	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/risk"
)

// outcomeDefs say what the alert's event achieved, whether it was a drill,
// and what it ran (docs/risk-model.md, "Outcome", "Drills", "Payload").
// Outcome and payload are read from the alert's own fields, so they need
// no state; the drill comes from risk.factors, which the payload carries,
// so a capture replays to the same answer whatever the configuration.
var outcomeDefs = []Def{
	{Name: "risk.outcome", Type: TypeString, Display: "Outcome",
		Desc: "What the alert's event achieved, from the fields that say so: blocked (evt.res an errno such as EACCES, ENOENT; ka.response.code 4xx/5xx or ka.auth.decision forbid; ct.error set; okta.result FAILURE or DENY; gcp.authorizationInfo not granted) or succeeded; no value when the alert does not say.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			return nonEmpty(risk.OutcomeOf(&r.Alert).State)
		}},
	{Name: "risk.outcome.reason", Type: TypeString, Display: "Outcome reason",
		Desc: "Why a blocked attempt failed, as its source says it: the errno name (EACCES), the HTTP status (403), the CloudTrail errorCode (AccessDenied), the Okta result (DENY); no value otherwise.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			return nonEmpty(risk.OutcomeOf(&r.Alert).Reason)
		}},
	{Name: "guide.outcome", Type: TypeString, Display: "Outcome guidance",
		Desc: "The outcome in plain words with what to check: for a blocked attempt, what denied it and that it did not go through; check what blocked it and whether it was retried.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			return nonEmpty(risk.OutcomeText(risk.OutcomeOf(&r.Alert)))
		}},
	{Name: "risk.drill", Type: TypeString, Display: "Drill",
		Desc: "Detection-testing tool the alert comes from (event-generator, atomic-red-team or one of risk.drills), recognised from the container image or from an ancestor's name confirmed by its path or a command line; its score is capped at 20. No value otherwise.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			name, _ := risk.DrillOf(r.Risk.Factors)
			return nonEmpty(name)
		}},
	{Name: "guide.drill", Type: TypeString, Display: "Drill guidance",
		Desc: "For a recognised drill: how to confirm it was a test (who ran the tool, when, where) before closing the alert.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			name, ev := risk.DrillOf(r.Risk.Factors)
			if name == "" {
				return nil, false
			}
			when := time.Unix(0, r.Alert.Time).UTC().Format(time.RFC3339)
			return risk.DrillGuide(name, ev, r.Alert.Hostname, when), true
		}},
	{Name: "triage.payload", Type: TypeString, Display: "Payload",
		Desc: "What the process runs: for a shell, busybox, python, perl, ruby, php, node, lua, awk or pwsh the script it was given (first path argument of proc.cmdline, made absolute with proc.cwd), else its executable (proc.exepath); no value for inline code (sh -c 'cmd', python -c).",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			return nonEmpty(risk.Payload(&r.Alert))
		}},
}
