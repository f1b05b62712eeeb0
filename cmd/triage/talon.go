package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/talon"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func cmdTalonRules(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("talon-rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var disruptive, outParams listFlag
	fs.Var(&disruptive, "allow-disruptive", "playbook ID (TRG-…) whose disruptive steps (terminate, cordon, drain) may run at critical risk or on an escalation; repeat for several")
	live := fs.Bool("live", false, `write dry_run: "false" (default: every rule is a dry run)`)
	target := fs.String("output-target", "local:file", "Talon output target for evidence (local:file, minio:s3, aws:s3, gcp:gcs)")
	fs.Var(&outParams, "output-param", "KEY=VALUE parameter of the output target; repeat (default destination="+talon.DefaultEvidenceDir+" for local:file)")
	out := fs.String("out", "", "write the rules file here instead of stdout")
	check := fs.String("check", "", "check a Talon rules file strictly (schema, catalogue, gates) instead of generating one")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: triage talon-rules [--allow-disruptive TRG-…]… [--live] [--output-target T --output-param K=V…] [--out FILE]
       triage talon-rules --check FILE [--allow-disruptive TRG-…]… [--live]

Writes a Falco Talon `+talon.Version+` rules file from the knowledge base: for each playbook whose
Kubernetes steps Talon actionners can carry out, rules that match triage's alerts (source
falco_alert) for the upstream rules whose primary playbook it is. Gates: evidence (log, tcpdump)
from high risk up; reversible containment (label, network policy) at critical risk or on an
entity escalation; disruptive actions (terminate, cordon, drain) only for playbooks named with
--allow-disruptive; dry_run "true" unless --live. --check holds an existing file to the same
rules and to Talon's schema, strictly (unknown keys and parameters are errors).
docs/response.md has the details.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	optIn := map[string]bool{}
	for _, id := range disruptive {
		optIn[id] = true
	}
	if *check != "" {
		b, err := os.ReadFile(*check)
		if err != nil {
			fmt.Fprintln(stderr, "triage talon-rules:", err)
			return 2
		}
		rules, errs := talon.Check(b)
		errs = append(errs, talon.CheckGates(rules, talon.GateOptions{Disruptive: optIn, Live: *live})...)
		for _, e := range errs {
			fmt.Fprintln(stderr, *check+":", e)
		}
		if len(errs) > 0 {
			return 1
		}
		fmt.Fprintf(stdout, "%s: %d rules, no problems (Talon %s catalogue)\n", *check, len(rules), talon.Version)
		return 0
	}
	params := map[string]any{}
	for _, p := range outParams {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "triage talon-rules: --output-param %q: want KEY=VALUE\n", p)
			return 2
		}
		params[k] = v
	}
	if len(params) == 0 {
		params = nil
		if *target != "local:file" {
			fmt.Fprintf(stderr, "triage talon-rules: --output-target %s needs --output-param (bucket=…)\n", *target)
			return 2
		}
	}
	k, err := kb.Default()
	if err != nil {
		fmt.Fprintln(stderr, "triage talon-rules:", err)
		return 1
	}
	g, err := talon.Generate(k, talon.Options{Disruptive: optIn, Live: *live, OutputTarget: *target, OutputParams: params})
	if err != nil {
		fmt.Fprintln(stderr, "triage talon-rules:", err)
		return 2
	}
	header := g.Header(kb.AttackVersion, talon.Options{Disruptive: optIn, Live: *live})
	b, err := g.Marshal(header)
	if err != nil {
		fmt.Fprintln(stderr, "triage talon-rules:", err)
		return 1
	}
	// What is written must pass the checker it will be held to.
	rules, errs := talon.Check(b)
	errs = append(errs, talon.CheckGates(rules, talon.GateOptions{Disruptive: optIn, Live: *live})...)
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(stderr, "triage talon-rules: generated:", e)
		}
		return 1
	}
	for _, s := range g.Skipped {
		fmt.Fprintf(stderr, "triage talon-rules: rule %q left out: Talon's output_fields cannot match a name holding , = ! or \"\n", s)
	}
	if *out != "" {
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			fmt.Fprintln(stderr, "triage talon-rules:", err)
			return 1
		}
		fmt.Fprintf(stderr, "triage talon-rules: %d rules for %d playbooks written to %s\n", len(g.Rules), len(g.Playbooks), *out)
		return 0
	}
	_, err = stdout.Write(b)
	if err != nil {
		return 1
	}
	return 0
}
