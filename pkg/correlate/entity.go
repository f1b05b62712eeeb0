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

// kindNames indexes the kinds by a small number, which is what an entity
// stores.
var kindNames = [...]string{KindHost, KindContainer, KindPod, KindK8sUser, KindCloudPrincipal, KindOktaUser, KindGitHubUser, KindGCPPrincipal}

const (
	kHost uint8 = iota
	kContainer
	kPod
	kK8sUser
	kCloudPrincipal
	kOktaUser
	kGitHubUser
	kGCPPrincipal
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
	b, k := appendEntity(nil, a)
	return string(b), kindNames[k]
}

// appendEntity appends the entity ID of a to dst and returns its kind, so
// the tracker can look an entity up without building a string per alert.
func appendEntity(dst []byte, a *alert.Alert) ([]byte, uint8) {
	host := a.Hostname
	switch a.Source {
	case "k8s_audit":
		if u := field(a, "ka.user.name"); u != "" {
			return append(append(dst, "k8s_user:"...), u...), kK8sUser
		}
	case "aws_cloudtrail":
		if p := first(a, "ct.user.arn", "ct.user"); p != "" {
			return append(append(dst, "aws:"...), p...), kCloudPrincipal
		}
	case "gcp_auditlog":
		if u := field(a, "gcp.user"); u != "" {
			dst = append(append(dst, "gcp:"...), u...)
			return append(append(dst, '@'), field(a, "gcp.projectId")...), kGCPPrincipal
		}
	case "okta":
		if u := first(a, "okta.actor.name", "okta.actor.alternateid"); u != "" {
			return append(append(dst, "okta:"...), u...), kOktaUser
		}
	case "github":
		if u := field(a, "github.user"); u != "" {
			dst = append(append(dst, "github:"...), u...)
			return append(append(dst, '@'), field(a, "github.org")...), kGitHubUser
		}
	default:
		ns, pod := field(a, "k8s.ns.name"), field(a, "k8s.pod.name")
		if ns != "" && pod != "" {
			dst = append(append(dst, "pod:"...), ns...)
			return append(append(dst, '/'), pod...), kPod
		}
		if c := field(a, "container.id"); c != "" && c != "host" {
			dst = append(append(dst, "container:"...), host...)
			return append(append(dst, '/'), c...), kContainer
		}
	}
	if host == "" {
		host = "unknown"
	}
	dst = append(dst, "host:"...)
	if !hasUpper(host) {
		return append(dst, host...), kHost
	}
	return append(dst, strings.ToLower(host)...), kHost
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
			return true
		}
	}
	return false
}
