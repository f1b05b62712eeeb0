package harness

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Falco's rendering of a rule's output, for the plugin's fields
// (falco-facts.md fact 5). What FormatOutput does, and where Falco does it
// (falcosecurity/falco userspace/engine/formats.cpp; falcosecurity/libs
// userspace/libsinsp/...):
//
//   - Falco puts a '*' in front of every rule output that has none
//     (formats.cpp, falco_formats::format_event). libsinsp's formatter
//     strips it and, because of it, prints a field with no value as "<NA>"
//     instead of dropping the whole output (eventformatter.cpp,
//     sinsp_evt_formatter::set_format and tostring_withformat,
//     s_not_available_str); in JSON such a field is null (tojson gives
//     Json::nullValue, kept since not all values are required).
//   - A token is '%', an optional width (digits: the value is cut or padded
//     with spaces to that many bytes, tostring_withformat's resize), then the
//     longest text that parses as a field name with an optional [arg] and
//     compiles to a known field (set_format retries shorter and shorter
//     text; the parser's field name is RGX_FIELDNAME
//     [a-zA-Z]+[a-zA-Z0-9_]*(\.[a-zA-Z]+[a-zA-Z0-9_]*)+ and the argument a
//     quoted string or RGX_FIELDARGBARESTR [^][\"'[:space:]]+, filter/parser.cpp
//     parse_field_or_transformer, parse_optional_field_arg). A '%' at the
//     end, or one no field follows, is an error when Falco loads the rule.
//   - Each token is extracted on its own: one filtercheck per token, which
//     asks the plugin one field per extract_fields call
//     (plugin_filtercheck.cpp, extract_nocache, num_fields = 1).
//   - A list field prints as "(" + values joined by "," + ")", cut to 1023
//     bytes (sinsp_filtercheck.cpp, sinsp_filter_check::tostring, strlcpy
//     into STRPROPERTY_STORAGE_SIZE 1024). So a literal "(%entity.tactics)"
//     prints "((a,b,c))". A list with no values is no value ("<NA>"):
//     plugin_filtercheck.cpp extract_nocache returns false when res_len is 0.
//   - Values print as rawval_to_string does with the PF_DEC print format
//     libsinsp gives every plugin field (plugin.cpp, tf.m_print_format =
//     PF_DEC): strings as they are, uint64/reltime/abstime in decimal (an
//     abstime is nanoseconds since the epoch, not a date), bools as
//     "true"/"false".
//   - JSON (json_output: output_fields): one key per field token, the field
//     name plus "[arg]" as the filter AST prints it (filter/ast.cpp
//     string_visitor, escape_str: an argument with a space, '=', quotes,
//     backslash or a control character is double-quoted), valued by
//     sinsp_filter_check::tojson / rawval_to_json: lists are arrays, uint64,
//     reltime and abstime are numbers (Json::UInt64 for PF_DEC), bools are
//     booleans, strings are strings, no value is null.
//   - Falco also adds the fields of its "%evt.time: <priority>" prefix to
//     output_fields (formats.cpp format_event merges the prefix formatter's
//     JSON): evt.time, the event time in nanoseconds as a number
//     (sinsp_filtercheck_gen_event.cpp, extract_as_js TYPE_TIME).
//   - In text outputs (stdout, file, program, non-JSON http) Falco prints
//     "<time>: <Priority> <message>" JSON-escaped without the quotes
//     (formats.cpp format_event: nlohmann::json(output).dump with
//     error_handler_t::replace, then substr(1, size-2)): a '"' prints as \",
//     a newline as \n, invalid UTF-8 as U+FFFD.
//
// Not modelled: fields Falco resolves itself (evt.*, proc.*: not the
// plugin's, FormatOutput refuses them), field transformers (toupper(...)),
// ipnet values (printed as "<IPNET>" by libsinsp, refused here).

// Output is one rule output rendered for one event.
type Output struct {
	// Message is the rendered output template, as libsinsp's formatter
	// gives it (Falco's "output" and text lines put "<time>: <Priority> "
	// in front).
	Message string
	// Line is Message as Falco's text outputs print it: JSON-escaped
	// without the surrounding quotes.
	Line string
	// Fields is json_output's output_fields: each field token's name
	// (field or field[arg]) to its value (string, uint64, bool, a []any of
	// those for lists, nil for no value), plus evt.time as Falco adds it.
	Fields map[string]any
}

// outputToken is a literal (field == "") or a field token of a template.
type outputToken struct {
	lit   string
	req   Request
	name  string // the output_fields key
	width int
}

var outputFieldName = regexp.MustCompile(`^[a-zA-Z]+[a-zA-Z0-9_]*(\.[a-zA-Z]+[a-zA-Z0-9_]*)+`)
var outputBareArg = regexp.MustCompile(`^[^\]\["'\s]+`)

// ParseOutput splits an output template into literals and tokens naming
// this plugin's fields, the way libsinsp's formatter does (see above); it
// fails where Falco would refuse the rule, and on fields not the plugin's.
// It returns the field tokens' output_fields names, in order.
func (p *Plugin) ParseOutput(format string) ([]string, error) {
	toks, err := p.parseOutput(format)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, t := range toks {
		if t.name != "" {
			names = append(names, t.name)
		}
	}
	return names, nil
}

func (p *Plugin) parseOutput(format string) ([]outputToken, error) {
	if format == "" {
		return nil, errors.New("harness: empty output format")
	}
	format = strings.TrimPrefix(format, "*")
	var toks []outputToken
	lit := 0
	for j := 0; j < len(format); j++ {
		if format[j] != '%' {
			continue
		}
		if j > lit {
			toks = append(toks, outputToken{lit: format[lit:j]})
		}
		if j == len(format)-1 {
			return nil, errors.New("harness: invalid formatting syntax: formatting cannot end with a %")
		}
		width := 0
		k := j + 1
		for k < len(format) && format[k] >= '0' && format[k] <= '9' {
			k++
		}
		if k > j+1 {
			if k == len(format) {
				return nil, errors.New("harness: invalid formatting syntax: formatting cannot end with a number")
			}
			width, _ = strconv.Atoi(format[j+1 : k])
		}
		tok, n, err := p.parseOutputField(format[k:])
		if err != nil {
			return nil, err
		}
		tok.width = width
		toks = append(toks, tok)
		j = k + n - 1
		lit = j + 1
	}
	if lit < len(format) {
		toks = append(toks, outputToken{lit: format[lit:]})
	}
	return toks, nil
}

// parseOutputField parses the longest prefix of s that is a field of the
// plugin with its optional argument; n is its length.
func (p *Plugin) parseOutputField(s string) (tok outputToken, n int, err error) {
	err = fmt.Errorf("harness: unknown filter: no field of plugin %s at %q", p.info.Name, s[:min(len(s), 40)])
	for size := len(s); size > 0; size-- {
		sub := s[:size]
		name := outputFieldName.FindString(sub)
		if name == "" {
			return tok, 0, err
		}
		r := Request{Field: name}
		used := len(name)
		if used < len(sub) && sub[used] == '[' {
			arg, m, ok := parseOutputArg(sub[used+1:])
			if !ok {
				continue
			}
			if arg == "" {
				// [""]: an argument for Falco, none for a harness Request.
				err = fmt.Errorf("harness: output field %s[\"\"]: empty arguments are not supported", name)
				continue
			}
			r.Arg, used = arg, used+1+m
		}
		if _, ok := p.fieldIdx[name]; !ok {
			continue
		}
		if _, rerr := p.resolveRequest(r); rerr != nil {
			err = rerr
			continue
		}
		full := name
		if used > len(name) {
			full += "[" + escapeFilterStr(r.Arg) + "]"
		}
		return outputToken{req: r, name: full}, used, nil
	}
	return tok, 0, err
}

// parseOutputArg parses a field argument up to and including its ']'.
func parseOutputArg(s string) (arg string, n int, ok bool) {
	if s != "" && (s[0] == '"' || s[0] == '\'') {
		q := s[0]
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			c := s[i]
			if c == q {
				if i+1 < len(s) && s[i+1] == ']' {
					return b.String(), i + 2, true
				}
				return "", 0, false
			}
			if c != '\\' {
				b.WriteByte(c)
				continue
			}
			i++
			if i == len(s) {
				return "", 0, false
			}
			switch s[i] {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '\\', ' ':
				b.WriteByte('\\')
			case '/':
				b.WriteByte('/')
			case '"', '\'':
				if s[i] != q {
					return "", 0, false
				}
				b.WriteByte(q)
			default:
				return "", 0, false
			}
		}
		return "", 0, false
	}
	m := outputBareArg.FindString(s)
	if m == "" || len(m) == len(s) || s[len(m)] != ']' {
		return "", 0, false
	}
	return m, len(m) + 1, true
}

// escapeFilterStr is libsinsp's filter::escape_str (filter/escaping.cpp):
// how an argument appears in the field's name.
func escapeFilterStr(s string) string {
	var b strings.Builder
	quote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
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
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case ' ', '=', '\'', 0:
			b.WriteByte(c)
		default:
			b.WriteByte(c)
			continue
		}
		quote = true
	}
	if quote {
		return `"` + b.String() + `"`
	}
	return b.String()
}

// notAvailable is libsinsp's s_not_available_str.
const notAvailable = "<NA>"

// strPropertyStorage is libsinsp's STRPROPERTY_STORAGE_SIZE.
const strPropertyStorage = 1024

// FormatOutput renders the output template format for e as Falco does for
// the plugin's fields (see the notes at the top of this file): each field
// token extracted with its own extract_fields call.
func (p *Plugin) FormatOutput(e *Event, format string) (*Output, error) {
	toks, err := p.parseOutput(format)
	if err != nil {
		return nil, err
	}
	out := &Output{Fields: map[string]any{}}
	var msg strings.Builder
	for _, t := range toks {
		if t.name == "" {
			msg.WriteString(t.lit)
			continue
		}
		vals, err := p.Extract(e, t.req)
		if err != nil {
			return nil, fmt.Errorf("harness: output field %s: %w", t.name, err)
		}
		text, js, err := renderValue(vals[0])
		if err != nil {
			return nil, fmt.Errorf("harness: output field %s: %w", t.name, err)
		}
		if t.width != 0 {
			if len(text) > t.width {
				text = text[:t.width]
			} else {
				text += strings.Repeat(" ", t.width-len(text))
			}
		}
		msg.WriteString(text)
		out.Fields[t.name] = js
	}
	out.Fields["evt.time"] = e.Timestamp
	out.Message = msg.String()
	out.Line = falcoTextEscape(out.Message)
	return out, nil
}

// renderValue is sinsp_filter_check::tostring and ::tojson for one value.
func renderValue(v Value) (text string, js any, err error) {
	if !v.Present {
		return notAvailable, nil, nil
	}
	var texts []string
	var jss []any
	switch v.Type {
	case "string":
		for _, s := range v.Str {
			texts, jss = append(texts, s), append(jss, s)
		}
	case "uint64", "reltime", "abstime":
		for _, n := range v.U64 {
			texts, jss = append(texts, strconv.FormatUint(n, 10)), append(jss, n)
		}
	case "bool":
		for _, b := range v.Bool {
			texts, jss = append(texts, strconv.FormatBool(b)), append(jss, b)
		}
	case "ipaddr":
		for _, b := range v.Buf {
			if len(b) != 4 && len(b) != 16 {
				return "", nil, fmt.Errorf("IP address of %d bytes", len(b))
			}
			s := net.IP(b).String()
			texts, jss = append(texts, s), append(jss, s)
		}
	default:
		return "", nil, fmt.Errorf("type %s not rendered by the harness", v.Type)
	}
	if !v.IsList {
		if len(texts) != 1 {
			return "", nil, fmt.Errorf("%d values for a non-list field", len(texts))
		}
		return texts[0], jss[0], nil
	}
	text = "(" + strings.Join(texts, ",") + ")"
	if len(text) > strPropertyStorage-1 {
		text = text[:strPropertyStorage-1]
	}
	return text, jss, nil
}

// falcoTextEscape is nlohmann::json's dump of a string (no ASCII-only
// escaping, invalid UTF-8 replaced by U+FFFD) without the quotes.
func falcoTextEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteRune(utf8.RuneError)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
