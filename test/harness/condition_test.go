package harness

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fixtures of the evaluator's own: field types like a plugin's field list.
var condTestFields = map[string]FieldType{
	"a.level":  {Type: "string"},
	"a.name":   {Type: "string"},
	"a.score":  {Type: "uint64"},
	"a.first":  {Type: "bool"},
	"a.tags":   {Type: "string", IsList: true},
	"a.counts": {Type: "uint64", IsList: true},
	"a.field":  {Type: "string"},
}

func sv(s ...string) Value  { return Value{Present: true, Type: "string", Str: s} }
func slv(s ...string) Value { return Value{Present: true, Type: "string", Str: s, IsList: true} }
func uv(u uint64) Value     { return Value{Present: true, Type: "uint64", U64: []uint64{u}} }
func bv(b bool) Value       { return Value{Present: true, Type: "bool", Bool: []bool{b}} }

// getterOf answers from vals (key: field or field[arg]); a field not in vals
// has no value, like a plugin returning res_len 0.
func getterOf(vals map[string]Value) Getter {
	return func(field, arg string) (Value, error) {
		key := FieldRef{Field: field, Arg: arg}.String()
		if v, ok := vals[key]; ok {
			return v, nil
		}
		ft := condTestFields[field]
		return Value{Type: ft.Type, IsList: ft.IsList}, nil
	}
}

func evalCond(t *testing.T, cond string, env CondEnv, vals map[string]Value) bool {
	t.Helper()
	if env.Fields == nil {
		env.Fields = condTestFields
	}
	c, err := CompileCondition(cond, env)
	require.NoError(t, err, cond)
	ok, err := c.Eval(getterOf(vals))
	require.NoError(t, err, cond)
	return ok
}

// libsinsp: a check on a field with no value is false whatever the
// operator, so its negation is true (compare_nocache).
func TestConditionFieldWithoutValue(t *testing.T) {
	none := map[string]Value{}
	for cond, want := range map[string]bool{
		"a.level = high":                false,
		"a.level != high":               false,
		"not a.level = high":            true,
		"not a.level != high":           true,
		"a.level exists":                false,
		"not a.level exists":            true,
		"a.level in (high, critical)":   false,
		"a.tags intersects (x)":         false,
		"not a.tags intersects (x)":     true,
		"a.score >= 0":                  false,
		"a.first = false":               false,
		"not a.first = true":            true,
		"a.field[k] = v":                false,
		"a.level = high or a.score < 1": false,
	} {
		assert.Equal(t, want, evalCond(t, cond, CondEnv{}, none), cond)
	}
}

func TestConditionComparisons(t *testing.T) {
	vals := map[string]Value{
		"a.level": sv("high"), "a.score": uv(60), "a.first": bv(true),
		"a.tags": slv("multi_tactic", "level_high"), "a.counts": {Present: true, Type: "uint64", IsList: true, U64: []uint64{1, 2}},
		"a.field[proc.name]": sv("bash"),
	}
	for cond, want := range map[string]bool{
		"a.level = high":                       true,
		"a.level == high":                      true,
		"a.level = 'high'":                     true,
		`a.level = "high"`:                     true,
		"a.level = High":                       false, // byte-wise
		"a.level != high":                      false,
		"a.level != low":                       true,
		"a.level in (low, high)":               true,
		"a.level in (low, medium)":             false,
		"a.level intersects (high)":            true, // same as in on a single value
		"a.score >= 60":                        true,
		"a.score > 60":                         false,
		"a.score <= 60":                        true,
		"a.score < 60":                         false,
		"a.score = 60":                         true,
		"a.score != 60":                        false,
		"a.score in (1, 60)":                   true,
		"a.score >= 100":                       false,
		"a.first = true":                       true,
		"a.first = false":                      false,
		"a.first != false":                     true,
		"a.first exists":                       true,
		"a.tags intersects (multi_tactic)":     true,
		"a.tags intersects (risk_threshold)":   false,
		"a.tags intersects (x, level_high)":    true,
		"a.tags in (multi_tactic)":             false, // in: every item must be in the set
		"a.tags in (level_high, multi_tactic)": true,
		"a.tags exists":                        true,
		"a.counts intersects (2)":              true,
		"a.counts in (1, 2, 3)":                true,
		"a.counts in (1)":                      false,
		"a.field[proc.name] = bash":            true,
		"a.field[proc.pid] exists":             false,
		"a.level in ()":                        false,
		`a.level in ("high", 'x')`:             true,
		"a.level=high and a.score>=60":         true,
		"a.level=high and(a.score>=61)":        false,
		"a.level = high and a.first = true":    true,
	} {
		assert.Equal(t, want, evalCond(t, cond, CondEnv{}, vals), cond)
	}
}

func TestConditionBooleanStructure(t *testing.T) {
	vals := map[string]Value{"a.level": sv("high"), "a.score": uv(10), "a.first": bv(false)}
	for cond, want := range map[string]bool{
		// and binds tighter than or: true or (false and false)
		"a.level = high or a.score > 50 and a.first = true": true,
		// (true or false) and false
		"(a.level = high or a.score > 50) and a.first = true":     false,
		"not a.level = high or a.score = 10":                      true,
		"not (a.level = high or a.score = 10)":                    false,
		"not(a.level = high)":                                     false,
		"not not a.level = high":                                  true,
		"not  not   not a.level = high":                           false,
		"a.level = high and not a.first = true":                   true,
		"a.level = high and not (a.first = true or a.score = 10)": false,
		"((a.level = high))":                                      true,
		"a.level = low or a.level = medium or a.level = high":     true,
	} {
		assert.Equal(t, want, evalCond(t, cond, CondEnv{}, vals), cond)
	}
}

func TestConditionMacrosAndLists(t *testing.T) {
	env := CondEnv{
		Macros: map[string]string{
			"is_high":     "(a.level = high)",
			"high_first":  "is_high and a.first = true",
			"escalated":   "a.tags intersects (escalations)",
			"self_loop":   "self_loop and a.score > 1",
			"loop_a":      "loop_b",
			"loop_b":      "loop_a",
			"uses_quoted": `a.level in ("levels")`,
		},
		Lists: map[string][]string{
			"escalations": {"multi_tactic", "goal"},
			"goal":        {"exfiltration_or_impact"},
			"levels":      {"high"},
		},
	}
	vals := map[string]Value{"a.level": sv("high"), "a.first": bv(true), "a.tags": slv("exfiltration_or_impact")}
	assert.True(t, evalCond(t, "high_first", env, vals))
	assert.False(t, evalCond(t, "not high_first", env, vals))
	// a list item naming a list expands to its items, recursively
	assert.True(t, evalCond(t, "escalated", env, vals))
	assert.False(t, evalCond(t, "a.tags intersects (goal)", env, map[string]Value{"a.tags": slv("goal")}))
	assert.True(t, evalCond(t, "a.level in (levels)", env, vals))
	// a quoted item is a value, not a list name
	assert.False(t, evalCond(t, "uses_quoted", env, vals))

	c, err := CompileCondition("high_first and escalated", CondEnv{Macros: env.Macros, Lists: env.Lists, Fields: condTestFields})
	require.NoError(t, err)
	assert.Equal(t, []FieldRef{{Field: "a.level"}, {Field: "a.first"}, {Field: "a.tags"}}, c.Fields())

	for _, bad := range []string{"no_such_macro", "self_loop", "loop_a", "is_high and undefined_one"} {
		_, err := CompileCondition(bad, CondEnv{Macros: env.Macros, Lists: env.Lists, Fields: condTestFields})
		assert.Error(t, err, bad)
	}
}

func TestConditionParseErrors(t *testing.T) {
	for _, bad := range []string{
		"",
		"   ",
		"a.level =",
		"a.level",
		"a.level = high and",
		"a.level = high or",
		"(a.level = high",
		"a.level = high)",
		"a.level = high garbage",
		"a.level ~ high",
		"and or not",
		"a.level = high andnot a.first = true",
		"a.level in high",
		"a.level in (high",
		"a.level in (high,, low)",
		"a.score >= high",
		"a.level > critical", // the numeric operators take a number (parse_num_value_or_transformer)
		"a.field[proc.name = x",
		"a.level = 'unterminated",
		"a.level contains hi", // not modelled: refused, not misread
		"}{ ][ !!",
	} {
		_, err := CompileCondition(bad, CondEnv{Fields: condTestFields})
		assert.Error(t, err, "%q must not compile", bad)
	}
}

// Operators and values a field's type does not take are load errors in
// Falco (flt_is_comparable, string_to_rawval).
func TestConditionTypeChecks(t *testing.T) {
	for _, bad := range []string{
		"a.tags = multi_tactic", // list fields: exists, in, intersects only
		"a.tags != x",
		"a.counts >= 1",
		"a.first >= 1",  // bool: =, !=, in, intersects
		"a.first = yes", // bool values are true or false exactly
		"a.first = True",
		"a.score = abc", // uint64 values are numbers
		"a.score in (1, x)",
		"no.such.field = 1",
	} {
		_, err := CompileCondition(bad, CondEnv{Fields: condTestFields})
		assert.Error(t, err, "%q must not compile", bad)
	}
	// Without declared types, the same mistakes surface at evaluation.
	c, err := CompileCondition("a.first = yes", CondEnv{})
	require.NoError(t, err)
	_, err = c.Eval(getterOf(map[string]Value{"a.first": bv(true)}))
	assert.Error(t, err)
	// ...but a field without a value never reaches the comparison.
	ok, err := c.Eval(getterOf(map[string]Value{}))
	assert.NoError(t, err)
	assert.False(t, ok)
}

func TestConditionEvalErrors(t *testing.T) {
	c, err := CompileCondition("a.level = high", CondEnv{Fields: condTestFields})
	require.NoError(t, err)
	boom := errors.New("boom")
	_, err = c.Eval(func(string, string) (Value, error) { return Value{}, boom })
	assert.ErrorIs(t, err, boom)
	// a non-list field with two values
	_, err = c.Eval(getterOf(map[string]Value{"a.level": sv("high", "low")}))
	assert.Error(t, err)
	// the getter's type disagrees with the declared one
	_, err = c.Eval(getterOf(map[string]Value{"a.level": uv(1)}))
	assert.Error(t, err)
	// not must not turn an error into a match
	n, err := CompileCondition("not a.level = high", CondEnv{Fields: condTestFields})
	require.NoError(t, err)
	ok, err := n.Eval(func(string, string) (Value, error) { return Value{}, boom })
	assert.Error(t, err)
	assert.False(t, ok)
}

const condTestRules = `
- list: bad_levels
  items: [high, critical]
- macro: bad
  condition: a.level in (bad_levels)
- rule: Bad level
  desc: x
  condition: bad
  output: bad %a.level
  priority: ERROR
  source: test_src
- rule: Any first
  desc: x
  condition: a.first = true
  output: first %a.name
  priority: NOTICE
  source: test_src
- rule: Disabled catch-all
  desc: x
  condition: a.level exists
  output: all
  priority: DEBUG
  source: test_src
  enabled: false
- rule: Other source
  desc: x
  condition: a.level exists
  output: other
  priority: DEBUG
  source: other_src
`

func TestConditionRuleSetMatchFirstAndAll(t *testing.T) {
	rs, err := LoadRules([]byte(condTestRules), condTestFields)
	require.NoError(t, err)
	require.Len(t, rs.Rules, 4)
	assert.False(t, rs.Rule("Disabled catch-all").Enabled)
	assert.Equal(t, []FieldRef{{Field: "a.level"}, {Field: "a.first"}}, rs.Fields("test_src"))

	both := getterOf(map[string]Value{"a.level": sv("high"), "a.first": bv(true)})
	got, err := rs.Match("test_src", MatchFirst, both)
	require.NoError(t, err)
	assert.Equal(t, []string{"Bad level"}, got, "first: the later matching rule is hidden")
	got, err = rs.Match("test_src", MatchAll, both)
	require.NoError(t, err)
	assert.Equal(t, []string{"Bad level", "Any first"}, got, "all: every enabled match, in load order")

	onlySecond := getterOf(map[string]Value{"a.level": sv("low"), "a.first": bv(true)})
	got, err = rs.Match("test_src", MatchFirst, onlySecond)
	require.NoError(t, err)
	assert.Equal(t, []string{"Any first"}, got)

	none := getterOf(map[string]Value{"a.level": sv("low")})
	got, err = rs.Match("test_src", MatchAll, none)
	require.NoError(t, err)
	assert.Empty(t, got, "the disabled rule and the other source's rule never fire")

	_, err = rs.Match("test_src", "most", both)
	assert.Error(t, err)

	_, err = LoadRules([]byte("- rule: R\n  condition: a.level = \n  source: s\n"), condTestFields)
	assert.Error(t, err)
	_, err = LoadRules([]byte("- rule: R\n  condition: a.level = x\n  override: {condition: append}\n"), condTestFields)
	assert.Error(t, err, "override is not modelled")
}
