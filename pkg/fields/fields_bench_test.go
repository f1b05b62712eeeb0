package fields_test

import (
	"testing"

	"github.com/triage-dev/triage/internal/shareddata"
	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/fields"
)

// payloads returns the encoded events of the alert mix, as next_batch
// writes them.
func payloads(b *testing.B) ([][]byte, *engine.Engine) {
	b.Helper()
	lines := shareddata.AlertMix(b)
	eng, err := engine.New(config.Default())
	if err != nil {
		b.Fatal(err)
	}
	var out [][]byte
	var p alert.Parser
	for _, line := range lines {
		a, err := p.Parse(line)
		if err != nil {
			b.Fatal(err)
		}
		var rec event.Record
		eng.Process(a, &rec)
		out = append(out, event.Encode(nil, &rec))
	}
	return out, eng
}

// BenchmarkDecodeAllFields is what extraction costs inside the plugin for
// one event when a rule asks for every field: one payload decode, then
// every field without a key plus two alert.field[KEY] lookups.
func BenchmarkDecodeAllFields(b *testing.B) {
	evts, eng := payloads(b)
	defs := fields.All()
	var rec event.Record
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := event.Decode(evts[i%len(evts)], &rec); err != nil {
			b.Fatal(err)
		}
		for j := range defs {
			key := ""
			if defs[j].KeyArg {
				key = "proc.cmdline"
			}
			defs[j].Value(&rec, eng.KB(), key)
		}
	}
}

// BenchmarkDecode is the payload decode alone.
func BenchmarkDecode(b *testing.B) {
	evts, _ := payloads(b)
	var rec event.Record
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := event.Decode(evts[i%len(evts)], &rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOneFieldDecoded is one field of an event already decoded (the
// plugin keeps the last decoded event): what every field after the first
// costs inside the plugin.
func BenchmarkOneFieldDecoded(b *testing.B) {
	evts, eng := payloads(b)
	id, _ := fields.ByName("risk.level")
	d := fields.All()[id]
	var rec event.Record
	if err := event.Decode(evts[0], &rec); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d.Value(&rec, eng.KB(), "")
	}
}
