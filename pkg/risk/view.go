package risk

import (
	"strings"

	"github.com/triage-dev/triage/pkg/alert"
)

// The output fields scoring reads. fieldView finds all of them in one pass
// over an alert's fields; asking the alert once per key cost ~40 scans of
// its field list per alert, about a third of enrichment without the parse.
const (
	kUserUID = iota
	kUserName
	kPodPrivileged
	kContainerPrivileged
	kHostNetwork
	kHostPID
	kHostIPC
	kHostPath
	kEvtFlags
	kExePath
	kExe
	kExeFromMemfd
	kExeUpperLayer
	kExeWritable
	kTTY
	kFdName
	kFdRIP
	kFdSIP
	kFdCIP
	kCtSrcIP
	kGCPCallerIP
	kOktaClientIP
	kK8sNs
	kTargetNs
	kBindingRole
	kRoleRules
	kKaUser
	kCtName
	kCtMFA
	kJSONMFA
	kCtIdentityType
	kJSONIdentityType
	kCtUser
	kImageRepo
	kPodImage
	kCtAccount
	kAWSAccount
	kGCPProject
	kGitHubOrg
	kEvtRes
	kEvtRawRes
	kEvtFailed
	kKaResponseCode
	kKaAuthDecision
	kCtError
	kJSONErrorCode
	kOktaResult
	kGCPAuthInfo
	kCmdline
	kProcName
	kCwd
	kPName
	kPCmdline
	kPExePath
	kPExe
	numKeys
)

var keyNames = [numKeys]string{
	kUserUID: "user.uid", kUserName: "user.name",
	kPodPrivileged: "ka.req.pod.containers.privileged", kContainerPrivileged: "container.privileged",
	kHostNetwork: "ka.req.pod.host_network", kHostPID: "ka.req.pod.host_pid", kHostIPC: "ka.req.pod.host_ipc",
	kHostPath: "ka.req.pod.volumes.hostpath",
	kEvtFlags: "evt.arg.flags", kExePath: "proc.exepath", kExe: "proc.exe",
	kExeFromMemfd: "proc.is_exe_from_memfd", kExeUpperLayer: "proc.is_exe_upper_layer", kExeWritable: "proc.is_exe_writable",
	kTTY: "proc.tty", kFdName: "fd.name",
	kFdRIP: "fd.rip", kFdSIP: "fd.sip", kFdCIP: "fd.cip", kCtSrcIP: "ct.srcip", kGCPCallerIP: "gcp.callerIP", kOktaClientIP: "okta.client.ip",
	kK8sNs: "k8s.ns.name", kTargetNs: "ka.target.namespace",
	kBindingRole: "ka.req.binding.role", kRoleRules: "ka.req.role.rules", kKaUser: "ka.user.name",
	kCtName: "ct.name", kCtMFA: "ct.additionalEventData.MFAUsed", kJSONMFA: "json.value[/additionalEventData/MFAUsed]",
	kCtIdentityType: "ct.user.identitytype", kJSONIdentityType: "json.value[/userIdentity/type]", kCtUser: "ct.user",
	kImageRepo: "container.image.repository", kPodImage: "ka.req.pod.containers.image",
	kCtAccount: "ct.user.accountid", kAWSAccount: "aws.accountId", kGCPProject: "gcp.projectId", kGitHubOrg: "github.org",
	kEvtRes: "evt.res", kEvtRawRes: "evt.rawres", kEvtFailed: "evt.failed",
	kKaResponseCode: "ka.response.code", kKaAuthDecision: "ka.auth.decision",
	kCtError: "ct.error", kJSONErrorCode: "json.value[/errorCode]", kOktaResult: "okta.result", kGCPAuthInfo: "gcp.authorizationInfo",
	kCmdline: "proc.cmdline", kProcName: "proc.name", kCwd: "proc.cwd",
	kPName: "proc.pname", kPCmdline: "proc.pcmdline", kPExePath: "proc.pexepath", kPExe: "proc.pexe",
}

var keyIndex = func() map[string]int {
	m := make(map[string]int, numKeys)
	for i, k := range keyNames {
		if k == "" {
			panic("risk: key without a name") // a constant added without its name
		}
		m[k] = i
	}
	return m
}()

// peerKeys carry remote addresses: fd.rip, fd.sip, fd.cip (syscall),
// ct.srcip (CloudTrail), gcp.callerIP, okta.client.ip.
var peerKeys = [...]int{kFdRIP, kFdSIP, kFdCIP, kCtSrcIP, kGCPCallerIP, kOktaClientIP}

// fieldView holds the scoring fields of one alert with the meaning of
// alert.Field: the first field of a key decides; it counts when present,
// not null, not empty and not "<NA>".
type fieldView struct {
	val  [numKeys]string
	has  [numKeys]bool
	seen [numKeys]bool

	// Ancestors beyond the parent as the alert gives them:
	// proc.aname[N], and proc.aexepath[N] or proc.aexe[N] (N ≥ 1), in
	// field order, at most maxAncestors of each.
	ancNames [maxAncestors]string
	ancExes  [maxAncestors]string
	nNames   int
	nExes    int
}

const maxAncestors = 8

func (v *fieldView) fill(a *alert.Alert) {
	*v = fieldView{}
	for i := range a.Fields {
		f := &a.Fields[i]
		k, ok := keyIndex[f.Key]
		if !ok {
			if strings.HasPrefix(f.Key, "proc.a") {
				v.ancestor(f)
			}
			continue
		}
		if v.seen[k] {
			continue
		}
		v.seen[k] = true
		if f.Kind != alert.KindNull && f.Value != "" && f.Value != "<NA>" {
			v.val[k], v.has[k] = f.Value, true
		}
	}
}

func (v *fieldView) value(k int) (string, bool) { return v.val[k], v.has[k] }

// first returns the first of keys with a value, else "".
func (v *fieldView) first(keys ...int) string {
	for _, k := range keys {
		if v.has[k] {
			return v.val[k]
		}
	}
	return ""
}

func (v *fieldView) isTrue(k int) bool {
	return v.has[k] && (v.val[k] == "true" || v.val[k] == "1")
}

// ancestor records proc.aname[N], proc.aexepath[N] and proc.aexe[N].
func (v *fieldView) ancestor(f *alert.Field) {
	if f.Kind == alert.KindNull || f.Value == "" || f.Value == "<NA>" {
		return
	}
	switch {
	case strings.HasPrefix(f.Key, "proc.aname["):
		if v.nNames < maxAncestors {
			v.ancNames[v.nNames] = f.Value
			v.nNames++
		}
	case strings.HasPrefix(f.Key, "proc.aexepath["), strings.HasPrefix(f.Key, "proc.aexe["):
		if v.nExes < maxAncestors {
			v.ancExes[v.nExes] = f.Value
			v.nExes++
		}
	}
}
