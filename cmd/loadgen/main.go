// Command loadgen measures triage: `loadgen run` drives libtriage.so's
// webhook on loopback with test/harness as Falco (bounded in alerts and
// time) and prints one JSON result; `loadgen report` runs the stage
// benchmarks and the webhook scenarios (each run in its own process) and
// writes the measured section of docs/performance.md. `make bench` runs
// the report.
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
		fmt.Fprintln(os.Stderr, "usage: loadgen run [flags] | loadgen report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
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
