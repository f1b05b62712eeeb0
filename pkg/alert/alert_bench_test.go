package alert

import (
	"encoding/json"
	"testing"

	"github.com/triage-dev/triage/internal/shareddata"
)

func loadBenchMix(b *testing.B) [][]byte { return shareddata.AlertMix(b) }

func reportAlertRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "alerts/s")
	}
}

// BenchmarkParse is triage's parser over the mix, one alert per op, with
// the Alert reused the way the inputs reuse it.
func BenchmarkParse(b *testing.B) {
	lines := loadBenchMix(b)
	var p Parser
	var a Alert
	var n int64
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l := lines[i%len(lines)]
		if err := p.ParseInto(l, &a); err != nil {
			b.Fatal(err)
		}
		n += int64(len(l))
	}
	b.SetBytes(n / int64(max(b.N, 1)))
	reportAlertRate(b)
}

// BenchmarkParseNaiveBaseline is the naive way to read the same alerts:
// encoding/json into a map[string]any. It is the yardstick the report
// divides by, so ratios survive a noisy or slower machine.
func BenchmarkParseNaiveBaseline(b *testing.B) {
	lines := loadBenchMix(b)
	var n int64
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l := lines[i%len(lines)]
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			b.Fatal(err)
		}
		if _, ok := m["rule"].(string); !ok {
			b.Fatal("no rule")
		}
		n += int64(len(l))
	}
	b.SetBytes(n / int64(max(b.N, 1)))
	reportAlertRate(b)
}
