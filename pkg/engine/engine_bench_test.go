package engine

import (
	"testing"

	"github.com/triage-dev/triage/internal/shareddata"
	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/event"
)

func loadBenchMix(b *testing.B) [][]byte { return shareddata.AlertMix(b) }

// BenchmarkEnrich is the whole in-process path of one alert, as
// next_batch runs it: parse, knowledge base, risk, correlation update and
// payload encode. Each pass over the mix moves alert time on by a second so
// correlation windows slide the way they do on a live stream. One op is
// one alert, so allocs/op is allocations per alert.
func BenchmarkEnrich(b *testing.B) {
	lines := loadBenchMix(b)
	eng, err := New(config.Default())
	if err != nil {
		b.Fatal(err)
	}
	var (
		p   alert.Parser
		a   alert.Alert
		rec event.Record
		buf []byte
	)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := p.ParseInto(lines[i%len(lines)], &a); err != nil {
			b.Fatal(err)
		}
		a.Time += int64(i/len(lines)) * 1e9
		eng.Process(&a, &rec)
		buf = event.Encode(buf[:0], &rec)
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "alerts/s")
	}
}

// BenchmarkProcess is BenchmarkEnrich without the parse: alerts parsed
// once up front, so the number isolates knowledge base, risk, correlation
// and encode.
func BenchmarkProcess(b *testing.B) {
	lines := loadBenchMix(b)
	eng, err := New(config.Default())
	if err != nil {
		b.Fatal(err)
	}
	alerts := make([]alert.Alert, len(lines))
	var p alert.Parser
	for i, l := range lines {
		if err := p.ParseInto(l, &alerts[i]); err != nil {
			b.Fatal(err)
		}
	}
	var (
		a   alert.Alert
		rec event.Record
		buf []byte
	)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a = alerts[i%len(alerts)]
		a.Time += int64(i/len(alerts)) * 1e9
		eng.Process(&a, &rec)
		buf = event.Encode(buf[:0], &rec)
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "alerts/s")
	}
}
