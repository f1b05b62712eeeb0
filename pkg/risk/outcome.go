package risk

import (
	"strconv"
	"strings"

	"github.com/triage-dev/triage/pkg/alert"
)

// Outcome states: what the event that raised the alert achieved, as far as
// the alert says. Most alerts say nothing (no value).
const (
	OutcomeBlocked   = "blocked"   // the attempt failed: denied, or an error
	OutcomeSucceeded = "succeeded" // the alert says it went through
)

// Outcome is what an alert says about the success of its event.
type Outcome struct {
	State  string // OutcomeBlocked, OutcomeSucceeded or "" (the alert does not say)
	Reason string // for blocked: the error as the source gives it (EACCES, 403, AccessDenied, DENY, …)
	Field  string // the output field that said so
	// Denied is true when the reason is a refusal by a control (permission,
	// authorization), false for other errors (no such file, bad argument).
	Denied bool
}

// OutcomeOf reads the outcome of an alert's event from its output fields.
// The fields and their values, per source (checked against the upstream
// code named in docs/risk-model.md, "Outcome"):
//
//	syscall      evt.res: "SUCCESS" or the errno name (EACCES, ENOENT, …);
//	             evt.rawres: the return value (negative on failure);
//	             evt.failed: true for an error (libsinsp
//	             sinsp_filtercheck_event.cpp, TYPE_RESSTR)
//	k8s_audit    ka.response.code: the HTTP status (responseStatus.code);
//	             ka.auth.decision: allow or forbid (k8saudit plugin)
//	CloudTrail   ct.error: errorCode, absent ("<NA>") without an error
//	Okta         okta.result: outcome.result (SUCCESS, ALLOW, FAILURE, DENY, …)
//	GCP audit    gcp.authorizationInfo: "granted": false on every entry
//
// EINPROGRESS (a non-blocking connect under way) is no outcome: upstream
// rules treat it as a connection made.
func OutcomeOf(a *alert.Alert) Outcome {
	var v fieldView
	v.fill(a)
	return outcomeOf(&v)
}

func outcomeOf(v *fieldView) Outcome {
	if res, ok := v.value(kEvtRes); ok {
		switch {
		case res == "SUCCESS":
			return Outcome{State: OutcomeSucceeded, Field: "evt.res"}
		case res == "EINPROGRESS":
			return Outcome{}
		case isErrnoName(res):
			return Outcome{State: OutcomeBlocked, Reason: res, Field: "evt.res", Denied: res == "EACCES" || res == "EPERM"}
		}
	}
	if raw, ok := v.value(kEvtRawRes); ok {
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
			if n >= 0 {
				return Outcome{State: OutcomeSucceeded, Field: "evt.rawres"}
			}
			name := errnoName(-n)
			if name == "EINPROGRESS" {
				return Outcome{}
			}
			return Outcome{State: OutcomeBlocked, Reason: name, Field: "evt.rawres", Denied: name == "EACCES" || name == "EPERM"}
		}
	}
	if failed, ok := v.value(kEvtFailed); ok {
		if failed == "true" {
			return Outcome{State: OutcomeBlocked, Reason: "error", Field: "evt.failed"}
		}
		if failed == "false" {
			return Outcome{State: OutcomeSucceeded, Field: "evt.failed"}
		}
	}
	if code, ok := v.value(kKaResponseCode); ok {
		if n, err := strconv.Atoi(code); err == nil {
			switch {
			case n >= 200 && n < 400:
				return Outcome{State: OutcomeSucceeded, Field: "ka.response.code"}
			case n >= 400:
				return Outcome{State: OutcomeBlocked, Reason: code, Field: "ka.response.code", Denied: n == 401 || n == 403}
			}
		}
	}
	if d, ok := v.value(kKaAuthDecision); ok && d == "forbid" {
		return Outcome{State: OutcomeBlocked, Reason: "forbid", Field: "ka.auth.decision", Denied: true}
	}
	if e := v.first(kCtError, kJSONErrorCode); e != "" {
		e = cleanReason(e)
		return Outcome{State: OutcomeBlocked, Reason: e, Field: "ct.error", Denied: deniedCloudError(e)}
	}
	if r, ok := v.value(kOktaResult); ok {
		switch r {
		case "SUCCESS", "ALLOW":
			return Outcome{State: OutcomeSucceeded, Field: "okta.result"}
		case "FAILURE", "DENY":
			return Outcome{State: OutcomeBlocked, Reason: r, Field: "okta.result", Denied: r == "DENY"}
		}
	}
	if info, ok := v.value(kGCPAuthInfo); ok {
		granted := strings.Contains(info, `"granted":true`) || strings.Contains(info, `"granted": true`)
		refused := strings.Contains(info, `"granted":false`) || strings.Contains(info, `"granted": false`)
		switch {
		case refused && !granted:
			return Outcome{State: OutcomeBlocked, Reason: "PERMISSION_DENIED", Field: "gcp.authorizationInfo", Denied: true}
		case granted && !refused:
			return Outcome{State: OutcomeSucceeded, Field: "gcp.authorizationInfo"}
		}
	}
	return Outcome{}
}

// isErrnoName accepts what libsinsp prints for a failed call: an errno
// name, E followed by capitals and digits.
func isErrnoName(s string) bool {
	if len(s) < 2 || s[0] != 'E' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// errnoName names the Linux errno values a blocked attempt most often
// returns; others are shown as numbers.
func errnoName(n int64) string {
	switch n {
	case 1:
		return "EPERM"
	case 2:
		return "ENOENT"
	case 13:
		return "EACCES"
	case 115:
		return "EINPROGRESS"
	case 111:
		return "ECONNREFUSED"
	case 22:
		return "EINVAL"
	case 8:
		return "ENOEXEC"
	}
	return "errno " + strconv.FormatInt(n, 10)
}

// deniedCloudError says whether a CloudTrail errorCode is a refusal by
// IAM or an SCP rather than another error: AccessDenied,
// Client.UnauthorizedOperation, UnauthorizedOperation, AccessDeniedException,
// …
func deniedCloudError(code string) bool {
	return strings.Contains(code, "AccessDenied") || strings.Contains(code, "Unauthorized") || strings.Contains(code, "Forbidden")
}

// failureIsTheSignal lists upstream rules that fire only on a failed
// attempt: their priority already prices the failure in, so the blocked
// discount does not apply (the attempt still counts as blocked for the
// entity). From the rule conditions in falcosecurity/plugins:
// k8saudit "not response_successful", Okta MFA failure and deny counters.
var failureIsTheSignal = map[string]bool{
	"K8s Secret Get Unsuccessfully Tried":                     true,
	"Untrusted Node Unsuccessfully Tried to Join the Cluster": true,
	"Too many failed MFA in last 5min":                        true,
	"Too many denied MFA Pushes in last 5min":                 true,
}

// OutcomeText says in plain words what an outcome means for the analyst,
// e.g. for the report and guide.outcome; "" when the alert says nothing.
func OutcomeText(o Outcome) string {
	switch o.State {
	case OutcomeSucceeded:
		return "The event succeeded (" + o.Field + "): what the rule describes happened."
	case OutcomeBlocked:
		how := "failed with " + o.Reason
		if o.Denied {
			how = "was denied by " + o.Reason
		}
		return "The attempt " + how + " (" + o.Field + ") and did not go through: check what blocked it and whether it was retried, from this entity or another."
	}
	return ""
}

// cleanReason keeps a free-text error code fit for a factor string:
// letters, digits, '.', '_' and '-', at most 64 bytes.
func cleanReason(s string) string {
	b := make([]byte, 0, min(len(s), 64))
	for i := 0; i < len(s) && len(b) < 64; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b = append(b, c)
		} else {
			b = append(b, '_')
		}
	}
	return string(b)
}
