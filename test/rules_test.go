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
// are on by default.
func TestRiskTierRules(t *testing.T) {
	tiers := map[string][]rulesFileEntry{}
	for _, e := range loadRules(t) {
		for _, level := range []string{"critical", "high", "medium", "low"} {
			if strings.Contains(e.Condition, "risk.level = "+level) {
				tiers[level] = append(tiers[level], e)
			}
		}
	}
	for _, level := range []string{"critical", "high", "medium", "low"} {
		require.Len(t, tiers[level], 1, level)
		r := tiers[level][0]
		enabled := r.Enabled == nil || *r.Enabled
		assert.Equal(t, level == "critical" || level == "high", enabled, "%s tier enabled", level)
		for _, f := range []string{"%risk.score", "%risk.factors", "%mitre.techniques", "%alert.rule"} {
			assert.Contains(t, r.Output, f, r.Rule)
		}
		if enabled {
			for _, f := range []string{"%mitigation.ids", "%mitigation.action"} {
				assert.Contains(t, r.Output, f, r.Rule)
			}
		}
	}
}
