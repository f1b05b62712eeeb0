// Package risk scores one alert from 0 to 100 with the factors behind the
// score. The model is in docs/risk-model.md; every number here is there.
//
//	impact     = min(100, priority points + primary tactic bonus)
//	base       = impact × confidence / 100            (Splunk RBA)
//	contextual = min(100, base + Σ context factors)
//	attempt    = a blocked attempt counts half, plus its entity's earlier
//	             blocked attempts, never more than contextual
//	score      = 100·m·o / (1 + m·o), o = attempt / (100 − attempt)
//	             (asset criticality m as an odds update, as Elastic does)
//	final      = min(score, DrillCap) for a recognised drill
//
// Score is a pure function of its inputs: no state, no clock. What it needs
// from the entity's past (earlier blocked attempts) comes in Input, from
// Attempts.
package risk

import (
	"fmt"
	"math"
	"net/netip"
	"path"
	"strings"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
)

// Levels, with Elastic's bands.
const (
	LevelLow      = "low"      // 0–21
	LevelMedium   = "medium"   // 22–47
	LevelHigh     = "high"     // 48–73
	LevelCritical = "critical" // 74–100
)

// LevelOf returns the band of a score.
func LevelOf(score int) string {
	switch {
	case score <= 21:
		return LevelLow
	case score <= 47:
		return LevelMedium
	case score <= 73:
		return LevelHigh
	}
	return LevelCritical
}

// priorityPoints is the impact of each Falco priority, by rank.
var priorityPoints = [...]int{
	alert.PriorityDebug:         10,
	alert.PriorityInformational: 20,
	alert.PriorityNotice:        35,
	alert.PriorityWarning:       50,
	alert.PriorityError:         65,
	alert.PriorityCritical:      80,
	alert.PriorityAlert:         90,
	alert.PriorityEmergency:     100,
}

// tacticBonus weighs what a tactic means for impact: acting on data or
// gaining power weighs more than looking around.
var tacticBonus = map[string]int{
	"TA0040": 15, // impact
	"TA0010": 15, // exfiltration
	"TA0004": 10, // privilege escalation
	"TA0006": 10, // credential access
	"TA0008": 10, // lateral movement
	"TA0011": 8,  // command and control
	"TA0001": 5,  // initial access
	"TA0002": 5,  // execution
	"TA0003": 5,  // persistence
	"TA0005": 5,  // defense evasion
	"TA0009": 5,  // collection
	"TA0007": 0,  // discovery
	"TA0043": 0,  // reconnaissance
	"TA0042": 0,  // resource development
}

var tacticNames = map[string]string{
	"TA0040": "impact", "TA0010": "exfiltration", "TA0004": "privilege-escalation",
	"TA0006": "credential-access", "TA0008": "lateral-movement", "TA0011": "command-and-control",
	"TA0001": "initial-access", "TA0002": "execution", "TA0003": "persistence",
	"TA0005": "defense-evasion", "TA0009": "collection", "TA0007": "discovery",
	"TA0043": "reconnaissance", "TA0042": "resource-development",
}

// maturityConfidence is how often a rule's alerts are true positives, by
// the upstream maturity tag.
var maturityConfidence = map[string]int{
	"maturity_stable":     90,
	"maturity_incubating": 75,
	"maturity_sandbox":    60,
	"maturity_deprecated": 50,
}

// knownRuleConfidence applies to rules in the knowledge base without a
// maturity tag: the upstream plugin rules (k8saudit, cloudtrail, …).
const knownRuleConfidence = 80

// criticalityMultiplier is the odds multiplier m per asset criticality.
var criticalityMultiplier = map[string]float64{"low": 0.5, "medium": 1, "high": 1.5, "extreme": 2}

// Input is what scoring looks at.
type Input struct {
	Alert *alert.Alert
	// Tactic is the alert's primary tactic (TA ID; "" for none): one
	// alert counts for one tactic in scoring as in correlation, the one
	// the engine picks (engine.primaryTactic, docs/risk-model.md).
	Tactic    string
	KnownRule bool // the rule is in the knowledge base
	// PriorBlocked is the number of blocked attempts on the alert's
	// entity within the correlation window before it (Attempts.Prior).
	PriorBlocked int
}

// Result is a score with its explanation.
type Result struct {
	Score   int
	Level   string
	Factors []string
	Outcome Outcome
	Drill   string // the drill actor recognised, "" for none
}

// Scorer holds the compiled configuration.
type Scorer struct {
	cfg          config.Risk
	customFactor string // the confidence factor of custom rules
	drills       []drillActor
	drillFactor  map[[2]string]string // (actor, evidence) -> factor text
	// blockedFactors caches blocked factor strings by reason. The scorer
	// is used from one goroutine (the engine is serial).
	blockedFactors map[string]string
}

// NewScorer returns a scorer for cfg (validated by config.Parse).
func NewScorer(cfg config.Risk) *Scorer {
	s := &Scorer{cfg: cfg, customFactor: confidenceText("custom_rule", cfg.CustomRuleConfidence),
		drills: drillActors(cfg), drillFactor: map[[2]string]string{}, blockedFactors: map[string]string{}}
	for _, d := range s.drills {
		for _, ev := range []string{EvidenceImage, EvidenceAncestry} {
			s.drillFactor[[2]string{d.Name, ev}] = fmt.Sprintf("drill=%s/%s:max%d", d.Name, ev, DrillCap)
		}
	}
	return s
}

// Score computes the risk of one alert.
func (s *Scorer) Score(in Input) Result { return s.ScoreInto(in, nil) }

// ScoreInto is Score with the factors appended to factors[:0], so a caller
// that scores alert after alert can reuse one slice. The factor strings are
// built once per process (factorText), not per alert.
func (s *Scorer) ScoreInto(in Input, factors []string) Result {
	a := in.Alert
	factors = factors[:0]

	impact := priorityPoints[a.Priority]
	factors = append(factors, priorityFactor[a.Priority])
	if bonus := tacticBonus[in.Tactic]; bonus > 0 {
		impact += bonus
		factors = append(factors, tacticFactor[in.Tactic])
	}
	impact = min(impact, 100)

	conf, why := s.confidence(a, in.KnownRule)
	factors = append(factors, s.confidenceFactor(why, conf))
	score := float64(impact*conf) / 100

	var v fieldView
	v.fill(a)
	factors = contextFactors(factors, &score, a, &v, s.cfg.CriticalNamespaces)
	out := outcomeOf(&v)
	blocked := out.State == OutcomeBlocked
	if !blocked && in.PriorBlocked > 0 {
		factors = append(factors, fAfterBlocked.text)
		score += float64(fAfterBlocked.points)
	}
	score = math.Min(score, 100)
	if blocked && !failureIsTheSignal[a.Rule] {
		full := score
		score *= blockedFactor
		factors = append(factors, s.blockedText(out.Reason))
		if n := min(in.PriorBlocked, maxRepeatedBlocked); n > 0 {
			score = math.Min(full, score+float64(n*repeatedBlockedPoints))
			factors = append(factors, repeatedBlockedFactor[n])
		}
	}

	crit := s.criticality(a, &v)
	if m := criticalityMultiplier[crit]; m != 1 {
		score = oddsUpdate(score, m)
		factors = append(factors, assetFactor(crit, m))
	}
	final := int(math.Round(score))
	final = max(0, min(100, final))
	drill, evidence := drillOf(&v, s.drills)
	if drill != "" {
		final = min(final, DrillCap)
		factors = append(factors, s.drillFactor[[2]string{drill, evidence}])
	}
	return Result{Score: final, Level: LevelOf(final), Factors: factors, Outcome: out, Drill: drill}
}

// A blocked attempt counts half; each earlier blocked attempt on the same
// entity within the window adds repeatedBlockedPoints, up to
// maxRepeatedBlocked of them, never beyond what the attempt would score
// had it succeeded. A success after blocked attempts on the same entity
// gets fAfterBlocked: worse than either alone.
const (
	blockedFactor         = 0.5
	blockedSuffix         = ":x0.50"
	repeatedBlockedPoints = 5
	maxRepeatedBlocked    = 3
)

// blockedText is the blocked factor for reason, built once per reason
// (errno names and HTTP codes are a small set; a bounded cache).
func (s *Scorer) blockedText(reason string) string {
	if f, ok := s.blockedFactors[reason]; ok {
		return f
	}
	f := "blocked=" + reason + blockedSuffix
	if len(s.blockedFactors) < 256 {
		s.blockedFactors[reason] = f
	}
	return f
}

var repeatedBlockedFactor = func() (t [maxRepeatedBlocked + 1]string) {
	for n := 1; n <= maxRepeatedBlocked; n++ {
		t[n] = fmt.Sprintf("repeated_blocked=%d:+%d", n, n*repeatedBlockedPoints)
	}
	return t
}()

// Factor strings are a small closed set: each is formatted once here and
// shared by every alert that has it.
var (
	priorityFactor [len(priorityPoints)]string
	tacticFactor   = map[string]string{}
	maturityFactor = map[string]string{}
	assetFactors   = map[string]string{}
)

func init() {
	for p := range priorityPoints {
		priorityFactor[p] = fmt.Sprintf("priority=%s:+%d", alert.Priority(p), priorityPoints[p])
	}
	for id, b := range tacticBonus {
		tacticFactor[id] = fmt.Sprintf("tactic=%s:+%d", tacticNames[id], b)
	}
	for tag, c := range maturityConfidence {
		maturityFactor[tag] = confidenceText(tag, c)
	}
	maturityFactor["plugin_rule"] = confidenceText("plugin_rule", knownRuleConfidence)
	for crit, m := range criticalityMultiplier {
		assetFactors[crit] = assetText(crit, m)
	}
}

func confidenceText(why string, conf int) string {
	return fmt.Sprintf("confidence=%s:x%.2f", why, float64(conf)/100)
}

func assetText(crit string, m float64) string { return fmt.Sprintf("asset=%s:x%.1f", crit, m) }

func (s *Scorer) confidenceFactor(why string, conf int) string {
	if why == "custom_rule" {
		return s.customFactor
	}
	if f, ok := maturityFactor[why]; ok {
		return f
	}
	return confidenceText(why, conf)
}

func assetFactor(crit string, m float64) string {
	if f, ok := assetFactors[crit]; ok {
		return f
	}
	return assetText(crit, m)
}

// oddsUpdate multiplies the odds of score/100 by m; the result stays
// within 0..100 for any m > 0.
func oddsUpdate(score, m float64) float64 {
	if score >= 100 {
		return 100
	}
	if score <= 0 {
		return 0
	}
	o := score / (100 - score)
	return 100 * m * o / (1 + m*o)
}

func (s *Scorer) confidence(a *alert.Alert, known bool) (int, string) {
	for _, t := range a.Tags {
		if c, ok := maturityConfidence[t]; ok {
			return c, t
		}
	}
	if known {
		return knownRuleConfidence, "plugin_rule"
	}
	return s.cfg.CustomRuleConfidence, "custom_rule"
}

// criticality is the highest criticality among asset entries matching the
// alert, else the default.
func (s *Scorer) criticality(a *alert.Alert, v *fieldView) string {
	best := s.cfg.DefaultCriticality
	host := a.Hostname
	ns := v.first(kK8sNs, kTargetNs)
	image := v.first(kImageRepo, kPodImage)
	account := v.first(kCtAccount, kAWSAccount, kGCPProject, kGitHubOrg)
	for _, asset := range s.cfg.Assets {
		if rank(asset.Criticality) <= rank(best) {
			continue
		}
		if matchAny(asset.Hosts, host) || matchAny(asset.Namespaces, ns) || matchAny(asset.Images, image) || matchAny(asset.Accounts, account) {
			best = asset.Criticality
		}
	}
	return best
}

func rank(c string) int {
	for i, x := range config.Criticalities {
		if x == c {
			return i
		}
	}
	return -1
}

func matchAny(patterns []string, v string) bool {
	if v == "" {
		return false
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok {
			return true
		}
	}
	return false
}

// factor is one context factor; text is its factor string, built once.
type factor struct {
	name   string
	points int
	text   string
}

func newFactor(name string, points int) factor {
	return factor{name: name, points: points, text: fmt.Sprintf("%s:+%d", name, points)}
}

var (
	fRoot          = newFactor("root", 10)
	fPrivileged    = newFactor("privileged_container", 15)
	fHostNamespace = newFactor("host_namespace", 10)
	fHostPath      = newFactor("host_path_mount", 10)
	fMemfd         = newFactor("exe_from_memfd", 15)
	fUpperLayer    = newFactor("exe_upper_layer", 10)
	fTmpfs         = newFactor("exe_in_tmpfs", 10)
	fScriptTmpfs   = newFactor("script_in_tmpfs", 10)
	fAfterBlocked  = newFactor("after_blocked_attempt", 15)
	fWritable      = newFactor("exe_writable", 5)
	fTTY           = newFactor("interactive_tty", 5)
	fSensitivePath = newFactor("sensitive_path", 10)
	fPublicPeer    = newFactor("public_peer", 10)
	fCriticalNS    = newFactor("critical_namespace", 10)
	fClusterAdmin  = newFactor("cluster_admin", 15)
	fWildcardRBAC  = newFactor("wildcard_rbac", 10)
	fAnonymous     = newFactor("anonymous_user", 15)
	fConsoleNoMFA  = newFactor("console_login_without_mfa", 10)
	fCloudRootAcct = newFactor("cloud_root_account", 15)
)

// contextFactors appends the factor strings of what in the alert makes it
// worse to out and adds their points to *score, one at a time in the order
// applied. Each factor counts once, whichever field showed it.
func contextFactors(out []string, score *float64, a *alert.Alert, v *fieldView, criticalNamespaces []string) []string {
	add := func(f *factor, present bool) {
		if present {
			out = append(out, f.text)
			*score += float64(f.points)
		}
	}
	uid, hasUID := v.value(kUserUID)
	user, _ := v.value(kUserName)
	add(&fRoot, (hasUID && uid == "0") || (!hasUID && user == "root"))
	podPrivileged, _ := v.value(kPodPrivileged)
	add(&fPrivileged, v.isTrue(kContainerPrivileged) || strings.Contains(podPrivileged, "true"))
	add(&fHostNamespace, v.isTrue(kHostNetwork) || v.isTrue(kHostPID) || v.isTrue(kHostIPC))
	hostPath, _ := v.value(kHostPath)
	add(&fHostPath, hostPath != "" && hostPath != "[]" && hostPath != "()")

	flags, _ := v.value(kEvtFlags)
	exe := v.first(kExePath, kExe)
	memfd := strings.Contains(flags, "EXE_FROM_MEMFD") || v.isTrue(kExeFromMemfd) || strings.HasPrefix(exe, "memfd:") || strings.HasPrefix(exe, "/memfd:")
	add(&fMemfd, memfd)
	add(&fUpperLayer, strings.Contains(flags, "EXE_UPPER_LAYER") || v.isTrue(kExeUpperLayer))
	exeTmpfs := !memfd && inTmpfs(exe)
	add(&fTmpfs, exeTmpfs)
	payload, script := payloadOf(v)
	add(&fScriptTmpfs, !memfd && !exeTmpfs && script && inTmpfs(payload))
	add(&fWritable, strings.Contains(flags, "EXE_WRITABLE") || v.isTrue(kExeWritable))
	tty, _ := v.value(kTTY)
	add(&fTTY, tty != "" && tty != "0")
	file, _ := v.value(kFdName)
	add(&fSensitivePath, sensitivePath(file))
	add(&fPublicPeer, publicPeer(v))
	ns := v.first(kK8sNs, kTargetNs)
	add(&fCriticalNS, matchAny(criticalNamespaces, ns))

	role, _ := v.value(kBindingRole)
	add(&fClusterAdmin, role == "cluster-admin" || a.Rule == "Attach to cluster-admin Role")
	rules, _ := v.value(kRoleRules)
	add(&fWildcardRBAC, strings.Contains(rules, `"*"`) || strings.Contains(rules, "[*]") || strings.Contains(rules, ":*"))
	kaUser, _ := v.value(kKaUser)
	add(&fAnonymous, kaUser == "system:anonymous")

	ctName, _ := v.value(kCtName)
	mfa := v.first(kCtMFA, kJSONMFA)
	add(&fConsoleNoMFA, (ctName == "ConsoleLogin" && mfa == "No") || a.Rule == "Console Login Without MFA")
	identity := v.first(kCtIdentityType, kJSONIdentityType)
	ctUser, _ := v.value(kCtUser)
	add(&fCloudRootAcct, identity == "Root" || (a.Source == "aws_cloudtrail" && ctUser == "root"))
	return out
}

// inTmpfs reports a path in a directory any user can write and that is
// usually a tmpfs: where dropped payloads live.
func inTmpfs(p string) bool {
	return strings.HasPrefix(p, "/dev/shm/") || strings.HasPrefix(p, "/tmp/") || strings.HasPrefix(p, "/run/") || strings.HasPrefix(p, "/var/tmp/")
}

// sensitivePaths are files whose access matters on any Linux host or pod.
var sensitivePaths = []string{
	"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d/", "/etc/pam.d/", "/root/.ssh/",
	"/etc/kubernetes/", "/var/lib/kubelet/", "/var/run/secrets/kubernetes.io/", "/run/secrets/kubernetes.io/",
	"/.aws/credentials", "/.ssh/id_", "/.kube/config", "/proc/1/", "/var/run/docker.sock", "/run/containerd/containerd.sock",
}

func sensitivePath(p string) bool {
	if p == "" {
		return false
	}
	for _, s := range sensitivePaths {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

// publicPeer reports a remote address on the public internet in the
// fields that carry peers (peerKeys).
func publicPeer(v *fieldView) bool {
	for _, k := range peerKeys {
		val, ok := v.value(k)
		if !ok {
			continue
		}
		ip, err := netip.ParseAddr(strings.Trim(val, "[]"))
		if err != nil {
			continue
		}
		if isPublic(ip) {
			return true
		}
	}
	return false
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),  // documentation
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("2001:db8::/32"),
}

func isPublic(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() ||
		ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() || ip.IsLinkLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// ParseFactor splits a factor string into its name and its contribution
// text, e.g. "root:+10" → ("root", "+10").
func ParseFactor(f string) (name, contribution string) {
	i := strings.LastIndexByte(f, ':')
	if i < 0 {
		return f, ""
	}
	return f[:i], f[i+1:]
}
