package kb

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func stepProblems(s Step) []string {
	p, _ := lintStep(&s)
	return p
}

// Each lint against a command the old knowledge base had (bad) and the
// form that meets it (good).
func TestLintCommands(t *testing.T) {
	undo := &Undo{Note: "x"}
	cases := []struct {
		name string
		bad  Step
		good Step
		want string // part of the problem the bad step must raise
	}{
		{"comm is a regex to pgrep",
			Step{Safety: "investigate", Command: "for pid in $(pgrep -x -- {{proc.name}}); do ls -l /proc/\"$pid\"/exe; done"},
			Step{Safety: "investigate", Command: "for d in /proc/[0-9]*; do [ \"$(cat \"$d/comm\" 2>/dev/null)\" = {{proc.name}} ] && printf '%s\\n' \"${d#/proc/}\"; done"},
			"pgrep"},
		{"grep without -F",
			Step{Safety: "investigate", Command: "grep -l -- {{container.id}} /proc/[0-9]*/cgroup"},
			Step{Safety: "investigate", Command: "grep -lF -- {{container.id}} /proc/[0-9]*/cgroup"},
			"grep without -F"},
		{"find -name glob",
			Step{Safety: "investigate", Command: "find / -name {{fd.name}}"},
			Step{Safety: "investigate", Command: "find / -samefile {{fd.name}}"},
			"glob or regex"},
		{"journalctl unit glob",
			Step{Safety: "investigate", Command: "journalctl -u {{systemd.unit}}"},
			Step{Safety: "investigate", Command: "journalctl _SYSTEMD_UNIT={{systemd.unit}}"},
			"pattern"},
		{"pod name in option position",
			Step{Safety: "destructive", Note: "deletes", Command: "kubectl delete pod -n {{k8s.ns.name}} {{k8s.pod.name}}"},
			Step{Safety: "destructive", Note: "deletes", Command: "kubectl delete pod -n {{k8s.ns.name}} -- {{k8s.pod.name}}"},
			"read as an option"},
		{"aws value after a space-separated option",
			Step{Safety: "investigate", Command: "aws iam get-user --user-name {{ct.user}}"},
			Step{Safety: "investigate", Command: "aws iam get-user --user-name={{ct.user}}"},
			"read as an option"},
		{"echo of a value",
			Step{Safety: "investigate", Command: "echo {{proc.cmdline}}"},
			Step{Safety: "investigate", Command: "printf '%s\\n' {{proc.cmdline}}"},
			"printf"},
		{"value in a URL",
			Step{Safety: "investigate", Command: "gh api repos/{{github.repo}}/actions/workflows/{{github.workflow}}"},
			Step{Safety: "investigate", Command: "wf=$(jq -rn --arg v {{github.workflow}} '$v|@uri')\nrepo=$(jq -rn --arg v {{github.repo}} '$v|@uri')\ngh api \"repos/$repo/actions/workflows/$wf\""},
			"URL"},
		{"value in a jq program",
			Step{Safety: "investigate", Command: "jq -c 'select(.user == '{{ka.user.name}}')' audit.log"},
			Step{Safety: "investigate", Command: "jq -c --arg u {{ka.user.name}} 'select(.user.username == $u)' audit.log"},
			""},
		{"attacker file printed raw",
			Step{Safety: "investigate", Command: "cat -- /etc/cron.d/x"},
			Step{Safety: "investigate", Command: "cat -v -- /etc/cron.d/x"},
			"cat -v"},
		{"cmdline printed raw",
			Step{Safety: "investigate", Command: "tr '\\0' ' ' < /proc/\"$PID\"/cmdline; echo"},
			Step{Safety: "investigate", Command: "tr '\\0' ' ' < /proc/\"$PID\"/cmdline | cat -v; printf '\\n'"},
			"cat -v"},
		{"backup next to a cron job",
			Step{Safety: "contain", Undo: undo, Command: "cp -a -- {{fd.name}} {{fd.name}}.triage-bak"},
			Step{Safety: "contain", Undo: undo, Command: "mkdir -p /var/tmp/triage-evidence && mv -- {{fd.name}} /var/tmp/triage-evidence/"},
			"path taken from the alert"},
		{"write into a cron directory",
			Step{Safety: "contain", Undo: undo, Command: "cp -a /etc/cron.d/job /etc/cron.d/job.bak"},
			Step{Safety: "contain", Undo: undo, Command: "umask 077; mkdir -p /var/tmp/triage-evidence && cp -a /etc/cron.d/job /var/tmp/triage-evidence/"},
			"contents execute"},
		{"save then delete joined with ;",
			Step{Safety: "destructive", Note: "deletes", Command: "kubectl get secret -n ns -o yaml -- s > /var/tmp/triage-evidence/s.yaml; kubectl delete secret -n ns -- s"},
			Step{Safety: "destructive", Note: "deletes", Command: "umask 077; kubectl get secret -n ns -o yaml -- s > /var/tmp/triage-evidence/s.yaml && kubectl delete secret -n ns -- s"},
			"failed save"},
		{"save to a file then delete on the next line",
			Step{Safety: "contain", Undo: &Undo{Command: "kubectl apply -f \"rolebinding-$B.yaml\""}, Command: "kubectl get rolebinding -n ns -o yaml -- \"$B\" > \"rolebinding-$B.yaml\"\nkubectl delete rolebinding -n ns -- \"$B\""},
			Step{Safety: "contain", Undo: &Undo{Command: "kubectl apply -f \"rolebinding-$B.yaml\""}, Command: "kubectl get rolebinding -n ns -o yaml -- \"$B\" > \"rolebinding-$B.yaml\" &&\n  kubectl delete rolebinding -n ns -- \"$B\""},
			"failed save"},
		{"stop classed contain",
			Step{Safety: "contain", Undo: undo, Command: "crictl stop -t 10 -- {{container.id}}"},
			Step{Safety: "disrupt", Note: "memory lost", Command: "crictl stop -t 10 -- {{container.id}}"},
			"disrupt"},
		{"kill classed contain",
			Step{Safety: "contain", Undo: undo, Command: "kill -KILL \"$PID\""},
			Step{Safety: "contain", Undo: undo, Command: "kill -STOP \"$PID\""},
			"disrupt"},
		{"scale to zero classed contain",
			Step{Safety: "contain", Undo: undo, Command: "kubectl scale deployment -n ns --replicas=0 -- web"},
			Step{Safety: "disrupt", Note: "pods end", Command: "kubectl scale deployment -n ns --replicas=0 -- web"},
			"disrupt"},
		{"instance stop classed contain",
			Step{Safety: "contain", Undo: undo, Command: "aws ec2 stop-instances --instance-ids=\"$id\""},
			Step{Safety: "disrupt", Note: "memory lost", Command: "aws ec2 stop-instances --instance-ids=\"$id\""},
			"disrupt"},
		{"login profile delete classed contain",
			Step{Safety: "contain", Undo: &Undo{Command: "aws iam create-login-profile --user-name=\"$u\" --password-reset-required --password=\"$p\""}, Command: "aws iam delete-login-profile --user-name=\"$u\""},
			Step{Safety: "destructive", Note: "the password is gone", Command: "aws iam delete-login-profile --user-name=\"$u\""},
			"destructive"},
		{"session end classed contain",
			Step{Safety: "contain", Undo: undo, Command: "loginctl terminate-session \"$S\""},
			Step{Safety: "disrupt", Note: "session ends", Command: "loginctl terminate-session \"$S\""},
			"disrupt"},
		{"Okta factor reset classed contain",
			Step{Safety: "contain", Undo: undo, Command: "curl -sS -X POST -H \"Authorization: SSWS $OKTA_API_TOKEN\" \"$OKTA_ORG_URL/api/v1/users/$uid/lifecycle/reset_factors\""},
			Step{Safety: "disrupt", Note: "factors must be enrolled again", Command: "curl -sS -X POST -H \"Authorization: SSWS $OKTA_API_TOKEN\" \"$OKTA_ORG_URL/api/v1/users/$uid/lifecycle/reset_factors\""},
			"disrupt"},
		{"CSR deny classed contain",
			Step{Safety: "contain", Undo: undo, Command: "kubectl certificate deny \"$CSR\""},
			Step{Safety: "disrupt", Note: "the CSR is refused for good", Command: "kubectl certificate deny \"$CSR\""},
			"disrupt"},
		{"investigate step that writes outside the evidence directory",
			Step{Safety: "investigate", Command: "kubectl get pod -n ns -o yaml -- p > pod.yaml"},
			Step{Safety: "investigate", Command: "umask 077\nmkdir -p /var/tmp/triage-evidence && kubectl get pod -n ns -o yaml -- p > /var/tmp/triage-evidence/pod.yaml"},
			"does more"},
		{"contain without undo",
			Step{Safety: "contain", Command: "kill -STOP \"$PID\""},
			Step{Safety: "contain", Command: "kill -STOP \"$PID\"", Undo: &Undo{Command: "kill -CONT \"$PID\""}},
			"undo"},
		{"restorable policy delete with an undo command",
			Step{Safety: "contain", Undo: undo, Command: "aws s3api delete-bucket-policy --bucket=\"$b\""},
			Step{Safety: "contain", Undo: &Undo{Command: "aws s3api put-bucket-policy --bucket=\"$b\" --policy=file:///var/tmp/triage-evidence/policy.json"}, Command: "aws s3api delete-bucket-policy --bucket=\"$b\""},
			"destructive"},
		{"value through a variable into a regex",
			Step{Safety: "investigate", Command: "name={{proc.name}}\npgrep -a -- \"$name\""},
			Step{Safety: "investigate", Command: "name={{proc.name}}\ngrep -F -- \"$name\" /var/log/syslog | cat -v"},
			"pgrep"},
		{"value through a variable expansion into a URL",
			Step{Safety: "investigate", Command: "r={{github.repo.name}}\nowner=${r%%/*}\ngh api \"repos/$owner\""},
			Step{Safety: "investigate", Command: "r={{github.repo.name}}\nowner=$(jq -rn --arg v \"${r%%/*}\" '$v|@uri')\ngh api \"repos/$owner\""},
			"URL"},
		{"kill inside a namespace classed investigate",
			Step{Safety: "investigate", Command: "nsenter -t \"$PID\" -p -- kill -9 1"},
			Step{Safety: "investigate", Command: "nsenter -t \"$PID\" -n -- ss -tnp"},
			"disrupt"},
		{"delete inside kubectl exec classed investigate",
			Step{Safety: "investigate", Command: "kubectl exec -n ns pod/{{k8s.pod.name}} -- sh -c 'rm -f /tmp/x'"},
			Step{Safety: "investigate", Command: "kubectl exec -n ns pod/{{k8s.pod.name}} -- ls -la /tmp"},
			"destructive"},
		{"alert value as an option inside a container",
			Step{Safety: "investigate", Command: "kubectl exec -n ns pod/x -- cat {{fd.name}}"},
			Step{Safety: "investigate", Command: "kubectl exec -n ns pod/x -- cat -v -- {{fd.name}}"},
			"option"},
		{"kubectl create drops a name after --",
			Step{Safety: "contain", Undo: undo, Command: "kubectl create secret generic -n ns -- {{ka.target.name}} --from-literal=k=v"},
			Step{Safety: "contain", Undo: undo, Command: "kubectl create secret generic -n ns triage-rotated --from-literal=k=v"},
			"drops the name"},
		{"gh api GET with fields is a read",
			Step{Safety: "investigate", Command: "gh api repos/o/r/hooks -f name=x"},
			Step{Safety: "investigate", Command: "gh api -X GET repos/o/r/hooks -f per_page=100"},
			"does more"},
		{"rsync to another machine is not a local write",
			Step{Safety: "investigate", Command: "rsync -a /var/tmp/triage-evidence/ /srv/copy/"},
			Step{Safety: "investigate", Command: "rsync -a /var/tmp/triage-evidence/ \"$EVIDENCE_DEST\""},
			"does more"},
		{"ECS task stop before its description is saved",
			Step{Safety: "contain", Undo: undo, Command: "aws ecs stop-task --cluster=\"$c\" --task=\"$t\""},
			Step{Safety: "disrupt", Note: "the task's memory is lost", Command: "aws ecs stop-task --cluster=\"$c\" --task=\"$t\""},
			"disrupt"},
		{"crictl --name is a regex",
			Step{Safety: "investigate", Command: "crictl ps -a --name {{container.name}}"},
			Step{Safety: "investigate", Command: "crictl ps -a -o json | jq -r --arg n {{container.name}} '.containers[] | select(.metadata.name == $n) | .id'"},
			"regular expression"},
		{"docker filter by id is a prefix match",
			Step{Safety: "investigate", Command: "docker ps -a --filter id={{container.id}}"},
			Step{Safety: "investigate", Command: "docker container inspect -- {{container.id}} | jq -r '.[0].State.Status'"},
			"prefix"},
		{"evidence copy keeps a setuid bit",
			Step{Safety: "investigate", Command: "umask 077\nmkdir -p /var/tmp/triage-evidence && cp -a --parents -- {{fd.name}} /var/tmp/triage-evidence/"},
			Step{Safety: "investigate", Command: "umask 077\nmkdir -p /var/tmp/triage-evidence && cp --parents --preserve=ownership,timestamps -- {{fd.name}} /var/tmp/triage-evidence/"},
			"setuid"},
		{"evidence written world-readable",
			Step{Safety: "investigate", Command: "mkdir -p /var/tmp/triage-evidence && gcore -o /var/tmp/triage-evidence/core \"$PID\""},
			Step{Safety: "investigate", Command: "umask 077\nmkdir -p /var/tmp/triage-evidence && gcore -o /var/tmp/triage-evidence/core \"$PID\""},
			"umask 077"},
		{"captures without a capturing command",
			Step{Safety: "investigate", Captures: []string{TargetContainer}, Command: "crictl inspect -- {{container.id}}"},
			Step{Safety: "investigate", Captures: []string{TargetContainer}, Command: "umask 077\nmkdir -p /var/tmp/triage-evidence && docker export -o /var/tmp/triage-evidence/c.tar -- {{container.id}}"},
			"does not preserve"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := stepProblems(c.bad)
			if assert.NotEmpty(t, bad, "the old form must be refused") && c.want != "" {
				assert.Contains(t, strings.Join(bad, "\n"), c.want)
			}
			assert.Empty(t, stepProblems(c.good), "the fixed form must pass")
		})
	}
}

func TestLintEvidenceBeforeDisruption(t *testing.T) {
	stop := Step{Title: "Stop", Safety: "disrupt", Note: "memory lost", Command: "docker stop -- {{container.id}}"}
	export := Step{Title: "Export", Safety: "investigate", Captures: []string{TargetContainer},
		Command: "umask 077\nmkdir -p /var/tmp/triage-evidence && docker export -o /var/tmp/triage-evidence/c.tar -- {{container.id}}"}
	ship := Step{Title: "Ship", Safety: "investigate",
		Command: "umask 077\ncd /var/tmp/triage-evidence && sha256sum -- * > SHA256SUMS && scp -r -- /var/tmp/triage-evidence \"$EVIDENCE_DEST\""}
	verify := &Step{Title: "Check", Safety: "investigate", Command: "docker ps -a"}

	errs := lintVariant(&Variant{Steps: []Step{stop, export, ship}, Verify: verify})
	assert.Contains(t, strings.Join(errs, "\n"), "no earlier step captures the container")

	errs = lintVariant(&Variant{Steps: []Step{export, stop}, Verify: verify})
	assert.Contains(t, strings.Join(errs, "\n"), "evidence stays on the suspect machine")

	assert.Empty(t, lintVariant(&Variant{Steps: []Step{export, ship, stop}, Verify: verify}))
}

// An undo puts back what its step moved away, where it was: it may write
// to the alert's path or into a cron directory.
func TestLintUndoMayRestore(t *testing.T) {
	s := Step{Safety: "contain", Command: "mkdir -p /var/tmp/triage-evidence/q && mv -- {{fd.name}} /var/tmp/triage-evidence/q/",
		Undo: &Undo{Command: "mv -- /var/tmp/triage-evidence/q/job /etc/cron.d/job"}}
	assert.Empty(t, stepProblems(s))
	s.Undo.Command = "mv -- /var/tmp/triage-evidence/q/job {{fd.name}}"
	assert.Empty(t, stepProblems(s))
	s.Undo.Command = "pgrep -f -- {{proc.name}}"
	assert.NotEmpty(t, stepProblems(s), "value lints still hold in an undo")
}

// A systemd drop-in written by a harden step is the one allowed write
// into a directory whose contents execute.
func TestLintSystemdDropIn(t *testing.T) {
	s := Step{Safety: "harden", Undo: &Undo{Command: "rm -- /etc/systemd/system/x.service.d/60-triage.conf && systemctl daemon-reload"},
		Command: "mkdir -p /etc/systemd/system/x.service.d && printf '[Service]\\nNoNewPrivileges=yes\\n' > /etc/systemd/system/x.service.d/60-triage.conf"}
	assert.Empty(t, stepProblems(s))
	s.Safety = "contain"
	assert.NotEmpty(t, stepProblems(s), "only harden may write a drop-in")
}
