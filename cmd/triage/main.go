// Command triage runs triage's engine without Falco: it enriches NDJSON
// alerts, prints the field table, and runs a demo on embedded samples.
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
	"sort"
	"strings"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/fields"
	"github.com/triage-dev/triage/pkg/input"
	"github.com/triage-dev/triage/pkg/kb"
)

//go:embed samples/demo.jsonl
var demoAlerts []byte

const usage = `triage: Falco alert triage without Falco.

Usage:
  triage demo                      enrich the embedded sample alerts and print a summary
  triage enrich [FILE|-]           NDJSON alerts in, NDJSON out with a "triage" object of every field
  triage fields [--readme FILE [--check]]
                                   print the field table; or rewrite (or check) it in a README

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
	case "fields":
		return cmdFields(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "triage: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// enrichStream reads NDJSON alerts, calls emit for each good one in input
// order, and reports bad lines on stderr with their number. It returns
// the number of alerts and of rejected lines.
func enrichStream(r io.Reader, name string, stderr io.Writer, emit func(eng *engine.Engine, rec *event.Record, raw []byte) error) (ok, bad int, err error) {
	var p alert.Parser
	eng, err := engine.New(config.Default())
	if err != nil {
		return 0, 0, err
	}
	var rec event.Record
	maxLine := 16 << 20
	readErr := input.ReadLines(context.Background(), r, name, maxLine, func(line []byte, pos input.LinePos) error {
		a, err := p.Parse(line)
		if err != nil {
			bad++
			fmt.Fprintf(stderr, "%s:%d: rejected: %v\n", name, pos.LineNo, err)
			return nil
		}
		if a.Source == input.LoopSource {
			bad++
			fmt.Fprintf(stderr, "%s:%d: skipped: source %s is triage's own output (loop guard)\n", name, pos.LineNo, input.LoopSource)
			return nil
		}
		eng.Process(a, &rec)
		ok++
		return emit(eng, &rec, line)
	}, func(pos input.LinePos, length int64) {
		bad++
		fmt.Fprintf(stderr, "%s:%d: rejected: line of %d bytes is over the %d byte limit\n", name, pos.LineNo, length, maxLine)
	})
	return ok, bad, readErr
}

func cmdEnrich(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("enrich", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: triage enrich [FILE|-]\n\nReads NDJSON Falco alerts (Falco or Falcosidekick shape) and writes each good one\nwith a \"triage\" object holding every triage field. Bad lines are reported on stderr\nwith their line number; the exit code is 1 if any line was rejected.")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	in, name, closeIn, err := openInput(fs.Arg(0), stdin)
	if err != nil {
		fmt.Fprintln(stderr, "triage enrich:", err)
		return 2
	}
	defer closeIn()
	var out bytes.Buffer
	ok, bad, err := enrichStream(in, name, stderr, func(eng *engine.Engine, rec *event.Record, raw []byte) error {
		out.Reset()
		if err := writeEnriched(&out, raw, rec, eng.KB()); err != nil {
			return err
		}
		_, err := stdout.Write(out.Bytes())
		return err
	})
	if err != nil {
		fmt.Fprintln(stderr, "triage enrich:", err)
		return 2
	}
	fmt.Fprintf(stderr, "triage enrich: %d alerts enriched, %d lines rejected\n", ok, bad)
	if bad > 0 {
		return 1
	}
	return 0
}

// writeEnriched writes the original alert object with a "triage" key added.
func writeEnriched(w *bytes.Buffer, raw []byte, rec *event.Record, k *kb.KB) error {
	obj := bytes.TrimSpace(raw)
	obj = bytes.TrimSuffix(obj, []byte("}"))
	w.Write(obj)
	if !bytes.HasSuffix(bytes.TrimSpace(obj), []byte("{")) {
		w.WriteByte(',')
	}
	w.WriteString(`"triage":{`)
	for i, nv := range fields.Values(rec, k) {
		if i > 0 {
			w.WriteByte(',')
		}
		k, _ := json.Marshal(nv.Name)
		v, err := json.Marshal(jsonValue(nv.Value))
		if err != nil {
			return err
		}
		w.Write(k)
		w.WriteByte(':')
		w.Write(v)
	}
	w.WriteString("}}\n")
	return nil
}

func jsonValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return v
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

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: triage demo\n\nRuns the engine over sample alerts embedded in the binary (an attack on one\ncontainer plus ordinary alerts) and prints what Falco rules would see.")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fmt.Fprintf(stdout, "triage demo: %d embedded sample alerts through the plugin's engine\n\n", bytes.Count(demoAlerts, []byte("\n")))
	byPriority := map[string]int{}
	n := 0
	_, bad, err := enrichStream(bytes.NewReader(demoAlerts), "demo", stderr, func(eng *engine.Engine, rec *event.Record, _ []byte) error {
		n++
		// Round-trip through the event payload, exactly as Falco would
		// receive and extract it.
		var got event.Record
		if err := event.Decode(event.Encode(nil, rec), &got); err != nil {
			return err
		}
		a := &got.Alert
		byPriority[a.Priority.String()]++
		vals := map[string]any{}
		for _, nv := range fields.Values(&got, eng.KB()) {
			vals[nv.Name] = nv.Value
		}
		fmt.Fprintf(stdout, "%2d. %s  %-13s %s\n", n, time.Unix(0, a.Time).UTC().Format("15:04:05.000"), a.Priority, a.Rule)
		fmt.Fprintf(stdout, "    source=%s  env=%s  host=%s\n", orDash(a.Source), str(vals["mitigation.env"]), a.Hostname)
		if f, ok := a.Field("proc.cmdline"); ok {
			fmt.Fprintf(stdout, "    alert.field[proc.cmdline]=%q\n", f.Value)
		}
		fmt.Fprintf(stdout, "    risk:        %s %s  (%s)\n", str(vals["risk.score"]), str(vals["risk.level"]), joinList(vals["risk.factors"]))
		fmt.Fprintf(stdout, "    ATT&CK:      %s  (%s)  tactics=%s\n", joinList(vals["mitre.techniques"]), joinList(vals["mitre.technique.names"]), joinList(vals["mitre.tactics"]))
		if c, ok := vals["mitre.conflict"]; ok {
			fmt.Fprintf(stdout, "    tag conflict: %v\n", c)
		}
		fmt.Fprintf(stdout, "    mitigations: %s  D3FEND=%s\n", joinList(vals["mitigation.ids"]), joinList(vals["mitigation.d3fend"]))
		fmt.Fprintf(stdout, "    playbook:    %s  [%s]\n", joinList(vals["mitigation.playbooks"]), str(vals["mitigation.safety"]))
		fmt.Fprintf(stdout, "    action:      %s\n", str(vals["mitigation.action"]))
		if g, ok := vals["guide.triage"]; ok {
			fmt.Fprintf(stdout, "    triage:      %v\n", g)
		}
		fmt.Fprintf(stdout, "    entity:      %s  alerts=%s tactics=%s score=%s",
			str(vals["entity.id"]), str(vals["entity.alerts"]), joinList(vals["entity.tactics"]), str(vals["entity.risk.score"]))
		if inc, ok := vals["incident.id"]; ok {
			fmt.Fprintf(stdout, "  incident=%v (%s)", inc, joinList(vals["incident.reasons"]))
		}
		fmt.Fprintln(stdout)
		if esc, ok := vals["entity.escalation"]; ok {
			fmt.Fprintf(stdout, "    ESCALATED:   %s\n", joinList(esc))
		}
		fmt.Fprintln(stdout)
		return nil
	})
	if err != nil || bad > 0 {
		fmt.Fprintln(stderr, "triage demo: sample data failed to process:", err)
		return 1
	}
	keys := make([]string, 0, len(byPriority))
	for k := range byPriority {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		pi, _ := alert.ParsePriority(keys[i])
		pj, _ := alert.ParsePriority(keys[j])
		return pi > pj
	})
	fmt.Fprintf(stdout, "\n%d alerts:", n)
	for _, k := range keys {
		fmt.Fprintf(stdout, " %s=%d", k, byPriority[k])
	}
	fmt.Fprintln(stdout)
	return 0
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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
		return 2
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
