package event

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/triage-dev/triage/internal/shareddata"

	"github.com/triage-dev/triage/pkg/alert"
)

func sampleRecord() *Record {
	return &Record{Alert: alert.Alert{
		Rule: "Fileless execution via memfd_create", Priority: alert.PriorityCritical, Source: "syscall",
		Hostname: "node-1", Time: 1795236300682554049, UUID: "u-1", Output: "out \x00 with nul",
		Tags: []string{"T1620", "", "mitre_defense_evasion"},
		Fields: []alert.Field{
			{Key: "proc.exepath", Kind: alert.KindString, Value: "memfd:x"},
			{Key: "k8s.ns.name", Kind: alert.KindNull},
			{Key: "user.loginuid", Kind: alert.KindNumber, Value: "-1"},
			{Key: "", Kind: alert.KindString, Value: ""},
		},
	}, KB: Enrichment{
		Env: "container", Via: "rule_map", Techniques: []string{"T1620"}, Tactics: []string{"TA0005"},
		Conflict: "why", Playbooks: []string{"TRG-SYS-MEMFD-EXEC", "TRG-X-Y"}, Mitigations: []string{"M1040"}, D3FEND: []string{"D3-PSA"},
	}, Risk: Risk{Scored: true, Score: 87, Factors: []string{"priority=Critical:+80", "exe_from_memfd:+15"}},
		Corr: Correlation{Set: true, EntityID: "pod:shop/api-1", Kind: "pod", Alerts: 4, RiskSum: 310, EntityScore: 61,
			Tactics: 1<<2 | 1<<5, Rules: 3, DedupCount: 2, DedupFirst: true, Storm: false, Late: true, FirstSeen: 5, LastSeen: 9,
			IncidentID: "INC-0123456789abcdef", Escalation: []string{"multi_tactic"}, Reasons: []string{"same_entity", "repeat"}}}
}

func TestRoundTrip(t *testing.T) {
	in := sampleRecord()
	buf := Encode(nil, in)
	var out Record
	require.NoError(t, Decode(buf, &out))
	assert.Equal(t, *in, out)
}

func TestRoundTripMinimalAlert(t *testing.T) {
	in := &Record{Alert: alert.Alert{Rule: "r", Priority: alert.PriorityDebug, Time: 1}}
	var out Record
	require.NoError(t, Decode(Encode(nil, in), &out))
	assert.Equal(t, *in, out)
}

// Every sample alert survives parse → encode → decode unchanged.
func TestRoundTripSharedSamples(t *testing.T) {
	lines := shareddata.Lines("alerts/upstream-rules.jsonl")
	if len(lines) == 0 {
		t.Skip("../shared/data not present")
	}
	var p alert.Parser
	n := 0
	for _, line := range lines {
		a, err := p.Parse(line)
		require.NoError(t, err, "line %d", n+1)
		var out Record
		require.NoError(t, Decode(Encode(nil, &Record{Alert: *a}), &out))
		require.Equal(t, *a, out.Alert)
		n++
	}
	assert.Equal(t, 242, n)
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	good := Encode(nil, sampleRecord())
	cases := map[string][]byte{
		"empty":           {},
		"bad magic":       append([]byte("XYZ"), good[3:]...),
		"future version":  append([]byte{'T', 'R', 'G', Version + 1}, good[4:]...),
		"header only":     good[:4],
		"truncated":       good[:len(good)-3],
		"bad length":      append(append([]byte{}, good[:4]...), tagRule, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"bad priority":    append(append([]byte{}, good...), tagPriority, 1, 99),
		"bad time":        append(append([]byte{}, good...), tagTime, 2, 0, 0),
		"bad field kind":  append(append([]byte{}, good...), tagField, 3, 1, 'k', 200),
		"field no kind":   append(append([]byte{}, good...), tagField, 2, 1, 'k'),
		"risk over 100":   append(append([]byte{}, good...), tagRiskScore, 1, 101),
		"correlation cut": append(append([]byte{}, good...), tagCorrelation, 3, 1, 'x', 5),
		"correlation list too long": append(append([]byte{}, good...), tagCorrelation, 25,
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 1),
		"no rule": Encode(nil, &Record{})[:4],
	}
	for name, data := range cases {
		var r Record
		err := Decode(data, &r)
		assert.ErrorIs(t, err, ErrCorrupt, name)
	}
}

func TestDecodeSkipsUnknownSections(t *testing.T) {
	in := sampleRecord()
	buf := Encode(nil, in)
	buf = append(buf, 200, 3, 'n', 'e', 'w') // a section from a newer writer
	var out Record
	require.NoError(t, Decode(buf, &out))
	assert.Equal(t, *in, out)
}

func BenchmarkEncode(b *testing.B) {
	r := sampleRecord()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = Encode(buf[:0], r)
	}
}

func BenchmarkDecode(b *testing.B) {
	data := Encode(nil, sampleRecord())
	var r Record
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(data, &r); err != nil {
			b.Fatal(err)
		}
	}
}
