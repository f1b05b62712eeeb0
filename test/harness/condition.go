package harness

// A small evaluator of Falco's rule condition language, enough for the rules
// triage ships (rules/triage_rules.yaml), and of Falco's rule matching over a
// rules file (rule_matching: first | all; ../shared/design/falco-facts.md,
// facts 4 and 7). Falco cannot run in the tests, so this is its stand-in for
// the question "which rule fires for this event". Written from these facts,
// read in the upstream source (libs userspace/libsinsp, falco
// userspace/engine); no upstream code is copied:
//
// Grammar (libs filter/parser.cpp, parser::parse_or / parse_and / parse_not /
// parse_check / parse_condition / try_parse_list_expr):
//   - `or` binds looser than `and`; `not` is a prefix, repeatable, and needs a
//     blank after it unless written `not(`; `(`…`)` nests. `and`/`or` need a
//     blank or `(` after them. The whole input must be consumed ("unexpected
//     token after …"), and an empty condition is an error.
//   - a field name has at least one dot ([a-zA-Z][a-zA-Z0-9_]* segments), with
//     an optional [arg]; a name without a dot is an identifier (a macro).
//   - operators: unary `exists`; numeric `<=`, `<`, `>=`, `>` take a number;
//     `==`, `=`, `!=` take a quoted or bare string (a bare string stops at
//     blanks, parentheses, quotes, `=` and `,`); `intersects`, `in` take a
//     parenthesised list of quoted or bare strings, possibly empty.
//     (contains, startswith, glob, pmatch, transformers … are not supported
//     here: CompileCondition refuses them rather than guess.)
//
// Macros and lists (falco engine/rule_loader_compiler.cpp): macros are
// resolved on the AST (filter_macro_resolver: an identifier that names no
// macro is an error); lists are substituted into the condition text by name
// (resolve_list), each item quoted. Here a list name is expanded where Falco
// rules use one, as an item of `in (…)` / `intersects (…)`, recursively.
//
// Type checks at compile time (libs filter.cpp, check_op_type_compatibility
// → filter_compare.cpp, flt_is_comparable): a list field takes only
// `exists`, `in`, `intersects`; a bool field takes `=`, `!=`, `in`,
// `intersects`, `exists` (flt_is_comparable_bool); numeric fields take the
// comparisons and `in`. A bool value must be exactly `true` or `false`
// (value_parser.cpp, string_to_rawval, PT_BOOL); a uint64 value must be a
// decimal number (numparser parseu64: sscanf, anything else throws).
//
// Evaluation:
//   - a plugin field with no value (res_len == 0) fails extraction
//     (plugin_filtercheck.cpp, sinsp_filter_check_plugin::extract_nocache
//     returns false), and a check whose extraction fails is false whatever
//     the operator (sinsp_filtercheck.cpp, sinsp_filter_check::compare_nocache
//     returns false before comparing) — `!=` included, `exists` included. So
//     `x != v` is false and `not x = v` is true when x has no value.
//   - `exists` on an extracted value is true (compare_rhs, CO_EXISTS).
//   - on a list field (compare_rhs, the is_list() branch): `in` is true when
//     every extracted item is in the set; `intersects` when any is.
//   - on a single value, `in` and `intersects` are both set membership
//     (compare_rhs: "CO_INTERSECTS is really the same as CO_IN"); `=`/`!=`
//     compare strings byte-wise (flt_compare_string, strcmp), numbers and
//     bools by value (flt_compare_numeric, flt_compare_bool). A non-list
//     field with more than one value is an error (compare_rhs throws).
//   - a plugin field is asked one field per extract_fields call
//     (plugin_filtercheck.cpp, num_fields = 1): the Getter is called per
//     field, and tests feed it with Plugin.ExtractEach.
//
// Rule matching (falco engine/falco_engine.cpp, falco_engine::process_event;
// evttype_index_ruleset.cpp, run_wrappers): with `first`, the rules of the
// event's source are tried in load order and the first whose condition is
// true is the only match; with `all`, every rule whose condition is true
// matches, in load order. Disabled rules (enabled: false) are not tried.

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldType is the declared type of a field, as in the plugin's field list.
type FieldType struct {
	Type   string // string, uint64, reltime, abstime, bool, ipaddr, ipnet
	IsList bool
}

// CondEnv is what a condition is compiled against.
type CondEnv struct {
	Macros map[string]string   // macro name -> condition text
	Lists  map[string][]string // list name -> items
	// Fields, when set, makes compilation refuse unknown fields and operators
	// or values the field's type does not take, as Falco does at load time.
	Fields map[string]FieldType
}

// FieldRef is one field a condition reads: name and argument ("" = none).
type FieldRef struct {
	Field, Arg string
}

func (r FieldRef) String() string {
	if r.Arg == "" {
		return r.Field
	}
	return r.Field + "[" + r.Arg + "]"
}

// Getter returns a field's value for the event being evaluated. A Value with
// Present false is a field the plugin gave no value for.
type Getter func(field, arg string) (Value, error)

// Condition is a compiled condition.
type Condition struct {
	Text string
	root condNode
	refs []FieldRef
}

// Fields lists the distinct fields the condition reads, macros expanded, in
// order of first use.
func (c *Condition) Fields() []FieldRef { return append([]FieldRef(nil), c.refs...) }

// Eval evaluates the condition for one event.
func (c *Condition) Eval(get Getter) (bool, error) { return c.root.eval(get) }

type condNode interface {
	eval(get Getter) (bool, error)
}

type andNode struct{ kids []condNode }
type orNode struct{ kids []condNode }
type notNode struct{ kid condNode }

type checkNode struct {
	ref    FieldRef
	op     string // exists = != < <= > >= in intersects
	values []string
	ftype  *FieldType // from CondEnv.Fields, when known
}

func (n andNode) eval(get Getter) (bool, error) {
	for _, k := range n.kids {
		ok, err := k.eval(get)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (n orNode) eval(get Getter) (bool, error) {
	for _, k := range n.kids {
		ok, err := k.eval(get)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (n notNode) eval(get Getter) (bool, error) {
	ok, err := n.kid.eval(get)
	return !ok && err == nil, err
}

func (n *checkNode) eval(get Getter) (bool, error) {
	v, err := get(n.ref.Field, n.ref.Arg)
	if err != nil {
		return false, err
	}
	if !v.Present { // extraction failed: the check is false, whatever the operator
		return false, nil
	}
	ft := FieldType{Type: v.Type, IsList: v.IsList}
	if n.ftype != nil && (n.ftype.Type != ft.Type || n.ftype.IsList != ft.IsList) {
		return false, fmt.Errorf("condition: %s declared %v but the getter returned %v", n.ref, *n.ftype, ft)
	}
	if err := checkOp(n.ref, ft, n.op, n.values); err != nil {
		return false, err
	}
	items, err := valueItems(v)
	if err != nil {
		return false, fmt.Errorf("condition: %s: %w", n.ref, err)
	}
	if n.op == "exists" {
		return true, nil
	}
	if ft.IsList {
		switch n.op {
		case "in":
			for _, it := range items {
				if !n.member(ft.Type, it) {
					return false, nil
				}
			}
			return true, nil
		case "intersects":
			for _, it := range items {
				if n.member(ft.Type, it) {
					return true, nil
				}
			}
			return false, nil
		}
		return false, fmt.Errorf("condition: list field %s does not take %s", n.ref, n.op)
	}
	if len(items) != 1 {
		return false, fmt.Errorf("condition: non-list field %s returned %d values", n.ref, len(items))
	}
	if n.op == "in" || n.op == "intersects" {
		return n.member(ft.Type, items[0]), nil
	}
	return compareScalar(ft.Type, n.op, items[0], n.values[0])
}

func (n *checkNode) member(typ string, item any) bool {
	for _, s := range n.values {
		if ok, err := compareScalar(typ, "=", item, s); err == nil && ok {
			return true
		}
	}
	return false
}

// valueItems returns the extracted values as a []any of string, uint64 or bool.
func valueItems(v Value) ([]any, error) {
	var out []any
	switch v.Type {
	case "string":
		for _, s := range v.Str {
			out = append(out, s)
		}
	case "uint64", "reltime", "abstime":
		for _, u := range v.U64 {
			out = append(out, u)
		}
	case "bool":
		for _, b := range v.Bool {
			out = append(out, b)
		}
	default:
		return nil, fmt.Errorf("type %s is not supported by this evaluator", v.Type)
	}
	return out, nil
}

func compareScalar(typ, op string, lhs any, rhs string) (bool, error) {
	switch typ {
	case "string":
		l := lhs.(string)
		switch op {
		case "=":
			return l == rhs, nil
		case "!=":
			return l != rhs, nil
		case "<":
			return l < rhs, nil
		case "<=":
			return l <= rhs, nil
		case ">":
			return l > rhs, nil
		case ">=":
			return l >= rhs, nil
		}
	case "uint64", "reltime", "abstime":
		r, err := parseU64(rhs)
		if err != nil {
			return false, err
		}
		l := lhs.(uint64)
		switch op {
		case "=":
			return l == r, nil
		case "!=":
			return l != r, nil
		case "<":
			return l < r, nil
		case "<=":
			return l <= r, nil
		case ">":
			return l > r, nil
		case ">=":
			return l >= r, nil
		}
	case "bool":
		r, err := parseBool(rhs)
		if err != nil {
			return false, err
		}
		l := lhs.(bool)
		switch op {
		case "=":
			return l == r, nil
		case "!=":
			return l != r, nil
		}
	}
	return false, fmt.Errorf("condition: operator %s not supported for %s", op, typ)
}

func parseU64(s string) (uint64, error) {
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("condition: %s is not a valid number", s)
	}
	return u, nil
}

func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("condition: unrecognized boolean value %s", s)
}

// checkOp says whether Falco would accept op and values on a field of type ft.
func checkOp(ref FieldRef, ft FieldType, op string, values []string) error {
	if op == "exists" {
		return nil
	}
	allowed := map[string]bool{}
	switch {
	case ft.IsList:
		switch ft.Type {
		case "string", "uint64", "reltime", "abstime", "bool":
		default:
			return fmt.Errorf("condition: %s: list filters are not supported for type %s", ref, ft.Type)
		}
		allowed = map[string]bool{"in": true, "intersects": true}
	case ft.Type == "bool":
		allowed = map[string]bool{"=": true, "!=": true, "in": true, "intersects": true}
	case ft.Type == "string" || ft.Type == "uint64" || ft.Type == "reltime" || ft.Type == "abstime":
		allowed = map[string]bool{"=": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true, "in": true, "intersects": true}
	default:
		return fmt.Errorf("condition: %s: type %s is not supported by this evaluator", ref, ft.Type)
	}
	if !allowed[op] {
		return fmt.Errorf("condition: %s: operator '%s' not supported for %s%s", ref, op, listWord(ft), ft.Type)
	}
	for _, s := range values {
		var err error
		switch ft.Type {
		case "bool":
			_, err = parseBool(s)
		case "uint64", "reltime", "abstime":
			_, err = parseU64(s)
		}
		if err != nil {
			return fmt.Errorf("%w (field %s)", err, ref)
		}
	}
	return nil
}

func listWord(ft FieldType) string {
	if ft.IsList {
		return "list of "
	}
	return ""
}

// CompileCondition parses cond, expands macros and lists from env, and, when
// env.Fields is set, type-checks every check against it.
func CompileCondition(cond string, env CondEnv) (*Condition, error) {
	c := &compiler{env: env, expanding: map[string]bool{}, seen: map[FieldRef]bool{}}
	root, err := c.compile(cond)
	if err != nil {
		return nil, err
	}
	return &Condition{Text: cond, root: root, refs: c.refs}, nil
}

type compiler struct {
	env       CondEnv
	expanding map[string]bool
	seen      map[FieldRef]bool
	refs      []FieldRef
}

func (c *compiler) compile(text string) (condNode, error) {
	p := &condParser{in: text, c: c}
	n, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("condition %q: %w", text, err)
	}
	return n, nil
}

func (c *compiler) macro(name string) (condNode, error) {
	body, ok := c.env.Macros[name]
	if !ok {
		return nil, fmt.Errorf("undefined macro '%s'", name)
	}
	if c.expanding[name] {
		return nil, fmt.Errorf("macro '%s' refers to itself", name)
	}
	c.expanding[name] = true
	defer delete(c.expanding, name)
	return c.compile(body)
}

func (c *compiler) expandList(items []listItem, depth int) ([]string, error) {
	if depth > 32 {
		return nil, errors.New("lists nested too deep")
	}
	var out []string
	for _, it := range items {
		if sub, ok := c.env.Lists[it.s]; ok && !it.quoted {
			var raw []listItem
			for _, s := range sub {
				raw = append(raw, listItem{s: s})
			}
			exp, err := c.expandList(raw, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, exp...)
			continue
		}
		out = append(out, it.s)
	}
	return out, nil
}

type listItem struct {
	s      string
	quoted bool
}

func (c *compiler) check(ref FieldRef, op string, values []string) (condNode, error) {
	n := &checkNode{ref: ref, op: op, values: values}
	if c.env.Fields != nil {
		ft, ok := c.env.Fields[ref.Field]
		if !ok {
			return nil, fmt.Errorf("unknown field %s", ref.Field)
		}
		if err := checkOp(ref, ft, op, values); err != nil {
			return nil, err
		}
		n.ftype = &ft
	}
	if !c.seen[ref] {
		c.seen[ref] = true
		c.refs = append(c.refs, ref)
	}
	return n, nil
}

var (
	rgxNotBlank   = regexp.MustCompile(`^not[ \t\r\n\f\v]+`)
	rgxIdentifier = regexp.MustCompile(`^[a-zA-Z]+[a-zA-Z0-9_]*`)
	rgxFieldName  = regexp.MustCompile(`^[a-zA-Z]+[a-zA-Z0-9_]*(\.[a-zA-Z]+[a-zA-Z0-9_]*)+`)
	rgxArgBare    = regexp.MustCompile(`^[^\]\["'\s]+`)
	rgxNumber     = regexp.MustCompile(`^(0[xX][0-9a-fA-F]+|[+\-]?[0-9]+\.?[0-9]*([eE][+\-][0-9]+)?)`)
	rgxBareStr    = regexp.MustCompile(`^[^()"'\s=,]+`)
	// operators this evaluator does not implement; refused, not misread
	rgxUnsupportedOp = regexp.MustCompile(`^(glob|iglob|contains|icontains|bcontains|startswith|bstartswith|endswith|regex|pmatch)\b`)
)

type condParser struct {
	in  string
	pos int
	c   *compiler
}

func (p *condParser) rest() string { return p.in[p.pos:] }

func (p *condParser) errorf(format string, a ...any) error {
	return fmt.Errorf("at column %d: %s", p.pos+1, fmt.Sprintf(format, a...))
}

func (p *condParser) blank() bool {
	start := p.pos
	for p.pos < len(p.in) && strings.ContainsRune(" \t\b\r\n", rune(p.in[p.pos])) {
		p.pos++
	}
	return p.pos > start
}

func (p *condParser) lit(s string) bool {
	if strings.HasPrefix(p.rest(), s) {
		p.pos += len(s)
		return true
	}
	return false
}

func (p *condParser) rgx(r *regexp.Regexp) (string, bool) {
	m := r.FindString(p.rest())
	if m == "" {
		return "", false
	}
	p.pos += len(m)
	return m, true
}

func (p *condParser) parse() (condNode, error) {
	if strings.TrimSpace(p.in) == "" {
		return nil, errors.New("filter input string is empty")
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.blank()
	if p.pos != len(p.in) {
		return nil, p.errorf("unexpected token %q, expecting 'or', 'and'", p.rest())
	}
	return n, nil
}

// keyword consumes and/or followed by a blank, or by '(' (left in place).
func (p *condParser) keyword(kw string) (bool, error) {
	if !strings.HasPrefix(p.rest(), kw) {
		return false, nil
	}
	after := p.in[p.pos+len(kw):]
	if after == "" || !(strings.ContainsRune(" \t\b\r\n(", rune(after[0]))) {
		if after != "" && (after[0] == '_' || after[0] == '.' || isAlnum(after[0])) {
			return false, nil // an identifier starting with the keyword
		}
		return false, p.errorf("expected blank or '(' after '%s'", kw)
	}
	p.pos += len(kw)
	return true, nil
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

func (p *condParser) parseOr() (condNode, error) {
	p.blank()
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	kids := []condNode{first}
	for {
		p.blank()
		ok, err := p.keyword("or")
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		k, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		kids = append(kids, k)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return orNode{kids}, nil
}

func (p *condParser) parseAnd() (condNode, error) {
	p.blank()
	first, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	kids := []condNode{first}
	for {
		p.blank()
		ok, err := p.keyword("and")
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		k, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		kids = append(kids, k)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return andNode{kids}, nil
}

func (p *condParser) parseNot() (condNode, error) {
	p.blank()
	neg := false
	for {
		if _, ok := p.rgx(rgxNotBlank); ok {
			neg = !neg
			continue
		}
		break
	}
	var child condNode
	var err error
	if p.lit("not(") {
		neg = !neg
		child, err = p.parseEmbedded()
	} else {
		child, err = p.parseCheck()
	}
	if err != nil {
		return nil, err
	}
	if neg {
		return notNode{child}, nil
	}
	return child, nil
}

func (p *condParser) parseEmbedded() (condNode, error) {
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.blank()
	if !p.lit(")") {
		return nil, p.errorf("expected a ')' token")
	}
	return n, nil
}

func (p *condParser) parseCheck() (condNode, error) {
	p.blank()
	if p.lit("(") {
		return p.parseEmbedded()
	}
	if name, ok := p.rgx(rgxFieldName); ok {
		ref := FieldRef{Field: name}
		if p.lit("[") {
			arg, err := p.parseFieldArg()
			if err != nil {
				return nil, err
			}
			ref.Arg = arg
		}
		return p.parseCondition(ref)
	}
	if id, ok := p.rgx(rgxIdentifier); ok {
		n, err := p.c.macro(id)
		if err != nil {
			return nil, p.errorf("%v", err)
		}
		return n, nil
	}
	return nil, p.errorf("expected a '(' token, a field check, or an identifier")
}

func (p *condParser) parseFieldArg() (string, error) {
	var arg string
	if s, ok, err := p.quoted(); err != nil {
		return "", err
	} else if ok {
		arg = s
	} else if s, ok := p.rgx(rgxArgBare); ok {
		arg = s
	} else {
		return "", p.errorf("expected a field argument")
	}
	if !p.lit("]") {
		return "", p.errorf("expected a ']' token")
	}
	return arg, nil
}

// quoted lexes a '…' or "…" string; a backslash escapes the next character.
func (p *condParser) quoted() (string, bool, error) {
	if p.pos >= len(p.in) || (p.in[p.pos] != '"' && p.in[p.pos] != '\'') {
		return "", false, nil
	}
	delim := p.in[p.pos]
	var b strings.Builder
	for i := p.pos + 1; i < len(p.in); i++ {
		ch := p.in[i]
		if ch == '\\' && i+1 < len(p.in) {
			i++
			b.WriteByte(p.in[i])
			continue
		}
		if ch == delim {
			p.pos = i + 1
			return b.String(), true, nil
		}
		b.WriteByte(ch)
	}
	return "", false, p.errorf("unterminated string")
}

func (p *condParser) parseCondition(ref FieldRef) (condNode, error) {
	p.blank()
	if p.lit("exists") {
		return p.c.check(ref, "exists", nil)
	}
	for _, op := range []string{"<=", "<", ">=", ">"} {
		if p.lit(op) {
			p.blank()
			num, ok := p.rgx(rgxNumber)
			if !ok {
				return nil, p.errorf("expected a number value after '%s'", op)
			}
			return p.c.check(ref, op, []string{num})
		}
	}
	for _, op := range []string{"==", "=", "!="} {
		if p.lit(op) {
			p.blank()
			v, ok, err := p.quoted()
			if err != nil {
				return nil, err
			}
			if !ok {
				if v, ok = p.rgx(rgxBareStr); !ok {
					return nil, p.errorf("expected a string value after '%s'", op)
				}
			}
			if op == "==" {
				op = "="
			}
			return p.c.check(ref, op, []string{v})
		}
	}
	for _, op := range []string{"intersects", "in"} {
		if p.lit(op) {
			p.blank()
			if !p.lit("(") {
				return nil, p.errorf("expected a list after '%s'", op)
			}
			items, err := p.parseListBody()
			if err != nil {
				return nil, err
			}
			values, err := p.c.expandList(items, 0)
			if err != nil {
				return nil, p.errorf("%v", err)
			}
			return p.c.check(ref, op, values)
		}
	}
	if m, ok := p.rgx(rgxUnsupportedOp); ok {
		return nil, p.errorf("operator '%s' is not supported by this evaluator", m)
	}
	return nil, p.errorf("expected a valid check operator after %s", ref)
}

func (p *condParser) parseListBody() ([]listItem, error) {
	var items []listItem
	p.blank()
	if p.lit(")") {
		return items, nil
	}
	for {
		p.blank()
		s, ok, err := p.quoted()
		if err != nil {
			return nil, err
		}
		item := listItem{s: s, quoted: true}
		if !ok {
			if s, ok = p.rgx(rgxBareStr); !ok {
				return nil, p.errorf("expected a list item")
			}
			item = listItem{s: s}
		}
		items = append(items, item)
		p.blank()
		if p.lit(",") {
			continue
		}
		if p.lit(")") {
			return items, nil
		}
		return nil, p.errorf("expected ',' or ')' in a list")
	}
}

// MatchMode is Falco's rule_matching setting.
type MatchMode string

const (
	MatchFirst MatchMode = "first" // Falco's default
	MatchAll   MatchMode = "all"
)

// Rule is one rule of a rules file, compiled.
type Rule struct {
	Name, Output, Priority, Source string
	Enabled                        bool
	Cond                           *Condition
}

// RuleSet is a rules file loaded the way Falco loads it, for one set of fields.
type RuleSet struct {
	Rules []Rule // in file (load) order, disabled ones included
	Env   CondEnv
}

type rulesYAMLEntry struct {
	Rule      string   `yaml:"rule"`
	Macro     string   `yaml:"macro"`
	List      string   `yaml:"list"`
	Condition string   `yaml:"condition"`
	Output    string   `yaml:"output"`
	Priority  string   `yaml:"priority"`
	Source    string   `yaml:"source"`
	Items     []string `yaml:"items"`
	Enabled   *bool    `yaml:"enabled"`
	Append    *bool    `yaml:"append"`
	Override  any      `yaml:"override"`
	Except    any      `yaml:"exceptions"`
}

// LoadRules reads a rules file's macros, lists and rules and compiles every
// rule's condition (disabled rules too: Falco compiles them). fields, when not
// nil, type-checks the conditions. Append, override and exceptions are
// refused: this evaluator does not model them.
func LoadRules(data []byte, fields map[string]FieldType) (*RuleSet, error) {
	var entries []rulesYAMLEntry
	if err := yaml.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	rs := &RuleSet{Env: CondEnv{Macros: map[string]string{}, Lists: map[string][]string{}, Fields: fields}}
	for _, e := range entries {
		if e.Append != nil || e.Override != nil || e.Except != nil {
			return nil, fmt.Errorf("rules: %s%s%s: append, override and exceptions are not modelled", e.Rule, e.Macro, e.List)
		}
		switch {
		case e.Macro != "":
			rs.Env.Macros[e.Macro] = e.Condition
		case e.List != "":
			rs.Env.Lists[e.List] = e.Items
		}
	}
	for _, e := range entries {
		if e.Rule == "" {
			continue
		}
		c, err := CompileCondition(e.Condition, rs.Env)
		if err != nil {
			return nil, fmt.Errorf("rules: rule %q: %w", e.Rule, err)
		}
		src := e.Source
		if src == "" {
			src = "syscall"
		}
		rs.Rules = append(rs.Rules, Rule{Name: e.Rule, Output: e.Output, Priority: e.Priority, Source: src,
			Enabled: e.Enabled == nil || *e.Enabled, Cond: c})
	}
	return rs, nil
}

// Fields lists the distinct fields the enabled rules' conditions of source
// read, in order of first use.
func (rs *RuleSet) Fields(source string) []FieldRef {
	seen := map[FieldRef]bool{}
	var out []FieldRef
	for _, r := range rs.Rules {
		if !r.Enabled || r.Source != source {
			continue
		}
		for _, f := range r.Cond.Fields() {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// Rule returns the rule named name, or nil.
func (rs *RuleSet) Rule(name string) *Rule {
	for i := range rs.Rules {
		if rs.Rules[i].Name == name {
			return &rs.Rules[i]
		}
	}
	return nil
}

// Match returns the names of the rules that fire for an event of source,
// under mode: the enabled rules of that source tried in load order.
func (rs *RuleSet) Match(source string, mode MatchMode, get Getter) ([]string, error) {
	if mode != MatchFirst && mode != MatchAll {
		return nil, fmt.Errorf("rules: unknown rule_matching %q", mode)
	}
	var out []string
	for _, r := range rs.Rules {
		if !r.Enabled || r.Source != source {
			continue
		}
		ok, err := r.Cond.Eval(get)
		if err != nil {
			return nil, fmt.Errorf("rules: rule %q: %w", r.Name, err)
		}
		if ok {
			out = append(out, r.Name)
			if mode == MatchFirst {
				break
			}
		}
	}
	return out, nil
}
