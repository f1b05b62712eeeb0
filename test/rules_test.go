package test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/fields"
	"github.com/triage-dev/triage/pkg/plugin"
	"github.com/triage-dev/triage/test/harness"
)

// falcoBuiltins are the fields Falco itself answers for events of any
// source, plugin sources included.
var falcoBuiltins = map[string]bool{
	"evt.num": true, "evt.time": true, "evt.time.s": true, "evt.time.iso8601": true,
	"evt.datetime": true, "evt.datetime.s": true, "evt.rawtime": true, "evt.rawtime.s": true,
	"evt.rawtime.ns": true, "evt.source": true, "evt.pluginname": true, "evt.plugininfo": true,
	"evt.hostname": true, "evt.is_async": true, "evt.asynctype": true,
}

type rulesFileEntry struct {
	Rule      string   `yaml:"rule"`
	Macro     string   `yaml:"macro"`
	List      string   `yaml:"list"`
	Desc      string   `yaml:"desc"`
	Condition string   `yaml:"condition"`
	Output    string   `yaml:"output"`
	Priority  string   `yaml:"priority"`
	Source    string   `yaml:"source"`
	Tags      []string `yaml:"tags"`
	Items     []string `yaml:"items"`
	Enabled   *bool    `yaml:"enabled"`

	RequiredEngineVersion  string `yaml:"required_engine_version"`
	RequiredPluginVersions []struct {
		Name    string `yaml:"name"`
		Version string `yaml:"version"`
	} `yaml:"required_plugin_versions"`
}

var (
	quoted     = regexp.MustCompile(`"[^"]*"|'[^']*'`)
	fieldToken = regexp.MustCompile(`%?\b([a-z]+[a-z0-9_]*(?:\.[a-z]+[a-z0-9_]*)+)(\[[^\]]*\])?`)
	outputRef  = regexp.MustCompile(`%([a-z]+[a-z0-9_]*(?:\.[a-z]+[a-z0-9_]*)+)(\[[^\]]*\])?`)
)

func loadRules(t *testing.T) []rulesFileEntry {
	t.Helper()
	data, err := os.ReadFile("../rules/triage_rules.yaml")
	require.NoError(t, err)
	var entries []rulesFileEntry
	require.NoError(t, yaml.Unmarshal(data, &entries))
	require.NotEmpty(t, entries)
	return entries
}

// checkField reports why a field reference is not one triage exports.
func checkField(name, arg string) string {
	if falcoBuiltins[name] {
		return ""
	}
	id, ok := fields.ByName(name)
	if !ok {
		return "not a triage field or Falco built-in"
	}
	def := fields.All()[id]
	if def.KeyArg && (arg == "" || arg == "[]") {
		return "needs a key, e.g. " + name + "[proc.exepath]"
	}
	if !def.KeyArg && arg != "" {
		return "takes no argument"
	}
	return ""
}

func TestRulesReferenceOnlyExportedFields(t *testing.T) {
	entries := loadRules(t)
	for _, e := range entries {
		if e.Condition != "" {
			cond := quoted.ReplaceAllString(e.Condition, `""`)
			for _, m := range fieldToken.FindAllStringSubmatch(cond, -1) {
				if why := checkField(m[1], m[2]); why != "" {
					t.Errorf("%s%s: condition uses %s%s: %s", e.Rule, e.Macro, m[1], m[2], why)
				}
			}
		}
		for _, m := range outputRef.FindAllStringSubmatch(e.Output, -1) {
			if why := checkField(m[1], m[2]); why != "" {
				t.Errorf("%s: output uses %%%s%s: %s", e.Rule, m[1], m[2], why)
			}
		}
	}
}

func TestRulesStructure(t *testing.T) {
	entries := loadRules(t)
	rules, pluginReq := 0, false
	for _, e := range entries {
		for _, r := range e.RequiredPluginVersions {
			if r.Name == plugin.PluginName {
				pluginReq = true
				assert.Equal(t, plugin.Version, r.Version, "required_plugin_versions must name this build's version")
			}
		}
		if e.Rule == "" {
			continue
		}
		rules++
		assert.Equal(t, plugin.EventSource, e.Source, "%s: source", e.Rule)
		assert.NotEmpty(t, strings.TrimSpace(e.Desc), "%s: desc", e.Rule)
		assert.NotEmpty(t, strings.TrimSpace(e.Condition), "%s: condition", e.Rule)
		_, err := alert.ParsePriority(e.Priority)
		assert.NoError(t, err, "%s: priority", e.Rule)
		assert.Contains(t, e.Output, " | ", "%s: output should read 'text | key=%%field …'", e.Rule)
		hasMaturity := false
		for _, tag := range e.Tags {
			hasMaturity = hasMaturity || strings.HasPrefix(tag, "maturity_")
		}
		assert.True(t, hasMaturity, "%s: tags need a maturity_* tag", e.Rule)
	}
	assert.True(t, pluginReq, "rules file must declare required_plugin_versions for triage")
	engine := ""
	for _, e := range entries {
		if e.RequiredEngineVersion != "" {
			engine = e.RequiredEngineVersion
		}
	}
	// 0.50.0 is the rules engine of Falco 0.41, the oldest Falco with plugin API 3.11.
	assert.Equal(t, "0.50.0", engine, "required_engine_version")
	assert.Positive(t, rules)
}

// The checker itself must catch bad references, or the test above proves nothing.
func TestRuleFieldCheckerCatchesMistakes(t *testing.T) {
	assert.NotEmpty(t, checkField("alert.rulename", ""))
	assert.NotEmpty(t, checkField("alert.field", ""))
	assert.NotEmpty(t, checkField("alert.rule", "[x]"))
	assert.NotEmpty(t, checkField("proc.name", ""))
	assert.Empty(t, checkField("alert.field", "[proc.name]"))
	assert.Empty(t, checkField("evt.time", ""))
}

// The risk tiers cover each level exactly once, and only critical and high
// are on by default. The tier conditions exclude what earlier rules of the
// chain raise (docs/rules.md), so a tier is found by what its condition
// matches rather than by its text: for a new alert of each level that
// escalates nothing and is no storm point, exactly one rule of the file,
// enabled or not, matches, and a different one per level.
func TestRiskTierRules(t *testing.T) {
	rs := loadShippedRuleSet(t, fieldTypesFromDefs())
	tierOf := map[string]string{}
	for _, level := range []string{"critical", "high", "medium", "low"} {
		vals := map[string]harness.Value{
			"risk.level":  {Present: true, Type: "string", Str: []string{level}},
			"dedup.first": {Present: true, Type: "bool", Bool: []bool{true}},
			"dedup.storm": {Present: true, Type: "bool", Bool: []bool{false}},
			// entity.escalation: no value, as for an alert that escalates nothing
		}
		get := func(field, arg string) (harness.Value, error) {
			if v, ok := vals[field]; ok {
				return v, nil
			}
			ft := fieldTypesFromDefs()[field]
			return harness.Value{Type: ft.Type, IsList: ft.IsList}, nil
		}
		var matches []harness.Rule
		for _, r := range rs.Rules {
			ok, err := r.Cond.Eval(get)
			require.NoError(t, err, r.Name)
			if ok {
				matches = append(matches, r)
			}
		}
		require.Len(t, matches, 1, "%s: rules matching a new %s-risk alert", level, level)
		r := matches[0]
		for other, name := range tierOf {
			assert.NotEqual(t, name, r.Name, "%s and %s share a tier rule", level, other)
		}
		tierOf[level] = r.Name
		assert.Contains(t, strings.ToLower(r.Name), level, "tier rule name")
		assert.Equal(t, level == "critical" || level == "high", r.Enabled, "%s tier enabled", level)
		for _, f := range []string{"%risk.score", "%risk.factors", "%mitre.techniques", "%alert.rule"} {
			assert.Contains(t, r.Output, f, r.Name)
		}
		if r.Enabled {
			for _, f := range []string{"%mitigation.ids", "%mitigation.action"} {
				assert.Contains(t, r.Output, f, r.Name)
			}
		}
	}
}
