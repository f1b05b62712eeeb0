package test

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/event"
)

func band(score uint64) string {
	switch {
	case score <= 21:
		return "low"
	case score <= 47:
		return "medium"
	case score <= 73:
		return "high"
	}
	return "critical"
}

// Risk fields through the C ABI: in range, banded as documented, explained
// by factors, equal to the in-process engine (the CLI's), and raised by an
// extreme asset from init_config.
func TestRiskFieldsEndToEnd(t *testing.T) {
	requireShared(t, sharedAlerts)
	want := readExpected(t, sharedAlerts)
	eng, err := engine.New(config.Default())
	require.NoError(t, err)
	var inProcess []event.Record
	f, err := os.Open(sharedAlerts)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var p alert.Parser
	for sc.Scan() {
		a, err := p.Parse(sc.Bytes())
		require.NoError(t, err)
		var rec event.Record
		eng.Process(a, &rec)
		inProcess = append(inProcess, rec)
	}

	plain := newPlugin(t, "")
	extreme := newPlugin(t, `{"risk": {"assets": [{"hosts": ["*"], "criticality": "extreme"}]}}`)
	evPlain := replayFile(t, plain, sharedAlerts)
	evExtreme := replayFile(t, extreme, sharedAlerts)
	require.Len(t, evPlain, len(want))
	require.Len(t, evExtreme, len(want))
	raised := 0
	for i := range evPlain {
		got := extractMap(t, plain, evPlain[i], "risk.score", "risk.level", "risk.factors")
		score := got["risk.score"].U64[0]
		assert.LessOrEqual(t, score, uint64(100))
		assert.Equal(t, []string{band(score)}, got["risk.level"].Str, want[i].Rule)
		require.NotEmpty(t, got["risk.factors"].Str)
		assert.Equal(t, "priority="+inProcess[i].Alert.Priority.String(), strings.SplitN(got["risk.factors"].Str[0], ":", 2)[0])
		assert.Equal(t, uint64(inProcess[i].Risk.Score), score, want[i].Rule)
		assert.Equal(t, inProcess[i].Risk.Factors, got["risk.factors"].Str, want[i].Rule)

		ext := extractMap(t, extreme, evExtreme[i], "risk.score", "risk.factors")
		assert.GreaterOrEqual(t, ext["risk.score"].U64[0], score, want[i].Rule)
		if ext["risk.score"].U64[0] > score {
			raised++
			assert.Contains(t, ext["risk.factors"].Str, "asset=extreme:x2.0")
		}
	}
	assert.Positive(t, raised, "an extreme asset raises scores below 100")
}
