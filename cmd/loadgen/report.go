package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/triage-dev/triage/test/loadgen"
)

const (
	beginMark = "<!-- BENCH-RESULTS -->"
	endMark   = "<!-- /BENCH-RESULTS -->"
)

// bench is one benchmark's metrics (median over runs), by unit.
type bench map[string]float64

// triageFields are what the shipped rules' outputs and conditions ask of
// each event; the async/sync scenario extracts them per event, one call
// each, like Falco evaluating and formatting a rule.
var triageFields = []string{
	"alert.rule", "alert.priority", "risk.score", "risk.level", "risk.factors", "mitre.techniques",
	"mitre.tactics", "mitigation.action", "entity.id", "entity.escalated", "incident.id", "alert.field[proc.cmdline]",
}

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	lib := fs.String("lib", "libtriage.so", "plugin library (default build)")
	mix := fs.String("mix", "../shared/data/alerts/upstream-rules.jsonl", "alert mix")
	out := fs.String("out", "docs/performance.md", "report to update (between its BENCH-RESULTS markers)")
	count := fs.Int("count", 3, "runs per micro-benchmark (the median is reported)")
	fs.Parse(args)
	libAbs, _ := filepath.Abs(*lib)
	mixAbs, _ := filepath.Abs(*mix)
	if _, err := os.Stat(mixAbs); err != nil {
		return fmt.Errorf("alert mix: %w", err)
	}

	results := map[string]bench{}
	micro := []struct{ pkg, re, benchtime string }{
		{"./pkg/alert", "^BenchmarkParse", "1s"},
		{"./pkg/engine", "^Benchmark(Enrich|Process)$", "1s"},
		{"./pkg/fields", ".", "1s"},
		{"./test", "^Benchmark(Host)?Extract", "1s"},
		{"./test/harness", "^BenchmarkHostExtractFloor", "1s"},
	}
	for _, m := range micro {
		if err := goBench(results, libAbs, m.pkg, m.re, m.benchtime, *count); err != nil {
			return err
		}
	}
	for _, m := range []struct{ pkg, re string }{{"./pkg/correlate", "^BenchmarkMillionEntities$"}, {"./pkg/correlate", "^BenchmarkTenMillionAlertsRSS$"}} {
		if err := goBench(results, libAbs, m.pkg, m.re, "1x", 1); err != nil {
			return err
		}
	}

	base := loadgen.Options{Mix: mixAbs, MaxDuration: 60 * time.Second, WarmupAlerts: 2000}
	type scenario struct {
		name string
		o    loadgen.Options
	}
	// The async scenarios differ from the sync ones only by init_config.
	const asyncOn = `{"useAsync": true}`
	with := func(f func(*loadgen.Options)) loadgen.Options { o := base; o.Lib = libAbs; f(&o); return o }
	scenarios := []scenario{
		{"single", with(func(o *loadgen.Options) { o.Mode, o.Conns, o.Alerts = "single", 4, 60_000 })},
		{"ndjson", with(func(o *loadgen.Options) { o.Mode, o.Batch, o.Conns, o.Alerts = "ndjson", 100, 2, 200_000 })},
		{"bare/single", with(func(o *loadgen.Options) { o.Bare, o.Mode, o.Conns, o.Alerts = true, "single", 4, 60_000 })},
		{"bare/ndjson", with(func(o *loadgen.Options) { o.Bare, o.Mode, o.Batch, o.Conns, o.Alerts = true, "ndjson", 100, 2, 200_000 })},
		{"latency10k", with(func(o *loadgen.Options) { o.Mode, o.Conns, o.Rate, o.Alerts = "single", 4, 10_000, 30_000 })},
		{"latency10k/ndjson10", with(func(o *loadgen.Options) {
			o.Mode, o.Batch, o.Conns, o.Rate, o.Alerts = "ndjson", 10, 2, 10_000, 30_000
		})},
		{"sync+extract", with(func(o *loadgen.Options) {
			o.Mode, o.Conns, o.Alerts, o.Extract, o.MaxDuration = "single", 4, 20_000, triageFields, 30*time.Second
		})},
		{"async+extract", with(func(o *loadgen.Options) {
			o.InitConfig, o.Mode, o.Conns, o.Alerts, o.Extract, o.MaxDuration = asyncOn, "single", 4, 20_000, triageFields, 30*time.Second
		})},
		{"sync+extract/ndjson", with(func(o *loadgen.Options) {
			o.Mode, o.Batch, o.Conns, o.Alerts, o.Extract, o.MaxDuration = "ndjson", 100, 2, 40_000, triageFields, 30*time.Second
		})},
		{"async+extract/ndjson", with(func(o *loadgen.Options) {
			o.InitConfig, o.Mode, o.Batch, o.Conns, o.Alerts, o.Extract, o.MaxDuration = asyncOn, "ndjson", 100, 2, 40_000, triageFields, 30*time.Second
		})},
	}
	load := map[string]loadgen.Result{}
	for _, s := range scenarios {
		var runs []loadgen.Result
		reps := 1
		if strings.Contains(s.name, "extract") {
			reps = 3 // the extraction scenarios vary most: median of 3
		}
		for r := 0; r < reps; r++ {
			res, err := runScenario(s.o)
			if err != nil {
				return fmt.Errorf("scenario %s: %w", s.name, err)
			}
			fmt.Fprintf(os.Stderr, "loadgen: %-22s %s\n", s.name, res.Describe())
			runs = append(runs, res)
		}
		slices.SortFunc(runs, func(a, b loadgen.Result) int { return int(a.AlertsPerSec - b.AlertsPerSec) })
		load[s.name] = runs[len(runs)/2]
	}
	section := render(results, load, *count, scenarios[0].o)
	return writeSection(*out, section)
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

var (
	benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*ns/op.*)$`)
	benchName = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?(?:\s|$)`)
	benchRest = regexp.MustCompile(`^\d+\s+(.*ns/op.*)$`)
)

// parseBenchOutput collects every value of every unit per benchmark from go
// test -bench output.
func parseBenchOutput(out string) map[string]map[string][]float64 {
	samples := map[string]map[string][]float64{}
	pending := "" // a benchmark whose result line was split by log output
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			// go test prints the name, then runs the benchmark: the plugin's
			// own log lines (stderr of the same process) can land between
			// the name and its numbers.
			if n := benchName.FindStringSubmatch(line); n != nil {
				pending = n[1]
			} else if r := benchRest.FindStringSubmatch(line); r != nil && pending != "" {
				m = []string{line, pending, r[1]}
				pending = ""
			}
			if m == nil {
				continue
			}
		}
		f := strings.Fields(m[2])
		if samples[m[1]] == nil {
			samples[m[1]] = map[string][]float64{}
		}
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				samples[m[1]][f[i+1]] = append(samples[m[1]][f[i+1]], v)
			}
		}
	}
	return samples
}

func goBench(into map[string]bench, lib, pkg, re, benchtime string, count int) error {
	args := []string{"test", "-run", "^$", "-bench", re, "-benchmem", "-benchtime", benchtime, "-count", strconv.Itoa(count), "-timeout", "10m", pkg}
	fmt.Fprintf(os.Stderr, "loadgen: go %s\n", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "TRIAGE_LIB="+lib)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, os.Stderr
	if err := cmd.Run(); err != nil {
		os.Stderr.Write(buf.Bytes())
		return fmt.Errorf("go test -bench %s %s: %w", re, pkg, err)
	}
	samples := parseBenchOutput(buf.String())
	for name, units := range samples {
		b := bench{}
		for u, vs := range units {
			slices.Sort(vs)
			b[u] = vs[len(vs)/2]
		}
		into[name] = b
	}
	return nil
}

// runScenario runs one load scenario in a fresh process, so each library
// (and each run) gets its own Go runtimes.
func runScenario(o loadgen.Options) (loadgen.Result, error) {
	self, err := os.Executable()
	if err != nil {
		return loadgen.Result{}, err
	}
	args := []string{"run", "-lib", o.Lib, "-mix", o.Mix, "-mode", o.Mode, "-batch", strconv.Itoa(o.Batch),
		"-conns", strconv.Itoa(o.Conns), "-alerts", strconv.Itoa(o.Alerts), "-warmup", strconv.Itoa(o.WarmupAlerts),
		"-rate", strconv.FormatFloat(o.Rate, 'f', -1, 64), "-max-duration", o.MaxDuration.String(),
		"-extract", strings.Join(o.Extract, ","), "-bare=" + strconv.FormatBool(o.Bare)}
	cmd := exec.Command(self, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		os.Stderr.Write(stderr.Bytes())
		return loadgen.Result{}, err
	}
	var res loadgen.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, err
	}
	res.Options = o
	return res, nil
}

func machine() string {
	var b strings.Builder
	if out, err := exec.Command("lscpu").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			for _, k := range []string{"Model name:", "CPU(s):", "Thread(s) per core:", "Hypervisor vendor:", "L3 cache:"} {
				if strings.HasPrefix(l, k) {
					fmt.Fprintf(&b, "- %s\n", strings.Join(strings.Fields(l), " "))
				}
			}
		}
	}
	if out, err := exec.Command("nproc").Output(); err == nil {
		fmt.Fprintf(&b, "- nproc: %s\n", strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(&b, "- Go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "- load average when the report finished: %s (other processes share these cores)\n", strings.Join(strings.Fields(string(data))[:3], " "))
	}
	return b.String()
}

func render(r map[string]bench, load map[string]loadgen.Result, count int, _ loadgen.Options) string {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	get := func(name, unit string) float64 { return r[name][unit] }
	naive := get("BenchmarkParseNaiveBaseline", "alerts/s")
	ratio := func(v float64) string {
		if naive == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f×", v/naive)
	}
	w("%s\n", beginMark)
	w("_Generated by `make bench` on %s; edit the text outside these markers only._\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	w("### Machine\n\n%s\n", machine())

	w("### Targets\n\n| Target | Goal | Measured | Status |\n|---|---|---|---|\n")
	row := func(name, goal string, measured float64, unit string, higherBetter bool, target float64) {
		status := "met"
		switch {
		case measured == 0:
			status = "not measured"
		case higherBetter && measured < target:
			status = fmt.Sprintf("misses by %.0f%% (%.2f× of goal)", 100*(1-measured/target), measured/target)
		case !higherBetter && measured > target:
			status = fmt.Sprintf("misses by %.0f%% (%.1f× the goal)", 100*(measured/target-1), measured/target)
		}
		w("| %s | %s | %s %s | %s |\n", name, goal, fmtNum(measured), unit, status)
	}
	row("enrichment in-process, 242-alert mix, one core", "≥ 250,000 alerts/s", get("BenchmarkEnrich", "alerts/s"), "alerts/s", true, 250_000)
	row("allocations per alert (enrichment)", "≤ 2", get("BenchmarkEnrich", "allocs/op"), "allocs", false, 2)
	row("extraction: all triage fields of one event, one call (C ABI, calls timed in C)", "≤ 2 µs", get("BenchmarkHostExtractAllFieldsOneCall", "host-ns/op")/1000, "µs", false, 2)
	row("extraction: all triage fields, one call each (C ABI, calls timed in C)", "≤ 2 µs", get("BenchmarkHostExtractAllFieldsEach", "host-ns/op")/1000, "µs", false, 2)
	row("extraction: one field after the first (C ABI, calls timed in C)", "≤ 100 ns", get("BenchmarkHostExtractOneFieldAfterFirst", "host-ns/op"), "ns", false, 100)
	if f := get("BenchmarkHostExtractFloor", "host-ns/op"); f > 0 {
		w("| (naive baseline: a plugin-sdk-go field answered with a constant, same loop) | | %s ns | floor of one synchronous extract_fields call here |\n", fmtNum(f))
	}
	row("webhook, single-alert POSTs, keep-alive", "≥ 30,000 alerts/s", load["single"].AlertsPerSec, "alerts/s", true, 30_000)
	row("webhook, NDJSON batches of 100", "≥ 150,000 alerts/s", load["ndjson"].AlertsPerSec, "alerts/s", true, 150_000)
	if b := load["bare/single"].AlertsPerSec; b > 0 {
		w("| (naive baseline: do-nothing net/http server, same senders) | | %s alerts/s single POSTs, %s NDJSON | ceiling of this machine and client |\n",
			fmtNum(b), fmtNum(load["bare/ndjson"].AlertsPerSec))
	}
	row("p99 accepted → delivered at 10,000 alerts/s offered, single POSTs ("+fmtNum(load["latency10k"].AlertsPerSec)+" alerts/s achieved)", "≤ 50 ms", float64(load["latency10k"].P99.Microseconds())/1000, "ms", false, 50)
	row("p99 accepted → delivered at 10,000 alerts/s offered, NDJSON of 10 ("+fmtNum(load["latency10k/ndjson10"].AlertsPerSec)+" alerts/s achieved)", "≤ 50 ms", float64(load["latency10k/ndjson10"].P99.Microseconds())/1000, "ms", false, 50)
	row("RSS with 1,000,000 entities", "≤ 200 MB", get("BenchmarkMillionEntities", "rss-MiB")*1.048576, "MB", false, 200)
	first, last := get("BenchmarkTenMillionAlertsRSS", "rss-MiB@1M"), get("BenchmarkTenMillionAlertsRSS", "rss-MiB@10M")
	flat := "flat"
	if first == 0 || last > first*1.10 {
		flat = "grows"
	}
	w("| RSS over 10,000,000 alerts (100,000-entity cap) | flat | %.0f MiB after 1 M, %.0f MiB after 10 M | %s |\n\n", first, last, flat)

	w("### Stages (median of %d runs; ratio = alerts/s ÷ the naive parse in the same run)\n\n", count)
	w("| Benchmark | ns/op | alerts/s | allocs/op | B/op | ratio to naive |\n|---|---|---|---|---|---|\n")
	for _, n := range []string{"BenchmarkParseNaiveBaseline", "BenchmarkParse", "BenchmarkEnrich", "BenchmarkProcess", "BenchmarkDecode",
		"BenchmarkDecodeAllFields", "BenchmarkOneFieldDecoded", "BenchmarkExtractAllFieldsOneCall", "BenchmarkExtractAllFieldsEach", "BenchmarkExtractOneFieldAfterFirst"} {
		x, ok := r[n]
		if !ok {
			continue
		}
		aps := x["alerts/s"]
		if aps == 0 && x["ns/op"] > 0 && !strings.Contains(n, "OneField") {
			aps = 1e9 / x["ns/op"] // one alert (event) per op
		}
		rt := "-"
		if aps > 0 {
			rt = ratio(aps)
		}
		w("| %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(n, "Benchmark"), fmtNum(x["ns/op"]), fmtNum(aps), fmtNum(x["allocs/op"]), fmtNum(x["B/op"]), rt)
	}
	w("\nExtraction timed from a loop in C (`harness.TimeExtract`: what a C++ host such as Falco pays; the Go-loop `Extract*` rows above add the Go harness's own per-call work). `Async` rows use `useAsync: true`; `HostExtractFloor*` is the naive baseline: test/harness's self-test plugin answering a constant, synchronous and async.\n\n")
	w("| Benchmark | host ns/op | fields/op |\n|---|---|---|\n")
	for _, n := range []string{"BenchmarkHostExtractAllFieldsOneCall", "BenchmarkHostExtractAllFieldsEach", "BenchmarkHostExtractOneFieldAfterFirst",
		"BenchmarkHostExtractAsyncAllFieldsOneCall", "BenchmarkHostExtractAsyncOneFieldAfterFirst", "BenchmarkHostExtractFloor", "BenchmarkHostExtractFloorAsync"} {
		if x, ok := r[n]; ok {
			w("| %s | %s | %s |\n", strings.TrimPrefix(n, "Benchmark"), fmtNum(x["host-ns/op"]), fmtNum(x["fields/op"]))
		}
	}
	w("\nMemory: %s heap B/entity and %s MiB RSS with 1,000,000 entities (`BenchmarkMillionEntities`).\n\n",
		fmtNum(get("BenchmarkMillionEntities", "heap-B/entity")), fmtNum(get("BenchmarkMillionEntities", "rss-MiB")))

	w("### Webhook on loopback (test/loadgen; harness as Falco; one run each, extraction scenarios median of 3)\n\n")
	w("`bare/*` is the naive baseline: the same senders against a do-nothing net/http server on loopback (reads the body, answers 200), measured in the same run; the last column divides by it (single-POST scenarios by `bare/single`, NDJSON ones by `bare/ndjson`).\n\n")
	w("| Scenario | alerts | alerts/s | p50 | p99 | max | 503 retries | ratio to bare |\n|---|---|---|---|---|---|---|---|\n")
	for _, n := range []string{"bare/single", "bare/ndjson", "single", "ndjson", "latency10k", "latency10k/ndjson10", "sync+extract", "async+extract", "sync+extract/ndjson", "async+extract/ndjson"} {
		x, ok := load[n]
		if !ok {
			continue
		}
		name := n
		if x.TimedOut {
			name += " (hit the time bound)"
		}
		base := load["bare/single"].AlertsPerSec
		if x.Options.Mode == "ndjson" {
			base = load["bare/ndjson"].AlertsPerSec
		}
		rt, p50, p99, mx := "-", "-", "-", "-"
		if base > 0 && x.Options.Rate == 0 { // a paced scenario sends what it is told
			rt = fmt.Sprintf("%.2f×", x.AlertsPerSec/base)
		}
		if !x.Options.Bare {
			p50, p99, mx = x.P50.Round(time.Microsecond).String(), x.P99.Round(time.Microsecond).String(), x.Max.Round(time.Microsecond).String()
		}
		w("| %s | %d | %s | %s | %s | %s | %d | %s |\n", name, x.Delivered, fmtNum(x.AlertsPerSec), p50, p99, mx, x.Retries503, rt)
	}
	w("\n`+extract` scenarios extract %d fields per event, one call each: %s.\n", len(triageFields), "`"+strings.Join(triageFields, "`, `")+"`")
	if s, a := load["sync+extract"].AlertsPerSec, load["async+extract"].AlertsPerSec; s > 0 && a > 0 {
		w("Async/sync throughput ratio: %.2f (single POSTs)", a/s)
		if sn, an := load["sync+extract/ndjson"].AlertsPerSec, load["async+extract/ndjson"].AlertsPerSec; sn > 0 && an > 0 {
			w(", %.2f (NDJSON)", an/sn)
		}
		w(".\n")
	}
	w("%s\n", endMark)
	return b.String()
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		s := strconv.FormatFloat(v, 'f', 0, 64)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		return s
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// writeSection replaces the generated section of the report, or writes a
// report holding only it when the file has no markers yet.
func writeSection(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	var out string
	if i >= 0 && j > i {
		rest := s[j+len(endMark):]
		out = s[:i] + section + strings.TrimPrefix(rest, "\n")
	} else {
		out = "# Performance\n\n" + section + s
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "loadgen: wrote %s\n", path)
	return os.WriteFile(path, []byte(out), 0o644)
}
