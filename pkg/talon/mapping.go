package talon

import (
	"regexp"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
	"mvdan.cc/sh/v3/syntax"

	"github.com/triage-dev/triage/pkg/kb"
)

// Mapped is one playbook step that a Talon actionner carries out.
type Mapped struct {
	Step      int    // index in the k8s variant's steps
	Title     string // the step's title
	Safety    string // the step's safety class
	Actionner string // category:name
	// Params are the actionner's parameters, from the step's command where
	// it says them (labels, drain flags) and fixed defaults otherwise.
	Params map[string]any
	// Why says what in the step the actionner stands for.
	Why string
}

// Gate is the actionner's gate class (catalogue).
func (m Mapped) Gate() Gate {
	a, _ := Lookup(m.Actionner)
	return a.Gate
}

// Talon's kubernetes actionners act on the pod of the event (output_fields
// k8s.ns.name and k8s.pod.name), so a step maps only when it acts on the
// alert's pod or the pod's node in a k8s variant whose steps name the pod
// with {{k8s.pod.name}} (syscall alerts from a pod). Audit-log variants
// name objects with ka.* fields and map to nothing.
const (
	podMarker   = "TRIAGEPODNAME"
	valueMarker = "TRIAGEVALUE"
)

var placeholder = regexp.MustCompile(`\{\{\s*([^{}\s]+)\s*\}\}`)

// LogTailLines is the tail_lines of generated kubernetes:log actions: the
// playbooks save the whole log; Talon's default is 20 lines.
const LogTailLines = 5000

// TcpdumpDuration and TcpdumpSnaplen are the generated kubernetes:tcpdump
// parameters: long enough to see a live session's peers and traffic, short
// because the rule's later actions (containment) wait for the capture.
const (
	TcpdumpDuration = 20
	TcpdumpSnaplen  = 4096
)

// MapPlaybook returns the steps of the playbook's k8s variant that Talon
// actionners carry out, in step order. Nil when the playbook has no k8s
// variant or the variant does not act on the alert's pod.
func MapPlaybook(p *kb.Playbook) []Mapped {
	v, ok := p.Variants[kb.EnvK8s]
	if !ok || !podContext(v) {
		return nil
	}
	var out []Mapped
	for i, s := range v.Steps {
		for _, m := range mapStep(s) {
			m.Step, m.Title, m.Safety = i, s.Title, s.Safety
			out = append(out, m)
		}
	}
	return out
}

// Ordered puts evidence actions first, each group in playbook order, and
// keeps one action per actionner and parameters.
func Ordered(ms []Mapped) []Mapped {
	out := make([]Mapped, 0, len(ms))
	seen := map[string]bool{}
	for _, m := range ms {
		k := m.Actionner + fmtParams(m.Params)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return (out[i].Gate() == GateEvidence) && (out[j].Gate() != GateEvidence)
	})
	return out
}

func fmtParams(p map[string]any) string {
	b, _ := yaml.Marshal(p)
	return string(b)
}

// Names returns the distinct actionner names of ms, in order.
func Names(ms []Mapped) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range ms {
		if !seen[m.Actionner] {
			seen[m.Actionner] = true
			out = append(out, m.Actionner)
		}
	}
	return out
}

var cache sync.Map // *kb.KB -> map[playbook ID][]string

// Actionners returns the ordered actionner names for a playbook of k
// (response.talon), computed once per knowledge base.
func Actionners(k *kb.KB, playbookID string) []string {
	if v, ok := cache.Load(k); ok {
		return v.(map[string][]string)[playbookID]
	}
	m := map[string][]string{}
	for _, p := range k.Playbooks() {
		if names := Names(Ordered(MapPlaybook(p))); len(names) > 0 {
			m[p.ID] = names
		}
	}
	v, _ := cache.LoadOrStore(k, m)
	return v.(map[string][]string)[playbookID]
}

func podContext(v *kb.Variant) bool {
	for _, s := range v.Steps {
		if strings.Contains(s.Command, "{{k8s.pod.name}}") {
			return true
		}
	}
	return false
}

// call is one simple command of a step, its words with quotes removed and
// placeholders replaced by markers.
type call []string

func calls(command string) []call {
	src := placeholder.ReplaceAllStringFunc(command, func(s string) string {
		if placeholder.FindStringSubmatch(s)[1] == "k8s.pod.name" {
			return podMarker
		}
		return valueMarker
	})
	f, err := syntax.NewParser().Parse(strings.NewReader(src), "")
	if err != nil {
		return nil
	}
	var out []call
	pr := syntax.NewPrinter()
	syntax.Walk(f, func(n syntax.Node) bool {
		ce, ok := n.(*syntax.CallExpr)
		if !ok || len(ce.Args) == 0 {
			return true
		}
		c := make(call, 0, len(ce.Args))
		for _, w := range ce.Args {
			var b strings.Builder
			_ = pr.Print(&b, w)
			c = append(c, strings.NewReplacer(`'`, "", `"`, "").Replace(b.String()))
		}
		out = append(out, c)
		return true
	})
	return out
}

// kubectl flags that take the next word as their value (kubectl's global and
// the subcommands the playbooks use), when not written --flag=value.
var kubectlValueFlags = map[string]bool{
	"-n": true, "--namespace": true, "-o": true, "--output": true, "-f": true, "--filename": true,
	"-l": true, "--selector": true, "-c": true, "--container": true, "--field-selector": true,
	"--since": true, "--context": true, "--kubeconfig": true, "--tail": true, "--as": true,
}

// kubectlArgs returns the subcommand and its positional words, and the
// flags seen.
func kubectlArgs(c call) (sub string, pos []string, flags map[string]bool) {
	flags = map[string]bool{}
	args := c[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") {
			name := a
			if j := strings.IndexByte(a, '='); j > 0 {
				name = a[:j]
			} else if kubectlValueFlags[a] {
				i++
			}
			flags[name] = true
			continue
		}
		pos = append(pos, a)
	}
	if len(pos) == 0 {
		return "", nil, flags
	}
	return pos[0], pos[1:], flags
}

// namesPod says whether the positional words name the alert's pod: pod/NAME,
// or a pod resource word followed by NAME (or NAME alone when podDefault,
// as for kubectl logs).
func namesPod(pos []string, podDefault bool) bool {
	for i, a := range pos {
		if !strings.Contains(a, podMarker) {
			continue
		}
		switch {
		case strings.HasPrefix(a, "pod/") || strings.HasPrefix(a, "pods/") || strings.HasPrefix(a, "po/"):
			return true
		case i > 0 && (pos[i-1] == "pod" || pos[i-1] == "pods" || pos[i-1] == "po"):
			return true
		case podDefault && i == 0:
			return true
		}
	}
	return false
}

var labelArg = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._/-]*)=([A-Za-z0-9._-]*)$`)

func mapStep(s kb.Step) []Mapped {
	var out []Mapped
	add := func(name, why string, params map[string]any) {
		for _, m := range out {
			if m.Actionner == name {
				return
			}
		}
		out = append(out, Mapped{Actionner: name, Params: params, Why: why})
	}
	for _, c := range calls(s.Command) {
		switch c[0] {
		case "kubectl":
			sub, pos, flags := kubectlArgs(c)
			if flags["--dry-run"] {
				continue
			}
			switch sub {
			case "logs":
				if namesPod(pos, true) {
					add("kubernetes:log", "kubectl logs of the pod", map[string]any{"tail_lines": LogTailLines})
				}
			case "label":
				if !namesPod(pos, false) {
					continue
				}
				labels := map[string]any{}
				for _, a := range pos {
					if m := labelArg.FindStringSubmatch(a); m != nil {
						labels[m[1]] = m[2]
					}
				}
				if len(labels) > 0 {
					add("kubernetes:label", "kubectl label of the pod", map[string]any{"level": "pod", "labels": labels})
				}
			case "apply":
				if denyAllNetworkPolicy(s.YAML) {
					add("kubernetes:networkpolicy", "deny-all NetworkPolicy for the pod", nil)
				}
			case "delete":
				if namesPod(pos, false) {
					add("kubernetes:terminate", "kubectl delete of the pod", nil)
				}
			case "cordon":
				add("kubernetes:cordon", "kubectl cordon of the pod's node", nil)
			case "drain":
				p := map[string]any{}
				if flags["--ignore-daemonsets"] {
					p["ignore_daemonsets"] = true
				}
				add("kubernetes:drain", "kubectl drain of the pod's node", p)
			}
		case "nsenter":
			// A read of the network state inside the pod's network namespace:
			// Talon's network evidence of a pod is a packet capture from an
			// ephemeral container in the same namespace.
			if nsenterNet(c) {
				add("kubernetes:tcpdump", "network state of the pod's network namespace",
					map[string]any{"duration": TcpdumpDuration, "snaplen": TcpdumpSnaplen})
			}
		case "tcpdump":
			add("kubernetes:tcpdump", "packet capture", map[string]any{"duration": TcpdumpDuration, "snaplen": TcpdumpSnaplen})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return withinStep[out[i].Actionner] < withinStep[out[j].Actionner] })
	return out
}

// withinStep orders the actions of one step: evidence, then the label that
// puts the pod into the playbook's quarantine policy (per pod, ingress and
// egress), then Talon's own policy (egress of every pod of the owner), then
// node and disruptive actions.
var withinStep = map[string]int{
	"kubernetes:log": 0, "kubernetes:download": 1, "kubernetes:tcpdump": 2, "kubernetes:label": 3,
	"kubernetes:networkpolicy": 4, "kubernetes:cordon": 5, "kubernetes:terminate": 6, "kubernetes:drain": 7,
}

func nsenterNet(c call) bool {
	net, tool := false, false
	for _, a := range c[1:] {
		switch {
		case a == "-n" || a == "--net" || strings.HasPrefix(a, "--net="):
			net = true
		case a == "ss" || a == "netstat" || a == "tcpdump" || a == "ip" || a == "conntrack":
			tool = true
		}
	}
	return net && tool
}

// denyAllNetworkPolicy says whether a step's yaml is a NetworkPolicy that
// allows nothing (policy types without any ingress or egress rule).
func denyAllNetworkPolicy(doc string) bool {
	var np struct {
		Kind string `yaml:"kind"`
		Spec struct {
			PolicyTypes []string `yaml:"policyTypes"`
			Ingress     []any    `yaml:"ingress"`
			Egress      []any    `yaml:"egress"`
		} `yaml:"spec"`
	}
	if yaml.Unmarshal([]byte(doc), &np) != nil || np.Kind != "NetworkPolicy" {
		return false
	}
	hasEgress := false
	for _, t := range np.Spec.PolicyTypes {
		if t == "Egress" {
			hasEgress = true
		}
	}
	return hasEgress && len(np.Spec.Egress) == 0 && len(np.Spec.Ingress) == 0
}
