package config

// What Falco does to an init_config written as a YAML map, and how triage
// takes it (../shared/design/falco-facts.md, fact 1; Falco
// userspace/falco/configuration.h, convert<plugin_config>::decode, and
// userspace/engine/yaml_helper.h, convert<nlohmann::json>::decode; libs
// userspace/libsinsp/plugin.cpp, sinsp_plugin::validate_config_json_schema):
//
//   - the map is converted to JSON with nlohmann::json; an empty map or an
//     empty sequence inserts nothing, so `init_config: {}` arrives as the text
//     `null`, `risk: {}` as "risk":null and `criticalNamespaces: []` as
//     "criticalNamespaces":null;
//   - every scalar, quoted or not, is tried as a 32-bit int (with C++ stream
//     base detection: 0x… hex, a leading 0 octal), then a double, then a
//     yaml-cpp bool (y/n, yes/no, true/false, on/off), then a string:
//     `secretHeader: "12345"` arrives as the number 12345, a 12-digit AWS
//     account ID as the double 123456789012.0;
//   - a YAML string (`init_config: '{"queueSize": 64}'`) is passed verbatim,
//     and an absent or null init_config becomes "", which libsinsp replaces
//     by "{}";
//   - libsinsp validates the result against the plugin's JSON schema before
//     plugin_init, so the schema must accept every one of these shapes, and
//     triage's own parser gives the errors that explain them.
//
// So: null anywhere means "not given" (the default), except for a list,
// where it is what an empty YAML list becomes and means the empty list; a
// number where a string is expected is taken as its decimal digits and
// reported, since leading zeros, 0x and octal forms cannot be recovered; a
// boolean where a string is expected is an error that says why.

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// normalize rewrites the decoded init_config v (json.Number for numbers)
// for a value of type t at key path, undoing Falco's conversions as above.
// notes receives one line per number taken as a string.
func normalize(v any, t reflect.Type, path string, notes *[]string) (any, error) {
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("init_config: key %q: want an object, got %s", path, describeJSON(v))
		}
		for k, sub := range m {
			f, ok := fieldByJSONName(t, k)
			if !ok {
				return nil, fmt.Errorf("init_config: unknown key %q (see the README for the supported keys)", join(path, k))
			}
			if sub == nil {
				if f.Type.Kind() == reflect.Slice {
					m[k] = []any{} // an empty YAML list
				} else {
					delete(m, k) // not given: keep the default
				}
				continue
			}
			nv, err := normalize(sub, f.Type, join(path, k), notes)
			if err != nil {
				return nil, err
			}
			m[k] = nv
		}
		return m, nil
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("init_config: key %q: want a list, got %s", path, describeJSON(v))
		}
		for i, item := range l {
			key := fmt.Sprintf("%s[%d]", path, i)
			if item == nil {
				return nil, fmt.Errorf("init_config: key %q: empty item", key)
			}
			nv, err := normalize(item, t.Elem(), key, notes)
			if err != nil {
				return nil, err
			}
			l[i] = nv
		}
		return l, nil
	case reflect.String:
		switch x := v.(type) {
		case json.Number:
			s, err := numberAsText(x)
			if err != nil {
				return nil, fmt.Errorf("init_config: key %q: want a string, got the number %s", path, x)
			}
			if strings.Contains(path, ".accounts[") && len(s) < 12 && s[0] != '-' {
				// An AWS account ID has 12 digits; a shorter number is one
				// whose leading zeros Falco dropped, and would match nothing.
				return nil, fmt.Errorf("init_config: key %q: arrived as the number %s, an AWS account ID that lost its leading zeros in Falco's YAML conversion (quoting does not help); write init_config as a JSON string (init_config: '{...}') to give it exactly", path, x)
			}
			*notes = append(*notes, fmt.Sprintf("init_config: key %q arrived as the number %s and is taken as %q: Falco turns numeric-looking YAML values into numbers even when quoted, so leading zeros and 0x or octal forms are lost; to pass the exact text write init_config as a JSON string (init_config: '{...}')", path, x.String(), s))
			return s, nil
		case bool:
			return nil, fmt.Errorf("init_config: key %q: want a string, got %v: Falco turns yes/no/on/off/true/false into booleans even when quoted; write init_config as a JSON string (init_config: '{...}') to pass that text", path, x)
		}
	}
	return v, nil
}

// numberAsText gives the decimal digits of a number Falco made from a
// numeric-looking string: integers as they are, and doubles with an
// integral value (nlohmann prints 123456789012.0) without the ".0"; other
// numbers are refused.
func numberAsText(n json.Number) (string, error) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return strconv.FormatInt(i, 10), nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("not a finite number")
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', 0, 64), nil
	}
	// 1.5 may have been "1.50", 1e300 "1E300": too far from any text to guess.
	return "", fmt.Errorf("not an integer")
}

func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name && tag != "-" && f.IsExported() {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describeJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return "the number " + x.String()
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// relaxSchema makes the generated schema accept what Falco's conversion
// produces for a valid YAML config: null for any key (and for the root),
// and numbers or booleans where a string is expected, which Parse then
// takes or explains. Enumerations gain null only.
func relaxSchema(node map[string]any) {
	switch node["type"] {
	case "object":
		node["type"] = []any{"object", "null"}
		if props, ok := node["properties"].(map[string]any); ok {
			for _, p := range props {
				if pm, ok := p.(map[string]any); ok {
					relaxSchema(pm)
				}
			}
		}
	case "array":
		node["type"] = []any{"array", "null"}
		if items, ok := node["items"].(map[string]any); ok {
			relaxSchema(items)
		}
	case "string":
		if enum, ok := node["enum"].([]any); ok {
			node["type"] = []any{"string", "null"}
			node["enum"] = append(enum, nil)
			return
		}
		node["type"] = []any{"string", "number", "boolean", "null"}
	case "integer", "boolean", "number":
		node["type"] = []any{node["type"], "null"}
	}
}
