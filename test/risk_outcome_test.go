package test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// The three lab alerts behind issue 16, reconstructed in testdata/
// lab-alerts.jsonl (their shape: the upstream rules' outputs; their values:
// the description and event-generator's actions, see
// docs/risk-model.md, "Worked examples"): a denied exec from /dev/shm on a
// host, and event-generator's /dev/shm script (busybox) and memfd actions
// in its container.
const labAlerts = "testdata/lab-alerts.jsonl"

func loadLab(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(labAlerts)
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		out = append(out, m)
	}
	require.Len(t, out, 3)
	return out
}

// with returns a copy of alert a with output fields set (nil: null) and
// the named fields removed; "time" sets the alert time.
func withFields(a map[string]any, set map[string]any, del ...string) map[string]any {
	b, _ := json.Marshal(a)
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	of := c["output_fields"].(map[string]any)
	for k, v := range set {
		if k == "time" || k == "hostname" {
			c[k] = v
			continue
		}
		of[k] = v
	}
	for _, k := range del {
		delete(of, k)
	}
	return c
}

var outcomeFields = []string{"risk.score", "risk.factors", "risk.outcome", "risk.outcome.reason", "guide.outcome", "risk.drill", "guide.drill", "triage.payload"}

type scored struct {
	Score   uint64
	Factors []string
	Outcome string
	Reason  string
	Guide   string
	Drill   string
	DrillGd string
	Payload string
}

// replayAlerts runs alerts, in order, through one plugin state (so they
// share correlation and attempt state) and returns what each got.
func replayOutcome(t *testing.T, config string, alerts ...map[string]any) []scored {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	var sb strings.Builder
	for _, a := range alerts {
		b, err := json.Marshal(a)
		require.NoError(t, err)
		sb.Write(b)
		sb.WriteByte('\n')
	}
	require.NoError(t, os.WriteFile(path, []byte(sb.String()), 0o600))
	p := newPlugin(t, config)
	evts := replayFile(t, p, path)
	require.Len(t, evts, len(alerts))
	out := make([]scored, len(evts))
	for i, e := range evts {
		v := extractMap(t, p, e, outcomeFields...)
		s := scored{Score: v["risk.score"].U64[0], Factors: v["risk.factors"].Str}
		str := func(name string) string {
			if x := v[name]; x.Present && len(x.Str) > 0 {
				return x.Str[0]
			}
			return ""
		}
		s.Outcome, s.Reason, s.Guide = str("risk.outcome"), str("risk.outcome.reason"), str("guide.outcome")
		s.Drill, s.DrillGd, s.Payload = str("risk.drill"), str("guide.drill"), str("triage.payload")
		out[i] = s
	}
	return out
}

// alone scores one alert on a fresh plugin state.
func alone(t *testing.T, a map[string]any) scored {
	t.Helper()
	return replayOutcome(t, "", a)[0]
}

func hasFactor(s scored, name string) bool {
	for _, f := range s.Factors {
		if strings.HasPrefix(f, name+":") || strings.HasPrefix(f, name+"=") {
			return true
		}
	}
	return false
}

// notDrill replaces event-generator's traces with an ordinary parent: bash,
// a plain image.
func notDrill(a map[string]any) map[string]any {
	set := map[string]any{"proc.pname": "bash"}
	of := a["output_fields"].(map[string]any)
	if _, ok := of["proc.pcmdline"]; ok {
		set["proc.pcmdline"] = "bash"
	}
	if _, ok := of["proc.sname"]; ok {
		set["proc.sname"] = "bash"
	}
	if img, ok := of["container.image.repository"]; ok && img != nil {
		set["container.image.repository"] = "docker.io/library/alpine"
	}
	return withFields(a, set)
}

func TestLabAlertsAsTheyAre(t *testing.T) {
	lab := loadLab(t)
	denied, script, memfd := alone(t, lab[0]), alone(t, lab[1]), alone(t, lab[2])

	// The two under event-generator are drills: low, with a guide line.
	for _, s := range []scored{script, memfd} {
		assert.Equal(t, "event-generator", s.Drill)
		assert.LessOrEqual(t, s.Score, uint64(20))
		assert.Contains(t, s.Factors, "drill=event-generator/image:max20")
		assert.Contains(t, s.DrillGd, "Confirm with whoever runs detection tests")
		assert.Equal(t, "succeeded", s.Outcome)
	}
	assert.Equal(t, "/dev/shm/falco-event-generator-syscall-ExecutionFromDevShm-HEwfiE.sh", script.Payload)
	assert.Contains(t, script.Factors, "script_in_tmpfs:+10")

	// The denied one is a blocked attempt and scores below itself succeeding.
	assert.Equal(t, "blocked", denied.Outcome)
	assert.Equal(t, "EACCES", denied.Reason)
	assert.Contains(t, denied.Guide, "denied by EACCES")
	assert.Contains(t, denied.Guide, "check what blocked it and whether it was retried")
	assert.Contains(t, denied.Factors, "blocked=EACCES:x0.50")
	assert.Empty(t, denied.Drill)
	succeeded := alone(t, withFields(lab[0], map[string]any{"evt.res": "SUCCESS"}))
	assert.Equal(t, "succeeded", succeeded.Outcome)
	assert.Less(t, denied.Score, succeeded.Score)
	assert.Equal(t, uint64(40), denied.Score)
	assert.Equal(t, uint64(80), succeeded.Score)
}

func TestLabAlertsRankWithoutDrillAncestry(t *testing.T) {
	lab := loadLab(t)
	denied := alone(t, lab[0])
	script := alone(t, notDrill(lab[1]))
	memfd := alone(t, notDrill(lab[2]))
	require.Empty(t, script.Drill)
	require.Empty(t, memfd.Drill)
	assert.Greater(t, memfd.Score, script.Score, "memfd exec in a container > successful /dev/shm script")
	assert.Greater(t, script.Score, denied.Score, "successful /dev/shm script > denied /dev/shm exec")
	assert.Equal(t, []uint64{100, 75, 40}, []uint64{memfd.Score, script.Score, denied.Score})
}

// Pairs that differ only in the outcome field, per source.
func TestOutcomePairs(t *testing.T) {
	lab := loadLab(t)
	k8s := map[string]any{"hostname": "cp-1", "output": "x", "priority": "Warning", "rule": "Attach to cluster-admin Role", "source": "k8s_audit",
		"tags": []string{"k8s"}, "time": "2025-10-05T13:00:00Z",
		"output_fields": map[string]any{"ka.user.name": "mallory", "ka.req.binding.role": "cluster-admin", "ka.target.namespace": "default"}}
	ct := map[string]any{"hostname": "", "output": "x", "priority": "Critical", "rule": "Create AWS user", "source": "aws_cloudtrail",
		"tags": []string{"cloud", "aws"}, "time": "2025-10-05T13:00:00Z",
		"output_fields": map[string]any{"ct.user": "alice", "ct.name": "CreateUser", "ct.region": "us-east-1"}}
	okta := map[string]any{"hostname": "", "output": "x", "priority": "Notice", "rule": "User password reset by OKTA admin", "source": "okta",
		"tags": []string{"okta"}, "time": "2025-10-05T13:00:00Z",
		"output_fields": map[string]any{"okta.actor.name": "admin@example.com", "okta.evt.type": "user.account.reset_password"}}
	cases := []struct {
		name              string
		blocked, succeeds map[string]any
		reason            string
	}{
		{"syscall evt.res", lab[0], withFields(lab[0], map[string]any{"evt.res": "SUCCESS"}), "EACCES"},
		{"syscall ENOENT", withFields(lab[0], map[string]any{"evt.res": "ENOENT"}), withFields(lab[0], map[string]any{"evt.res": "SUCCESS"}), "ENOENT"},
		{"k8s denied request", withFields(k8s, map[string]any{"ka.response.code": "403"}), withFields(k8s, map[string]any{"ka.response.code": "201"}), "403"},
		{"cloudtrail errorCode", withFields(ct, map[string]any{"ct.error": "AccessDenied"}), withFields(ct, map[string]any{"ct.error": nil}), "AccessDenied"},
		{"okta outcome", withFields(okta, map[string]any{"okta.result": "DENY"}), withFields(okta, map[string]any{"okta.result": "SUCCESS"}), "DENY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, s := alone(t, c.blocked), alone(t, c.succeeds)
			assert.Equal(t, "blocked", b.Outcome)
			assert.Equal(t, c.reason, b.Reason)
			assert.Contains(t, b.Factors, "blocked="+c.reason+":x0.50")
			assert.NotEqual(t, "blocked", s.Outcome)
			assert.False(t, hasFactor(s, "blocked"))
			assert.Less(t, b.Score, s.Score)
		})
	}
}

// Repeated blocked attempts on one entity add up; a success after them
// weighs more than the success alone and than any of them.
func TestBlockedAttemptsAddUpAndSuccessAfterIsWorse(t *testing.T) {
	lab := loadLab(t)
	first := lab[0]
	second := withFields(lab[0], map[string]any{"time": "2025-10-05T12:32:00Z"})
	third := withFields(lab[0], map[string]any{"time": "2025-10-05T12:33:00Z"})
	success := withFields(lab[0], map[string]any{"time": "2025-10-05T12:34:00Z", "evt.res": "SUCCESS"})
	got := replayOutcome(t, "", first, second, third, success)
	assert.Less(t, got[0].Score, got[1].Score, "a second blocked attempt weighs more")
	assert.Less(t, got[1].Score, got[2].Score, "a third more still")
	assert.Contains(t, got[1].Factors, "repeated_blocked=1:+5")
	assert.Contains(t, got[2].Factors, "repeated_blocked=2:+10")
	assert.Contains(t, got[3].Factors, "after_blocked_attempt:+15")
	successAlone := alone(t, success)
	assert.Greater(t, got[3].Score, successAlone.Score, "blocked then success > success alone")
	assert.Greater(t, got[3].Score, got[2].Score, "blocked then success > the blocked attempts")

	// Another entity's blocked attempts change nothing.
	other := withFields(lab[0], map[string]any{"hostname": "other-host"})
	got = replayOutcome(t, "", other, success)
	assert.Equal(t, successAlone.Score, got[1].Score)
	assert.False(t, hasFactor(got[1], "after_blocked_attempt"))

	// A window (correlation.windowSec) after the last attempt, it is forgotten.
	late := withFields(success, map[string]any{"time": "2025-10-05T13:00:00Z"})
	got = replayOutcome(t, `{"correlation": {"windowSec": 600}}`, first, late)
	assert.False(t, hasFactor(got[1], "after_blocked_attempt"))
}

// Pairs that differ only in the process ancestry or the image.
func TestDrillEvidencePairs(t *testing.T) {
	lab := loadLab(t)
	plain := notDrill(lab[1])
	ancestry := withFields(plain, map[string]any{"proc.pname": "event-generator", "proc.pexepath": "/bin/event-generator"})
	spoofed := withFields(plain, map[string]any{"proc.pname": "event-generator", "proc.pcmdline": "event-generator run syscall --all", "proc.pexepath": "/tmp/event-generator"})
	evilImage := withFields(plain, map[string]any{"container.image.repository": "evil.example/falcosecurity/event-generator"})
	nameOnly := withFields(plain, map[string]any{"proc.pname": "event-generator"})
	image := withFields(plain, map[string]any{"container.image.repository": "docker.io/falcosecurity/event-generator"})

	p, a, n, i := alone(t, plain), alone(t, ancestry), alone(t, nameOnly), alone(t, image)
	assert.Empty(t, p.Drill)
	assert.Equal(t, "event-generator", a.Drill)
	assert.Contains(t, a.Factors, "drill=event-generator/ancestry:max20")
	assert.Empty(t, n.Drill, "a parent's name alone is not enough: any process can take it")
	assert.Empty(t, alone(t, spoofed).Drill, "name, command line and a writable path are all the attacker's to choose")
	assert.Empty(t, alone(t, evilImage).Drill, "another registry's image of the same name")
	assert.Equal(t, p.Score, n.Score)
	assert.Equal(t, "event-generator", i.Drill)
	assert.Less(t, a.Score, p.Score)
	assert.Less(t, i.Score, p.Score)
	assert.LessOrEqual(t, a.Score, uint64(20))

	// The memfd action's own command line (run helper.DoNothing) does not
	// confirm the parent's name: the parent's installed executable does.
	memfd := withFields(notDrill(lab[2]), map[string]any{"proc.pname": "event-generator"})
	assert.Empty(t, alone(t, memfd).Drill)
	assert.Equal(t, "event-generator", alone(t, withFields(memfd, map[string]any{"proc.pexepath": "/usr/local/bin/event-generator"})).Drill)

	// Atomic Red Team: pwsh running Invoke-AtomicTest, not pwsh alone.
	art := withFields(plain, map[string]any{"proc.pname": "pwsh", "proc.pcmdline": "pwsh -c Invoke-AtomicTest T1059.004 -TestNumbers 1"})
	assert.Equal(t, "atomic-red-team", alone(t, art).Drill)
	assert.Empty(t, alone(t, withFields(art, map[string]any{"proc.pcmdline": "pwsh"})).Drill)
}

func TestDrillActorsFromInitConfig(t *testing.T) {
	lab := loadLab(t)
	// No built-ins: event-generator is no longer recognised.
	got := replayOutcome(t, `{"risk": {"builtinDrills": []}}`, lab[1])
	assert.Empty(t, got[0].Drill)
	assert.Greater(t, got[0].Score, uint64(20))
	// An added actor, by image.
	custom := withFields(notDrill(lab[1]), map[string]any{"container.image.repository": "registry.example.com/sec/bas-agent"})
	got = replayOutcome(t, `{"risk": {"drills": [{"name": "bas", "images": ["*/sec/bas-agent"]}]}}`, custom)
	assert.Equal(t, "bas", got[0].Drill)
	assert.Contains(t, got[0].Factors, "drill=bas/image:max20")
	// A process name alone is refused at init.
	pl, err := harness.Load(libPath)
	require.NoError(t, err)
	err = pl.Init(`{"risk": {"drills": [{"name": "bas", "processes": ["bas-agent"]}]}}`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "risk.drills[0]")
}

// Pairs that differ only in the interpreter's script path.
func TestInterpreterPayloadPairs(t *testing.T) {
	lab := loadLab(t)
	base := notDrill(lab[1])
	cases := []struct {
		exe, cmdline, payload string
		tmpfs                 bool
	}{
		{"/bin/busybox", "busybox sh /dev/shm/x.sh", "/dev/shm/x.sh", true},
		{"/bin/busybox", "busybox sh /usr/local/bin/x.sh", "/usr/local/bin/x.sh", false},
		{"/usr/bin/bash", "bash -c /dev/shm/x.sh", "/dev/shm/x.sh", true},
		{"/usr/bin/bash", "bash -c /usr/local/bin/x.sh", "/usr/local/bin/x.sh", false},
		{"/usr/bin/python3.11", "python3 -u /tmp/x.py", "/tmp/x.py", true},
		{"/usr/bin/python3.11", "python3 -u /opt/app/x.py", "/opt/app/x.py", false},
		{"/usr/bin/bash", "bash ./x.sh", "/dev/shm/x.sh", true}, // relative to proc.cwd
	}
	var scores []uint64
	for _, c := range cases {
		a := withFields(base, map[string]any{"proc.exepath": c.exe, "proc.cmdline": c.cmdline, "proc.cwd": "/dev/shm/"})
		if !c.tmpfs && strings.HasPrefix(c.cmdline, "bash ./") {
			a = withFields(a, map[string]any{"proc.cwd": "/srv/"})
		}
		s := alone(t, a)
		assert.Equal(t, c.payload, s.Payload, c.cmdline)
		assert.Equal(t, c.tmpfs, hasFactor(s, "script_in_tmpfs"), c.cmdline)
		scores = append(scores, s.Score)
	}
	for i := 0; i+1 < 6; i += 2 {
		assert.Greater(t, scores[i], scores[i+1], cases[i].cmdline)
	}
}
