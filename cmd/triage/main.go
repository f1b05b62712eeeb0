// Command triage runs triage's engine without Falco: it enriches NDJSON
// alerts, writes Markdown analysis reports, explains what the knowledge
// base knows, prints the field table, and runs a demo on embedded samples.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/fields"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/input/file"
	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/report"
	"github.com/triage-dev/triage/pkg/risk"
)

//go:embed samples/demo.jsonl
var demoAlerts []byte

const usage = `triage: Falco alert triage without Falco.

Usage:
  triage demo                      report on sample alerts embedded in the binary
  triage enrich [FILE|-]           NDJSON alerts in, NDJSON out with a "triage" object of every field
  triage report [FILE|-] [--min-risk N] [--out DIR]
                                   Markdown analysis reports, per incident or per alert
  triage explain NAME              what the knowledge base knows about a rule, technique,
                                   tactic, mitigation or playbook
  triage fields [--readme FILE [--check]]
                                   the field table; or rewrite (or check) it in a README
  triage route --from kafka://HOST:PORT/TOPIC?group=G --to kafka://HOST:PORT/TOPIC
                                   key Falcosidekick's Kafka alerts by entity (docs/fleet.md)
  triage talon-rules [--allow-disruptive TRG-…] [--live] [--out FILE] | --check FILE
                                   Falco Talon rules from the playbooks, gated by risk (docs/response.md)

Run 'triage COMMAND --help' for a command's options.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "enrich":
		return cmdEnrich(args[1:], stdin, stdout, stderr)
	case "report":
		return cmdReport(args[1:], stdin, stdout, stderr)
	case "explain":
		return cmdExplain(args[1:], stdout, stderr)
	case "fields":
		return cmdFields(args[1:], stdout, stderr)
	case "route":
		return cmdRoute(args[1:], stdout, stderr)
	case "talon-rules":
		return cmdTalonRules(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "triage: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseExit is the exit code for a flag parsing outcome: --help is not
// an error.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// parsed is one good input line.
type parsed struct {
	line  int64
	raw   []byte
	alert *alert.Alert
}

// readAlerts parses NDJSON alerts, reporting bad lines on stderr with
// their number and reason; the good ones come back sorted by alert time
// (stable, so equal times keep input order), as correlation needs.
func readAlerts(r io.Reader, name string, stderr io.Writer, progress func(n int64)) (good []parsed, bad int, err error) {
	var p alert.Parser
	const maxLine = 16 << 20
	err = file.ReadLines(context.Background(), r, name, maxLine, func(line []byte, pos file.LinePos) error {
		if progress != nil {
			progress(pos.LineNo)
		}
		a, err := p.Parse(line)
		if err != nil {
			bad++
			fmt.Fprintf(stderr, "%s:%d: rejected: %v\n", name, pos.LineNo, err)
			return nil
		}
		if a.Source == ingest.LoopSource {
			bad++
			fmt.Fprintf(stderr, "%s:%d: skipped: source %s is triage's own output (loop guard)\n", name, pos.LineNo, ingest.LoopSource)
			return nil
		}
		good = append(good, parsed{line: pos.LineNo, raw: append([]byte(nil), line...), alert: a})
		return nil
	}, func(pos file.LinePos, length int64) {
		bad++
		fmt.Fprintf(stderr, "%s:%d: rejected: line of %d bytes is over the %d byte limit\n", name, pos.LineNo, length, maxLine)
	})
	sort.SliceStable(good, func(i, j int) bool { return good[i].alert.Time < good[j].alert.Time })
	return good, bad, err
}

// process runs the engine over alerts in time order.
func process(good []parsed) (*engine.Engine, []*event.Record, error) {
	eng, err := engine.New(config.Default())
	if err != nil {
		return nil, nil, err
	}
	recs := make([]*event.Record, len(good))
	for i := range good {
		recs[i] = new(event.Record)
		eng.Process(good[i].alert, recs[i])
	}
	return eng, recs, nil
}

func openInput(arg string, stdin io.Reader) (io.Reader, string, func(), error) {
	if arg == "" || arg == "-" {
		return stdin, "stdin", func() {}, nil
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, "", nil, err
	}
	return f, arg, func() { f.Close() }, nil
}

// isTerminal reports whether w is a character device (a person watching).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func progressPrinter(stderr io.Writer) func(int64) {
	if !isTerminal(stderr) {
		return nil
	}
	last := time.Now()
	return func(n int64) {
		if time.Since(last) > 500*time.Millisecond {
			fmt.Fprintf(stderr, "\rread %d lines…", n)
			last = time.Now()
		}
	}
}

func cmdEnrich(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("enrich", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: triage enrich [FILE|-]

Reads NDJSON Falco alerts (Falco or Falcosidekick shape) and writes each good one, in
alert-time order, with a "triage" object holding every triage field (the plugin's names).
Correlation runs across the whole input. Bad lines are reported on stderr with their line
number; the exit code is 1 if any line was rejected, 2 on a usage or read error.`)
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	in, name, closeIn, err := openInput(fs.Arg(0), stdin)
	if err != nil {
		fmt.Fprintln(stderr, "triage enrich:", err)
		return 2
	}
	defer closeIn()
	good, bad, err := readAlerts(in, name, stderr, progressPrinter(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "triage enrich:", err)
		return 2
	}
	eng, recs, err := process(good)
	if err != nil {
		fmt.Fprintln(stderr, "triage enrich:", err)
		return 2
	}
	levels := map[string]int{}
	var out bytes.Buffer
	for i, g := range good {
		out.Reset()
		if err := writeEnriched(&out, g.raw, recs[i], eng.KB()); err != nil {
			fmt.Fprintf(stderr, "%s:%d: %v\n", name, g.line, err)
			bad++
			continue
		}
		if _, err := stdout.Write(out.Bytes()); err != nil {
			fmt.Fprintln(stderr, "triage enrich:", err)
			return 2
		}
		levels[risk.LevelOf(int(recs[i].Risk.Score))]++
	}
	fmt.Fprintf(stderr, "triage enrich: %d alerts enriched (critical %d, high %d, medium %d, low %d), %d lines rejected\n",
		len(good), levels[risk.LevelCritical], levels[risk.LevelHigh], levels[risk.LevelMedium], levels[risk.LevelLow], bad)
	if bad > 0 {
		return 1
	}
	return 0
}

// writeEnriched writes the original alert with a "triage" object added,
// re-encoded so the output is one valid JSON object per line.
func writeEnriched(w *bytes.Buffer, raw []byte, rec *event.Record, k *kb.KB) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("cannot re-encode the alert: %v", err)
	}
	tri := map[string]any{}
	for _, nv := range fields.Values(rec, k) {
		if t, ok := nv.Value.(time.Time); ok {
			tri[nv.Name] = t.UTC().Format(time.RFC3339Nano)
			continue
		}
		tri[nv.Name] = nv.Value
	}
	b, err := json.Marshal(tri)
	if err != nil {
		return err
	}
	obj["triage"] = b
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(obj)
}

func cmdReport(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	minRisk := fs.Int("min-risk", 0, "only reports whose highest alert risk is at least this (0-100)")
	outDir := fs.String("out", "", "write one Markdown file per report into this directory instead of stdout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: triage report [FILE|-] [--min-risk N] [--out DIR]

Writes a Markdown analysis report per incident (alerts correlation grouped on one entity) or
per alert: summary, alert details, what happened, ATT&CK mapping, risk and its factors,
mitigations, the playbook steps for the detected environment with their safety class,
verification, known false positives and references. Alert values in commands are shell-quoted.
Flags go before FILE.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *minRisk < 0 || *minRisk > 100 {
		fmt.Fprintln(stderr, "triage report: --min-risk must be between 0 and 100")
		return 2
	}
	in, name, closeIn, err := openInput(fs.Arg(0), stdin)
	if err != nil {
		fmt.Fprintln(stderr, "triage report:", err)
		return 2
	}
	defer closeIn()
	good, bad, err := readAlerts(in, name, stderr, progressPrinter(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "triage report:", err)
		return 2
	}
	n, err := writeReports(good, *minRisk, *outDir, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "triage report:", err)
		return 2
	}
	fmt.Fprintf(stderr, "triage report: %d reports from %d alerts, %d lines rejected\n", n, len(good), bad)
	if bad > 0 {
		return 1
	}
	return 0
}

func writeReports(good []parsed, minRisk int, outDir string, stdout io.Writer) (int, error) {
	eng, recs, err := process(good)
	if err != nil {
		return 0, err
	}
	window := time.Duration(config.Default().Correlation.WindowSec) * time.Second
	if outDir != "" {
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return 0, err
		}
	}
	n := 0
	for i, g := range report.GroupRecords(recs, window) {
		if g.MaxRisk() < minRisk {
			continue
		}
		n++
		if outDir == "" {
			if n > 1 {
				fmt.Fprint(stdout, "\n---\n\n")
			}
			if err := report.Write(stdout, eng.KB(), g); err != nil {
				return n, err
			}
			continue
		}
		path := filepath.Join(outDir, g.FileName(i+1))
		var buf bytes.Buffer
		if err := report.Write(&buf, eng.KB(), g); err != nil {
			return n, err
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return n, err
		}
		fmt.Fprintln(stdout, path)
	}
	return n, nil
}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: triage demo\n\nRuns the engine over sample alerts embedded in the binary (an attack on one pod plus\nordinary alerts), prints what Falco rules on falco_alert would see for each, then the\nanalysis report of the attack's incident.")
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	good, bad, err := readAlerts(bytes.NewReader(demoAlerts), "demo", stderr, nil)
	if err != nil || bad > 0 {
		fmt.Fprintln(stderr, "triage demo: embedded samples failed to parse:", err)
		return 1
	}
	eng, recs, err := process(good)
	if err != nil {
		fmt.Fprintln(stderr, "triage demo:", err)
		return 1
	}
	fmt.Fprintf(stdout, "triage demo: %d sample alerts, in alert-time order, through the plugin's engine\n\n", len(recs))
	for i, rec := range recs {
		// Round-trip through the event payload, as Falco receives it.
		var got event.Record
		if err := event.Decode(event.Encode(nil, rec), &got); err != nil {
			fmt.Fprintln(stderr, "triage demo:", err)
			return 1
		}
		printSummary(stdout, i+1, &got, eng.KB())
	}
	fmt.Fprint(stdout, "\n================================================================\n\n")
	var incident *report.Group
	window := time.Duration(config.Default().Correlation.WindowSec) * time.Second
	for _, g := range report.GroupRecords(recs, window) {
		if g.IncidentID != "" && (incident == nil || len(g.Records) > len(incident.Records)) {
			incident = g
		}
	}
	if incident == nil {
		fmt.Fprintln(stderr, "triage demo: no incident in the samples")
		return 1
	}
	if err := report.Write(stdout, eng.KB(), incident); err != nil {
		fmt.Fprintln(stderr, "triage demo:", err)
		return 1
	}
	return 0
}

func printSummary(w io.Writer, n int, rec *event.Record, k *kb.KB) {
	vals := map[string]any{}
	for _, nv := range fields.Values(rec, k) {
		vals[nv.Name] = nv.Value
	}
	a := &rec.Alert
	fmt.Fprintf(w, "%2d. %s  %-9s %s\n", n, time.Unix(0, a.Time).UTC().Format("15:04:05"), a.Priority, a.Rule)
	fmt.Fprintf(w, "    risk %s %s (%s)\n", str(vals["risk.score"]), str(vals["risk.level"]), joinList(vals["risk.factors"]))
	fmt.Fprintf(w, "    ATT&CK %s  mitigations %s  playbook %s\n", joinList(vals["mitre.techniques"]), joinList(vals["mitigation.ids"]), joinList(vals["mitigation.playbooks"]))
	fmt.Fprintf(w, "    entity %s: %s alerts, tactics %s", str(vals["entity.id"]), str(vals["entity.alerts"]), joinList(vals["entity.tactics"]))
	if inc, ok := vals["incident.id"]; ok {
		fmt.Fprintf(w, ", %v", inc)
	}
	fmt.Fprintln(w)
	if esc, ok := vals["entity.escalation"]; ok {
		fmt.Fprintf(w, "    ESCALATED: %s\n", joinList(esc))
	}
}

func str(v any) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(v)
}

func joinList(v any) string {
	l, ok := v.([]string)
	if !ok || len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ", ")
}

const (
	readmeBegin = "<!-- README-PLUGIN-FIELDS -->"
	readmeEnd   = "<!-- /README-PLUGIN-FIELDS -->"
)

func cmdFields(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fields", flag.ContinueOnError)
	fs.SetOutput(stderr)
	readme := fs.String("readme", "", "rewrite the table between "+readmeBegin+" and "+readmeEnd+" in this file")
	check := fs.Bool("check", false, "with --readme: only check that the table is current; exit 1 if not")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	table := fields.MarkdownTable()
	if *readme == "" {
		fmt.Fprint(stdout, table)
		return 0
	}
	old, err := os.ReadFile(*readme)
	if err != nil {
		fmt.Fprintln(stderr, "triage fields:", err)
		return 2
	}
	updated, err := replaceBetween(string(old), readmeBegin, readmeEnd, "\n"+table)
	if err != nil {
		fmt.Fprintf(stderr, "triage fields: %s: %v\n", *readme, err)
		return 2
	}
	if *check {
		if updated != string(old) {
			fmt.Fprintf(stderr, "triage fields: the field table in %s is out of date; run 'make readme-fields'\n", *readme)
			return 1
		}
		return 0
	}
	if updated == string(old) {
		return 0
	}
	if err := os.WriteFile(*readme, []byte(updated), 0o644); err != nil {
		fmt.Fprintln(stderr, "triage fields:", err)
		return 2
	}
	return 0
}

func replaceBetween(s, begin, end, content string) (string, error) {
	i := strings.Index(s, begin)
	j := strings.Index(s, end)
	if i < 0 || j < 0 || j < i {
		return "", errors.New("markers " + begin + " and " + end + " not found in order")
	}
	return s[:i+len(begin)] + content + s[j:], nil
}
