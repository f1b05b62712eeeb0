// Package report writes Markdown analysis reports from enriched alerts:
// per incident when correlation grouped alerts on one entity, else per
// alert. Everything in a report comes from the alert, the engine's fields
// and the knowledge base; nothing is invented. Commands are filled with
// alert values through kb.RenderCommand, which shell-quotes them.
package report

import (
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strings"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/risk"
)

// Group is what one report covers: the alerts of one entity's episode.
type Group struct {
	IncidentID string
	EntityID   string
	Records    []*event.Record // in alert-time order
}

// MaxRisk is the highest alert risk score in the group.
func (g *Group) MaxRisk() int {
	m := 0
	for _, r := range g.Records {
		m = max(m, int(r.Risk.Score))
	}
	return m
}

// Title names the report.
func (g *Group) Title() string {
	if g.IncidentID != "" {
		return fmt.Sprintf("Incident %s on %s", g.IncidentID, code(g.EntityID))
	}
	return fmt.Sprintf("Alert: %s on %s", code(g.Records[0].Alert.Rule), code(g.EntityID))
}

// FileName is a safe file name for the report.
func (g *Group) FileName(n int) string {
	if g.IncidentID != "" {
		return g.IncidentID + ".md"
	}
	var b strings.Builder
	for _, c := range strings.ToLower(g.Records[0].Alert.Rule) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() >= 48 {
			break
		}
	}
	return fmt.Sprintf("alert-%04d-%s.md", n, strings.Trim(b.String(), "-"))
}

// GroupRecords groups records (already in alert-time order) by entity
// episode, as correlation does: an episode ends after window without an
// alert on the entity. An episode becomes an incident report when any of
// its alerts carries an incident ID; other episodes give one report per
// alert.
func GroupRecords(recs []*event.Record, window time.Duration) []*Group {
	type episode struct {
		g    *Group
		last int64
	}
	open := map[string]*episode{}
	var order []*Group
	for _, r := range recs {
		id := r.Corr.EntityID
		ep := open[id]
		if ep == nil || r.Alert.Time-ep.last > int64(window) {
			ep = &episode{g: &Group{EntityID: id}}
			open[id] = ep
			order = append(order, ep.g)
		}
		ep.g.Records = append(ep.g.Records, r)
		ep.last = max(ep.last, r.Alert.Time)
		if ep.g.IncidentID == "" && r.Corr.IncidentID != "" {
			ep.g.IncidentID = r.Corr.IncidentID
		}
	}
	var out []*Group
	for _, g := range order {
		if g.IncidentID != "" {
			out = append(out, g)
			continue
		}
		for _, r := range g.Records {
			out = append(out, &Group{EntityID: g.EntityID, Records: []*event.Record{r}})
		}
	}
	return out
}

// Write renders one report.
func Write(w io.Writer, k *kb.KB, g *Group) error {
	m := &md{w: w}
	recs := g.Records
	last := recs[len(recs)-1]
	first := recs[0]

	m.line("# %s", g.Title())
	m.blank()
	m.line("## Summary")
	m.blank()
	worst := recs[0]
	for _, r := range recs {
		if r.Risk.Score > worst.Risk.Score {
			worst = r
		}
	}
	if len(recs) > 1 {
		m.line("- %d alerts on %s (%s) from %s to %s.", len(recs), code(g.EntityID), last.Corr.Kind, ts(first.Alert.Time), ts(last.Alert.Time))
	} else {
		m.line("- %s alert from rule %s on %s (%s) at %s, host %s, source %s.", first.Alert.Priority, code(first.Alert.Rule),
			code(g.EntityID), first.Corr.Kind, ts(first.Alert.Time), orNA(first.Alert.Hostname), orNA(first.Alert.Source))
	}
	m.line("- Highest alert risk: **%d (%s)**, from %s.", worst.Risk.Score, risk.LevelOf(int(worst.Risk.Score)), code(worst.Alert.Rule))
	if last.Corr.Set {
		m.line("- Entity risk score %d (%s), risk sum %d in the risk window.", last.Corr.EntityScore, risk.LevelOf(int(last.Corr.EntityScore)), last.Corr.RiskSum)
		if names := tacticNames(k, last.Corr.Tactics); len(names) > 0 {
			m.line("- Kill chain reached: %s (furthest: %s).", strings.Join(names, " → "), names[len(names)-1])
		}
	}
	var escalations []string
	for _, r := range recs {
		for _, e := range r.Corr.Escalation {
			escalations = append(escalations, fmt.Sprintf("%s at %s (%s)", e, ts(r.Alert.Time), code(r.Alert.Rule)))
		}
	}
	if len(escalations) > 0 {
		m.line("- Escalations: %s.", strings.Join(escalations, "; "))
	}
	if g.IncidentID != "" {
		m.line("- Correlation: %s.", strings.Join(last.Corr.Reasons, ", "))
	}
	for _, l := range outcomeSummary(recs) {
		m.line("- %s", l)
	}
	m.line("- Environment: %s; guidance below is for that environment.", envName(last.KB.Env))
	m.blank()

	m.line("## Alerts")
	m.blank()
	m.line("| Time (UTC) | Priority | Rule | Risk | Techniques | Repeat |")
	m.line("|---|---|---|---|---|---|")
	for _, r := range recs {
		m.line("| %s | %s | %s | %d %s | %s | %d |", ts(r.Alert.Time), r.Alert.Priority, code(r.Alert.Rule), r.Risk.Score,
			risk.LevelOf(int(r.Risk.Score)), cell(strings.Join(r.KB.Techniques, ", ")), r.Corr.DedupCount)
	}
	m.blank()
	for i, r := range recs {
		if len(recs) > 1 {
			m.line("### Alert %d: %s", i+1, code(r.Alert.Rule))
			m.blank()
		} else {
			m.line("### Alert details")
			m.blank()
		}
		m.line("| Field | Value |")
		m.line("|---|---|")
		m.line("| host | %s |", code(r.Alert.Hostname))
		m.line("| source | %s |", code(r.Alert.Source))
		if r.Alert.UUID != "" {
			m.line("| uuid | %s |", code(r.Alert.UUID))
		}
		for _, f := range r.Alert.Fields {
			if f.Kind == alert.KindNull {
				continue
			}
			m.line("| %s | %s |", code(f.Key), code(f.Value))
		}
		if r.Alert.Output != "" {
			m.blank()
			m.fence("text", visible(r.Alert.Output, false))
		}
		m.blank()
	}

	m.line("## What happened")
	m.blank()
	seenRule := map[string]bool{}
	for _, r := range recs {
		if seenRule[r.Alert.Rule] {
			continue
		}
		seenRule[r.Alert.Rule] = true
		m.line("%s: %s%s", code(r.Alert.Rule), whatHappened(k, r), outcomeNote(r))
		m.blank()
	}

	m.line("## ATT&CK mapping (v%s)", kb.AttackVersion)
	m.blank()
	m.line("| Technique | Name | Tactics | Rule |")
	m.line("|---|---|---|---|")
	var conflicts []string
	for _, r := range recs {
		if seenRule[r.Alert.Rule+"\x00mapped"] {
			continue
		}
		seenRule[r.Alert.Rule+"\x00mapped"] = true
		for _, id := range r.KB.Techniques {
			name, tactics := id, ""
			if t, ok := k.Technique(id); ok {
				name, tactics = t.Name, strings.Join(t.Tactics, ", ")
			}
			m.line("| [%s](%s) | %s | %s | %s |", id, kb.TechniqueURL(id), cell(name), tactics, code(r.Alert.Rule))
		}
		if len(r.KB.Techniques) == 0 {
			what := "no technique known (mapping: " + r.KB.Via + ")"
			if rule, ok := k.Rule(r.Alert.Rule); ok && r.KB.Via == kb.ViaRuleMap {
				switch rule.MappingKind() {
				case kb.KindPosture:
					what = "none: the rule reports a configuration or posture, not an adversary technique"
				case kb.KindCatchAll:
					what = "none: the rule matches every event of its kind"
				}
			}
			m.line("| – | %s | %s | %s |", what, strings.Join(tacticShort(k, r.KB.Tactics), ", "), code(r.Alert.Rule))
		}
		if r.KB.Conflict != "" {
			conflicts = append(conflicts, fmt.Sprintf("%s: %s", code(r.Alert.Rule), r.KB.Conflict))
		}
	}
	m.blank()
	if len(conflicts) > 0 {
		m.line("Where the upstream rule tags disagree with this mapping:")
		m.blank()
		for _, c := range conflicts {
			m.line("- %s", c)
		}
		m.blank()
	}

	m.line("## Risk")
	m.blank()
	m.line("Score = impact × confidence / 100 + context, with asset criticality as an odds update; bands low ≤ 21 < medium ≤ 47 < high ≤ 73 < critical (see docs/risk-model.md).")
	m.blank()
	for _, r := range recs {
		m.line("- %s: **%d (%s)**: %s", code(r.Alert.Rule), r.Risk.Score, risk.LevelOf(int(r.Risk.Score)), cell(strings.Join(r.Risk.Factors, ", ")))
	}
	m.blank()

	mitigations, d3fend, playbooks := collect(recs)
	m.line("## Mitigations")
	m.blank()
	if len(mitigations) == 0 {
		m.line("ATT&CK lists no mitigation for these techniques; the playbook steps below are the guidance.")
	}
	for _, id := range mitigations {
		name := id
		if mm, ok := k.Mitigation(id); ok {
			name = mm.Name
		}
		m.line("- [%s](%s) %s: %s", id, kb.MitigationURL(id), name, provenanceText(k, id, recs))
	}
	for _, id := range d3fend {
		if d, ok := k.D3FENDTechnique(id); ok {
			m.line("- D3FEND [%s](%s) %s", id, kb.D3FENDURL(d), d.Name)
		}
	}
	m.blank()

	m.line("## Response")
	m.blank()
	m.line("Safety classes: *investigate* reads only (evidence copies go to %s); *contain* is reversible and keeps volatile state (suspend, isolate, lock), with its undo; *harden* is a reversible configuration change, with its undo; *disrupt* stops a process, container, session or instance (it can be restarted, but memory and connections are lost); *destructive* deletes and cannot be undone. Evidence steps come before the steps that disrupt or destroy. Values from the alert are shell-quoted and placed where they cannot be read as options or patterns: they are attacker-controlled.", kb.EvidenceDir)
	m.blank()
	for _, pid := range playbooks {
		p, ok := k.Playbook(pid)
		if !ok {
			continue
		}
		src := recordFor(recs, pid)
		env, v := p.Variant(src.KB.Env)
		if v == nil {
			continue
		}
		m.line("### %s (%s, %s)", p.Title, p.ID, envName(env))
		m.blank()
		m.line("**Do first:** %s", v.Action)
		m.blank()
		lookup := lookupFor(&src.Alert)
		for i, s := range v.Steps {
			writeStep(m, fmt.Sprintf("%d.", i+1), &s, lookup)
		}
		if v.Verify != nil {
			writeStep(m, "Verify:", v.Verify, lookup)
		}
		if len(v.SideEffects) > 0 {
			m.line("Side effects:")
			m.blank()
			for _, s := range v.SideEffects {
				m.line("- %s", s)
			}
			m.blank()
		}
	}

	m.line("## Triage notes and known false positives")
	m.blank()
	done := map[string]bool{}
	for _, r := range recs {
		if done[r.Alert.Rule] {
			continue
		}
		done[r.Alert.Rule] = true
		rule, ok := k.Rule(r.Alert.Rule)
		if !ok {
			m.line("- %s: a custom rule; the knowledge base has no rule-specific notes.", code(r.Alert.Rule))
			continue
		}
		m.line("- %s: %s", code(r.Alert.Rule), rule.Triage)
		for _, fp := range rule.FalsePositives {
			m.line("  - False positive: %s", fp)
		}
	}
	m.blank()

	m.line("## References")
	m.blank()
	refs := map[string]bool{}
	for _, pid := range playbooks {
		if p, ok := k.Playbook(pid); ok {
			for _, ref := range p.References {
				if !refs[ref.URL] {
					refs[ref.URL] = true
					m.line("- [%s](%s)", ref.Title, ref.URL)
				}
			}
		}
	}
	m.line("- MITRE ATT&CK® v%s, © The MITRE Corporation; D3FEND™, © The MITRE Corporation (see NOTICE).", kb.AttackVersion)
	return m.err
}

// provenanceText says whether ATT&CK relates a mitigation to the
// techniques of these alerts, and to which, or triage recommends it.
func provenanceText(k *kb.KB, id string, recs []*event.Record) string {
	var related []string
	for _, r := range recs {
		for _, t := range r.KB.Techniques {
			if k.MitigationProvenance(id, []string{t}) == kb.ProvenanceATTACK {
				related = appendOnce(related, t)
			}
		}
	}
	if len(related) == 0 {
		return "recommended by triage (ATT&CK does not relate it to these techniques)"
	}
	return "ATT&CK: mitigates " + strings.Join(related, ", ")
}

func appendOnce(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

func writeStep(m *md, label string, s *kb.Step, lookup func(string) (string, bool)) {
	m.line("%s **%s** [%s]", label, s.Title, s.Safety)
	m.blank()
	if s.Command != "" {
		m.fence("sh", strings.TrimRight(kb.RenderCommand(s.Command, lookup), "\n"))
		m.blank()
	}
	if s.YAML != "" {
		lang := s.Lang
		if lang == "" {
			lang = "yaml"
		}
		m.fence(lang, strings.TrimRight(kb.RenderYAML(s.YAML, lookup), "\n"))
		m.blank()
	}
	if s.Note != "" {
		m.line("%s", strings.TrimSpace(s.Note))
		m.blank()
	}
	if len(s.Captures) > 0 {
		m.line("Evidence: preserves the %s before later steps end it.", strings.Join(s.Captures, ", "))
		m.blank()
	}
	if s.Undo != nil {
		m.line("Undo:")
		m.blank()
		if s.Undo.Command != "" {
			m.fence("sh", strings.TrimRight(kb.RenderCommand(s.Undo.Command, lookup), "\n"))
			m.blank()
		}
		if s.Undo.Note != "" {
			m.line("%s", strings.TrimSpace(s.Undo.Note))
			m.blank()
		}
	}
}

// whatHappened explains an alert from the knowledge base: the primary
// playbook's summary, else the technique names.
func whatHappened(k *kb.KB, r *event.Record) string {
	if len(r.KB.Playbooks) > 0 {
		if p, ok := k.Playbook(r.KB.Playbooks[0]); ok {
			return strings.TrimSpace(p.Summary)
		}
	}
	var names []string
	for _, id := range r.KB.Techniques {
		if t, ok := k.Technique(id); ok {
			names = append(names, fmt.Sprintf("%s (%s)", t.Name, id))
		}
	}
	if len(names) > 0 {
		return "The rule is tagged with " + strings.Join(names, ", ") + "; the knowledge base has no playbook for this rule."
	}
	return "The knowledge base does not know this rule and its tags name no ATT&CK technique."
}

func collect(recs []*event.Record) (mitigations, d3fend, playbooks []string) {
	add := func(list []string, v string) []string {
		for _, x := range list {
			if x == v {
				return list
			}
		}
		return append(list, v)
	}
	// Highest-risk alert's playbooks first.
	sorted := append([]*event.Record{}, recs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Risk.Score > sorted[j].Risk.Score })
	for _, r := range sorted {
		for _, v := range r.KB.Mitigations {
			mitigations = add(mitigations, v)
		}
		for _, v := range r.KB.D3FEND {
			d3fend = add(d3fend, v)
		}
		for _, v := range r.KB.Playbooks {
			playbooks = add(playbooks, v)
		}
	}
	return
}

func recordFor(recs []*event.Record, playbook string) *event.Record {
	for _, r := range recs {
		for _, p := range r.KB.Playbooks {
			if p == playbook {
				return r
			}
		}
	}
	return recs[0]
}

func lookupFor(a *alert.Alert) func(string) (string, bool) {
	return func(key string) (string, bool) {
		switch key {
		case "alert.hostname":
			return a.Hostname, a.Hostname != ""
		case "alert.rule":
			return a.Rule, true
		case "alert.source":
			return a.Source, a.Source != ""
		case "triage.payload":
			p := risk.Payload(a)
			return p, p != ""
		}
		f, ok := a.Field(key)
		if !ok || f.Kind == alert.KindNull {
			return "", false
		}
		return f.Value, true
	}
}

func tacticNames(k *kb.KB, mask uint16) []string {
	var out []string
	for i := 0; i < bits.Len16(mask) && i < len(k.Tactics); i++ {
		if mask&(1<<i) != 0 {
			out = append(out, k.Tactics[i].Name)
		}
	}
	return out
}

func tacticShort(k *kb.KB, ids []string) []string {
	var out []string
	for _, id := range ids {
		if t, ok := k.TacticByID(id); ok {
			out = append(out, t.Shortname)
		}
	}
	return out
}

func envName(env string) string {
	switch env {
	case kb.EnvK8s:
		return "Kubernetes"
	case kb.EnvContainer:
		return "container"
	case kb.EnvHost:
		return "host"
	case kb.EnvAWS:
		return "AWS"
	case kb.EnvGCP:
		return "Google Cloud"
	case kb.EnvOkta:
		return "Okta"
	case kb.EnvGitHub:
		return "GitHub"
	}
	return orNA(env)
}

func ts(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000") }

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return code(s)
}

// md writes Markdown, keeping the first write error.
type md struct {
	w   io.Writer
	err error
}

func (m *md) line(format string, args ...any) {
	if m.err == nil {
		_, m.err = fmt.Fprintf(m.w, format+"\n", args...)
	}
}

func (m *md) blank() { m.line("") }

// fence writes a fenced block whose fence is longer than any backtick run
// in the content, so alert text cannot close it.
func (m *md) fence(lang, content string) {
	f := strings.Repeat("`", max(3, longestRun(content, '`')+1))
	m.line("%s%s\n%s\n%s", f, lang, content, f)
}

func longestRun(s string, c byte) int {
	best, cur := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			cur++
			best = max(best, cur)
		} else {
			cur = 0
		}
	}
	return best
}

// code renders a value from an alert (attacker-controlled) as an inline
// code span: nothing in it can add Markdown structure, links or HTML, a
// table cell's | is escaped, and control characters show as \xNN so
// neither a terminal nor a viewer acts on them.
func code(s string) string {
	if s == "" {
		return ""
	}
	s = strings.ReplaceAll(visible(s, true), "|", "\\|")
	f := strings.Repeat("`", longestRun(s, '`')+1)
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	return f + pad + s + pad + f
}

// cell escapes plain text for a table cell.
func cell(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ", "|", "\\|").Replace(s)
}

// visible replaces control characters (C0, DEL, C1) with \xNN or \u00NN
// text so that escape sequences and carriage returns in alert values
// neither drive a terminal nor hide text. Newlines and tabs stay in
// multi-line blocks (oneLine false) and become \n and \t on one line.
func visible(s string, oneLine bool) string {
	clean := true
	for _, r := range s {
		if isControl(r) && (oneLine || (r != '\n' && r != '\t')) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !isControl(r) || (!oneLine && (r == '\n' || r == '\t')):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		}
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }
