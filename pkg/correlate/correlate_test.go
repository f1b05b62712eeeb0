package correlate

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
)

// Kill-chain bits used below.
const (
	tExecution     = 1 << 3
	tDefenseEvade  = 1 << 6
	tCredential    = 1 << 7
	tC2            = 1 << 11
	tExfiltration  = 1 << 12
	tImpact        = 1 << 13
	minute         = int64(time.Minute)
	storyStartTime = int64(1795252442) * 1e9
)

func containerAlert(container, rule string, at int64) *alert.Alert {
	return &alert.Alert{Rule: rule, Priority: alert.PriorityWarning, Source: "syscall", Hostname: "worker-3", Time: at,
		Fields: []alert.Field{{Key: "container.id", Kind: alert.KindString, Value: container}}}
}

func newTracker(mutate func(*config.Correlation)) *Tracker {
	cfg := config.Default().Correlation
	if mutate != nil {
		mutate(&cfg)
	}
	return NewTracker(cfg)
}

type step struct {
	rule    string
	score   uint8
	tactics uint16
}

// The attack story: /dev/shm execution, fileless memfd execution, a
// sensitive file read and an outbound connection, one minute apart.
var story = []step{
	{"Execution from /dev/shm", 60, tExecution},
	{"Fileless execution via memfd_create", 100, tDefenseEvade},
	{"Read sensitive file untrusted", 80, tCredential},
	{"Outbound Connection to C2 Servers", 70, tExfiltration},
}

func TestAttackStoryOnOneContainer(t *testing.T) {
	tr := newTracker(nil)
	var got []Result
	for i, s := range story {
		got = append(got, tr.Observe(Input{Alert: containerAlert("abc", s.rule, storyStartTime+int64(i)*minute), Score: s.score, Tactics: s.tactics}))
	}
	for i, r := range got {
		assert.Equal(t, "container:worker-3/abc", r.EntityID)
		assert.Equal(t, KindContainer, r.Kind)
		assert.Equal(t, uint64(i+1), r.Alerts, "alert %d", i+1)
		assert.Equal(t, uint64(i+1), r.Rules)
		assert.True(t, r.DedupFirst)
		assert.Equal(t, uint64(1), r.DedupCount)
	}
	// Tactics: execution, + defense evasion, + credential access, + exfiltration.
	assert.Equal(t, []int{1, 2, 3, 4}, []int{popcount(got[0].Tactics), popcount(got[1].Tactics), popcount(got[2].Tactics), popcount(got[3].Tactics)})
	assert.Equal(t, 13, got[3].Stage(), "exfiltration is the 13th tactic")
	// Risk sums: 60, 160, 240, 310.
	assert.Equal(t, []uint64{60, 160, 240, 310}, []uint64{got[0].RiskSum, got[1].RiskSum, got[2].RiskSum, got[3].RiskSum})
	// Entity score, one score per rule, sorted, Σ sᵢ/i^1.5 / ζ(1.5), ζ(1.5) = 2.6124:
	//   alert 1: 60/2.6124 = 22.97 → 23
	//   alert 2: (100 + 60/2.8284)/2.6124 = (100 + 21.21)/2.6124 = 46.40 → 46
	//   alert 3: (100 + 80/2.8284 + 60/5.1962)/2.6124 = (100 + 28.28 + 11.55)/2.6124 = 53.53 → 54
	//   alert 4: (100 + 28.28 + 70/5.1962 + 60/8)/2.6124 = (100 + 28.28 + 13.47 + 7.5)/2.6124 = 57.13 → 57
	assert.Equal(t, []uint8{23, 46, 54, 57}, []uint8{got[0].EntityScore, got[1].EntityScore, got[2].EntityScore, got[3].EntityScore})

	// Escalations, each once: the 3rd tactic (alert 3) crosses multi_tactic,
	// and entity score 54 enters the high band; the risk sum crosses 250 and
	// exfiltration follows other tactics at alert 4.
	assert.Empty(t, got[0].Escalation)
	assert.Empty(t, got[1].Escalation)
	assert.Equal(t, []string{EscMultiTactic, EscLevelHigh}, got[2].Escalation)
	assert.Equal(t, []string{EscRiskThreshold, EscExfilOrImpact}, got[3].Escalation)
	multi := 0
	for _, r := range got {
		for _, e := range r.Escalation {
			if e == EscMultiTactic {
				multi++
			}
		}
	}
	assert.Equal(t, 1, multi, "exactly one alert carries the multi-tactic escalation")

	// One incident from the second alert on: same episode, same id.
	assert.Empty(t, got[0].IncidentID)
	require.NotEmpty(t, got[1].IncidentID)
	assert.Equal(t, got[1].IncidentID, got[2].IncidentID)
	assert.Equal(t, got[1].IncidentID, got[3].IncidentID)
	assert.Equal(t, []string{ReasonSameEntity, ReasonProgression}, got[1].Reasons)
	assert.Equal(t, []string{ReasonSameEntity, ReasonProgression, ReasonMultiTactic, ReasonRiskThreshod}, got[3].Reasons)
}

func popcount(m uint16) int {
	n := 0
	for ; m != 0; m &= m - 1 {
		n++
	}
	return n
}

func TestSameAlertsOnTwoContainersDoNotEscalate(t *testing.T) {
	tr := newTracker(nil)
	for i, s := range story {
		c := []string{"aaa", "bbb"}[i%2]
		r := tr.Observe(Input{Alert: containerAlert(c, s.rule, storyStartTime+int64(i)*minute), Score: s.score, Tactics: s.tactics})
		assert.NotContains(t, r.Escalation, EscMultiTactic, s.rule)
		assert.LessOrEqual(t, popcount(r.Tactics), 2)
	}
}

func TestWindowSlides(t *testing.T) {
	tr := newTracker(nil) // 15 min window
	a := tr.Observe(Input{Alert: containerAlert("abc", "r1", storyStartTime), Score: 50, Tactics: tExecution})
	b := tr.Observe(Input{Alert: containerAlert("abc", "r2", storyStartTime+5*minute), Score: 50, Tactics: tCredential})
	assert.Equal(t, 2, popcount(b.Tactics))
	// 20 minutes after the first alert: r1's execution tactic has left the window.
	c := tr.Observe(Input{Alert: containerAlert("abc", "r3", storyStartTime+20*minute), Score: 50, Tactics: tC2})
	assert.Equal(t, tCredential|tC2, int(c.Tactics), "old tactics no longer count")
	assert.Equal(t, uint64(2), c.Alerts)
	assert.Equal(t, a.EntityID, c.EntityID)
	// 16 quiet minutes later a new episode starts: new incident.
	d := tr.Observe(Input{Alert: containerAlert("abc", "r4", storyStartTime+36*minute), Score: 50, Tactics: tC2})
	e := tr.Observe(Input{Alert: containerAlert("abc", "r5", storyStartTime+37*minute), Score: 50, Tactics: tC2})
	assert.Equal(t, uint64(1), d.Alerts)
	assert.Empty(t, d.IncidentID)
	require.NotEmpty(t, e.IncidentID)
	assert.NotEqual(t, b.IncidentID, e.IncidentID)
	// The risk window (24 h) still remembers the earlier scores: 4 × 50 + 50 = 250.
	assert.Equal(t, uint64(250), e.RiskSum)
}

func TestDedupThousandRepeats(t *testing.T) {
	tr := newTracker(nil)
	firsts, storms := 0, 0
	for i := 1; i <= 1000; i++ {
		r := tr.Observe(Input{Alert: containerAlert("abc", "Terminal shell in container", storyStartTime+int64(i)*int64(time.Millisecond)), Score: 40, Tactics: tExecution})
		require.Equal(t, uint64(i), r.DedupCount)
		require.Equal(t, uint64(1), r.Rules)
		if r.DedupFirst {
			firsts++
		}
		if r.Storm {
			storms++
			assert.Zero(t, i%100)
		}
		assert.Equal(t, storyStartTime+int64(time.Millisecond), r.FirstSeen)
		assert.Equal(t, storyStartTime+int64(i)*int64(time.Millisecond), r.LastSeen)
	}
	assert.Equal(t, 1, firsts, "dedup.first only once")
	assert.Equal(t, 10, storms)
}

func TestRepeatThatRaisesRiskOrAddsTacticIsNotAPlainDuplicate(t *testing.T) {
	tr := newTracker(nil)
	tr.Observe(Input{Alert: containerAlert("abc", "r", storyStartTime), Score: 40, Tactics: tExecution})
	same := tr.Observe(Input{Alert: containerAlert("abc", "r", storyStartTime+1), Score: 40, Tactics: tExecution})
	higher := tr.Observe(Input{Alert: containerAlert("abc", "r", storyStartTime+2), Score: 70, Tactics: tExecution})
	newTactic := tr.Observe(Input{Alert: containerAlert("abc", "r", storyStartTime+3), Score: 40, Tactics: tImpact})
	assert.False(t, same.DedupFirst)
	assert.True(t, higher.DedupFirst)
	assert.True(t, newTactic.DedupFirst)
	assert.Equal(t, uint64(4), newTactic.DedupCount)
}

func TestEvictionAtCap(t *testing.T) {
	tr := newTracker(func(c *config.Correlation) { c.MaxEntities = 3 })
	for i := 0; i < 5; i++ {
		tr.Observe(Input{Alert: containerAlert(fmt.Sprintf("c%d", i), "r", storyStartTime+int64(i)), Score: 10})
	}
	assert.Equal(t, uint64(2), tr.Evicted())
	assert.Equal(t, int64(3), tr.Tracked())
	// c0 was evicted: it starts over.
	r := tr.Observe(Input{Alert: containerAlert("c0", "r", storyStartTime+10), Score: 10})
	assert.Equal(t, uint64(1), r.Alerts)
	assert.Equal(t, uint64(3), tr.Evicted())
	// c4 is still tracked.
	r = tr.Observe(Input{Alert: containerAlert("c4", "r", storyStartTime+11), Score: 10})
	assert.Equal(t, uint64(2), r.Alerts)
}

func TestOutOfOrder(t *testing.T) {
	tr := newTracker(nil) // 60 s tolerance
	tr.Observe(Input{Alert: containerAlert("abc", "a", storyStartTime+10*minute), Score: 30, Tactics: tExecution})
	// 30 s older than the newest: applied at its own time.
	in := tr.Observe(Input{Alert: containerAlert("abc", "b", storyStartTime+10*minute-30*int64(time.Second)), Score: 30, Tactics: tCredential})
	assert.False(t, in.Late)
	assert.Equal(t, uint64(2), in.Alerts)
	assert.Equal(t, storyStartTime+10*minute-30*int64(time.Second), in.FirstSeen)
	// 5 minutes older: beyond the tolerance, so flagged late, and still
	// applied at its own time: it counts, and its tactic makes the entity
	// cross the tactic threshold.
	late := tr.Observe(Input{Alert: containerAlert("abc", "c", storyStartTime+5*minute), Score: 90, Tactics: tImpact})
	assert.True(t, late.Late)
	assert.True(t, late.DedupFirst, "the first alert of its rule")
	assert.Equal(t, uint64(3), late.Alerts)
	assert.NotZero(t, late.Tactics&tImpact)
	assert.Contains(t, late.Escalation, EscMultiTactic)
	after := tr.Observe(Input{Alert: containerAlert("abc", "d", storyStartTime+11*minute), Score: 10})
	assert.False(t, after.Late)
	assert.Equal(t, uint64(4), after.Alerts, "the late alert counts")
	assert.Equal(t, uint64(1), tr.Late())
}

func TestEntityScoreBounds(t *testing.T) {
	assert.Equal(t, uint8(0), entityScore(nil))
	// 100/2.6124 = 38.28 → 38.
	assert.Equal(t, uint8(38), entityScore([]uint8{100}))
	// Many maximal scores approach, never pass, 100.
	many := make([]uint8, 64)
	for i := range many {
		many[i] = 100
	}
	s := entityScore(many)
	assert.LessOrEqual(t, s, uint8(100))
	assert.GreaterOrEqual(t, s, uint8(90))
}

// The same input in the same order gives the same results.
func TestDeterministicReplay(t *testing.T) {
	run := func() []Result {
		tr := newTracker(func(c *config.Correlation) { c.MaxEntities = 7 })
		var out []Result
		for i := 0; i < 500; i++ {
			s := story[i%len(story)]
			at := storyStartTime + int64((i*7919)%600)*int64(time.Second) // shuffled times
			out = append(out, tr.Observe(Input{Alert: containerAlert(fmt.Sprintf("c%d", i%11), s.rule, at), Score: s.score, Tactics: s.tactics}))
		}
		return out
	}
	assert.Equal(t, run(), run())
}

func TestResolveEntity(t *testing.T) {
	f := func(kv ...string) []alert.Field {
		var out []alert.Field
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, alert.Field{Key: kv[i], Kind: alert.KindString, Value: kv[i+1]})
		}
		return out
	}
	cases := []struct {
		a        alert.Alert
		id, kind string
	}{
		{alert.Alert{Source: "syscall", Hostname: "n1", Fields: f("container.id", "abc", "k8s.ns.name", "shop", "k8s.pod.name", "api-1")}, "pod:shop/api-1", KindPod},
		{alert.Alert{Source: "syscall", Hostname: "n1", Fields: f("container.id", "abc")}, "container:n1/abc", KindContainer},
		{alert.Alert{Source: "syscall", Hostname: "N1", Fields: f("container.id", "host")}, "host:n1", KindHost},
		{alert.Alert{Source: "syscall", Hostname: "n1", Fields: []alert.Field{{Key: "k8s.ns.name", Kind: alert.KindNull}, {Key: "container.id", Kind: alert.KindString, Value: "abc"}}}, "container:n1/abc", KindContainer},
		{alert.Alert{Source: "k8s_audit", Hostname: "n1", Fields: f("ka.user.name", "system:serviceaccount:ci:deployer")}, "k8s_user:system:serviceaccount:ci:deployer", KindK8sUser},
		{alert.Alert{Source: "aws_cloudtrail", Fields: f("ct.user", "alice", "ct.user.arn", "arn:aws:iam::1:user/alice")}, "aws:arn:aws:iam::1:user/alice", KindCloudPrincipal},
		{alert.Alert{Source: "gcp_auditlog", Fields: f("gcp.user", "bob@example.com", "gcp.projectId", "p1")}, "gcp:bob@example.com@p1", KindGCPPrincipal},
		{alert.Alert{Source: "okta", Fields: f("okta.actor.name", "Carol")}, "okta:Carol", KindOktaUser},
		{alert.Alert{Source: "github", Fields: f("github.user", "dave", "github.org", "acme")}, "github:dave@acme", KindGitHubUser},
		{alert.Alert{Source: "okta"}, "host:unknown", KindHost},
	}
	for _, c := range cases {
		id, kind := ResolveEntity(&c.a)
		assert.Equal(t, c.id, id)
		assert.Equal(t, c.kind, kind)
	}
}

// BenchmarkMillionEntities tracks 1,000,000 distinct containers and reports
// the live heap and the process RSS with them held (docs/correlation.md).
func BenchmarkMillionEntities(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		tr := newTracker(func(c *config.Correlation) { c.MaxEntities = n })
		a := containerAlert("", "Terminal shell in container", storyStartTime)
		for i := 0; i < n; i++ {
			a.Fields[0].Value = fmt.Sprintf("c%07d", i)
			a.Time = storyStartTime + int64(i)
			tr.Observe(Input{Alert: a, Score: 40, Tactics: tExecution})
		}
		if tr.Tracked() != n {
			b.Fatal(tr.Tracked())
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(ms.HeapAlloc)/n, "heap-B/entity")
		b.ReportMetric(rssMiB(), "rss-MiB")
		runtime.KeepAlive(tr)
	}
}

func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}
