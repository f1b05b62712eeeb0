// Command loadgen measures triage: `loadgen run` drives libtriage.so's
// webhook on loopback with test/harness as Falco (bounded in alerts and
// time) and prints one JSON result; `loadgen report` runs the stage
// benchmarks and the webhook scenarios (each run in its own process) and
// writes the measured section of docs/performance.md. `make bench` runs
// the report. `loadgen entities` measures the memory of the process that
// loaded the plugin while many distinct entities go through its file
// input (docs/performance.md, docs/correlation.md "Memory").
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/triage-dev/triage/test/loadgen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen run [flags] | loadgen report [flags] | loadgen entities [flags] | loadgen idle [flags] | loadgen stall [flags] | loadgen flood [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	case "entities":
		err = entitiesCmd(os.Args[2:])
	case "idle":
		err = idleCmd(os.Args[2:])
	case "stall":
		err = stallCmd(os.Args[2:])
	case "flood":
		err = floodCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var o loadgen.Options
	var extract string
	fs.StringVar(&o.Lib, "lib", "libtriage.so", "plugin library")
	fs.StringVar(&o.InitConfig, "config", "{}", "init_config")
	fs.StringVar(&o.Mix, "mix", "../shared/data/alerts/upstream-rules.jsonl", "alert templates (NDJSON)")
	fs.StringVar(&o.Mode, "mode", "single", "single (one alert per POST) or ndjson")
	fs.IntVar(&o.Batch, "batch", 100, "alerts per POST in ndjson mode")
	fs.IntVar(&o.Conns, "conns", 4, "keep-alive connections")
	fs.IntVar(&o.Alerts, "alerts", 50000, "alerts to send (bound)")
	fs.IntVar(&o.WarmupAlerts, "warmup", 2000, "alerts sent before measuring")
	fs.Float64Var(&o.Rate, "rate", 0, "target alerts/s (0: as fast as accepted)")
	fs.DurationVar(&o.MaxDuration, "max-duration", 30*time.Second, "bound on the run")
	fs.StringVar(&extract, "extract", "", "comma-separated fields extracted per event (one call each, like Falco)")
	fs.BoolVar(&o.Bare, "bare", false, "naive baseline: a do-nothing net/http server instead of the plugin")
	fs.Parse(args)
	if extract != "" {
		o.Extract = strings.Split(extract, ",")
	}
	res, err := loadgen.Run(o)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, res.Describe())
	return json.NewEncoder(os.Stdout).Encode(res)
}

// entitiesCmd: N distinct entities through the plugin's file input;
// prints the process's peak and final RSS as JSON.
func entitiesCmd(args []string) error {
	fs := flag.NewFlagSet("entities", flag.ExitOnError)
	var o loadgen.EntitiesOptions
	fs.StringVar(&o.Lib, "lib", "libtriage.so", "plugin library")
	fs.StringVar(&o.InitConfig, "config", "", "init_config (default: correlation.maxEntities = -n)")
	fs.StringVar(&o.Mix, "mix", "../shared/data/alerts/upstream-rules.jsonl", "alert templates (NDJSON; syscall ones used)")
	fs.IntVar(&o.Entities, "n", 1000000, "distinct entities (containers)")
	fs.IntVar(&o.PerEntity, "per", 1, "alerts per entity")
	fs.StringVar(&o.Dir, "dir", "", "directory for the generated NDJSON file (default: a temporary one)")
	fs.Parse(args)
	res, err := loadgen.RunEntities(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d alerts, %d entities: peak RSS %.0f MiB (%.0f MB), final RSS %.0f MiB, after init %.0f MiB, harness heap %.1f MiB, %.1f s\n",
		res.Delivered, o.Entities, res.PeakRSSMiB, res.PeakRSSMiB*1.048576, res.FinalRSSMiB, res.InitRSSMiB, res.HarnessHeap, res.Elapsed)
	return json.NewEncoder(os.Stdout).Encode(res)
}
