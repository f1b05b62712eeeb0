package kb

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
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
	if shell && strings.Contains(text, "<<") {
		errs = append(errs, "placeholders cannot be used in a command with a here-document")
	}
	for _, loc := range locs {
		if q := quoteStateAt(text, loc[0], shell); q != 0 {
			errs = append(errs, fmt.Sprintf("placeholder %s is inside %c quotes; write it bare, it is quoted when filled in", text[loc[0]:loc[1]], q))
		}
	}
	return errs
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
// it holds ($(…), backticks, quotes, newlines).
func ShellQuote(s string) string {
	if s != "" && shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
