package risk

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/triage-dev/triage/internal/shareddata"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/kb"
)

func mk(prio alert.Priority, tags []string, fields ...string) *alert.Alert {
	a := &alert.Alert{Rule: "r", Priority: prio, Source: "syscall", Hostname: "node-1", Time: 1, Tags: tags}
	for i := 0; i+1 < len(fields); i += 2 {
		a.Fields = append(a.Fields, alert.Field{Key: fields[i], Kind: alert.KindString, Value: fields[i+1]})
	}
	return a
}

func scorerWith(crit string) *Scorer {
	cfg := config.Default().Risk
	if crit != "" {
		cfg.Assets = []config.Asset{{Hosts: []string{"*"}, Criticality: crit}}
		cfg.DefaultCriticality = "low"
	}
	return NewScorer(cfg)
}

// Expected scores computed by hand from docs/risk-model.md; the arithmetic
// is in each case's comment.
func TestScoreWorkedCases(t *testing.T) {
	cases := []struct {
		name    string
		in      Input
		crit    string
		score   int
		level   string
		factors []string
	}{
		{
			// impact 35 + 5 (execution) = 40; × 0.90 (stable) = 36.
			name:  "notice stable execution",
			in:    Input{Alert: mk(alert.PriorityNotice, []string{"maturity_stable"}), Tactic: "TA0002", KnownRule: true},
			score: 36, level: LevelMedium,
			factors: []string{"priority=Notice:+35", "tactic=execution:+5", "confidence=maturity_stable:x0.90"},
		},
		{
			// impact 80 + 5 (defense evasion) = 85; × 0.90 = 76.5; + 10 (root) + 15 (memfd) = 101.5 → capped at 100.
			name: "critical memfd as root",
			in: Input{Alert: mk(alert.PriorityCritical, []string{"maturity_stable"}, "user.uid", "0", "evt.arg.flags", "EXE_WRITABLE|EXE_FROM_MEMFD"),
				Tactic: "TA0005", KnownRule: true},
			score: 100, level: LevelCritical,
			factors: []string{"priority=Critical:+80", "tactic=defense-evasion:+5", "confidence=maturity_stable:x0.90", "root:+10", "exe_from_memfd:+15", "exe_writable:+5"},
		},
		{
			// impact 50 + 0 (discovery) = 50; × 0.75 (incubating) = 37.5;
			// low asset m = 0.5: o = 37.5/62.5 = 0.6; m·o = 0.3; 100·0.3/1.3 = 23.08 → 23.
			name:  "warning incubating discovery on a low asset",
			in:    Input{Alert: mk(alert.PriorityWarning, []string{"maturity_incubating"}), Tactic: "TA0007", KnownRule: true},
			crit:  "low",
			score: 23, level: LevelMedium,
			factors: []string{"priority=Warning:+50", "confidence=maturity_incubating:x0.75", "asset=low:x0.5"},
		},
		{
			// as above, extreme asset m = 2: m·o = 1.2; 100·1.2/2.2 = 54.55 → 55.
			name:  "warning incubating discovery on an extreme asset",
			in:    Input{Alert: mk(alert.PriorityWarning, []string{"maturity_incubating"}), Tactic: "TA0007", KnownRule: true},
			crit:  "extreme",
			score: 55, level: LevelHigh,
		},
		{
			// custom rule: impact 10 (Debug), no tactic; × 0.70 (customRuleConfidence) = 7.
			name:  "debug custom rule",
			in:    Input{Alert: mk(alert.PriorityDebug, nil)},
			score: 7, level: LevelLow,
			factors: []string{"priority=Debug:+10", "confidence=custom_rule:x0.70"},
		},
		{
			// impact 65 + 15 (exfiltration) = 80; × 0.60 (sandbox) = 48; + 10 (public peer 8.8.8.8) = 58.
			name: "error sandbox exfiltration to a public address",
			in: Input{Alert: mk(alert.PriorityError, []string{"maturity_sandbox"}, "fd.rip", "8.8.8.8"),
				Tactic: "TA0010", KnownRule: true},
			score: 58, level: LevelHigh,
			factors: []string{"priority=Error:+65", "tactic=exfiltration:+15", "confidence=maturity_sandbox:x0.60", "public_peer:+10"},
		},
		{
			// impact 100 + 15 (impact) → capped 100; × 0.50 (deprecated) = 50.
			name:  "emergency deprecated impact",
			in:    Input{Alert: mk(alert.PriorityEmergency, []string{"maturity_deprecated"}), Tactic: "TA0040", KnownRule: true},
			score: 50, level: LevelHigh,
		},
		{
			// k8s audit plugin rule (no maturity tag, known: 0.80): impact 50 + 10 (privilege escalation) = 60;
			// × 0.80 = 48; + 15 (cluster-admin) + 10 (kube-system) = 73 → high (the band's top).
			name: "k8s audit cluster-admin binding in kube-system",
			in: Input{Alert: func() *alert.Alert {
				a := mk(alert.PriorityWarning, []string{"k8s"}, "ka.req.binding.role", "cluster-admin", "ka.target.namespace", "kube-system")
				a.Source = "k8s_audit"
				return a
			}(), Tactic: "TA0004", KnownRule: true},
			score: 73, level: LevelHigh,
			factors: []string{"priority=Warning:+50", "tactic=privilege-escalation:+10", "confidence=plugin_rule:x0.80", "critical_namespace:+10", "cluster_admin:+15"},
		},
		{
			// CloudTrail: impact 80 + 5 (initial access) = 85; × 0.80 = 68; + 10 (console login without MFA)
			// + 15 (root account) = 93.
			name: "cloudtrail root console login without MFA",
			in: Input{Alert: func() *alert.Alert {
				a := mk(alert.PriorityCritical, []string{"aws"}, "ct.name", "ConsoleLogin", "json.value[/additionalEventData/MFAUsed]", "No", "ct.user.identitytype", "Root", "ct.srcip", "10.1.2.3")
				a.Source = "aws_cloudtrail"
				return a
			}(), Tactic: "TA0001", KnownRule: true},
			score: 93, level: LevelCritical,
		},
		{
			// impact 20 (Informational), discovery 0; × 0.80 = 16; high asset m = 1.5:
			// o = 16/84 = 0.1905; m·o = 0.2857; 100·0.2857/1.2857 = 22.22 → 22 (medium's first point).
			name:  "informational plugin rule on a high asset",
			in:    Input{Alert: mk(alert.PriorityInformational, nil), Tactic: "TA0007", KnownRule: true},
			crit:  "high",
			score: 22, level: LevelMedium,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := scorerWith(c.crit).Score(c.in)
			assert.Equal(t, c.score, got.Score)
			assert.Equal(t, c.level, got.Level)
			if c.factors != nil {
				assert.Equal(t, c.factors, got.Factors)
			}
		})
	}
}

func TestLevelBands(t *testing.T) {
	for score, want := range map[int]string{0: LevelLow, 21: LevelLow, 22: LevelMedium, 47: LevelMedium, 48: LevelHigh, 73: LevelHigh, 74: LevelCritical, 100: LevelCritical} {
		assert.Equal(t, want, LevelOf(score), score)
	}
}

func TestPublicAddresses(t *testing.T) {
	for ip, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "10.0.0.1": false, "192.168.1.1": false, "172.16.0.1": false,
		"127.0.0.1": false, "169.254.169.254": false, "100.64.0.1": false, "203.0.113.9": false, "::1": false,
		"fe80::1": false, "fd00::1": false, "224.0.0.1": false, "0.0.0.0": false, "::ffff:8.8.4.4": true,
	} {
		a := mk(alert.PriorityNotice, nil, "fd.sip", ip)
		assert.Equal(t, want, publicPeer(viewOf(a)), ip)
	}
	assert.False(t, publicPeer(viewOf(mk(alert.PriorityNotice, nil, "fd.sip", "not-an-ip"))))
}

func loadSamples(t *testing.T) []*alert.Alert {
	lines := shareddata.Lines("alerts/upstream-rules.jsonl")
	if len(lines) == 0 {
		t.Skip("../shared/data not present")
	}
	var out []*alert.Alert
	var p alert.Parser
	for _, line := range lines {
		a, err := p.Parse(line)
		require.NoError(t, err)
		out = append(out, a)
	}
	require.Len(t, out, 242)
	return out
}

func inputFor(k *kb.KB, a *alert.Alert) Input {
	res := k.Resolve(a.Rule, a.Tags)
	return Input{Alert: a, Tactic: PrimaryTactic(k, a.Tags, &res), KnownRule: res.Via == kb.ViaRuleMap}
}

func withField(a *alert.Alert, key, value string) *alert.Alert {
	b := *a
	b.Fields = append([]alert.Field{{Key: key, Kind: alert.KindString, Value: value}}, a.Fields...)
	return &b
}

// Properties over all 242 sample alerts and variants of each.
func TestScoreProperties(t *testing.T) {
	k, err := kb.Default()
	require.NoError(t, err)
	s := scorerWith("")
	for _, a := range loadSamples(t) {
		in := inputFor(k, a)
		base := s.Score(in)
		require.GreaterOrEqual(t, base.Score, 0, a.Rule)
		require.LessOrEqual(t, base.Score, 100, a.Rule)
		assert.Equal(t, LevelOf(base.Score), base.Level, a.Rule)
		assert.True(t, strings.HasPrefix(base.Factors[0], "priority="), a.Rule)

		// A higher priority never lowers the score.
		prev := -1
		for p := alert.PriorityDebug; p <= alert.PriorityEmergency; p++ {
			b := *a
			b.Priority = p
			in2 := in
			in2.Alert = &b
			sc := s.Score(in2).Score
			assert.GreaterOrEqual(t, sc, prev, "%s at %s", a.Rule, p)
			prev = sc
		}

		// An aggravating factor never lowers it.
		flags := "EXE_FROM_MEMFD"
		if f, ok := a.Field("evt.arg.flags"); ok && f.Value != "" {
			flags = f.Value + "|EXE_FROM_MEMFD" // add the flag, keep the others
		}
		for _, kv := range [][2]string{{"user.uid", "0"}, {"container.privileged", "true"}, {"evt.arg.flags", flags}, {"fd.rip", "8.8.8.8"}, {"proc.tty", "34816"}} {
			in2 := in
			in2.Alert = withField(a, kv[0], kv[1])
			assert.GreaterOrEqual(t, s.Score(in2).Score, base.Score, "%s with %s", a.Rule, kv[0])
		}

		// extreme ≥ high ≥ medium ≥ low.
		prev = -1
		for _, c := range config.Criticalities {
			sc := scorerWith(c).Score(in).Score
			assert.GreaterOrEqual(t, sc, prev, "%s at %s", a.Rule, c)
			prev = sc
		}
	}
}

// TestDistribution prints the score bands over the sample alerts (for
// docs/risk-model.md); it asserts only that every alert lands in one band.
func TestDistribution(t *testing.T) {
	k, err := kb.Default()
	require.NoError(t, err)
	s := scorerWith("")
	bands := map[string]int{}
	samples := loadSamples(t)
	for _, a := range samples {
		bands[s.Score(inputFor(k, a)).Level]++
	}
	assert.Equal(t, len(samples), bands[LevelLow]+bands[LevelMedium]+bands[LevelHigh]+bands[LevelCritical])
	t.Logf("critical %d, high %d, medium %d, low %d", bands[LevelCritical], bands[LevelHigh], bands[LevelMedium], bands[LevelLow])
}

func viewOf(a *alert.Alert) *fieldView {
	var v fieldView
	v.fill(a)
	return &v
}
