package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/triage-dev/triage/pkg/kb"
)

var (
	techniqueID  = regexp.MustCompile(`^[Tt]\d{4}(\.\d{3})?$`)
	tacticID     = regexp.MustCompile(`^TA\d{4}$`)
	mitigationID = regexp.MustCompile(`^M\d{4}$`)
)

func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: triage explain NAME

NAME is a Falco rule name (quote it), an ATT&CK technique (T1620, T1059.004), tactic
(TA0005 or defense-evasion), mitigation (M1038) or a triage playbook (TRG-SYS-MEMFD-EXEC).
Prints what the knowledge base knows; exit code 1 when it knows nothing by that name.`)
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	name := strings.TrimSpace(strings.Join(fs.Args(), " "))
	if name == "" {
		fs.Usage()
		return 2
	}
	k, err := kb.Default()
	if err != nil {
		fmt.Fprintln(stderr, "triage explain:", err)
		return 2
	}
	w := &md{w: stdout}
	switch {
	case techniqueID.MatchString(name):
		if t, ok := k.Technique(strings.ToUpper(name)); ok {
			explainTechnique(w, k, t)
			return 0
		}
	case tacticID.MatchString(name):
		if t, ok := k.TacticByID(name); ok {
			explainTactic(w, k, t)
			return 0
		}
	case mitigationID.MatchString(name):
		if m, ok := k.Mitigation(name); ok {
			explainMitigation(w, k, m)
			return 0
		}
	case strings.HasPrefix(strings.ToUpper(name), "TRG-"):
		if p, ok := k.Playbook(strings.ToUpper(name)); ok {
			explainPlaybook(w, k, p)
			return 0
		}
	}
	if t, ok := k.TacticByShortname(strings.ToLower(name)); ok {
		explainTactic(w, k, t)
		return 0
	}
	if r := findRule(k, name); r != nil {
		explainRule(w, k, r)
		return 0
	}
	fmt.Fprintf(stderr, "triage explain: the knowledge base has no rule, technique, tactic, mitigation or playbook named %q\n", name)
	if s := suggestions(k, name); len(s) > 0 {
		fmt.Fprintf(stderr, "did you mean:\n  %s\n", strings.Join(s, "\n  "))
	}
	return 1
}

func findRule(k *kb.KB, name string) *kb.Rule {
	if r, ok := k.Rule(name); ok {
		return r
	}
	for _, r := range k.Rules() {
		if strings.EqualFold(r.Rule, name) {
			return r
		}
	}
	return nil
}

func suggestions(k *kb.KB, name string) []string {
	var out []string
	low := strings.ToLower(name)
	for _, r := range k.Rules() {
		if strings.Contains(strings.ToLower(r.Rule), low) {
			out = append(out, r.Rule)
		}
		if len(out) == 5 {
			break
		}
	}
	return out
}

type md struct{ w io.Writer }

func (m *md) f(format string, args ...any) { fmt.Fprintf(m.w, format+"\n", args...) }

func techniqueLine(k *kb.KB, id string) string {
	if t, ok := k.Technique(id); ok {
		return fmt.Sprintf("%s %s (%s) %s", id, t.Name, strings.Join(t.Tactics, ", "), kb.TechniqueURL(id))
	}
	return id
}

func explainRule(m *md, k *kb.KB, r *kb.Rule) {
	m.f("# Rule: %s", r.Rule)
	m.f("")
	m.f("Source: %s", r.Source)
	m.f("")
	switch r.MappingKind() {
	case kb.KindPosture:
		m.f("Detects a posture or configuration, not an adversary technique: no ATT&CK technique.")
	case kb.KindCatchAll:
		m.f("Matches every event of its kind: no ATT&CK technique.")
	default:
		m.f("ATT&CK techniques:")
		for _, id := range r.Techniques {
			m.f("- %s", techniqueLine(k, id))
		}
	}
	if r.Conflict != "" {
		m.f("")
		m.f("Upstream tags disagree: %s", r.Conflict)
	}
	m.f("")
	m.f("Playbooks:")
	for _, id := range r.Playbooks {
		if p, ok := k.Playbook(id); ok {
			m.f("- %s: %s", id, p.Title)
		}
	}
	m.f("")
	m.f("First triage step: %s", r.Triage)
	if len(r.FalsePositives) > 0 {
		m.f("")
		m.f("Known false positives:")
		for _, fp := range r.FalsePositives {
			m.f("- %s", fp)
		}
	}
}

func explainTechnique(m *md, k *kb.KB, t *kb.Technique) {
	m.f("# %s %s", t.ID, t.Name)
	m.f("")
	m.f("%s", kb.TechniqueURL(t.ID))
	m.f("")
	m.f("Tactics: %s", strings.Join(t.Tactics, ", "))
	m.f("")
	if len(t.Mitigations) == 0 {
		m.f("ATT&CK lists no mitigation for this technique: see the playbooks.")
	} else {
		m.f("ATT&CK mitigations:")
		for _, id := range t.Mitigations {
			if mm, ok := k.Mitigation(id); ok {
				m.f("- %s %s", id, mm.Name)
			}
		}
	}
	if len(t.D3FEND) > 0 {
		m.f("")
		m.f("D3FEND countermeasures:")
		for _, id := range t.D3FEND {
			if d, ok := k.D3FENDTechnique(id); ok {
				m.f("- %s %s %s", id, d.Name, kb.D3FENDURL(d))
			}
		}
	}
	list(m, "Playbooks", naming(k.Playbooks(), t.ID, func(p *kb.Playbook) ([]string, string) { return p.Techniques, p.ID + ": " + p.Title }))
	list(m, "Falco rules mapped to it", naming(k.Rules(), t.ID, func(r *kb.Rule) ([]string, string) { return r.Techniques, r.Rule }))
}

func explainTactic(m *md, k *kb.KB, t kb.Tactic) {
	m.f("# %s %s (%s)", t.ID, t.Name, t.Shortname)
	m.f("")
	m.f("Kill-chain stage %d of %d. https://attack.mitre.org/tactics/%s/", k.Stage(t.ID), len(k.Tactics), t.ID)
	list(m, "Techniques in the knowledge base", naming(k.Techniques(), t.Shortname, func(te *kb.Technique) ([]string, string) { return te.Tactics, te.ID + " " + te.Name }))
}

func explainMitigation(m *md, k *kb.KB, mm *kb.Mitigation) {
	m.f("# %s %s", mm.ID, mm.Name)
	m.f("")
	m.f("%s", kb.MitigationURL(mm.ID))
	list(m, "Mitigates", naming(k.Techniques(), mm.ID, func(te *kb.Technique) ([]string, string) { return te.Mitigations, te.ID + " " + te.Name }))
	list(m, "Applied by playbooks", naming(k.Playbooks(), mm.ID, func(p *kb.Playbook) ([]string, string) { return p.Mitigations, p.ID + ": " + p.Title }))
}

func explainPlaybook(m *md, k *kb.KB, p *kb.Playbook) {
	m.f("# %s: %s", p.ID, p.Title)
	m.f("")
	m.f("%s", strings.TrimSpace(p.Summary))
	m.f("")
	var techs []string
	for _, id := range p.Techniques {
		techs = append(techs, techniqueLine(k, id))
	}
	list(m, "Techniques", techs)
	var mits []string
	for _, id := range p.Mitigations {
		if mm, ok := k.Mitigation(id); ok {
			how := "ATT&CK: mitigates one of the techniques above"
			if k.MitigationProvenance(id, p.Techniques) == kb.ProvenanceTriage {
				how = "recommended by triage; ATT&CK does not relate it to these techniques"
			}
			mits = append(mits, id+" "+mm.Name+" ("+how+")")
		}
	}
	list(m, "Mitigations", mits)
	envs := make([]string, 0, len(p.Variants))
	for env := range p.Variants {
		envs = append(envs, env)
	}
	sort.Slice(envs, func(i, j int) bool { return envOrder(envs[i]) < envOrder(envs[j]) })
	for _, env := range envs {
		v := p.Variants[env]
		m.f("")
		m.f("## %s", env)
		m.f("")
		m.f("Do first: %s", v.Action)
		for i, s := range v.AllSteps() {
			label := fmt.Sprintf("%d.", i+1)
			if i == len(v.Steps) {
				label = "Verify:"
			}
			m.f("")
			m.f("%s %s [%s]", label, s.Title, s.Safety)
			if s.Command != "" {
				m.f("```sh\n%s\n```", strings.TrimRight(s.Command, "\n"))
			}
			if s.YAML != "" {
				m.f("```\n%s\n```", strings.TrimRight(s.YAML, "\n"))
			}
			if s.Note != "" {
				m.f("%s", strings.TrimSpace(s.Note))
			}
			if len(s.Captures) > 0 {
				m.f("Evidence: preserves the %s.", strings.Join(s.Captures, ", "))
			}
			if s.Undo != nil {
				m.f("Undo:")
				if s.Undo.Command != "" {
					m.f("```sh\n%s\n```", strings.TrimRight(s.Undo.Command, "\n"))
				}
				if s.Undo.Note != "" {
					m.f("%s", strings.TrimSpace(s.Undo.Note))
				}
			}
		}
		if len(v.SideEffects) > 0 {
			m.f("")
			m.f("Side effects:")
			for _, s := range v.SideEffects {
				m.f("- %s", s)
			}
		}
	}
	m.f("")
	m.f("{{KEY}} marks a value taken from the alert; reports fill it in shell-quoted.")
	m.f("")
	m.f("References:")
	for _, r := range p.References {
		m.f("- %s %s", r.Title, r.URL)
	}
}

// naming returns the labels of the items whose list (from refs) holds id.
func naming[T any](items []*T, id string, refs func(*T) (list []string, label string)) []string {
	var out []string
	for _, it := range items {
		ids, label := refs(it)
		if slices.Contains(ids, id) {
			out = append(out, label)
		}
	}
	return out
}

func envOrder(env string) int {
	for i, e := range kb.Environments {
		if e == env {
			return i
		}
	}
	return len(kb.Environments)
}

func list(m *md, title string, items []string) {
	if len(items) == 0 {
		return
	}
	m.f("")
	m.f("%s:", title)
	for _, it := range items {
		m.f("- %s", it)
	}
}
