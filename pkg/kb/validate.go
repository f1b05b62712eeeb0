package kb

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

var (
	tacticIDPattern     = regexp.MustCompile(`^TA\d{4}$`)
	techniqueIDPattern  = regexp.MustCompile(`^T\d{4}(\.\d{3})?$`)
	mitigationIDPattern = regexp.MustCompile(`^M\d{4}$`)
	d3fendIDPattern     = regexp.MustCompile(`^D3-[A-Z0-9]+$`)
	playbookIDPattern   = regexp.MustCompile(`^TRG-[A-Z0-9]+(-[A-Z0-9]+)+$`)
)

// RuleSources are the Falco event sources the rule map covers.
var RuleSources = map[string]string{
	"syscall":        EnvHost,
	"k8s_audit":      EnvK8s,
	"aws_cloudtrail": EnvAWS,
	"gcp_auditlog":   EnvGCP,
	"okta":           EnvOkta,
	"github":         EnvGitHub,
}

var evidenceTargets = map[string]bool{TargetProcess: true, TargetContainer: true, TargetPod: true, TargetInstance: true, TargetTask: true}

// forbidden are command fragments that do harm whatever the alert: the
// kind of advice triage exists to replace.
var forbidden = []struct {
	re  *regexp.Regexp
	why string
}{
	{regexp.MustCompile(`\bsetenforce\s+(0|[Pp]ermissive)\b`), "turns SELinux enforcement off"},
	{regexp.MustCompile(`\bchmod\s+(-[a-zA-Z]*R|--recursive)\b[^\n]*\s/(dev|etc|usr|bin|sbin|lib|var|proc|sys|boot)?(\s|/|$)`), "recursive chmod on a system path"},
	{regexp.MustCompile(`\bchown\s+(-[a-zA-Z]*R|--recursive)\b[^\n]*\s/(dev|etc|usr|bin|sbin|lib|var|proc|sys|boot)?(\s|/|$)`), "recursive chown on a system path"},
	{regexp.MustCompile(`\brm\s+-[a-zA-Z]*[rR][a-zA-Z]*\s+(--\s+)?/(\s|$|\*|dev|etc|usr|bin|sbin|lib|var|proc|sys|boot)`), "recursive delete of a system path"},
	{regexp.MustCompile(`\b(systemctl\s+(stop|disable|mask)\s+(falco|auditd|apparmor)|aa-teardown|auditctl\s+-e\s*0)\b`), "disables security tooling"},
	{regexp.MustCompile(`\bsysctl\b[^\n]*\bmemfd_create\b`), "there is no memfd_create sysctl (vm.memfd_noexec is the real one)"},
}

func (k *KB) validate() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	if len(k.Tactics) != 14 {
		bad("tactics: want the 14 ATT&CK Enterprise tactics, got %d", len(k.Tactics))
	}
	for _, t := range k.Tactics {
		if !tacticIDPattern.MatchString(t.ID) || t.Shortname == "" || t.Name == "" {
			bad("tactic %q: needs an id TA####, a shortname and a name", t.ID)
		}
	}
	for id, t := range k.techniques {
		if !techniqueIDPattern.MatchString(id) {
			bad("technique %q: id must look like T1234 or T1234.001", id)
		}
		if t.Name == "" {
			bad("technique %s: no name", id)
		}
		if len(t.Tactics) == 0 {
			bad("technique %s: no tactics", id)
		}
		for _, s := range t.Tactics {
			if _, ok := k.tacticByShort[s]; !ok {
				bad("technique %s: unknown tactic %q", id, s)
			}
		}
		if parent, _, isSub := strings.Cut(id, "."); isSub {
			if _, ok := k.techniques[parent]; !ok {
				bad("technique %s: its parent %s is missing", id, parent)
			}
		}
		for _, m := range t.Mitigations {
			if _, ok := k.mitigations[m]; !ok {
				bad("technique %s: unknown mitigation %s", id, m)
			}
		}
		for _, d := range t.D3FEND {
			if _, ok := k.d3fend[d]; !ok {
				bad("technique %s: unknown D3FEND technique %s", id, d)
			}
		}
	}
	for id, m := range k.mitigations {
		if !mitigationIDPattern.MatchString(id) || m.Name == "" {
			bad("mitigation %q: needs an id M#### and a name", id)
		}
	}
	for id, d := range k.d3fend {
		if !d3fendIDPattern.MatchString(id) || d.Name == "" {
			bad("d3fend %q: needs an id D3-XXX and a name", id)
		}
	}
	for id, p := range k.playbooks {
		for _, e := range k.validatePlaybook(p) {
			bad("playbook %s: %s", id, e)
		}
		for env, v := range p.Variants {
			if v == nil {
				continue
			}
			for _, e := range lintVariant(v) {
				bad("playbook %s/%s %s", id, env, e)
			}
		}
	}
	sort.Strings(errs)
	for name, r := range k.rules {
		if _, ok := RuleSources[r.Source]; !ok {
			bad("rule %q: unknown source %q", name, r.Source)
		}
		switch r.MappingKind() {
		case KindTechnique:
			if len(r.Techniques) == 0 {
				bad("rule %q: no techniques (a rule that detects a posture or matches everything says kind: posture or kind: catch-all)", name)
			}
		case KindPosture, KindCatchAll:
			if len(r.Techniques) > 0 {
				bad("rule %q: kind %s maps to no technique; found %v", name, r.Kind, r.Techniques)
			}
		default:
			bad("rule %q: kind %q is not one of technique, posture, catch-all", name, r.Kind)
		}
		for _, t := range r.Techniques {
			if _, ok := k.techniques[t]; !ok {
				bad("rule %q: unknown technique %s", name, t)
			}
		}
		if len(r.Playbooks) == 0 {
			bad("rule %q: no playbooks", name)
		}
		for _, p := range r.Playbooks {
			if _, ok := k.playbooks[p]; !ok {
				bad("rule %q: unknown playbook %s", name, p)
			}
		}
		if strings.TrimSpace(r.Triage) == "" {
			bad("rule %q: no triage step", name)
		}
	}
	return errs
}

func (k *KB) validatePlaybook(p *Playbook) []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !playbookIDPattern.MatchString(p.ID) {
		bad("id must look like TRG-AREA-NAME")
	}
	if strings.TrimSpace(p.Title) == "" || strings.TrimSpace(p.Summary) == "" {
		bad("needs a title and a summary")
	}
	if len(p.Techniques) == 0 {
		bad("no techniques")
	}
	for _, t := range p.Techniques {
		if _, ok := k.techniques[t]; !ok {
			bad("unknown technique %s", t)
		}
	}
	for _, m := range p.Mitigations {
		if _, ok := k.mitigations[m]; !ok {
			bad("unknown mitigation %s", m)
		}
	}
	for _, d := range p.D3FEND {
		if _, ok := k.d3fend[d]; !ok {
			bad("unknown D3FEND technique %s", d)
		}
	}
	if len(p.Variants) == 0 {
		bad("no variants")
	}
	for env, v := range p.Variants {
		known := false
		for _, e := range Environments {
			known = known || e == env
		}
		if !known {
			bad("unknown variant %q (want one of %s)", env, strings.Join(Environments, ", "))
			continue
		}
		if v == nil {
			bad("variant %s is empty", env)
			continue
		}
		if a := strings.TrimSpace(v.Action); a == "" || strings.Contains(a, "\n") {
			bad("variant %s: action must be one line", env)
		}
		if len(v.Steps) == 0 {
			bad("variant %s: no steps", env)
		}
		acts := false
		for i, s := range v.Steps {
			for _, e := range ValidateStep(&s) {
				bad("variant %s step %d (%s): %s", env, i+1, s.Title, e)
			}
			acts = acts || s.Safety != SafetyInvestigate
		}
		if v.Verify == nil {
			bad("variant %s: no verify step", env)
		} else {
			for _, e := range ValidateStep(v.Verify) {
				bad("variant %s verify: %s", env, e)
			}
			if v.Verify.Safety != SafetyInvestigate {
				bad("variant %s: verify step must be safety investigate", env)
			}
		}
		if acts && len(v.SideEffects) == 0 {
			bad("variant %s: contain/harden/destructive steps need side_effects", env)
		}
	}
	if len(p.References) == 0 {
		bad("no references")
	}
	for _, r := range p.References {
		if r.Title == "" || !strings.HasPrefix(r.URL, "https://") {
			bad("reference %q: needs a title and an https URL", r.URL)
		}
	}
	return errs
}

// ValidateStep checks one step's shape and its command's safety rules.
// Parsing with bash and shellcheck happens in tests, which can run them.
func ValidateStep(s *Step) []string {
	var errs []string
	if strings.TrimSpace(s.Title) == "" {
		errs = append(errs, "no title")
	}
	if _, ok := SafetyRank[s.Safety]; !ok {
		errs = append(errs, fmt.Sprintf("safety %q is not one of investigate, contain, harden, disrupt, destructive", s.Safety))
	}
	if s.Command == "" && s.YAML == "" && s.Note == "" {
		errs = append(errs, "needs a command, yaml or note")
	}
	if s.Safety == SafetyDestructive && strings.TrimSpace(s.Note) == "" {
		errs = append(errs, "a destructive step needs a note saying what it destroys")
	}
	if s.Safety == SafetyDisrupt && strings.TrimSpace(s.Note) == "" {
		errs = append(errs, "a disrupt step needs a note saying what is lost")
	}
	for _, c := range s.Captures {
		if !evidenceTargets[c] {
			errs = append(errs, fmt.Sprintf("captures %q is not one of process, container, pod, instance, task", c))
		}
	}
	if len(s.Captures) > 0 && s.Safety != SafetyInvestigate {
		errs = append(errs, "an evidence step (captures) must be safety investigate")
	}
	if s.Undo != nil {
		if s.Undo.Command == "" && strings.TrimSpace(s.Undo.Note) == "" {
			errs = append(errs, "undo needs a command or a note")
		}
		if s.Undo.Command != "" {
			for _, e := range CheckTemplate(s.Undo.Command) {
				errs = append(errs, "undo: "+e)
			}
		}
	}
	if s.Command != "" {
		errs = append(errs, CheckTemplate(s.Command)...)
		for _, f := range forbidden {
			if f.re.MatchString(s.Command) {
				errs = append(errs, "forbidden command: "+f.why)
			}
		}
	}
	if s.YAML != "" {
		errs = append(errs, checkPlaceholders(s.YAML, false)...)
	}
	switch s.Lang {
	case "", "yaml", "json", "conf", "text":
	default:
		errs = append(errs, fmt.Sprintf("lang %q is not one of yaml, json, conf, text", s.Lang))
	}
	return errs
}
