// Package talon turns triage's playbooks into Falco Talon rules: which
// playbook steps a Talon actionner can carry out (response.talon), a rules
// file generated from the knowledge base with risk and correlation gates
// (`triage talon-rules`), and a checker stricter than Talon's own.
package talon

// Version is the Falco Talon release the catalogue below was read from.
//
// Source: github.com/falcosecurity/falco-talon at tag v0.3.0 (commit
// 215ebba46e4ee00bb44b3c21eeb9724a8dc10548, 2025-02-05), files
// actionners/actionners.go (the registered actionners and how continue,
// ignore_errors and outputs are applied), actionners/<category>/<name>/<name>.go
// (each actionner's Name, Category, Continue, AllowOutput, RequireOutput,
// RequiredOutputFields and its Parameters struct with mapstructure names and
// validate tags), outputs/*/ (output targets and their Parameters),
// internal/rules/rules.go (the rules file schema and matching) and
// internal/events/events.go (which output_fields an actionner reads).
// The older falco-talon/falco-talon repository stops at v0.1.1.
// Keep this in sync by reading that source, never by guessing.
const Version = "v0.3.0"

// ParamKind is the Go type of an actionner or output parameter, as Talon
// decodes it with mapstructure.
type ParamKind string

const (
	KindString    ParamKind = "string"
	KindInt       ParamKind = "int"
	KindBool      ParamKind = "bool"
	KindStrings   ParamKind = "[]string"
	KindStringMap ParamKind = "map[string]string"
)

// Param is one parameter with its mapstructure name and validate tag.
type Param struct {
	Name     string
	Kind     ParamKind
	Required bool   // validate:"required"
	Validate string // the rest of the validate tag, for the record (gte=0, oneof=…)
}

// Gate is triage's class of an actionner: what risk it needs before the
// generated rules run it (docs/response.md, "Gates").
type Gate string

const (
	// GateEvidence reads and keeps evidence (logs, files, packets).
	GateEvidence Gate = "evidence"
	// GateContain is a reversible change that keeps the workload and its
	// volatile state (a label, a network policy).
	GateContain Gate = "contain"
	// GateDisrupt stops or deletes something, or affects workloads other
	// than the alert's (terminate, delete, cordon, drain).
	GateDisrupt Gate = "disrupt"
	// GateNever runs code or functions triage does not write (exec,
	// script, lambda, function): never generated.
	GateNever Gate = "never"
)

// Actionner is one entry of Talon's actionner catalogue.
type Actionner struct {
	Category string
	Name     string
	// Continue is Talon's default for running the rule's later actions
	// after this one (Information().Continue); an action's `continue:`
	// overrides it.
	Continue bool
	// AllowOutput: the actionner's data may go to an output target.
	AllowOutput bool
	// RequireOutput: the action fails without an `output:` target.
	RequireOutput bool
	// RequiredOutputFields are the output_fields the actionner reads, all
	// of them required.
	RequiredOutputFields []string
	// AnyOutputFields: at least one of these must be present too.
	AnyOutputFields []string
	Params          []Param
	Gate            Gate
}

// FullName is category:name, as rules write it in `actionner:`.
func (a Actionner) FullName() string { return a.Category + ":" + a.Name }

// Param returns a parameter by name.
func (a Actionner) Param(name string) (Param, bool) {
	for _, p := range a.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

var podFields = []string{"k8s.ns.name", "k8s.pod.name"}

// Catalogue is every actionner Talon v0.3.0 registers
// (actionners.ListDefaultActionners), in that order.
//
// Notes read from the source:
//   - the kubernetes actionners find the pod with events.GetPodName and
//     GetNamespaceName: output_fields k8s.pod.name and k8s.ns.name (falling back
//     to ka.target.pod.name / ka.target.name and ka.target.namespace) and check
//     that the pod exists before running (checks.CheckPodExist);
//   - cilium:networkpolicy and calico:networkpolicy declare "fd.sip / fd.rip"
//     but their Checks also look the pod up, so the pod fields are required too;
//   - kubernetes:networkpolicy creates an Egress-only policy named after the
//     pod's owner (ReplicaSet, DaemonSet, StatefulSet, or the pod itself) and
//     selecting the owner's selector labels: without allow_cidr/allow_namespaces
//     it denies all egress of every pod of that owner; ingress is untouched;
//   - kubernetes:tcpdump adds an ephemeral container (image issif/tcpdump:latest
//     by default) and captures for `duration` seconds (default 5);
//   - terminate, delete, tcpdump and sysdig have Continue=false: they stop the
//     rule's later actions unless the action says `continue: true`.
var Catalogue = []Actionner{
	{Category: "kubernetes", Name: "terminate", Continue: false, RequiredOutputFields: podFields, Gate: GateDisrupt,
		Params: []Param{
			{Name: "min_healthy_replicas", Kind: KindString, Validate: "omitempty,is_absolut_or_percent"},
			{Name: "ignore_daemonsets", Kind: KindBool},
			{Name: "ignore_statefulsets", Kind: KindBool},
			{Name: "ignore_standalone_pods", Kind: KindBool},
			{Name: "grace_period_seconds", Kind: KindInt},
		}},
	{Category: "kubernetes", Name: "label", Continue: true, RequiredOutputFields: podFields, Gate: GateContain,
		Params: []Param{
			{Name: "labels", Kind: KindStringMap, Required: true},
			{Name: "level", Kind: KindString, Validate: "pod|node (node labels the pod's node)"},
		}},
	{Category: "kubernetes", Name: "annotation", Continue: true, RequiredOutputFields: podFields, Gate: GateContain,
		Params: []Param{
			{Name: "annotations", Kind: KindStringMap, Required: true},
			{Name: "level", Kind: KindString},
		}},
	{Category: "kubernetes", Name: "networkpolicy", Continue: true, RequiredOutputFields: podFields, Gate: GateContain,
		Params: []Param{
			{Name: "allow_cidr", Kind: KindStrings, Validate: "each a CIDR"},
			{Name: "allow_namespaces", Kind: KindStrings},
		}},
	{Category: "kubernetes", Name: "exec", Continue: true, RequiredOutputFields: podFields, Gate: GateNever,
		Params: []Param{
			{Name: "command", Kind: KindString, Required: true},
			{Name: "shell", Kind: KindString},
		}},
	{Category: "kubernetes", Name: "script", Continue: true, RequiredOutputFields: podFields, Gate: GateNever,
		Params: []Param{
			{Name: "script", Kind: KindString},
			{Name: "file", Kind: KindString},
			{Name: "shell", Kind: KindString},
		}},
	{Category: "kubernetes", Name: "log", Continue: true, AllowOutput: true, RequiredOutputFields: podFields, Gate: GateEvidence,
		Params: []Param{
			{Name: "tail_lines", Kind: KindInt, Validate: "gte=0 (default 20)"},
		}},
	{Category: "kubernetes", Name: "delete", Continue: false,
		RequiredOutputFields: []string{"ka.target.resource", "ka.target.name", "ka.target.namespace"}, Gate: GateDisrupt},
	{Category: "kubernetes", Name: "cordon", Continue: true, RequiredOutputFields: podFields, Gate: GateDisrupt},
	{Category: "kubernetes", Name: "drain", Continue: true, RequiredOutputFields: podFields, Gate: GateDisrupt,
		Params: []Param{
			{Name: "min_healthy_replicas", Kind: KindString, Validate: "omitempty,is_absolut_or_percent"},
			{Name: "wait_period_excluded_namespaces", Kind: KindStrings},
			{Name: "ignore_errors", Kind: KindBool},
			{Name: "ignore_daemonsets", Kind: KindBool},
			{Name: "ignore_statefulsets", Kind: KindBool},
			{Name: "max_wait_period", Kind: KindInt},
		}},
	{Category: "kubernetes", Name: "download", Continue: true, RequireOutput: true, RequiredOutputFields: podFields, Gate: GateEvidence,
		Params: []Param{
			{Name: "file", Kind: KindString, Required: true, Validate: "expanded with the event's output fields as env vars"},
		}},
	{Category: "kubernetes", Name: "tcpdump", Continue: false, RequireOutput: true, RequiredOutputFields: podFields, Gate: GateEvidence,
		Params: []Param{
			{Name: "image", Kind: KindString},
			{Name: "duration", Kind: KindInt, Validate: "gte=0 (default 5 s)"},
			{Name: "snaplen", Kind: KindInt, Validate: "gte=0 (default 4096)"},
		}},
	{Category: "kubernetes", Name: "sysdig", Continue: false, RequireOutput: true, RequiredOutputFields: podFields, Gate: GateEvidence,
		Params: []Param{
			{Name: "image", Kind: KindString},
			{Name: "scope", Kind: KindString, Validate: "oneof=pod node"},
			{Name: "duration", Kind: KindInt, Validate: "gt=0,lte=30"},
			{Name: "buffer_size", Kind: KindInt, Validate: "gte=128"},
		}},
	{Category: "aws", Name: "lambda", Continue: true, Gate: GateNever,
		Params: []Param{
			{Name: "aws_lambda_name", Kind: KindString, Required: true},
			{Name: "aws_lambda_alias_or_version", Kind: KindString},
			{Name: "aws_lambda_invocation_type", Kind: KindString, Validate: "oneof=RequestResponse Event DryRun"},
		}},
	{Category: "gcp", Name: "function", Continue: true, Gate: GateNever,
		Params: []Param{
			{Name: "gcp_function_name", Kind: KindString, Required: true},
			{Name: "gcp_function_location", Kind: KindString, Required: true},
			{Name: "gcp_function_timeout", Kind: KindInt},
		}},
	{Category: "calico", Name: "networkpolicy", Continue: true, RequiredOutputFields: podFields,
		AnyOutputFields: []string{"fd.rip", "fd.sip"}, Gate: GateContain,
		Params: []Param{
			{Name: "allow_cidr", Kind: KindStrings},
			{Name: "allow_namespaces", Kind: KindStrings},
			{Name: "order", Kind: KindInt},
		}},
	{Category: "cilium", Name: "networkpolicy", Continue: true, RequiredOutputFields: podFields,
		AnyOutputFields: []string{"fd.rip", "fd.sip"}, Gate: GateContain,
		Params: []Param{
			{Name: "allow_cidr", Kind: KindStrings},
			{Name: "allow_namespaces", Kind: KindStrings},
		}},
}

// Lookup returns an actionner by category:name.
func Lookup(fullName string) (Actionner, bool) {
	for _, a := range Catalogue {
		if a.FullName() == fullName {
			return a, true
		}
	}
	return Actionner{}, false
}

// OutputTarget is one of Talon's output targets (outputs.ListDefaultOutputs).
type OutputTarget struct {
	Target string // category:name
	Params []Param
}

// Outputs is every output target Talon v0.3.0 registers (outputs/outputs.go:
// file, minio, aws s3, gcs).
var Outputs = []OutputTarget{
	{Target: "local:file", Params: []Param{{Name: "destination", Kind: KindString, Required: true}}},
	{Target: "minio:s3", Params: []Param{{Name: "bucket", Kind: KindString, Required: true}, {Name: "prefix", Kind: KindString}}},
	{Target: "aws:s3", Params: []Param{{Name: "bucket", Kind: KindString, Required: true}, {Name: "prefix", Kind: KindString}, {Name: "region", Kind: KindString}}},
	{Target: "gcp:gcs", Params: []Param{{Name: "bucket", Kind: KindString, Required: true}, {Name: "prefix", Kind: KindString}}},
}

// LookupOutput returns an output target by category:name.
func LookupOutput(target string) (OutputTarget, bool) {
	for _, o := range Outputs {
		if o.Target == target {
			return o, true
		}
	}
	return OutputTarget{}, false
}
