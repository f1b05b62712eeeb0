package test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/triage-dev/triage/pkg/fields"
	"github.com/triage-dev/triage/test/harness"
	"github.com/triage-dev/triage/test/loadgen"
)

// benchEvents replays the 242-alert mix through the plugin and returns the
// plugin and its events.
func benchEvents(b *testing.B) (*harness.Plugin, []*harness.Event) {
	b.Helper()
	return benchEventsWith(b, "{}")
}

// benchEventsWith is benchEvents with an init_config.
func benchEventsWith(b *testing.B, config string) (*harness.Plugin, []*harness.Event) {
	b.Helper()
	if _, err := os.Stat(sharedAlerts); err != nil {
		b.Skip("../shared/data not present")
	}
	p, err := harness.Load(libPath)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Init(config); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Destroy)
	inst, err := p.Open(sharedAlerts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(inst.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evts, err := inst.Collect(ctx, 0, 0)
	if err != nil || len(evts) == 0 {
		b.Fatalf("replay: %d events, %v", len(evts), err)
	}
	return p, evts
}

// triageRequests is every triage field of one event: each field without a
// key, plus alert.field[proc.cmdline].
func triageRequests() []harness.Request {
	var reqs []harness.Request
	for _, d := range fields.All() {
		r := harness.Request{Field: d.Name}
		if d.KeyArg {
			r.Arg = "proc.cmdline"
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// BenchmarkExtractAllFieldsOneCall: every triage field of one event in one
// plugin_extract_fields call through the C ABI. Each op is a different
// event than the one before, so the payload is decoded every time.
func BenchmarkExtractAllFieldsOneCall(b *testing.B) {
	p, evts := benchEvents(b)
	reqs := triageRequests()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := p.ExtractOneCall(evts[i%len(evts)], reqs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(reqs)), "fields/op")
}

// BenchmarkExtractAllFieldsEach: the same fields one call each, the way
// libsinsp's filterchecks ask.
func BenchmarkExtractAllFieldsEach(b *testing.B) {
	p, evts := benchEvents(b)
	reqs := triageRequests()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := p.ExtractEach(evts[i%len(evts)], reqs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(reqs)), "fields/op")
}

// BenchmarkExtractOneFieldAfterFirst: one field of an event whose payload
// the plugin already decoded (the cost of every field after the first).
func BenchmarkExtractOneFieldAfterFirst(b *testing.B) {
	p, evts := benchEvents(b)
	req := harness.Request{Field: "risk.level"}
	if _, err := p.Extract(evts[0], req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Extract(evts[0], req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostExtract* time the same calls from a loop in C
// (harness.TimeExtract), the way Falco (C++) makes them: what they measure
// is the plugin and the C ABI crossing, without the Go harness's own
// per-call work (request resolution, C allocations, copying values back
// into Go), which the Go-loop benchmarks above include. Allocations of the
// plugin's runtime are not visible here; see pkg/fields' benchmarks.
func benchHostExtract(b *testing.B, evts []*harness.Event, p *harness.Plugin, reqs []harness.Request, perField bool) {
	d, err := p.TimeExtract(evts, reqs, perField, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "host-ns/op")
	b.ReportMetric(float64(len(reqs)), "fields/op")
}

// BenchmarkHostExtractAllFieldsOneCall: every triage field of one event in
// one call, a different event each round (decoded every time).
func BenchmarkHostExtractAllFieldsOneCall(b *testing.B) {
	p, evts := benchEvents(b)
	benchHostExtract(b, evts, p, triageRequests(), false)
}

// BenchmarkHostExtractAllFieldsEach: the same, one call per field.
func BenchmarkHostExtractAllFieldsEach(b *testing.B) {
	p, evts := benchEvents(b)
	benchHostExtract(b, evts, p, triageRequests(), true)
}

// BenchmarkHostExtractOneFieldAfterFirst: one field of an event the plugin
// already decoded.
func BenchmarkHostExtractOneFieldAfterFirst(b *testing.B) {
	p, evts := benchEvents(b)
	benchHostExtract(b, evts[:1], p, []harness.Request{{Field: "risk.level"}}, false)
}

// BenchmarkHostExtractAsync*: the same with useAsync, where the SDK's
// worker goroutine busy-waits for requests instead of each call entering
// the plugin's Go runtime. Back-to-back calls keep the worker awake, so
// this is async extraction at its best (and one CPU spinning meanwhile).
func BenchmarkHostExtractAsyncAllFieldsOneCall(b *testing.B) {
	p, evts := benchEventsWith(b, `{"useAsync": true}`)
	benchHostExtract(b, evts, p, triageRequests(), false)
}

func BenchmarkHostExtractAsyncOneFieldAfterFirst(b *testing.B) {
	p, evts := benchEventsWith(b, `{"useAsync": true}`)
	benchHostExtract(b, evts[:1], p, []harness.Request{{Field: "risk.level"}}, false)
}

// BenchmarkWebhook* run the load generator against this build: bounded in
// alerts (b.N, at most 200,000) and in time (60 s).
func benchWebhook(b *testing.B, o loadgen.Options) {
	if _, err := os.Stat(sharedAlerts); err != nil {
		b.Skip("../shared/data not present")
	}
	o.Lib, o.Mix, o.MaxDuration = libPath, sharedAlerts, 60*time.Second
	if o.Alerts == 0 {
		o.Alerts = min(max(b.N, 1000), 200_000)
	}
	b.ResetTimer()
	res, err := loadgen.Run(o)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(res.AlertsPerSec, "alerts/s")
	b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(res.P50.Microseconds()), "p50-µs")
}

func BenchmarkWebhookSinglePOST(b *testing.B) {
	benchWebhook(b, loadgen.Options{Mode: "single", Conns: 4, WarmupAlerts: 1000})
}

func BenchmarkWebhookNDJSON(b *testing.B) {
	benchWebhook(b, loadgen.Options{Mode: "ndjson", Batch: 100, Conns: 2, WarmupAlerts: 1000})
}

// BenchmarkWebhookLatency10k paces single-alert POSTs at 10,000 alerts/s
// for 20,000 alerts and reports the delivery latency percentiles.
func BenchmarkWebhookLatency10k(b *testing.B) {
	benchWebhook(b, loadgen.Options{Mode: "single", Conns: 4, Rate: 10_000, Alerts: 20_000, WarmupAlerts: 1000})
}
