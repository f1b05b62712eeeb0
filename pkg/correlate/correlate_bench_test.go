package correlate

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/triage-dev/triage/pkg/config"
)

// BenchmarkTenMillionAlertsRSS observes 10,000,000 alerts from 250,000
// distinct containers with the default cap (100,000 entities, so eviction
// runs all along) and a handful of rules, alert time advancing 1 ms per
// alert. It reports RSS and the live heap after the first and the last
// million alerts: flat memory means each pair agrees.
func BenchmarkTenMillionAlertsRSS(b *testing.B) {
	const n, entities = 10_000_000, 250_000
	rules := []string{"Terminal shell in container", "Read sensitive file untrusted", "Drop and execute new binary in container", "Outbound Connection to C2 Servers"}
	ids := make([]string, entities)
	for i := range ids {
		ids[i] = "c" + strconv.Itoa(i)
	}
	for b.Loop() {
		tr := newTracker(nil)
		a := containerAlert("", rules[0], storyStartTime)
		var first, firstHeap float64
		for i := 0; i < n; i++ {
			a.Fields[0].Value = ids[(i*7919)%entities]
			a.Rule = rules[i%len(rules)]
			a.Time = storyStartTime + int64(i)*1e6
			tr.Observe(Input{Alert: a, Score: uint8(i % 101), Tactics: 1 << (i % 14)})
			if i == 1_000_000 {
				runtime.GC()
				first, firstHeap = rssMiB(), heapMiB()
			}
		}
		runtime.GC()
		last, lastHeap := rssMiB(), heapMiB()
		if tr.Tracked() != int64(config.Default().Correlation.MaxEntities) {
			b.Fatal(tr.Tracked())
		}
		b.ReportMetric(first, "rss-MiB@1M")
		b.ReportMetric(last, "rss-MiB@10M")
		b.ReportMetric(firstHeap, "heap-MiB@1M")
		b.ReportMetric(lastHeap, "heap-MiB@10M")
		b.ReportMetric(float64(tr.Evicted()), "evicted")
	}
}

// heapMiB is the live heap (call after runtime.GC).
func heapMiB() float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}
