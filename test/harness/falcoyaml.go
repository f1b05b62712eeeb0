package harness

// Falco's treatment of a plugin's init_config and open_params in falco.yaml,
// modelled so tests load the project's documented configs the way Falco
// does (../shared/design/falco-facts.md, facts 1 and 2). Checked in the
// upstream source:
//
//   - falco userspace/falco/configuration.h, convert<plugin_config>::decode:
//     an absent or null init_config gives ""; a YAML map is converted with
//     convert<nlohmann::json> and dumped; anything else is read as a string
//     (as<std::string>, which fails for a sequence: Falco refuses the config).
//   - falco userspace/engine/yaml_helper.h, convert<nlohmann::json>::decode:
//     a map sets res[key] for each entry and a sequence emplaces each item,
//     so an empty map or sequence leaves the default-constructed JSON value,
//     null; a scalar is tried as int, then double, then bool, then string;
//     yaml-cpp's Null node (~, null, empty) stays null.
//   - yaml-cpp (the commit Falco pins) include/yaml-cpp/node/convert.h,
//     YAML_DEFINE_CONVERT_STREAMABLE: a stringstream with std::ios::dec unset
//     (so 0x… is hex and a leading 0 octal), no leading whitespace, trailing
//     whitespace allowed, the value must fit the type (int is 32 bits);
//     .inf/.nan spellings for double. src/convert.cpp: bool from
//     y/n, yes/no, true/false, on/off in lower, UPPER or Capitalized case.
//     Quoting does not matter: Scalar() is the text either way.
//   - nlohmann::json dump(): object keys sorted, no spaces, a double with an
//     integral value printed with ".0", exponent form outside 1e-4…1e15,
//     NaN and infinities as null, strings with \" \\ \b \f \n \r \t and
//     \u00xx escapes only, invalid UTF-8 an error.
//   - libs userspace/libsinsp/plugin.cpp, validate_config_json_schema: ""
//     becomes "{}" before the schema check and plugin_init (ValidateInitConfig).

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// FalcoPluginEntry is one entry of falco.yaml's `plugins` list as Falco
// reads it.
type FalcoPluginEntry struct {
	Name        string
	LibraryPath string
	// InitConfig is the string Falco hands to the plugin (before libsinsp
	// turns "" into "{}").
	InitConfig string
	OpenParams string
}

// FalcoPlugins reads the `plugins` list of a falco.yaml document (or of the
// node holding Falco's config, e.g. the Helm chart's `falco:` values).
func FalcoPlugins(cfg *yaml.Node) ([]FalcoPluginEntry, error) {
	cfg = deref(cfg)
	if cfg != nil && cfg.Kind == yaml.DocumentNode && len(cfg.Content) == 1 {
		cfg = deref(cfg.Content[0])
	}
	if cfg == nil || cfg.Kind != yaml.MappingNode {
		return nil, errors.New("falco config: not a YAML map")
	}
	list := mapValue(cfg, "plugins")
	if list == nil {
		return nil, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, errors.New("falco config: plugins is not a list")
	}
	var out []FalcoPluginEntry
	for i, item := range list.Content {
		item = deref(item)
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("falco config: plugins[%d] is not a map", i)
		}
		var e FalcoPluginEntry
		for key, dst := range map[string]*string{"name": &e.Name, "library_path": &e.LibraryPath, "open_params": &e.OpenParams} {
			if n := mapValue(item, key); n != nil && !isNull(n) {
				if n.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("falco config: plugins[%d].%s is not a scalar", i, key)
				}
				*dst = n.Value
			}
		}
		if e.Name == "" || e.LibraryPath == "" {
			return nil, fmt.Errorf("falco config: plugins[%d] needs name and library_path", i)
		}
		e.OpenParams = strings.TrimSpace(e.OpenParams) // fact 2
		ic, err := FalcoInitConfig(mapValue(item, "init_config"))
		if err != nil {
			return nil, fmt.Errorf("falco config: plugins[%d] (%s) init_config: %v", i, e.Name, err)
		}
		e.InitConfig = ic
		out = append(out, e)
	}
	return out, nil
}

// FalcoInitConfig converts an init_config node (nil when the key is absent)
// to the string Falco passes on.
func FalcoInitConfig(n *yaml.Node) (string, error) {
	n = deref(n)
	switch {
	case n == nil || n.Kind == 0 || isNull(n): // absent (a zero Node when decoded into a struct) or null
		return "", nil
	case n.Kind == yaml.MappingNode:
		v, err := yamlToJSON(n, 0)
		if err != nil {
			return "", err
		}
		var b bytes.Buffer
		if err := dumpJSON(&b, v); err != nil {
			return "", err
		}
		return b.String(), nil
	case n.Kind == yaml.ScalarNode:
		return n.Value, nil
	}
	return "", errors.New("a list cannot be read as a string (Falco refuses the config)")
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// isNull: yaml-cpp's Null node is a plain ~, null, Null, NULL or nothing;
// a quoted "null" is a string.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 && n.ShortTag() == "!!null"
}

// yamlToJSON gives nil (null), int32, float64, bool, string, []any or
// map[string]any.
func yamlToJSON(n *yaml.Node, depth int) (any, error) {
	if depth > 100 {
		return nil, errors.New("nesting too deep")
	}
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := deref(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				return nil, errors.New("a map key that is not a scalar")
			}
			v, err := yamlToJSON(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := yamlToJSON(c, depth+1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		if isNull(n) {
			return nil, nil
		}
		return yamlCppScalar(n.Value), nil
	}
	return nil, fmt.Errorf("unexpected YAML node kind %d", n.Kind)
}

// yamlCppScalar applies convert<nlohmann::json>'s order: int, double, bool,
// string.
func yamlCppScalar(s string) any {
	if i, ok := cppStreamInt32(s); ok {
		return i
	}
	if f, ok := cppStreamDouble(s); ok {
		return f
	}
	if b, ok := yamlCppBool(s); ok {
		return b
	}
	return s
}

// trimCSpaceRight drops trailing characters C's isspace accepts.
func trimCSpaceRight(s string) string { return strings.TrimRight(s, " \t\n\v\f\r") }

// cppStreamInt32 is `stream >> int` with the base flags unset (0x hex,
// leading 0 octal), then only whitespace to the end.
func cppStreamInt32(s string) (int32, bool) {
	s = trimCSpaceRight(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" {
		return 0, false
	}
	u, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		return 0, false
	}
	v := int64(u)
	if u > math.MaxInt32+1 {
		return 0, false
	}
	if neg {
		v = -v
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, false
	}
	return int32(v), true
}

var cppFloat = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// cppStreamDouble is `stream >> double` (decimal forms only; out of range
// fails) plus yaml-cpp's .inf/.nan spellings.
func cppStreamDouble(s string) (float64, bool) {
	switch s {
	case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF":
		return math.Inf(1), true
	case "-.inf", "-.Inf", "-.INF":
		return math.Inf(-1), true
	case ".nan", ".NaN", ".NAN":
		return math.NaN(), true
	}
	s = trimCSpaceRight(s)
	if !cppFloat.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

func yamlCppBool(s string) (bool, bool) {
	flexible := s == strings.ToLower(s) || s == strings.ToUpper(s) ||
		(len(s) > 0 && s[:1] == strings.ToUpper(s[:1]) && s[1:] == strings.ToLower(s[1:]))
	if !flexible {
		return false, false
	}
	switch strings.ToLower(s) {
	case "y", "yes", "true", "on":
		return true, true
	case "n", "no", "false", "off":
		return false, true
	}
	return false, false
}

// dumpJSON writes v as nlohmann::json's dump() does.
func dumpJSON(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case int32:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case float64:
		b.WriteString(nlohmannDouble(x))
	case string:
		if !utf8.ValidString(x) {
			return errors.New("invalid UTF-8 in a string (nlohmann::json dump throws)")
		}
		b.WriteByte('"')
		for _, r := range x {
			switch r {
			case '"':
				b.WriteString(`\"`)
			case '\\':
				b.WriteString(`\\`)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				if r < 0x20 {
					fmt.Fprintf(b, `\u%04x`, r)
				} else {
					b.WriteRune(r)
				}
			}
		}
		b.WriteByte('"')
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := dumpJSON(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := dumpJSON(b, k); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := dumpJSON(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unexpected value %T", v)
	}
	return nil
}

// nlohmannDouble formats f like nlohmann::json: the shortest digits that
// round-trip, placed by the decimal exponent n (value = 0.DIGITS × 10^n):
// integral values below 1e15 end in ".0", 1e-4 <= |f| < 1e15 plain, other
// magnitudes as d.ddde±XX.
func nlohmannDouble(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	switch {
	case k <= n && n <= 15:
		return sign + digits + strings.Repeat("0", n-k) + ".0"
	case 0 < n && n <= 15:
		return sign + digits[:n] + "." + digits[n:]
	case -4 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits
	}
	out := digits[:1]
	if k > 1 {
		out += "." + digits[1:]
	}
	ex := n - 1
	es := "+"
	if ex < 0 {
		es, ex = "-", -ex
	}
	return fmt.Sprintf("%s%se%s%02d", sign, out, es, ex)
}
