package config

import (
	"fmt"
	"slices"
	"strings"
)

// BuiltinDrills names the detection-testing tools pkg/risk recognises
// without configuration (risk.builtinDrills); pkg/risk holds their
// evidence, and a test there checks the two lists agree.
var BuiltinDrills = []string{"event-generator", "atomic-red-team"}

// DrillActor describes a detection-testing tool (a drill actor) so that
// its alerts are recognised as tests and capped (docs/risk-model.md,
// "Drills"). Patterns use * for any run of characters, / included, and ?
// for one character (WildMatch).
type DrillActor struct {
	Name      string   `json:"name" jsonschema:"description=Name shown in risk.drill and the drill factor (letters, digits, . _ -)"`
	Processes []string `json:"processes,omitempty" jsonschema:"description=Ancestor process names (proc.pname or proc.aname[N]); these alone are never enough: exepaths or cmdlines must confirm them"`
	Exepaths  []string `json:"exepaths,omitempty" jsonschema:"description=Patterns for the ancestor's executable path (proc.pexepath or proc.aexepath[N])"`
	Cmdlines  []string `json:"cmdlines,omitempty" jsonschema:"description=Patterns for the parent's command line (proc.pcmdline) or the process's own (proc.cmdline)"`
	Images    []string `json:"images,omitempty" jsonschema:"description=Patterns for the container image repository (container.image.repository); a match alone is enough"`
}

func (r *Risk) validateDrills() error {
	for i, n := range r.BuiltinDrills {
		if !slices.Contains(BuiltinDrills, n) {
			return fmt.Errorf("init_config: key \"risk.builtinDrills[%d]\": %q is not one of %s", i, n, strings.Join(BuiltinDrills, ", "))
		}
	}
	seen := map[string]bool{}
	for i, d := range r.Drills {
		key := fmt.Sprintf("risk.drills[%d]", i)
		if !validDrillName(d.Name) {
			return fmt.Errorf("init_config: key %q: name %q must be letters, digits, '.', '_' or '-'", key+".name", d.Name)
		}
		if seen[d.Name] {
			return fmt.Errorf("init_config: key %q: name %q is used twice", key+".name", d.Name)
		}
		seen[d.Name] = true
		if len(d.Images) == 0 && (len(d.Processes) == 0 || len(d.Exepaths)+len(d.Cmdlines) == 0) {
			return fmt.Errorf("init_config: key %q: give images, or processes with exepaths or cmdlines (a process name alone can be set by any process)", key)
		}
		for _, f := range []struct {
			name string
			pats []string
		}{{"processes", d.Processes}, {"exepaths", d.Exepaths}, {"cmdlines", d.Cmdlines}, {"images", d.Images}} {
			for _, p := range f.pats {
				if strings.Trim(p, "*?") == "" {
					return fmt.Errorf("init_config: key %q: pattern %q matches anything", key+"."+f.name, p)
				}
			}
		}
	}
	return nil
}

func validDrillName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// WildMatch reports whether s matches pattern, where * matches any run of
// characters (/ included, unlike path.Match) and ? any one byte.
func WildMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
