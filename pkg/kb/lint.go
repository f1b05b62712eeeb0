package kb

// Lints of playbook commands: what each command does (its effect, checked
// against the step's safety class) and how alert values reach it (never as
// a regex, glob, option, URL part or raw terminal output). Commands are
// parsed with mvdan.cc/sh, a full bash parser, after each {{KEY}} is
// replaced by a marker word, so the checks see the words bash would see.

import (
	"fmt"
	"regexp"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// EvidenceDir is where investigate steps keep evidence copies on the
// machine they run on; nothing else may be written by an investigate step.
const EvidenceDir = "/var/tmp/triage-evidence"

const markerPrefix = "TRGVAL"

var markerRe = regexp.MustCompile(markerPrefix + `(\d+)X`)

// word is a shell word flattened to text: literal and quoted parts as
// their value, parameter expansions as $NAME, command substitutions as
// $(…), alert values as markers.
type word struct {
	text string
}

func (w word) hasValue() bool    { return strings.Contains(w.text, markerPrefix) }
func (w word) startsValue() bool { return strings.HasPrefix(w.text, markerPrefix) }
func (w word) String() string    { return w.text }
func (w word) is(s ...string) bool {
	for _, x := range s {
		if w.text == x {
			return true
		}
	}
	return false
}

func flatten(w *syntax.Word) word {
	if w == nil {
		return word{}
	}
	var b strings.Builder
	var walk func(parts []syntax.WordPart)
	walk = func(parts []syntax.WordPart) {
		for _, p := range parts {
			switch p := p.(type) {
			case *syntax.Lit:
				b.WriteString(p.Value)
			case *syntax.SglQuoted:
				b.WriteString(p.Value)
			case *syntax.DblQuoted:
				walk(p.Parts)
			case *syntax.ParamExp:
				if p.Param != nil {
					b.WriteString("$" + p.Param.Value)
				} else {
					b.WriteString("$?")
				}
			case *syntax.CmdSubst:
				b.WriteString("$(…)")
			default:
				b.WriteString("?")
			}
		}
	}
	walk(w.Parts)
	return word{b.String()}
}

// parsedCommand is a command template parsed with markers for its values.
type parsedCommand struct {
	file *syntax.File
	keys []string // marker index -> placeholder key
}

func parseTemplate(tmpl string) (*parsedCommand, error) {
	pc := &parsedCommand{}
	src := placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		pc.keys = append(pc.keys, m[2:len(m)-2])
		return fmt.Sprintf("%s%dX", markerPrefix, len(pc.keys)-1)
	})
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(src), "")
	if err != nil {
		return nil, err
	}
	pc.file = f
	taintVariables(f)
	return pc, nil
}

// taintVariables makes a variable that holds an alert value count as that
// value: x={{k8s.pod.name}} … "$x" is checked like {{k8s.pod.name}}. A
// value that went through a command substitution (an encoder, a lookup)
// is the command's output, not the alert's text, and is not followed.
func taintVariables(f *syntax.File) {
	tainted := map[string]string{}
	for pass := 0; pass < 3; pass++ {
		syntax.Walk(f, func(n syntax.Node) bool {
			if as, ok := n.(*syntax.Assign); ok && as.Name != nil && as.Value != nil && !as.Append {
				hasSubst := false
				for _, part := range as.Value.Parts {
					if _, ok := part.(*syntax.CmdSubst); ok {
						hasSubst = true
					}
				}
				if v := flatten(as.Value); !hasSubst && v.hasValue() {
					tainted[as.Name.Value] = markerRe.FindString(v.text)
				}
			}
			return true
		})
		if len(tainted) == 0 {
			return
		}
		syntax.Walk(f, func(n syntax.Node) bool {
			var parts *[]syntax.WordPart
			switch n := n.(type) {
			case *syntax.Word:
				parts = &n.Parts
			case *syntax.DblQuoted:
				parts = &n.Parts
			default:
				return true
			}
			for i, part := range *parts {
				pe, ok := part.(*syntax.ParamExp)
				// ${x#*/} and ${x%%-*} are still the alert's text; ${#x} is not
				if !ok || pe.Param == nil || pe.Length || pe.Excl {
					continue
				}
				if m, ok := tainted[pe.Param.Value]; ok {
					(*parts)[i] = &syntax.Lit{Value: m, ValuePos: pe.Pos(), ValueEnd: pe.End()}
				}
			}
			return true
		})
	}
}

// show turns markers back into {{KEY}} for messages.
func (pc *parsedCommand) show(s string) string {
	return markerRe.ReplaceAllStringFunc(s, func(m string) string {
		var i int
		fmt.Sscanf(m[len(markerPrefix):], "%d", &i)
		if i < len(pc.keys) {
			return "{{" + pc.keys[i] + "}}"
		}
		return m
	})
}

// call is one simple command with wrappers (sudo, env, timeout…) removed.
type call struct {
	name string
	args []word // after the name
	stmt *syntax.Stmt
}

func (c call) has(flags ...string) bool {
	for _, a := range c.args {
		for _, f := range flags {
			if a.text == f || (strings.HasPrefix(f, "--") && strings.HasPrefix(a.text, f+"=")) {
				return true
			}
			// short flags bundled: -lF holds F
			if len(f) == 2 && f[0] == '-' && f[1] != '-' && len(a.text) > 2 && a.text[0] == '-' && a.text[1] != '-' &&
				strings.ContainsRune(a.text[1:], rune(f[1])) && !strings.Contains(a.text, "=") {
				return true
			}
		}
	}
	return false
}

// positional returns the arguments that are not options (before "--"),
// plus everything after "--".
func (c call) positional() []word {
	var out []word
	dashdash, skip := false, false
	for _, a := range c.args {
		if dashdash {
			out = append(out, a)
			continue
		}
		if a.text == "--" {
			dashdash = true
			continue
		}
		if strings.HasPrefix(a.text, "-") && len(a.text) > 1 {
			if valueOpts[c.name][a.text] || nextWordValue[c.name][a.text] {
				skip = true
			}
			continue
		}
		if skip {
			skip = false
			continue
		}
		out = append(out, a)
	}
	return out
}

// valueOpts are options whose value is the next word, so that the
// subcommand and name positions can be found (aws --region R ec2 …).
var valueOpts = map[string]map[string]bool{
	"aws":     {"--region": true, "--profile": true, "--output": true, "--query": true, "--endpoint-url": true},
	"gcloud":  {"--project": true, "--zone": true, "--region": true, "--format": true, "--filter": true, "--limit": true, "--account": true},
	"kubectl": {"-l": true, "--selector": true, "--field-selector": true, "--kubeconfig": true, "--replicas": true, "-f": true, "--filename": true},
	"crictl":  {"-r": true, "--runtime-endpoint": true, "--timeout": true, "--state": true},
	"docker":  {"-H": true, "--host": true, "--signal": true, "-s": true, "-t": true, "--time": true},
	"kill":    {"-s": true, "-n": true},
	"gh":      {"--jq": true, "-f": true, "-F": true, "--field": true, "--raw-field": true, "-H": true, "--header": true, "--paginate": false},
	"curl":    {"-H": true, "--header": true, "-X": true, "--request": true, "-d": true, "--data": true, "-o": true, "--output": true, "-u": true, "--user": true, "-w": true},
}

func (c call) sub(i int) string {
	p := c.positional()
	if i < len(p) {
		return p[i].text
	}
	return ""
}

var wrappers = map[string]bool{"sudo": true, "env": true, "nice": true, "nohup": true, "command": true, "exec": true, "time": true, "ionice": true}

func callOf(ce *syntax.CallExpr, st *syntax.Stmt) (call, bool) {
	var words []word
	for _, a := range ce.Args {
		words = append(words, flatten(a))
	}
	for len(words) > 0 {
		n := words[0].text
		switch {
		case wrappers[n]:
			words = words[1:]
			for len(words) > 0 && (strings.HasPrefix(words[0].text, "-") || strings.Contains(words[0].text, "=")) {
				words = words[1:]
			}
			continue
		case n == "timeout":
			words = words[1:]
			for len(words) > 0 && strings.HasPrefix(words[0].text, "-") {
				words = words[1:]
			}
			if len(words) > 0 {
				words = words[1:] // the duration
			}
			continue
		case n == "xargs":
			words = words[1:]
			for len(words) > 0 && strings.HasPrefix(words[0].text, "-") {
				words = words[1:]
			}
			continue
		}
		break
	}
	if len(words) == 0 {
		return call{}, false
	}
	name := words[0].text
	if i := strings.LastIndex(name, "/"); i >= 0 && !strings.HasPrefix(name, markerPrefix) {
		name = name[i+1:]
	}
	return call{name: name, args: words[1:], stmt: st}, true
}

// expand returns c and the commands it runs inside a namespace, a
// container or a shell (nsenter … CMD, chroot DIR CMD, kubectl exec … --
// CMD, docker/crictl exec CONTAINER CMD, ip netns exec NS CMD, sh -c
// STRING), so what they do counts too.
func expand(c call) []call {
	out := []call{c}
	var inner []word
	switch {
	case c.name == "nsenter":
		for i := 0; i < len(c.args); i++ {
			a := c.args[i].text
			if a == "--" {
				inner = c.args[i+1:]
				break
			}
			if a == "-t" || a == "--target" || a == "-S" || a == "-G" || a == "--setuid" || a == "--setgid" {
				i++
				continue
			}
			if !strings.HasPrefix(a, "-") {
				inner = c.args[i:]
				break
			}
		}
	case c.name == "chroot":
		if p := c.positional(); len(p) > 1 {
			inner = p[1:]
		}
	case (c.name == "kubectl" || c.name == "oc") && c.sub(0) == "exec":
		for i, a := range c.args {
			if a.text == "--" {
				inner = c.args[i+1:]
				break
			}
		}
	case (c.name == "docker" || c.name == "podman" || c.name == "crictl" || c.name == "nerdctl") && c.sub(0) == "exec":
		if p := c.positional(); len(p) > 2 {
			inner = p[2:]
		}
	case c.name == "ip" && c.sub(0) == "netns" && c.sub(1) == "exec":
		if p := c.positional(); len(p) > 3 {
			inner = p[3:]
		}
	case c.name == "sh" || c.name == "bash" || c.name == "dash" || c.name == "busybox" && c.sub(0) == "sh":
		for i, a := range c.args {
			if a.text == "-c" && i+1 < len(c.args) {
				if f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(c.args[i+1].text), ""); err == nil {
					out = append(out, nodeCalls(f, nil)...)
				}
				return out
			}
		}
	}
	if len(inner) > 0 {
		name := inner[0].text
		if i := strings.LastIndex(name, "/"); i >= 0 && !strings.HasPrefix(name, markerPrefix) {
			name = name[i+1:]
		}
		out = append(out, expand(call{name: name, args: inner[1:], stmt: c.stmt})...)
	}
	return out
}

// effect is what a simple command does.
type effect struct {
	rank   int    // SafetyRank of the least class that may do it
	target string // process, container, pod, instance: what a disrupt/destructive effect ends
	what   string
	// restorable: a delete of configuration (a policy, a binding, a
	// membership) that the step's undo can put back exactly from a saved
	// copy; with an undo command it is a reversible change.
	restorable bool
}

// Deletes of configuration that can be put back exactly from a saved copy.
// Not here, because what they delete cannot be recreated as it was: login
// profiles (the password), access keys (the secret), users, roles, service
// accounts (their tokens), secrets, workloads and data.
var restorableDelete = regexp.MustCompile(`\b(delete-bucket-policy|delete-(user|role|group)-policy|delete-public-access-block|delete-bucket-(ownership-controls|lifecycle|cors|website|encryption)|delete-trail-event-selectors)\b` +
	`|^kubectl delete (rolebinding|clusterrolebinding|role|clusterrole|networkpolicy|networkpolicies|validatingwebhookconfiguration|mutatingwebhookconfiguration|validatingadmissionpolicy|validatingadmissionpolicybinding|limitrange|resourcequota)s?\b` +
	`|/groups/[^ ]*/users/|/apps/[^ ]*/users/|/roles/|/collaborators/|/keys/|/hooks/|/members/`)

var (
	awsReadVerb   = regexp.MustCompile(`^(get|list|describe|lookup|head|simulate|search|filter|batch-get|test)-|^(generate-credential-report|start-query|wait)$`)
	awsDeleteVerb = regexp.MustCompile(`^(delete|terminate|deregister|purge|remove-permission)(-|$)`)
	gcloudRead    = map[string]bool{"list": true, "describe": true, "get-iam-policy": true, "read": true, "get": true, "get-value": true, "print-access-token": true, "search-all-resources": true, "search-all-iam-policies": true, "analyze-iam-policy": true, "get-serial-port-output": true, "tail": true, "ls": true, "cat": true, "get-effective-policy": true, "describe-policy": true, "list-grantable-roles": true}
	kubectlRead   = map[string]bool{"get": true, "describe": true, "logs": true, "auth": true, "top": true, "events": true, "explain": true, "api-resources": true, "api-versions": true, "version": true, "config": true, "cluster-info": true, "cp": true, "diff": true, "wait": true, "exec": true, "debug": false}
	podKinds      = regexp.MustCompile(`^(po|pod|pods|deploy|deployment|deployments|sts|statefulset|statefulsets|ds|daemonset|daemonsets|rs|replicaset|replicasets|job|jobs|cronjob|cronjobs|rc|replicationcontroller)(\.[a-z.]+)?(/|$)`)
	httpURL       = regexp.MustCompile(`://`)
	// gs:// and s3:// name a bucket and object to gcloud/gsutil/aws, which
	// do not percent-decode them: encoding would name another object.
	storageURL = regexp.MustCompile(`^(gs|s3)://`)
)

func signalOf(c call) string {
	for i, a := range c.args {
		t := a.text
		switch {
		case t == "-s" || t == "--signal" || t == "-n":
			if i+1 < len(c.args) {
				return strings.TrimPrefix(strings.ToUpper(c.args[i+1].text), "SIG")
			}
		case strings.HasPrefix(t, "--signal="):
			return strings.TrimPrefix(strings.ToUpper(t[len("--signal="):]), "SIG")
		case strings.HasPrefix(t, "-") && len(t) > 1 && t != "--" && !strings.HasPrefix(t, "--"):
			return strings.TrimPrefix(strings.ToUpper(t[1:]), "SIG")
		}
	}
	return "TERM"
}

// effectOf classifies a simple command by what it does. Unknown commands
// are taken as reads: the table covers the tools playbooks use, and a test
// keeps it honest on the commands they contain.
func effectOf(c call) effect {
	change := func(what string) effect { return effect{rank: 1, what: what} }
	disrupt := func(target, what string) effect { return effect{rank: 2, target: target, what: what} }
	destroy := func(target, what string) effect { return effect{rank: 3, target: target, what: what} }
	sub0, sub1 := c.sub(0), c.sub(1)
	switch c.name {
	case "rm", "shred", "unlink", "rmdir", "userdel", "deluser", "groupdel", "wipefs", "truncate":
		return destroy("", c.name+" deletes")
	case "kill":
		switch signalOf(c) {
		case "STOP", "CONT", "0", "TSTP":
			return change("kill -STOP/-CONT suspends or resumes")
		case "L", "LIST", "l":
			return effect{}
		}
		return disrupt(TargetProcess, "kill ends a process")
	case "pkill", "killall":
		return disrupt(TargetProcess, c.name+" ends processes")
	case "reboot", "shutdown", "poweroff", "halt":
		return disrupt(TargetInstance, c.name+" stops the machine")
	case "loginctl":
		if strings.HasPrefix(sub0, "terminate-") || strings.HasPrefix(sub0, "kill-") {
			return disrupt("", "loginctl "+sub0+" ends sessions")
		}
		if strings.HasPrefix(sub0, "lock-") || sub0 == "disable-linger" || sub0 == "enable-linger" {
			return change("loginctl " + sub0)
		}
	case "conntrack":
		if c.has("-D", "--delete", "-F", "--flush") {
			return disrupt("", "conntrack -D ends connections")
		}
	case "ss":
		if c.has("-K", "--kill") {
			return disrupt("", "ss -K ends connections")
		}
	case "systemctl":
		switch sub0 {
		case "stop", "kill", "restart", "try-restart", "reload-or-restart", "isolate", "reboot", "poweroff", "halt", "kexec":
			return disrupt(TargetProcess, "systemctl "+sub0+" stops a service")
		case "status", "show", "cat", "list-units", "list-unit-files", "list-timers", "is-active", "is-enabled", "is-failed", "list-dependencies", "help", "":
			return effect{}
		}
		return change("systemctl " + sub0)
	case "crictl":
		switch sub0 {
		case "stop", "stopp":
			return disrupt(TargetContainer, "crictl "+sub0+" stops a container")
		case "rm", "rmp", "rmi":
			return destroy(TargetContainer, "crictl "+sub0+" deletes")
		case "update", "runp", "create", "start", "run":
			return change("crictl " + sub0)
		}
	case "docker", "podman", "nerdctl":
		s := sub0
		if s == "container" || s == "image" || s == "volume" || s == "network" || s == "system" {
			s = sub0 + " " + sub1
		}
		switch s {
		case "stop", "kill", "restart", "container stop", "container kill", "container restart":
			return disrupt(TargetContainer, c.name+" "+s+" stops a container")
		case "rm", "rmi", "container rm", "image rm", "volume rm", "system prune", "container prune", "image prune", "volume prune", "network rm":
			return destroy(TargetContainer, c.name+" "+s+" deletes")
		case "pause", "unpause", "update", "network disconnect", "network connect", "container pause", "container update", "run", "create", "start":
			return change(c.name + " " + s)
		}
	case "kubectl", "oc":
		for _, a := range c.args {
			if a.text == "--dry-run=server" || a.text == "--dry-run=client" {
				return effect{}
			}
			if strings.Contains(a.text, "/checkpoint/") && sub0 == "create" {
				return effect{} // the kubelet checkpoint API through the API server's node proxy: evidence
			}
		}
		switch sub0 {
		case "delete":
			t := ""
			if podKinds.MatchString(sub1) {
				t = TargetPod
			}
			e := destroy(t, "kubectl delete")
			e.restorable = t == "" && restorableDelete.MatchString("kubectl delete "+sub1)
			return e
		case "drain":
			return disrupt(TargetPod, "kubectl drain evicts every pod of the node")
		case "scale":
			for i, a := range c.args {
				if a.text == "--replicas=0" || (a.text == "--replicas" && i+1 < len(c.args) && c.args[i+1].text == "0") {
					return disrupt(TargetPod, "kubectl scale --replicas=0 stops the pods")
				}
			}
			return change("kubectl scale")
		case "rollout":
			if sub1 == "restart" {
				return disrupt(TargetPod, "kubectl rollout restart replaces the pods")
			}
			if sub1 == "status" || sub1 == "history" {
				return effect{}
			}
			return change("kubectl rollout " + sub1)
		case "certificate":
			if sub1 == "deny" {
				return disrupt("", "kubectl certificate deny refuses a CSR for good")
			}
			return change("kubectl certificate " + sub1)
		case "auth":
			if sub1 == "reconcile" {
				return change("kubectl auth reconcile")
			}
			return effect{}
		case "config":
			if sub1 == "view" || sub1 == "get-contexts" || sub1 == "current-context" || sub1 == "get-clusters" {
				return effect{}
			}
			return change("kubectl config " + sub1)
		}
		if sub0 == "" || kubectlRead[sub0] {
			return effect{}
		}
		return change("kubectl " + sub0)
	case "helm":
		switch sub0 {
		case "uninstall", "delete":
			return destroy("", "helm uninstall")
		case "list", "get", "status", "history", "show", "template", "version", "search", "":
			return effect{}
		}
		return change("helm " + sub0)
	case "aws":
		verb := sub1
		switch {
		case sub0 == "s3":
			switch sub1 {
			case "rm", "rb":
				return destroy("", "aws s3 "+sub1)
			case "mv":
				return change("aws s3 mv")
			}
			return effect{} // ls, cp (evidence upload), presign
		case verb == "stop-instances" || verb == "reboot-instances" || verb == "hibernate-instances":
			return disrupt(TargetInstance, "aws ec2 "+verb)
		case sub0 == "ecs" && (verb == "stop-task" || verb == "update-service" && strings.Contains(joinArgs(c), "--desired-count=0")):
			return disrupt(TargetTask, "aws ecs "+verb+" stops tasks")
		case verb == "terminate-instances":
			return destroy(TargetInstance, "aws ec2 terminate-instances")
		case verb == "create-snapshot" || verb == "create-snapshots" || verb == "get-console-output" || verb == "get-console-screenshot" || verb == "create-image":
			return effect{} // evidence
		case awsDeleteVerb.MatchString(verb):
			e := destroy("", "aws "+sub0+" "+verb)
			e.restorable = restorableDelete.MatchString(verb)
			return e
		case verb == "" || awsReadVerb.MatchString(verb) || sub0 == "sts" || (sub0 == "configure" && verb != "set"):
			return effect{}
		}
		return change("aws " + sub0 + " " + verb)
	case "gcloud", "gsutil":
		words := wordsText(c.positional())
		joined := " " + strings.Join(words, " ") + " "
		read := false
		for _, w := range words {
			read = read || gcloudRead[w]
		}
		switch {
		case c.name == "gsutil" && (sub0 == "rm" || sub0 == "rb"):
			return destroy("", "gsutil "+sub0)
		case c.name == "gsutil":
			return effect{}
		case strings.Contains(joined, " storage rm ") || strings.Contains(joined, " delete "):
			t := ""
			if strings.Contains(joined, " compute instances ") {
				t = TargetInstance
			}
			return destroy(t, "gcloud … delete")
		case strings.Contains(joined, " compute instances stop ") || strings.Contains(joined, " compute instances reset ") || strings.Contains(joined, " compute instances suspend "):
			return disrupt(TargetInstance, "gcloud compute instances stop/reset/suspend")
		case strings.Contains(joined, " disks snapshot ") || strings.Contains(joined, " storage cp ") || strings.Contains(joined, " snapshots create ") || strings.Contains(joined, " logging read ") || strings.HasPrefix(joined, " config ") || read:
			return effect{}
		}
		return change("gcloud" + strings.TrimRight(joined, " "))
	case "curl", "wget", "http":
		method := "GET"
		for i, a := range c.args {
			switch {
			case (a.text == "-X" || a.text == "--request") && i+1 < len(c.args):
				method = strings.ToUpper(c.args[i+1].text)
			case strings.HasPrefix(a.text, "-X") && len(a.text) > 2:
				method = strings.ToUpper(a.text[2:])
			case strings.HasPrefix(a.text, "--request="):
				method = strings.ToUpper(a.text[len("--request="):])
			case (a.text == "-d" || a.text == "--data" || a.text == "--data-raw" || a.text == "--json" || a.text == "-T") && method == "GET":
				method = "POST"
			}
		}
		url := strings.Join(wordsText(c.args), " ")
		switch {
		case strings.Contains(url, "/checkpoint/"):
			return effect{} // kubelet checkpoint API: evidence
		case strings.Contains(url, "/lifecycle/reset_factors") || strings.Contains(url, "/lifecycle/reset_password") || strings.Contains(url, "/lifecycle/expire_password") || strings.Contains(url, "/lifecycle/deactivate"):
			return disrupt("", "Okta lifecycle operation ends the user's enrolment or access")
		case method == "DELETE" && strings.Contains(url, "/sessions"):
			return disrupt("", "clears sessions")
		case method == "DELETE":
			e := destroy("", "HTTP DELETE")
			e.restorable = restorableDelete.MatchString(url)
			return e
		case method == "GET" || method == "HEAD":
			return effect{}
		}
		return change("HTTP " + method)
	case "gh":
		if sub0 == "api" {
			// gh api sends fields as POST unless a method is given
			// (gh api --help: "the default HTTP request method is GET
			// normally and POST if any parameters were added").
			method, explicit, fields := "GET", false, false
			for i, a := range c.args {
				if (a.text == "-X" || a.text == "--method") && i+1 < len(c.args) {
					method, explicit = strings.ToUpper(c.args[i+1].text), true
				} else if strings.HasPrefix(a.text, "--method=") {
					method, explicit = strings.ToUpper(a.text[len("--method="):]), true
				} else if a.text == "-f" || a.text == "-F" || a.text == "--field" || a.text == "--raw-field" || a.text == "--input" {
					fields = true
				}
			}
			if fields && !explicit {
				method = "POST"
			}
			switch method {
			case "GET":
				return effect{}
			case "DELETE":
				e := destroy("", "gh api DELETE")
				e.restorable = restorableDelete.MatchString(strings.Join(wordsText(c.args), " "))
				return e
			}
			if sub1 == "graphql" && !strings.Contains(strings.Join(wordsText(c.args), " "), "mutation") {
				return effect{} // a GraphQL query (audit log) is a read sent as POST
			}
			return change("gh api " + method)
		}
		verbs := " " + strings.Join(wordsText(c.positional()), " ") + " "
		switch {
		case strings.Contains(verbs, " delete "):
			return destroy("", "gh … delete")
		case strings.Contains(verbs, " cancel "):
			return disrupt("", "gh … cancel")
		case strings.Contains(verbs, " list ") || strings.Contains(verbs, " view ") || strings.Contains(verbs, " status ") || strings.Contains(verbs, " download ") || len(c.positional()) < 2:
			return effect{}
		}
		return change("gh" + strings.TrimRight(verbs, " "))
	case "crontab":
		if c.has("-r") {
			return destroy("", "crontab -r deletes the crontab")
		}
		if c.has("-l") {
			return effect{}
		}
		return change("crontab")
	case "apt-get", "apt", "dnf", "yum", "zypper":
		switch sub0 {
		case "purge", "autoremove":
			return destroy("", c.name+" "+sub0+" removes packages and their configuration")
		case "update", "check", "list", "info", "search", "download", "changelog", "makecache", "repoquery", "":
			return effect{}
		}
		return change(c.name + " " + sub0)
	case "dpkg":
		if c.has("--purge", "-P") {
			return destroy("", "dpkg --purge")
		}
		if c.has("-i", "--install", "-r", "--remove", "--configure") {
			return change("dpkg")
		}
	case "sysctl":
		if c.has("-w", "--write", "-p", "--load", "--system") {
			return change("sysctl writes")
		}
		for _, a := range c.positional() {
			if strings.Contains(a.text, "=") {
				return change("sysctl writes")
			}
		}
	case "sed", "perl":
		if hasInPlace(c) {
			return change(c.name + " -i edits a file")
		}
	case "iptables", "ip6tables", "nft", "ufw", "firewall-cmd", "ipset":
		if c.has("-L", "--list", "-S", "--list-rules") || sub0 == "list" || sub0 == "status" {
			return effect{}
		}
		return change(c.name + " changes the firewall")
	case "ip":
		if sub0 == "link" && sub1 == "set" || sub0 == "route" && (sub1 == "add" || sub1 == "del" || sub1 == "replace") || sub0 == "addr" && (sub1 == "add" || sub1 == "del") {
			return change("ip changes the network")
		}
	case "mount":
		if len(c.positional()) > 0 || c.has("-o", "--bind", "-a") {
			return change("mount")
		}
	case "chmod", "chown", "chgrp", "touch", "mv", "ln", "install":
		if p := c.positional(); len(p) > 0 && evidencePath(p[len(p)-1].text) {
			return effect{}
		}
		return change(c.name)
	case "umount", "swapoff", "swapon", "modprobe", "rmmod", "insmod", "usermod", "passwd", "chpasswd", "gpasswd", "chage", "chattr", "setfacl", "setcap", "useradd", "groupadd", "update-alternatives", "setenforce", "semanage", "restorecon", "aa-enforce", "aa-complain", "apparmor_parser", "auditctl", "kubeadm", "systemd-run", "ssh-keygen", "update-ca-certificates", "augenrules", "hostnamectl", "timedatectl", "falcoctl":
		switch {
		case c.name == "modprobe" && c.has("-n", "--dry-run", "-c", "--showconfig", "--show-depends"):
			return effect{}
		case c.name == "auditctl" && c.has("-l", "-s"):
			return effect{}
		case c.name == "ssh-keygen" && c.has("-l", "-L", "-F"):
			return effect{}
		case c.name == "kubeadm" && (sub0 == "reset"):
			return destroy("", "kubeadm reset")
		case c.name == "kubeadm" && (sub0 == "config" || sub0 == "version" || sub1 == "check-expiration" || sub1 == "list"):
			return effect{}
		case c.name == "passwd" && c.has("-S", "--status"):
			return effect{}
		case c.name == "chage" && c.has("-l", "--list"):
			return effect{}
		}
		return change(c.name)
	}
	return effect{}
}

func hasInPlace(c call) bool {
	for _, a := range c.args {
		if strings.HasPrefix(a.text, "-i") || strings.HasPrefix(a.text, "--in-place") || (strings.HasPrefix(a.text, "-") && !strings.HasPrefix(a.text, "--") && strings.Contains(a.text, "i") && len(a.text) < 5) {
			return true
		}
	}
	return false
}

func wordsText(ws []word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.text
	}
	return out
}

// Directories whose contents execute: cron, systemd, init scripts, login
// profiles, sudo rules, udev rules, module autoload, the preload list.
var execDir = regexp.MustCompile(`^(/etc/cron[^/]*|/var/spool/cron|/etc/anacrontab|/etc/systemd|/lib/systemd|/usr/lib/systemd|/run/systemd|/etc/profile\.d|/etc/profile$|/etc/bash\.bashrc|/etc/init\.d|/etc/rc[^/]*|/etc/sudoers|/etc/udev/rules\.d|/lib/udev/rules\.d|/etc/modules-load\.d|/etc/ld\.so\.preload|/etc/update-motd\.d|/etc/xdg/autostart)(/|$)`)
var systemdDropIn = regexp.MustCompile(`^/etc/systemd/system/[^/]+\.d/[^/]+\.conf$`)

// writes returns the files a simple command writes (its last argument for
// cp/mv/install/ln/tee…, the file of sed -i), without redirections.
func writes(c call) []word {
	pos := c.positional()
	switch c.name {
	case "cp", "mv", "install", "ln", "rsync", "scp":
		if len(pos) >= 2 {
			dst := pos[len(pos)-1]
			if (c.name == "rsync" || c.name == "scp") && (strings.Contains(dst.text, ":") || strings.HasPrefix(dst.text, "$")) {
				return nil // to another machine (host:path, or the responder's $EVIDENCE_DEST)
			}
			return pos[len(pos)-1:]
		}
	case "tee", "touch":
		return pos
	case "sed":
		if hasInPlace(c) && len(pos) >= 2 {
			return pos[1:]
		}
	}
	return nil
}

// evidenceVar matches the variables playbooks keep the evidence directory in.
var evidenceVar = regexp.MustCompile(`^\$(EVIDENCE|EVIDENCE_DIR|ev|evidence|EV|evdir)(/|$)`)

func evidencePath(s string) bool {
	return strings.HasPrefix(s, EvidenceDir) || evidenceVar.MatchString(s) || s == "/dev/null" || strings.HasPrefix(s, "/dev/std") || strings.HasPrefix(s, "/dev/fd/")
}

// value positions that read a pattern language.
var patternTools = map[string]string{
	"pgrep": "pgrep matches a regex", "pkill": "pkill matches a regex", "killall": "killall matches every process of that name",
	"egrep": "egrep matches a regex", "awk": "awk reads a program", "gawk": "awk reads a program", "sed": "sed reads a program",
	"perl": "perl reads a program",
}

// tools whose option parser takes the word after a value-taking option
// as its value, whatever it starts with (pflag, Go's flag package,
// getopt), with the value-taking options playbooks use.
var nextWordValue = map[string]map[string]bool{
	"kubectl":    {"-n": true, "--namespace": true, "-c": true, "--container": true, "--context": true, "--as": true, "-o": true, "--output": true, "--since": true, "--tail": true},
	"crictl":     {"--name": true, "--id": true, "-p": true, "--pod": true, "--label": false, "--namespace": true, "--tail": true, "--since": true, "-o": true, "--output": true},
	"docker":     {"--name": true, "-f": true, "--filter": true, "--since": true, "--tail": true, "-o": true, "--output": true},
	"jq":         {},
	"grep":       {"-e": true, "--regexp": true, "-f": true},
	"ps":         {"-p": true, "--pid": true, "--ppid": true, "-o": true, "-u": true, "-U": true},
	"gcore":      {"-o": true},
	"ss":         {},
	"lsof":       {"-p": true, "-u": true},
	"stat":       {"-c": true, "--format": true},
	"date":       {"-d": true},
	"readlink":   {},
	"journalctl": {"-t": true, "--identifier": true, "_PID": true, "--since": true, "--until": true, "-o": true},
	"chage":      {},
	"crontab":    {"-u": true},
	"getent":     {},
	"id":         {},
	"last":       {},
	"ls":         {},
	"find":       {"-user": true, "-uid": true, "-newer": true, "-samefile": true, "-inum": true, "-perm": true, "-type": true, "-maxdepth": true, "-mindepth": true, "-mmin": true, "-mtime": true},
	"nsenter":    {"-t": true, "--target": true},
	"gh":         {"-R": true, "--repo": true, "-q": true, "--jq": false, "--method": true, "-X": true},
	"tar":        {"-C": true, "-f": true, "--file": true},
	"sha256sum":  {},
	"printf":     {},
}

// valueLints checks how alert values reach one simple command.
func valueLints(pc *parsedCommand, c call, bad func(string, ...any)) {
	if strings.HasPrefix(c.name, markerPrefix) {
		bad("[command-name] an alert value is the command name")
		return
	}
	hasValue := false
	for _, a := range c.args {
		hasValue = hasValue || a.hasValue()
	}
	if !hasValue {
		return
	}
	show := pc.show
	// 1. regex and glob positions
	if why, ok := patternTools[c.name]; ok {
		bad("[pattern] %s: an alert value reaches %s (%s); compare exactly instead (e.g. /proc/PID/comm with [ = ], or grep -F --)", c.name, show(joinArgs(c)), why)
		return
	}
	switch c.name {
	case "grep", "zgrep":
		if !c.has("-F", "--fixed-strings") {
			bad("[pattern] grep without -F: an alert value reaches grep as a regex in %q", show(joinArgs(c)))
		}
	case "find":
		for i, a := range c.args {
			if i > 0 && c.args[i-1].is("-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex", "-lname", "-ilname") && a.hasValue() {
				bad("[pattern] find %s: an alert value is a glob or regex in %q", c.args[i-1].text, show(joinArgs(c)))
			}
		}
	case "journalctl":
		for i, a := range c.args {
			if a.hasValue() && (i > 0 && c.args[i-1].is("-g", "--grep", "-u", "--unit", "--user-unit") || strings.HasPrefix(a.text, "--grep=") || strings.HasPrefix(a.text, "--unit=") || strings.HasPrefix(a.text, "-u"+markerPrefix)) {
				bad("[pattern] journalctl: an alert value is a pattern (-g is a regex, -u a glob) in %q", show(joinArgs(c)))
			}
		}
	case "crictl":
		// crictl ps/pods --name, --namespace and --label match regular
		// expressions (cri-tools cmd/crictl: "filter by … regular expression pattern")
		for i, a := range c.args {
			if a.hasValue() && (i > 0 && c.args[i-1].is("--name", "--namespace") || strings.HasPrefix(a.text, "--name=") || strings.HasPrefix(a.text, "--namespace=")) {
				bad("[pattern] crictl --name/--namespace is a regular expression: match the alert value exactly instead (jq --arg … select(.metadata.name == $n)) in %q", show(joinArgs(c)))
			}
		}
	case "docker", "podman", "nerdctl":
		// docker --filter name= and id= match by pattern and prefix, not exactly
		for i, a := range c.args {
			v := a.text
			if i > 0 && c.args[i-1].is("--filter", "-f") || strings.HasPrefix(v, "--filter=") {
				v = strings.TrimPrefix(v, "--filter=")
				if a.hasValue() && (strings.HasPrefix(v, "name=") || strings.HasPrefix(v, "id=")) {
					bad("[pattern] %s --filter name=/id= matches by pattern or prefix: use %s inspect -- VALUE for one container, in %q", c.name, c.name, show(joinArgs(c)))
				}
			}
		}
	case "echo":
		bad("[option] echo parses options (-n, -e) and escapes: print alert values with printf '%%s\\n' instead, in %q", show(joinArgs(c)))
		return
	case "kubectl":
		if c.sub(0) == "create" {
			for _, a := range c.args {
				if a.text == "--" {
					bad("[option] kubectl create drops the name given after --: choose the new object's name yourself in %q", show(joinArgs(c)))
					break
				}
			}
		}
	case "jq":
		// the filter is the first positional word; values go through --arg
		if p := c.positional(); len(p) > 0 && p[0].hasValue() && !argValue(c, p[0]) {
			bad("[pattern] jq: an alert value is part of the jq program in %q; pass it with --arg", show(joinArgs(c)))
		}
	}
	// 3. URLs
	for i, a := range c.args {
		if !a.hasValue() {
			continue
		}
		isURL := httpURL.MatchString(a.text) && !storageURL.MatchString(a.text) || strings.HasPrefix(a.text, "$") && strings.Contains(a.text, "/api/")
		if c.name == "curl" || c.name == "wget" {
			isURL = isURL || !(i > 0 && c.args[i-1].is("-H", "--header", "-d", "--data", "--data-raw", "--data-urlencode", "-u", "--user", "-o", "--output"))
		}
		if c.name == "gh" && c.sub(0) == "api" && len(c.positional()) > 1 && c.positional()[1].text == a.text {
			isURL = true
		}
		if isURL {
			bad("[url] an alert value is part of a URL in %q; percent-encode it first (v=$(jq -rn --arg v {{x}} '$v|@uri'))", show(a.text))
		}
	}
	// 2. option positions
	dashdash := false
	for i, a := range c.args {
		if a.text == "--" {
			dashdash = true
			continue
		}
		if !a.startsValue() || dashdash {
			continue
		}
		if c.name == "printf" {
			if i == 0 || (i == 2 && c.args[0].is("-v")) {
				bad("[pattern] printf: an alert value is the format in %q", show(joinArgs(c)))
			}
			continue
		}
		if (c.name == "[" || c.name == "test") && i > 0 && c.args[i-1].is("=", "==", "!=", "-eq", "-ne", "-lt", "-gt", "-le", "-ge") {
			continue
		}
		if (c.name == "[" || c.name == "test") && i+1 < len(c.args) && c.args[i+1].is("=", "==", "!=", "-eq", "-ne") && i > 0 {
			continue
		}
		if argValue(c, a) {
			continue
		}
		if i > 0 {
			prev := c.args[i-1].text
			if opts, ok := nextWordValue[c.name]; ok && opts[prev] {
				continue
			}
		}
		bad("[option] %s: an alert value can be read as an option in %q; put it after -- or write --opt={{x}}", c.name, show(joinArgs(c)))
	}
}

// argValue says whether w is the value of jq's --arg NAME VALUE.
func argValue(c call, w word) bool {
	if c.name != "jq" {
		return false
	}
	for i := range c.args {
		if c.args[i].text == w.text && i >= 2 && c.args[i-2].is("--arg", "--argjson") {
			return true
		}
	}
	return false
}

func joinArgs(c call) string {
	return strings.TrimSpace(c.name + " " + strings.Join(wordsText(c.args), " "))
}

// printsRaw lists pipelines that print file contents to the terminal
// without showing control characters.
var rawPrinters = map[string]bool{"cat": true, "head": true, "tail": true, "tr": true, "less": true, "more": true, "crontab": true, "strings": false, "zcat": true}

func printsRaw(c call) bool {
	if !rawPrinters[c.name] {
		return false
	}
	switch c.name {
	case "cat", "zcat":
		return !c.has("-v", "-A", "-e", "-t", "--show-nonprinting", "--show-all")
	case "crontab":
		return c.has("-l")
	}
	return true
}

// stmtCalls returns the simple commands of a statement, in order,
// following pipes and && / || chains.
func stmtCalls(st *syntax.Stmt) []call { return nodeCalls(st, st) }

// nodeCalls returns the simple commands under node, expanded (see expand).
func nodeCalls(node syntax.Node, st *syntax.Stmt) []call {
	var out []call
	syntax.Walk(node, func(n syntax.Node) bool {
		if ce, ok := n.(*syntax.CallExpr); ok {
			if c, ok := callOf(ce, st); ok {
				out = append(out, expand(c)...)
			}
		}
		return true
	})
	return out
}

// LintStep checks one step's command and undo command. It returns the
// effects of the step's command (for the variant-level evidence rule).
func lintStep(s *Step) (problems []string, effects []effect) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if s.Command != "" {
		effects = lintCommand(s.Command, s, bad)
	}
	if s.Undo != nil && s.Undo.Command != "" {
		lintCommand(s.Undo.Command, nil, func(format string, args ...any) { bad("undo: "+format, args...) })
	}
	rank, ok := SafetyRank[s.Safety]
	if !ok {
		return problems, effects
	}
	for _, e := range effects {
		if e.restorable && s.Undo != nil && s.Undo.Command != "" && e.rank > 1 {
			e.rank = 1
		}
		if e.rank > rank {
			need := []string{SafetyInvestigate, "contain or harden", SafetyDisrupt, SafetyDestructive}[e.rank]
			bad("[class] safety %s, but the command does more: %s (that is %s)", s.Safety, e.what, need)
		}
	}
	if (s.Safety == SafetyContain || s.Safety == SafetyHarden) && s.Undo == nil {
		bad("[undo] a %s step names its undo (undo: {command: …, note: …})", s.Safety)
	}
	for _, t := range s.Captures {
		if !capturePattern[t].MatchString(s.Command) {
			bad("[captures] captures %s, but the command does not preserve one (%s)", t, captureHint[t])
		}
	}
	return problems, effects
}

var capturePattern = map[string]*regexp.Regexp{
	TargetProcess:   regexp.MustCompile(`\bgcore\b|/proc/[^ ]*/(exe|maps|mem|environ|fd|cmdline)`),
	TargetContainer: regexp.MustCompile(`\b(docker|podman|nerdctl) (container )?(export|commit)\b|\bcrictl checkpoint\b|/checkpoint/|/proc/[^ ]*/root\b|\bctr [^\n]*snapshot`),
	TargetPod:       regexp.MustCompile(`\bkubectl\b[^\n|;&]*\blogs\b`),
	TargetInstance:  regexp.MustCompile(`create-snapshots?\b|disks snapshot\b|snapshots create\b|create-image\b`),
	TargetTask:      regexp.MustCompile(`\baws ecs describe-tasks\b`),
}

var captureHint = map[string]string{
	TargetProcess:   "gcore, or copies of /proc/PID/exe, maps, environ",
	TargetContainer: "docker export/commit, crictl checkpoint, the kubelet checkpoint API, or a copy of /proc/PID/root",
	TargetPod:       "kubectl logs (and the object with kubectl get -o yaml)",
	TargetInstance:  "disk snapshots: aws ec2 create-snapshots, gcloud compute disks snapshot",
	TargetTask:      "aws ecs describe-tasks (and the task definition and its log group)",
}

// lintCommand parses a command template and applies the per-command lints.
// s is nil for undo commands, which are not held to the step's class.
func lintCommand(cmd string, s *Step, bad func(string, ...any)) []effect {
	pc, err := parseTemplate(cmd)
	if err != nil {
		bad("[parse] does not parse as bash: %v", err)
		return nil
	}
	var effects []effect
	setE, cdEvidence := false, false
	for _, st := range pc.file.Stmts {
		for _, c := range stmtCalls(st) {
			if c.name == "set" && (c.has("-e") || c.has("-o") && strings.Contains(joinArgs(c), "errexit")) {
				setE = true
			}
			if c.name == "cd" && len(c.positional()) > 0 && evidencePath(c.positional()[0].text) {
				cdEvidence = true
			}
		}
	}
	// after cd into the evidence directory, relative paths are in it
	isEvidence := func(p string) bool {
		return evidencePath(p) || cdEvidence && p != "" && !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "$") && !strings.HasPrefix(p, "~") && !strings.HasPrefix(p, "..")
	}
	// evidence permissions: copies keep no setuid bit, files are not
	// world-readable (a core image holds secrets; the directory is 0755)
	umask := false
	writesEvidence := false
	syntax.Walk(pc.file, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CallExpr:
			c, ok := callOf(n, nil)
			if !ok {
				return true
			}
			if c.name == "umask" && len(c.args) > 0 && (c.args[0].text == "077" || c.args[0].text == "0077") {
				umask = true
			}
			if p := c.positional(); (c.name == "cp" || c.name == "rsync") && len(p) > 1 && isEvidence(p[len(p)-1].text) && !umask {
				writesEvidence = true
			}
			if (c.name == "gcore" || c.name == "tar" || c.name == "tee") && anyEvidence(c) && !umask {
				writesEvidence = true
			}
			if c.name == "docker" && (c.sub(0) == "export" || c.sub(0) == "save") && anyEvidence(c) && !umask {
				writesEvidence = true
			}
			if s != nil && (c.name == "cp" || c.name == "rsync") && anyEvidence(c) && (c.has("-a", "-p", "--archive") || hasPreserveMode(c)) && unknownSource(c) {
				bad("[evidence-perms] %s keeps modes, so a setuid file stays setuid in the evidence directory: copy with --preserve=ownership,timestamps and record the mode with stat, in %q", c.name, pc.show(joinArgs(c)))
			}
		case *syntax.Stmt:
			for _, r := range n.Redirs {
				if (r.Op == syntax.RdrOut || r.Op == syntax.AppOut || r.Op == syntax.RdrAll || r.Op == syntax.AppAll) && !umask {
					if dst := flatten(r.Word).text; isEvidence(dst) && dst != "/dev/null" && !strings.HasPrefix(dst, "/dev/") {
						writesEvidence = true
					}
				}
			}
		}
		return true
	})
	if writesEvidence && s != nil {
		bad("[evidence-perms] writes evidence before umask 077: the evidence directory is 0755 and a core image, environment or log is readable by every local user; start the command with umask 077")
	}
	// per simple command: values, effects, writes
	syntax.Walk(pc.file, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CallExpr:
			outer, ok := callOf(n, nil)
			if !ok {
				return true
			}
			for _, c := range expand(outer) {
				valueLints(pc, c, bad)
				e := effectOf(c)
				for _, w := range writes(c) {
					if !isEvidence(w.text) && e.rank == 0 {
						e = effect{rank: 1, what: c.name + " writes " + pc.show(w.text)}
					}
					checkWrite(pc, s, w, bad)
				}
				if e.rank > 0 {
					effects = append(effects, e)
				}
			}
		case *syntax.Stmt:
			for _, r := range n.Redirs {
				switch r.Op {
				case syntax.RdrOut, syntax.AppOut, syntax.RdrAll, syntax.AppAll, syntax.RdrClob:
					w := flatten(r.Word)
					if r.N != nil && r.N.Value == "2" && w.text == "/dev/null" {
						continue
					}
					if !isEvidence(w.text) && !strings.HasPrefix(w.text, "&") {
						effects = append(effects, effect{rank: 1, what: "writes " + pc.show(w.text)})
					}
					checkWrite(pc, s, w, bad)
				}
			}
		}
		return true
	})
	// raw printing of file contents: the last command of a top-level
	// pipeline whose output reaches the terminal
	var checkRaw func(st *syntax.Stmt)
	var checkAll func(stmts []*syntax.Stmt)
	checkRaw = func(st *syntax.Stmt) {
		if st == nil {
			return
		}
		for _, r := range st.Redirs {
			if r.Op == syntax.RdrOut || r.Op == syntax.AppOut || r.Op == syntax.RdrAll || r.Op == syntax.AppAll {
				if r.N == nil || r.N.Value == "1" {
					return
				}
			}
		}
		switch cmd := st.Cmd.(type) {
		case *syntax.BinaryCmd:
			if cmd.Op == syntax.Pipe || cmd.Op == syntax.PipeAll {
				checkRaw(cmd.Y)
				return
			}
			checkRaw(cmd.X)
			checkRaw(cmd.Y)
		case *syntax.CallExpr:
			if c, ok := callOf(cmd, st); ok && printsRaw(c) {
				bad("[raw-output] %s prints file contents raw; pipe through cat -v (or use cat -v) so control characters show: %q", c.name, pc.show(joinArgs(c)))
			}
		case *syntax.Block:
			checkAll(cmd.Stmts)
		case *syntax.Subshell:
			checkAll(cmd.Stmts)
		case *syntax.IfClause:
			for c := cmd; c != nil; c = c.Else {
				checkAll(c.Then)
			}
		case *syntax.WhileClause:
			checkAll(cmd.Do)
		case *syntax.ForClause:
			checkAll(cmd.Do)
		}
	}
	checkAll = func(stmts []*syntax.Stmt) {
		for _, st := range stmts {
			checkRaw(st)
		}
	}
	checkAll(pc.file.Stmts)
	// save-then-change: a save followed, at the top level, by a change
	// that is not chained with &&
	if !setE {
		saved := ""
		for _, st := range pc.file.Stmts {
			isSave, change := classifyStmt(pc, st)
			if saved != "" && change != "" {
				bad("[save-then-change] %q is followed by %q on its own line or after ';': a failed save does not stop the change; join them with && (or set -e)", saved, change)
				break
			}
			if isSave != "" {
				saved = isSave
			}
			if bc, ok := st.Cmd.(*syntax.BinaryCmd); ok && bc.Op == syntax.OrStmt {
				if s1, _ := classifyStmt(pc, bc.X); s1 != "" {
					if _, c2 := classifyStmt(pc, bc.Y); c2 != "" {
						bad("[save-then-change] %q || %q changes when the save fails; use &&", s1, c2)
					}
				}
			}
		}
	}
	return effects
}

// classifyStmt says whether a statement saves evidence (and what) or
// changes something (and what).
func classifyStmt(pc *parsedCommand, st *syntax.Stmt) (save, change string) {
	// A save writes a copy: output redirected into the evidence directory,
	// a relative path or a variable's path (an absolute system path is a
	// configuration write, itself a change), or a copying command.
	syntax.Walk(st, func(n syntax.Node) bool {
		inner, ok := n.(*syntax.Stmt)
		if !ok {
			return true
		}
		for _, r := range inner.Redirs {
			if r.Op != syntax.RdrOut && r.Op != syntax.AppOut && r.Op != syntax.RdrAll && r.Op != syntax.AppAll {
				continue
			}
			if r.N != nil && r.N.Value != "1" {
				continue
			}
			dst := flatten(r.Word).text
			if dst == "/dev/null" || strings.HasPrefix(dst, "/dev/") || strings.HasPrefix(dst, "&") || dst == "" {
				continue
			}
			if evidencePath(dst) || !strings.HasPrefix(dst, "/") {
				if save == "" {
					save = "… > " + pc.show(dst)
				}
			}
		}
		return true
	})
	for _, c := range stmtCalls(st) {
		e := effectOf(c)
		switch {
		case e.rank > 0:
			if change == "" {
				change = pc.show(joinArgs(c))
			}
		case c.name == "cp" || c.name == "tar" || c.name == "gcore" || c.name == "tee",
			c.name == "docker" && (c.sub(0) == "export" || c.sub(0) == "commit"),
			c.name == "crictl" && c.sub(0) == "checkpoint":
			if save == "" {
				save = pc.show(joinArgs(c))
			}
		}
	}
	if bc, ok := st.Cmd.(*syntax.BinaryCmd); ok && bc.Op == syntax.AndStmt {
		// a && chain carries its own ordering: it counts as a save only
		// when it ends in one
		if _, c := classifyStmt(pc, bc.Y); c != "" {
			return "", change
		}
	}
	return save, change
}

// unknownSource says whether a copy's source is not a fixed system path:
// an alert value, a variable or a glob, which may name an attacker's setuid
// file. A fixed configuration file (/etc/fstab) keeps its mode harmlessly.
func unknownSource(c call) bool {
	p := c.positional()
	for i := 0; i < len(p)-1; i++ {
		if p[i].hasValue() || strings.Contains(p[i].text, "$") || strings.ContainsAny(p[i].text, "*?[") {
			return true
		}
	}
	return false
}

func hasPreserveMode(c call) bool {
	for _, a := range c.args {
		if strings.HasPrefix(a.text, "--preserve=") && (strings.Contains(a.text, "mode") || strings.Contains(a.text, "all")) || a.text == "--preserve" {
			return true
		}
	}
	return false
}

func anyEvidence(c call) bool {
	for _, a := range c.args {
		if evidencePath(a.text) && a.text != "/dev/null" {
			return true
		}
	}
	return false
}

func checkWrite(pc *parsedCommand, s *Step, w word, bad func(string, ...any)) {
	if s == nil {
		return // an undo puts back what a step moved away, where it was
	}
	switch {
	case w.startsValue():
		bad("[exec-dir] writes to a path taken from the alert (%s): the evidence directory is the only place to copy to", pc.show(w.text))
	case execDir.MatchString(w.text):
		if s != nil && s.Safety == SafetyHarden && systemdDropIn.MatchString(w.text) {
			return
		}
		bad("[exec-dir] writes into %s, a directory whose contents execute", pc.show(w.text))
	}
}

// lintVariant applies the variant-level rules: evidence before disruption
// and evidence that leaves the machine.
func lintVariant(v *Variant) []string {
	var errs []string
	captured := map[string]bool{}
	capturesAny := false
	offHost := false
	for i, s := range v.AllSteps() {
		problems, effects := lintStep(&s)
		for _, p := range problems {
			errs = append(errs, fmt.Sprintf("step %d (%s): %s", i+1, s.Title, p))
		}
		for _, e := range effects {
			if e.rank >= 2 && e.target != "" && !captured[e.target] {
				errs = append(errs, fmt.Sprintf("step %d (%s): [evidence-first] %s, and no earlier step captures the %s (captures: [%s], %s)", i+1, s.Title, e.what, e.target, e.target, captureHint[e.target]))
			}
		}
		for _, t := range s.Captures {
			captured[t] = true
			capturesAny = true
		}
		if offHostCopy.MatchString(s.Command) && strings.Contains(s.Command, "sha256sum") {
			offHost = true
		}
	}
	if capturesAny && !offHost {
		errs = append(errs, "[off-host] evidence stays on the suspect machine: add a step that hashes it (sha256sum) and copies it off (scp, rsync, kubectl cp, aws s3 cp, gcloud storage cp)")
	}
	return errs
}

var offHostCopy = regexp.MustCompile(`\b(scp|rsync|kubectl cp|aws s3 cp|gcloud storage cp|gsutil cp)\b`)
