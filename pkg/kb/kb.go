// Package kb is triage's knowledge base: ATT&CK tactics, techniques and
// mitigations, D3FEND countermeasures, triage's playbooks, and the map from
// Falco rule names to all of them. The content is YAML under data/,
// embedded and validated once; this package only loads, checks and looks up.
package kb

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

//go:embed data
var embedded embed.FS

// AttackVersion is the ATT&CK release the knowledge base follows.
const AttackVersion = "18.1"

// Safety classes of playbook steps, from harmless to irreversible
// (docs/knowledge-base.md, "Safety classes"). The validator classifies
// every command by what it does and refuses a step whose command does more
// than its class allows.
const (
	// SafetyInvestigate reads only; evidence copies go to the evidence directory.
	SafetyInvestigate = "investigate"
	// SafetyContain is reversible and keeps volatile state (suspend, isolate, label, lock).
	SafetyContain = "contain"
	// SafetyHarden is a reversible configuration change that prevents a repeat.
	SafetyHarden = "harden"
	// SafetyDisrupt stops a process, container, session or instance: it can be
	// restarted, but volatile state (memory, connections, sessions) is lost.
	SafetyDisrupt = "disrupt"
	// SafetyDestructive deletes irreversibly.
	SafetyDestructive = "destructive"
)

// SafetyRank orders the classes by how much a step may do; contain and
// harden are both reversible changes and share a rank.
var SafetyRank = map[string]int{SafetyInvestigate: 0, SafetyContain: 1, SafetyHarden: 1, SafetyDisrupt: 2, SafetyDestructive: 3}

// Evidence targets: what a disrupt or destructive step ends, and what an
// evidence step (captures:) preserves before it does.
const (
	TargetProcess   = "process"
	TargetContainer = "container"
	TargetPod       = "pod"
	TargetInstance  = "instance"
	// TargetTask is an ECS task: from outside, its description and logs
	// are all the evidence there is (Fargate exposes no memory or disk).
	TargetTask = "task"
)

// Mapping kinds of a rule (Rule.Kind).
const (
	// KindTechnique: the rule detects an ATT&CK technique (the default).
	KindTechnique = "technique"
	// KindPosture: the rule reports a configuration or posture (a root
	// container, an ingress without TLS), not an adversary technique.
	KindPosture = "posture"
	// KindCatchAll: the rule matches every event of a kind (All K8s Audit
	// Events) and says nothing about technique.
	KindCatchAll = "catch-all"
)

// Environments a playbook variant can target.
const (
	EnvHost      = "host"
	EnvContainer = "container"
	EnvK8s       = "k8s"
	EnvAWS       = "aws"
	EnvGCP       = "gcp"
	EnvOkta      = "okta"
	EnvGitHub    = "github"
)

// Environments lists every environment, in the order reports show them.
var Environments = []string{EnvHost, EnvContainer, EnvK8s, EnvAWS, EnvGCP, EnvOkta, EnvGitHub}

type Tactic struct {
	ID        string `yaml:"id"`
	Shortname string `yaml:"shortname"`
	Name      string `yaml:"name"`
}

type Technique struct {
	ID          string   `yaml:"id"`
	Name        string   `yaml:"name"`
	Tactics     []string `yaml:"tactics"`
	Mitigations []string `yaml:"mitigations"`
	D3FEND      []string `yaml:"d3fend"`
}

type Mitigation struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

type D3FEND struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

type Step struct {
	Title   string `yaml:"title"`
	Safety  string `yaml:"safety"`
	Command string `yaml:"command"`
	YAML    string `yaml:"yaml"`
	// Lang says what the yaml snippet is when it is not YAML or JSON
	// (conf: rsyslog/fstab/systemd style config; text: anything else).
	Lang string `yaml:"lang"`
	Note string `yaml:"note"`
	// Undo says how to reverse a contain or harden step.
	Undo *Undo `yaml:"undo"`
	// Captures names the targets an evidence step preserves (process,
	// container, pod, instance) before a later step ends them.
	Captures []string `yaml:"captures"`
}

// Undo reverses a step: a command template, a note, or both.
type Undo struct {
	Command string `yaml:"command"`
	Note    string `yaml:"note"`
}

type Variant struct {
	Action      string   `yaml:"action"`
	Steps       []Step   `yaml:"steps"`
	Verify      *Step    `yaml:"verify"`
	SideEffects []string `yaml:"side_effects"`
}

type Reference struct {
	Title string `yaml:"title"`
	URL   string `yaml:"url"`
}

type Playbook struct {
	ID          string              `yaml:"id"`
	Title       string              `yaml:"title"`
	Summary     string              `yaml:"summary"`
	Techniques  []string            `yaml:"techniques"`
	Mitigations []string            `yaml:"mitigations"`
	D3FEND      []string            `yaml:"d3fend"`
	Variants    map[string]*Variant `yaml:"variants"`
	References  []Reference         `yaml:"references"`
}

type Rule struct {
	Rule   string `yaml:"rule"`
	Source string `yaml:"source"`
	// Kind is technique (default), posture or catch-all; only technique
	// rules map to ATT&CK techniques.
	Kind           string   `yaml:"kind"`
	Techniques     []string `yaml:"techniques"`
	Conflict       string   `yaml:"conflict"`
	Playbooks      []string `yaml:"playbooks"`
	Triage         string   `yaml:"triage"`
	FalsePositives []string `yaml:"false_positives"`
}

// file is the shape of every YAML file under data/.
type file struct {
	Tactics     []Tactic     `yaml:"tactics"`
	Techniques  []Technique  `yaml:"techniques"`
	Mitigations []Mitigation `yaml:"mitigations"`
	D3FEND      []D3FEND     `yaml:"d3fend"`
	Playbooks   []Playbook   `yaml:"playbooks"`
	Rules       []Rule       `yaml:"rules"`
}

// KB is a loaded, validated knowledge base. Read-only after Load: safe for
// concurrent use.
type KB struct {
	Tactics []Tactic // kill-chain order

	tacticByShort map[string]int // shortname -> index in Tactics
	tacticByID    map[string]int
	techniques    map[string]*Technique
	mitigations   map[string]*Mitigation
	d3fend        map[string]*D3FEND
	playbooks     map[string]*Playbook
	rules         map[string]*Rule
	origin        map[string]string // "kind id" -> file, for error messages
}

var (
	defaultOnce sync.Once
	defaultKB   *KB
	defaultErr  error
)

// Default returns the embedded knowledge base, loaded once.
func Default() (*KB, error) {
	defaultOnce.Do(func() {
		sub, err := fs.Sub(embedded, "data")
		if err != nil {
			defaultErr = err
			return
		}
		defaultKB, defaultErr = Load(sub)
	})
	return defaultKB, defaultErr
}

// Load reads and validates every *.yaml file of fsys.
func Load(fsys fs.FS) (*KB, error) {
	k := &KB{
		tacticByShort: map[string]int{},
		tacticByID:    map[string]int{},
		techniques:    map[string]*Technique{},
		mitigations:   map[string]*Mitigation{},
		d3fend:        map[string]*D3FEND{},
		playbooks:     map[string]*Playbook{},
		rules:         map[string]*Rule{},
		origin:        map[string]string{},
	}
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (path.Ext(p) == ".yaml" || path.Ext(p) == ".yml") {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kb: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("kb: %w", err)
		}
		var f file
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("kb: %s: %w", name, err)
		}
		if err := k.merge(name, &f); err != nil {
			return nil, err
		}
	}
	if errs := k.validate(); len(errs) > 0 {
		if len(errs) > 25 {
			errs = append(errs[:25], fmt.Sprintf("… and %d more", len(errs)-25))
		}
		return nil, fmt.Errorf("kb: %d problems:\n  %s", len(errs), strings.Join(errs, "\n  "))
	}
	return k, nil
}

func (k *KB) merge(name string, f *file) error {
	if len(f.Tactics) > 0 {
		if len(k.Tactics) > 0 {
			return fmt.Errorf("kb: %s: tactics are already defined in %s", name, k.origin["tactics"])
		}
		k.Tactics = f.Tactics
		k.origin["tactics"] = name
		for i, t := range f.Tactics {
			k.tacticByShort[t.Shortname] = i
			k.tacticByID[t.ID] = i
		}
	}
	for i := range f.Techniques {
		t := &f.Techniques[i]
		if err := mergeOne(k.techniques, k.origin, "technique", t.ID, t, name); err != nil {
			return err
		}
	}
	for i := range f.Mitigations {
		m := &f.Mitigations[i]
		if err := mergeOne(k.mitigations, k.origin, "mitigation", m.ID, m, name); err != nil {
			return err
		}
	}
	for i := range f.D3FEND {
		d := &f.D3FEND[i]
		if err := mergeOne(k.d3fend, k.origin, "d3fend", d.ID, d, name); err != nil {
			return err
		}
	}
	for i := range f.Playbooks {
		p := &f.Playbooks[i]
		if err := mergeOne(k.playbooks, k.origin, "playbook", p.ID, p, name); err != nil {
			return err
		}
	}
	for i := range f.Rules {
		r := &f.Rules[i]
		if err := mergeOne(k.rules, k.origin, "rule", r.Rule, r, name); err != nil {
			return err
		}
	}
	return nil
}

// mergeOne adds v under id; every entry is defined exactly once, so two
// files can never disagree about a technique or a playbook.
func mergeOne[T any](m map[string]*T, origin map[string]string, kind, id string, v *T, file string) error {
	if id == "" {
		return fmt.Errorf("kb: %s: a %s has no id", file, kind)
	}
	if _, ok := m[id]; ok {
		return fmt.Errorf("kb: %s: %s %q is already defined in %s", file, kind, id, origin[kind+" "+id])
	}
	m[id] = v
	origin[kind+" "+id] = file
	return nil
}

// Technique returns a technique by ATT&CK ID.
func (k *KB) Technique(id string) (*Technique, bool) { t, ok := k.techniques[id]; return t, ok }

// Mitigation returns an ATT&CK mitigation by M-ID.
func (k *KB) Mitigation(id string) (*Mitigation, bool) { m, ok := k.mitigations[id]; return m, ok }

// D3FENDTechnique returns a D3FEND countermeasure by ID.
func (k *KB) D3FENDTechnique(id string) (*D3FEND, bool) { d, ok := k.d3fend[id]; return d, ok }

// Playbook returns a playbook by ID.
func (k *KB) Playbook(id string) (*Playbook, bool) { p, ok := k.playbooks[id]; return p, ok }

// MappingKind returns the rule's mapping kind, technique when unset.
func (r *Rule) MappingKind() string {
	if r.Kind == "" {
		return KindTechnique
	}
	return r.Kind
}

// Rule returns the map entry of a Falco rule by its exact name.
func (k *KB) Rule(name string) (*Rule, bool) { r, ok := k.rules[name]; return r, ok }

// TacticByShortname returns a tactic by its ATT&CK shortname.
func (k *KB) TacticByShortname(s string) (Tactic, bool) {
	i, ok := k.tacticByShort[s]
	if !ok {
		return Tactic{}, false
	}
	return k.Tactics[i], true
}

// TacticByID returns a tactic by TA-ID.
func (k *KB) TacticByID(id string) (Tactic, bool) {
	i, ok := k.tacticByID[id]
	if !ok {
		return Tactic{}, false
	}
	return k.Tactics[i], true
}

// Stage returns a tactic's position in the kill chain (1-based), 0 if unknown.
func (k *KB) Stage(tacticID string) int {
	i, ok := k.tacticByID[tacticID]
	if !ok {
		return 0
	}
	return i + 1
}

// Rules returns every mapped rule, sorted by name.
func (k *KB) Rules() []*Rule { return sortedValues(k.rules) }

// Playbooks returns every playbook, sorted by ID.
func (k *KB) Playbooks() []*Playbook { return sortedValues(k.playbooks) }

// Techniques returns every technique, sorted by ID.
func (k *KB) Techniques() []*Technique { return sortedValues(k.techniques) }

// Mitigations returns every mitigation, sorted by ID.
func (k *KB) Mitigations() []*Mitigation { return sortedValues(k.mitigations) }

// D3FENDTechniques returns every D3FEND entry, sorted by ID.
func (k *KB) D3FENDTechniques() []*D3FEND { return sortedValues(k.d3fend) }

func sortedValues[T any](m map[string]*T) []*T {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	out := make([]*T, len(keys))
	for i, key := range keys {
		out[i] = m[key]
	}
	return out
}

// TechniqueURL is the ATT&CK page of a technique or sub-technique.
func TechniqueURL(id string) string {
	return "https://attack.mitre.org/techniques/" + strings.Replace(id, ".", "/", 1) + "/"
}

// MitigationURL is the ATT&CK page of a mitigation.
func MitigationURL(id string) string { return "https://attack.mitre.org/mitigations/" + id + "/" }

// D3FENDURL is the D3FEND page of a countermeasure, named after its label.
func D3FENDURL(d *D3FEND) string {
	return "https://d3fend.mitre.org/technique/d3f:" + strings.ReplaceAll(d.Name, " ", "") + "/"
}

// AllSteps returns the steps followed by the verify step.
func (v *Variant) AllSteps() []Step {
	steps := make([]Step, 0, len(v.Steps)+1)
	steps = append(steps, v.Steps...)
	if v.Verify != nil {
		steps = append(steps, *v.Verify)
	}
	return steps
}

// Variant picks the playbook variant for env, falling back to the closest
// environment a playbook covers (a pod is also a container on a host).
func (p *Playbook) Variant(env string) (string, *Variant) {
	order := []string{env}
	switch env {
	case EnvK8s:
		order = append(order, EnvContainer, EnvHost)
	case EnvContainer:
		order = append(order, EnvHost, EnvK8s)
	case EnvHost:
		order = append(order, EnvContainer)
	}
	for _, e := range order {
		if v, ok := p.Variants[e]; ok {
			return e, v
		}
	}
	for _, e := range Environments {
		if v, ok := p.Variants[e]; ok {
			return e, v
		}
	}
	return "", nil
}
