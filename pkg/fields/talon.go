package fields

import (
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
	"github.com/triage-dev/triage/pkg/talon"
)

// talonDefs say which Falco Talon actionners carry out the primary
// playbook (docs/response.md). Talon's kubernetes actionners act on the
// alert's pod, so the field has a value only for alerts in a pod.
var talonDefs = []Def{
	{Name: "response.talon", Type: TypeString, List: true, Display: "Talon actionners",
		Desc: "Falco Talon actionners (category:name, Talon " + talon.Version + ") that carry out the primary playbook's steps for an alert in a Kubernetes pod, evidence first, then in playbook order (kubernetes:log, kubernetes:tcpdump, kubernetes:label, kubernetes:networkpolicy, kubernetes:terminate, …); no value outside Kubernetes, for an alert without k8s.pod.name, or when no step has a Talon equivalent. `triage talon-rules` writes the gated Talon rules (docs/response.md).",
		Value: func(r *event.Record, k *kb.KB, _ string) (any, bool) {
			if r.KB.Env != kb.EnvK8s || len(r.KB.Playbooks) == 0 {
				return nil, false
			}
			if f, ok := r.Alert.Field("k8s.pod.name"); !ok || f.Value == "" {
				return nil, false
			}
			return list(talon.Actionners(k, r.KB.Playbooks[0]))
		}},
}
