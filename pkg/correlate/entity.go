package correlate

import (
	"strings"

	"github.com/triage-dev/triage/pkg/alert"
)

// Entity kinds.
const (
	KindHost           = "host"
	KindContainer      = "container"
	KindPod            = "pod"
	KindK8sUser        = "k8s_user"
	KindCloudPrincipal = "cloud_principal"
	KindOktaUser       = "okta_user"
	KindGitHubUser     = "github_user"
	KindGCPPrincipal   = "gcp_principal"
)

func field(a *alert.Alert, key string) string {
	f, ok := a.Field(key)
	if !ok || f.Kind == alert.KindNull || f.Value == "<NA>" {
		return ""
	}
	return f.Value
}

func first(a *alert.Alert, keys ...string) string {
	for _, k := range keys {
		if v := field(a, k); v != "" {
			return v
		}
	}
	return ""
}

// ResolveEntity says whose story an alert belongs to (README, "Entities"):
//
//	syscall          pod (namespace/pod) when k8s fields are set, else the
//	                 container (host/container.id), else the host
//	k8s_audit        the Kubernetes user (ka.user.name)
//	aws_cloudtrail   the principal (ct.user.arn, else ct.user)
//	gcp_auditlog     the principal in its project (gcp.user @ gcp.projectId)
//	okta             the actor (okta.actor.name)
//	github           the user in its organization (github.user @ github.org)
//
// Whatever identifies nothing falls back to the host.
func ResolveEntity(a *alert.Alert) (id, kind string) {
	host := a.Hostname
	switch a.Source {
	case "k8s_audit":
		if u := field(a, "ka.user.name"); u != "" {
			return "k8s_user:" + u, KindK8sUser
		}
	case "aws_cloudtrail":
		if p := first(a, "ct.user.arn", "ct.user"); p != "" {
			return "aws:" + p, KindCloudPrincipal
		}
	case "gcp_auditlog":
		if u := field(a, "gcp.user"); u != "" {
			return "gcp:" + u + "@" + field(a, "gcp.projectId"), KindGCPPrincipal
		}
	case "okta":
		if u := first(a, "okta.actor.name", "okta.actor.alternateid"); u != "" {
			return "okta:" + u, KindOktaUser
		}
	case "github":
		if u := field(a, "github.user"); u != "" {
			return "github:" + u + "@" + field(a, "github.org"), KindGitHubUser
		}
	default:
		ns, pod := field(a, "k8s.ns.name"), field(a, "k8s.pod.name")
		if ns != "" && pod != "" {
			return "pod:" + ns + "/" + pod, KindPod
		}
		if c := field(a, "container.id"); c != "" && c != "host" {
			return "container:" + host + "/" + c, KindContainer
		}
	}
	if host == "" {
		host = "unknown"
	}
	return "host:" + strings.ToLower(host), KindHost
}
