package kb

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// placeholder matches {{KEY}}: an alert output-field key (proc.pid,
// proc.aname[2], json.value[/a/b]) or alert.hostname / alert.rule / alert.source.
var placeholder = regexp.MustCompile(`\{\{([A-Za-z0-9_.\[\]/-]+)\}\}`)

// Placeholders lists the keys a template uses, in order of appearance.
func Placeholders(tmpl string) []string {
	var keys []string
	for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
		keys = append(keys, m[1])
	}
	return keys
}

// CheckTemplate reports placeholders a shell would not keep inert once
// filled: inside quotes (a filled-in value's own quotes would close the
// template's), inside a here-document (expanded without word splitting
// rules), or malformed braces.
func CheckTemplate(cmd string) []string {
	return checkPlaceholders(cmd, true)
}

func checkPlaceholders(text string, shell bool) []string {
	var errs []string
	if strings.Count(text, "{{") != len(placeholder.FindAllStringIndex(text, -1)) {
		errs = append(errs, "malformed placeholder: write {{KEY}} with a field key")
	}
	locs := placeholder.FindAllStringIndex(text, -1)
	if len(locs) == 0 {
		return errs
	}
	var bodies [][2]int
	if shell {
		bodies = hereDocBodies(text)
	}
	for _, loc := range locs {
		for _, b := range bodies {
			if loc[0] >= b[0] && loc[0] < b[1] {
				errs = append(errs, fmt.Sprintf("placeholder %s is inside a here-document; assign it to a variable before the here-document instead", text[loc[0]:loc[1]]))
			}
		}
		if q := quoteStateAt(text, loc[0], shell); q != 0 {
			errs = append(errs, fmt.Sprintf("placeholder %s is inside %c quotes; write it bare, it is quoted when filled in", text[loc[0]:loc[1]], q))
		}
	}
	return errs
}

var hereDocStart = regexp.MustCompile(`<<-?\s*(?:'([^']+)'|"([^"]+)"|\\?([A-Za-z_][A-Za-z0-9_]*))`)

// hereDocBodies returns the byte ranges of here-document bodies: from the
// line after the one that opens them to their terminator line.
func hereDocBodies(s string) [][2]int {
	var out [][2]int
	lines := strings.SplitAfter(s, "\n")
	pos := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		pos += len(line)
		m := hereDocStart.FindStringSubmatch(line)
		if m == nil || strings.Contains(line, "<<<") {
			continue
		}
		delim := m[1] + m[2] + m[3]
		start := pos
		end := len(s)
		for j := i + 1; j < len(lines); j++ {
			if strings.TrimSpace(lines[j]) == delim {
				end = pos
				i = j
				pos += len(lines[j])
				break
			}
			pos += len(lines[j])
		}
		out = append(out, [2]int{start, end})
	}
	return out
}

// quoteStateAt returns the quote character open at position pos (0 when
// none). For shell text it follows backslash escapes and comments.
func quoteStateAt(s string, pos int, shell bool) byte {
	var q byte
	for i := 0; i < pos; i++ {
		c := s[i]
		switch q {
		case 0:
			switch c {
			case '\\':
				if shell {
					i++
				}
			case '\'', '"':
				q = c
			case '#':
				if shell && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t' || s[i-1] == '\n') {
					// comment: skip to end of line
					for i < pos && s[i] != '\n' {
						i++
					}
				}
			}
		case '\'':
			if c == '\'' {
				q = 0
			}
		case '"':
			if c == '\\' && shell {
				i++
			} else if c == '"' {
				q = 0
			}
		}
	}
	return q
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// ShellQuote quotes s for bash so that it stays one inert word, whatever
// it holds ($(…), backticks, quotes, newlines). A value with control
// characters (a carriage return, an escape sequence, a newline) is written
// in ANSI-C quoting with each one as \xNN: the same word for bash, but a
// report that prints the command shows them instead of letting them move
// the cursor, recolour the terminal or hide the rest of the line.
func ShellQuote(s string) string {
	if s != "" && shellSafe.MatchString(s) {
		return s
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) >= 0 || !utf8.ValidString(s) {
		var b strings.Builder
		b.WriteString("$'")
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' || c == '\'':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20 || c == 0x7f || c >= 0x80 && !printableAt(s, i):
				fmt.Fprintf(&b, "\\x%02x", c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteString("'")
		return b.String()
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// printableAt says whether the byte at i starts or continues a valid,
// printable UTF-8 character (C1 controls U+0080–U+009F are not).
func printableAt(s string, i int) bool {
	start := i
	for start > 0 && i-start < 3 && !utf8.RuneStart(s[start]) {
		start--
	}
	r, size := utf8.DecodeRuneInString(s[start:])
	if r == utf8.RuneError && size <= 1 {
		return false
	}
	return start+size > i && !(r >= 0x80 && r < 0xa0)
}

// yamlQuote quotes s as a YAML double-quoted scalar (JSON strings are valid YAML).
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// RenderCommand fills a command template. Values come from lookup; a value
// that is absent is shown as a quoted <KEY> marker, never left empty.
func RenderCommand(tmpl string, lookup func(key string) (string, bool)) string {
	return render(tmpl, lookup, ShellQuote)
}

// RenderYAML fills a YAML snippet template, quoting values as YAML strings.
func RenderYAML(tmpl string, lookup func(key string) (string, bool)) string {
	return render(tmpl, lookup, yamlQuote)
}

func render(tmpl string, lookup func(string) (string, bool), quote func(string) string) string {
	return placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		key := m[2 : len(m)-2]
		if v, ok := lookup(key); ok {
			return quote(v)
		}
		return quote("<" + key + ">")
	})
}
