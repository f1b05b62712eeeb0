package test

// Which rule of rules/triage_rules.yaml Falco raises for each triage event,
// under rule_matching first (Falco's default) and all, modelled with
// test/harness's condition evaluator (../shared/design/falco-facts.md,
// fact 4: first stops at the first matching rule in load order; fact 7:
// libsinsp asks one field per extract_fields call, so the fields are read
// with ExtractEach). Also: arrival order must not hide an alert (issue 13,
// part 3).

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/fields"
	"github.com/triage-dev/triage/pkg/plugin"
	"github.com/triage-dev/triage/test/harness"
)

// The shipped rules, by name (the names users and docs refer to).
const (
	ruleGoal     = "Triage progression into exfiltration or impact"
	ruleMulti    = "Triage multi-tactic activity on one entity"
	ruleCritical = "Triage critical risk alert"
	ruleRisk     = "Triage entity risk threshold crossed"
	ruleHigh     = "Triage high risk alert"
	ruleStorm    = "Triage alert storm summary"
)

// escalationRule is the rule that stands for each correlation escalation.
var escalationRule = map[string]string{
	"exfiltration_or_impact": ruleGoal,
	"multi_tactic":           ruleMulti,
	"risk_threshold":         ruleRisk,
}

// Fields the assertions read besides those the conditions read.
var matchExtraFields = []string{"alert.rule", "alert.time", "alert.hostname", "alert.output", "entity.id",
	"entity.escalation", "entity.late", "risk.level", "dedup.first", "dedup.storm", "dedup.count"}

// fieldTypesOf is the field list as Falco learns it from the plugin.
func fieldTypesOf(t *testing.T, p *harness.Plugin) map[string]harness.FieldType {
	t.Helper()
	fl, err := p.Fields()
	require.NoError(t, err)
	out := map[string]harness.FieldType{}
	for _, f := range fl {
		out[f.Name] = harness.FieldType{Type: f.Type, IsList: f.IsList}
	}
	return out
}

// fieldTypesFromDefs is the same list from pkg/fields, for tests without a plugin.
func fieldTypesFromDefs() map[string]harness.FieldType {
	out := map[string]harness.FieldType{}
	for _, d := range fields.All() {
		out[d.Name] = harness.FieldType{Type: d.Type, IsList: d.List}
	}
	return out
}

func loadShippedRuleSet(t *testing.T, types map[string]harness.FieldType) *harness.RuleSet {
	t.Helper()
	data, err := os.ReadFile("../rules/triage_rules.yaml")
	require.NoError(t, err)
	rs, err := harness.LoadRules(data, types)
	require.NoError(t, err, "rules/triage_rules.yaml must compile")
	return rs
}

// matched is one event with the rules it raises under each mode.
type matched struct {
	vals  map[string]harness.Value
	first []string
	all   []string
}

func (m matched) str(f string) string {
	if v := m.vals[f]; v.Present && len(v.Str) > 0 {
		return v.Str[0]
	}
	return ""
}

func (m matched) flag(f string) bool {
	v := m.vals[f]
	return v.Present && len(v.Bool) > 0 && v.Bool[0]
}

func (m matched) escalation() []string {
	if v := m.vals["entity.escalation"]; v.Present {
		return v.Str
	}
	return nil
}

// key identifies an alert by its content, whatever position it arrived in.
func (m matched) key() string {
	t := ""
	if v := m.vals["alert.time"]; v.Present {
		t = fmt.Sprint(v.U64[0])
	}
	return strings.Join([]string{m.str("alert.rule"), t, m.str("alert.hostname"), m.str("alert.output")}, "\x00")
}

// matchAll extracts, one field per extract_fields call, what the enabled
// rules' conditions read, and evaluates the rules under first and all.
func matchAll(t *testing.T, p *harness.Plugin, rs *harness.RuleSet, evts []*harness.Event) []matched {
	t.Helper()
	refs := rs.Fields(plugin.EventSource)
	seen := map[harness.FieldRef]bool{}
	for _, r := range refs {
		seen[r] = true
	}
	for _, f := range matchExtraFields {
		if r := (harness.FieldRef{Field: f}); !seen[r] {
			refs = append(refs, r)
			seen[r] = true
		}
	}
	reqs := make([]harness.Request, len(refs))
	for i, r := range refs {
		reqs[i] = harness.Request{Field: r.Field, Arg: r.Arg}
	}
	out := make([]matched, len(evts))
	for i, e := range evts {
		require.Equal(t, plugin.EventSource, e.Source)
		vals, err := p.ExtractEach(e, reqs...)
		require.NoError(t, err)
		m := matched{vals: map[string]harness.Value{}}
		for k, r := range refs {
			m.vals[r.String()] = vals[k]
		}
		get := func(field, arg string) (harness.Value, error) {
			v, ok := m.vals[harness.FieldRef{Field: field, Arg: arg}.String()]
			if !ok {
				return harness.Value{}, fmt.Errorf("field %s[%s] was not extracted", field, arg)
			}
			return v, nil
		}
		m.first, err = rs.Match(e.Source, harness.MatchFirst, get)
		require.NoError(t, err)
		m.all, err = rs.Match(e.Source, harness.MatchAll, get)
		require.NoError(t, err)
		out[i] = m
	}
	return out
}

// promiseViolations lists where the rules break what the rules file
// promises for these events: the same alert under both modes, never two
// alerts for one event, the escalation raised, new critical/high alerts
// raised, storm points raised.
func promiseViolations(rs *harness.RuleSet, ms []matched) []string {
	var out []string
	for i, m := range ms {
		at := fmt.Sprintf("event %d (%s on %s)", i+1, m.str("alert.rule"), m.str("entity.id"))
		if !slices.Equal(m.first, m.all) {
			out = append(out, fmt.Sprintf("%s: first raises %q, all raises %q", at, m.first, m.all))
		}
		if len(m.all) > 1 {
			out = append(out, fmt.Sprintf("%s: all raises %d alerts for one event: %q", at, len(m.all), m.all))
		}
		raised := ""
		if len(m.first) > 0 {
			raised = m.first[0]
		}
		for _, esc := range m.escalation() {
			want, ok := escalationRule[esc]
			if !ok {
				continue
			}
			if raised == "" {
				out = append(out, fmt.Sprintf("%s: escalation %s raises nothing", at, esc))
			} else if raised != want && !strings.Contains(rs.Rule(raised).Output, "%entity.escalation") {
				out = append(out, fmt.Sprintf("%s: escalation %s raised by %q, whose output does not show entity.escalation", at, esc, raised))
			}
		}
		level := m.str("risk.level")
		if (level == "critical" || level == "high") && m.flag("dedup.first") && raised == "" {
			out = append(out, fmt.Sprintf("%s: new %s-risk alert raises nothing", at, level))
		}
		if m.flag("dedup.storm") && raised == "" {
			out = append(out, fmt.Sprintf("%s: storm point raises nothing", at))
		}
	}
	return out
}

// replayAlerts writes alerts to a file and replays it once through a fresh plugin.
func replayAlerts(t *testing.T, config string, alerts []string) (*harness.Plugin, []*harness.Event) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(alerts, "\n")+"\n"), 0o600))
	p := newPlugin(t, config)
	evts := replayFile(t, p, path)
	require.Len(t, evts, len(alerts))
	return p, evts
}

func storyAlerts() []string {
	var alerts []string
	for i, s := range attack {
		alerts = append(alerts, storyAlert(s.rule, s.priority, s.tags, "4f2a9c1d7e30", storyStart.Add(time.Duration(i)*time.Minute), s.fields))
	}
	return alerts
}

func TestRuleMatchingAttackStory(t *testing.T) {
	alerts := storyAlerts()
	// Then the memfd alert again, unchanged: a plain repeat.
	alerts = append(alerts, storyAlert(attack[1].rule, attack[1].priority, attack[1].tags, "4f2a9c1d7e30", storyStart.Add(5*time.Minute), attack[1].fields))
	p, evts := replayAlerts(t, "", alerts)
	rs := loadShippedRuleSet(t, fieldTypesOf(t, p))
	ms := matchAll(t, p, rs, evts)

	// From the story and docs/risk-model.md (default criticality):
	//  1. /dev/shm execution, Warning 50 + execution 5, stable x0.9, root and
	//     exe_in_tmpfs +10 each: about 70, high, first of its rule.
	//  2. memfd execution, Critical: 100, critical; second tactic only.
	//  3. /etc/shadow read: credential access, the third tactic: the entity
	//     escalates to multi-tactic (the alert itself scores 74, critical;
	//     the multi-tactic rule stands for it).
	//  4. outbound connection to 8.8.8.8, Notice, deprecated rule: medium,
	//     but the entity's risk sum (about 244 before it) passes 250.
	//  5. remote copy tool: exfiltration after four other tactics.
	//  6. the memfd alert again, same score, same tactic: a plain repeat,
	//     left to the storm summary, so nothing.
	want := []string{ruleHigh, ruleCritical, ruleMulti, ruleRisk, ruleGoal, ""}
	require.Len(t, ms, len(want))
	for i, m := range ms {
		got := ""
		if len(m.first) > 0 {
			got = m.first[0]
		}
		assert.Equal(t, want[i], got, "event %d (%s): escalation %v, risk %s", i+1, m.str("alert.rule"), m.escalation(), m.str("risk.level"))
	}
	assert.Empty(t, promiseViolations(rs, ms))
	// The story's three escalations each raise their own rule.
	for esc, rule := range escalationRule {
		n := 0
		for _, m := range ms {
			if slices.Contains(m.escalation(), esc) {
				n++
				assert.Equal(t, []string{rule}, m.first, "escalation %s", esc)
			}
		}
		assert.Equal(t, 1, n, "the story crosses %s once", esc)
	}
}

// A storm: one critical rule repeated on one container, with a small
// stormEvery and a risk threshold the repeats cross.
func TestRuleMatchingStorm(t *testing.T) {
	const n, every = 12, 5
	s := attack[1] // memfd execution: critical, 100
	var alerts []string
	for i := 0; i < n; i++ {
		alerts = append(alerts, storyAlert(s.rule, s.priority, s.tags, "5e5e5e5e5e5e", storyStart.Add(time.Duration(i)*time.Second), s.fields))
	}
	p, evts := replayAlerts(t, fmt.Sprintf(`{"correlation":{"stormEvery":%d,"riskThreshold":450}}`, every), alerts)
	rs := loadShippedRuleSet(t, fieldTypesOf(t, p))
	ms := matchAll(t, p, rs, evts)
	assert.Empty(t, promiseViolations(rs, ms))

	storms, summaries := 0, 0
	for i, m := range ms {
		storm := m.flag("dedup.storm")
		esc := m.escalation()
		switch {
		case i == 0:
			assert.Equal(t, []string{ruleCritical}, m.first, "the first alert raises the critical tier")
		case slices.Contains(esc, "risk_threshold"):
			// 5 x 100 reaches 450: a plain repeat, so no tier; the threshold rule.
			assert.Equal(t, 4, i, "the fifth alert's sum passes 450")
			assert.Equal(t, []string{ruleRisk}, m.first)
		case storm:
			assert.Equal(t, []string{ruleStorm}, m.first, "event %d", i+1)
		default:
			assert.Empty(t, m.first, "event %d: a plain repeat raises nothing", i+1)
		}
		if storm {
			storms++
			if len(m.first) == 1 && m.first[0] == ruleStorm {
				summaries++
			} else {
				// subsumed by an earlier rule of the chain: it must show the count
				assert.Contains(t, rs.Rule(m.first[0]).Output, "%dedup.count", "event %d", i+1)
			}
		}
	}
	assert.Equal(t, (n-1)/every, storms, "one storm point per %d repeats", every)
	assert.Positive(t, summaries)
}

func TestRuleMatchingSampleAlerts(t *testing.T) {
	requireShared(t, sharedAlerts)
	paths, err := filepath.Glob("../../shared/data/alerts/*.jsonl")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p := newPlugin(t, "")
			rs := loadShippedRuleSet(t, fieldTypesOf(t, p))
			ms := matchAll(t, p, rs, replayFile(t, p, path))
			require.NotEmpty(t, ms)
			assert.Empty(t, promiseViolations(rs, ms))
			raised := 0
			for _, m := range ms {
				if len(m.first) > 0 {
					raised++
				}
			}
			t.Logf("%d of %d alerts raise a triage rule", raised, len(ms))
		})
	}
}

// The checks above can fail: two rules with overlapping conditions in the
// old order (tier first, escalation second) break them on the story's
// multi-tactic event, the way Falco's default hid the correlation rules.
func TestRuleMatchingOverlappingRulesAreCaught(t *testing.T) {
	const overlapping = `
- rule: Tier
  desc: d
  condition: risk.level = critical and dedup.first = true
  output: "tier %risk.score | risk.score=%risk.score"
  priority: CRITICAL
  source: falco_alert
- rule: Triage multi-tactic activity on one entity
  desc: d
  condition: entity.escalation intersects (multi_tactic)
  output: "multi %entity.id | entity.id=%entity.id"
  priority: CRITICAL
  source: falco_alert
`
	p, evts := replayAlerts(t, "", storyAlerts())
	rs, err := harness.LoadRules([]byte(overlapping), fieldTypesOf(t, p))
	require.NoError(t, err)
	ms := matchAll(t, p, rs, evts)
	// The third alert is critical, new, and escalates to multi-tactic.
	assert.Equal(t, []string{"Tier"}, ms[2].first, "first: the tier hides the escalation")
	assert.Equal(t, []string{"Tier", ruleMulti}, ms[2].all, "all: both fire")
	v := promiseViolations(rs, ms)
	assert.NotEmpty(t, v)
	joined := strings.Join(v, "\n")
	assert.Contains(t, joined, "first raises")
	assert.Contains(t, joined, "2 alerts for one event")
	assert.Contains(t, joined, "does not show entity.escalation")
}

// Every enabled rule's output carries what it may stand for: the alert's own
// risk and action (an escalation rule replaces the tier alert), the
// escalation (a tier or escalation rule replaces the other escalation rules)
// and the repeat count (any rule may replace the storm summary).
func TestRulesOutputsCarryWhatTheySubsume(t *testing.T) {
	rs := loadShippedRuleSet(t, fieldTypesFromDefs())
	for _, r := range rs.Rules {
		if !r.Enabled {
			continue
		}
		for _, f := range []string{"%alert.rule", "%entity.id", "%entity.escalation", "%risk.score", "%risk.level", "%dedup.count"} {
			assert.Contains(t, r.Output, f, r.Name)
		}
		if r.Name != ruleStorm {
			for _, f := range []string{"%risk.factors", "%mitre.techniques", "%mitigation.ids", "%mitigation.action"} {
				assert.Contains(t, r.Output, f, r.Name)
			}
		}
		// Fact 5: a list renders as (a,b,c); a literal (%list) prints ((a,b,c)).
		assert.NotRegexp(t, `\(%(entity\.tactics|entity\.escalation|mitre\.[a-z.]+|mitigation\.(ids|playbooks))\)`, r.Output, r.Name)
	}
}

// The chain's order: priority never rises down the enabled rules, so the
// rule that wins an event is its most severe reading.
func TestRulesChainOrder(t *testing.T) {
	rs := loadShippedRuleSet(t, fieldTypesFromDefs())
	var names []string
	rank := map[string]int{"EMERGENCY": 7, "ALERT": 6, "CRITICAL": 5, "ERROR": 4, "WARNING": 3, "NOTICE": 2, "INFORMATIONAL": 1, "INFO": 1, "DEBUG": 0}
	prev := 99
	for _, r := range rs.Rules {
		if !r.Enabled {
			continue
		}
		names = append(names, r.Name)
		pr, ok := rank[strings.ToUpper(r.Priority)]
		require.True(t, ok, r.Priority)
		assert.LessOrEqual(t, pr, prev, "%s comes after a less severe rule", r.Name)
		prev = pr
	}
	assert.Equal(t, []string{ruleGoal, ruleMulti, ruleCritical, ruleRisk, ruleHigh, ruleStorm}, names)
}

// --- Arrival order (issue 13, part 3) ---------------------------------------

type sampleAlert struct {
	line string
	time time.Time
}

func readSampleLines(t *testing.T, path string) []sampleAlert {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []sampleAlert
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var a struct {
			Time string `json:"time"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &a))
		ts, err := time.Parse(time.RFC3339Nano, a.Time)
		require.NoError(t, err)
		out = append(out, sampleAlert{line: line, time: ts})
	}
	return out
}

// orderOutcome is what one arrival order raised: the alerts (by content)
// raised by each rule, and the escalations per entity.
type orderOutcome struct {
	raisedBy  map[string]string // alert key -> rule
	escalated map[string]map[string]bool
	late      int
}

func runOrder(t *testing.T, config string, alerts []sampleAlert) orderOutcome {
	t.Helper()
	lines := make([]string, len(alerts))
	for i, a := range alerts {
		lines[i] = a.line
	}
	p, evts := replayAlerts(t, config, lines)
	rs := loadShippedRuleSet(t, fieldTypesOf(t, p))
	ms := matchAll(t, p, rs, evts)
	assert.Empty(t, promiseViolations(rs, ms))
	out := orderOutcome{raisedBy: map[string]string{}, escalated: map[string]map[string]bool{}}
	for _, m := range ms {
		k := m.key()
		_, dup := out.raisedBy[k]
		require.False(t, dup, "two sample alerts with the same content: %q", k)
		out.raisedBy[k] = ""
		if len(m.first) > 0 {
			out.raisedBy[k] = m.first[0]
		}
		for _, esc := range m.escalation() {
			if out.escalated[m.str("entity.id")] == nil {
				out.escalated[m.str("entity.id")] = map[string]bool{}
			}
			out.escalated[m.str("entity.id")][esc] = true
		}
		if m.flag("entity.late") {
			out.late++
		}
	}
	return out
}

func TestRuleMatchingArrivalOrder(t *testing.T) {
	requireShared(t, sharedAlerts)
	base := readSampleLines(t, sharedAlerts)
	inTime := slices.Clone(base)
	sort.SliceStable(inTime, func(i, j int) bool { return inTime[i].time.Before(inTime[j].time) })
	ref := runOrder(t, "", inTime)
	// Escalations are judged on the windows ending at the entity's newest
	// alert (docs/correlation.md, "Out of order"): when an entity's alerts
	// span more than a window, which of them share one depends on arrival.
	// The sample spans three days, so escalations are compared with windows
	// (the largest allowed) that hold each entity's whole story.
	const wide = `{"correlation":{"windowSec":604800,"riskWindowSec":2592000}}`
	wideRef := runOrder(t, wide, inTime)

	var tiered []string
	for k, rule := range ref.raisedBy {
		if rule == ruleCritical || rule == ruleHigh {
			tiered = append(tiered, k)
		}
	}
	sort.Strings(tiered)
	require.NotEmpty(t, tiered, "the sample alerts raise tier alerts in time order")
	escalating := map[string][]string{}
	for id, escs := range wideRef.escalated {
		for _, esc := range []string{"multi_tactic", "risk_threshold"} {
			if escs[esc] {
				escalating[id] = append(escalating[id], esc)
			}
		}
	}
	require.NotEmpty(t, escalating, "entities escalate in time order")
	t.Logf("time order: %d tier alerts, %d entities escalate (multi_tactic/risk_threshold), %d late", len(tiered), len(escalating), ref.late)

	shuffled := slices.Clone(inTime)
	rand.New(rand.NewPCG(13, 2026)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	// The busiest entity's alerts reversed in place, the others in time order.
	ids := entitiesOf(t, inTime)
	busy := busiest(ids)
	reversed := slices.Clone(inTime)
	var pos []int
	for i, id := range ids {
		if id == busy {
			pos = append(pos, i)
		}
	}
	require.Greater(t, len(pos), 2)
	for k, i := range pos {
		reversed[i] = inTime[pos[len(pos)-1-k]]
	}

	for _, order := range []struct {
		name   string
		alerts []sampleAlert
	}{{"shuffled", shuffled}, {"busiest entity " + busy + " reversed", reversed}} {
		t.Run(strings.ReplaceAll(order.name, "/", "_"), func(t *testing.T) {
			got := runOrder(t, "", order.alerts)
			missing := 0
			for _, k := range tiered {
				rule, ok := got.raisedBy[k]
				require.True(t, ok, "alert missing from the replay")
				if rule == "" {
					missing++
					if missing <= 5 {
						t.Errorf("raised by %q in time order, by nothing %s: %s", ref.raisedBy[k], order.name, strings.ReplaceAll(k, "\x00", " | "))
					}
				}
			}
			if missing > 5 {
				t.Errorf("... %d of %d tier alerts of the time order raised nothing %s", missing, len(tiered), order.name)
			}
			wideGot := runOrder(t, wide, order.alerts)
			for id, escs := range escalating {
				for _, esc := range escs {
					assert.True(t, wideGot.escalated[id][esc], "%s escalates %s in time order, not %s", id, esc, order.name)
				}
			}
			t.Logf("%s: %d late alerts, %d of %d tier alerts not raised", order.name, got.late, missing, len(tiered))
		})
	}
}

// entitiesOf is triage's entity for each alert.
func entitiesOf(t *testing.T, alerts []sampleAlert) []string {
	t.Helper()
	lines := make([]string, len(alerts))
	for i, a := range alerts {
		lines[i] = a.line
	}
	p, evts := replayAlerts(t, "", lines)
	out := make([]string, len(evts))
	for i, e := range evts {
		v, err := p.ExtractEach(e, harness.Request{Field: "entity.id"})
		require.NoError(t, err)
		require.True(t, v[0].Present)
		out[i] = v[0].Str[0]
	}
	return out
}

// busiest is the entity with the most alerts (the smallest ID on a tie).
func busiest(ids []string) string {
	count := map[string]int{}
	for _, id := range ids {
		count[id]++
	}
	best := ""
	for id, n := range count {
		if n > count[best] || (n == count[best] && id < best) {
			best = id
		}
	}
	return best
}
