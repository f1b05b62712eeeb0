// Package alert parses Falco alerts as Falco's json_output/http_output and
// Falcosidekick's webhook output write them, and validates them.
package alert

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Kind is the JSON type an output field value had in the alert.
type Kind uint8

const (
	KindNull Kind = iota
	KindString
	KindNumber
	KindBool
	KindArray
	KindObject
)

func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindString:
		return "string"
	case KindNumber:
		return "number"
	case KindBool:
		return "bool"
	case KindArray:
		return "array"
	case KindObject:
		return "object"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Field is one entry of the alert's output_fields. Value holds the string
// itself for strings, the number exactly as written (no float rounding, so
// values above 2^53 survive), "true"/"false", or compact JSON for arrays and
// objects. Null values keep their key with KindNull and an empty Value.
type Field struct {
	Key   string
	Kind  Kind
	Value string
}

// Alert is one parsed Falco alert. Empty strings mean "not present".
type Alert struct {
	Rule     string
	Priority Priority
	Source   string
	Hostname string
	// Time is the alert time in nanoseconds since the Unix epoch.
	Time   int64
	UUID   string
	Output string
	Tags   []string
	Fields []Field
}

// Field returns the output field with the given key.
func (a *Alert) Field(key string) (Field, bool) {
	for _, f := range a.Fields {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// Error categories, for counting and for errors.Is.
var (
	ErrSyntax  = errors.New("malformed JSON")
	ErrMissing = errors.New("missing required key")
	ErrType    = errors.New("wrong type")
	ErrValue   = errors.New("invalid value")
)

// Parser parses alerts. It reuses its internal buffers: not safe for
// concurrent use; give each goroutine its own.
//
// All the strings of one alert are copied into one buffer and converted to
// a single string, so a parse costs a handful of allocations whatever the
// number of output fields. The alert's strings share that one backing
// array: whoever keeps a single string of an alert for long (correlation
// state, caches) should strings.Clone it.
type Parser struct {
	p     fastjson.Parser
	arena []byte
	spans []span
}

// span is a string of the alert waiting for the arena to become a string.
type span struct {
	dst        *string
	start, end int
}

// Parse parses one alert. Invalid UTF-8 inside strings is replaced by U+FFFD
// rather than rejected: the alert is kept, and everything downstream sees
// valid text.
func (ps *Parser) Parse(data []byte) (*Alert, error) {
	a := &Alert{}
	if err := ps.ParseInto(data, a); err != nil {
		return nil, err
	}
	return a, nil
}

// ParseInto parses one alert into a, overwriting it. It reuses the
// capacity of a.Tags and a.Fields, so whoever passes an alert back in must
// no longer use its previous tags and fields (see Acquire and Release).
func (ps *Parser) ParseInto(data []byte, a *Alert) error {
	tags, fields := a.Tags[:0], a.Fields[:0]
	*a = Alert{}
	ps.arena, ps.spans = ps.arena[:0], ps.spans[:0]
	defer func() { clear(ps.spans) }() // drop pointers into a
	v, err := ps.p.ParseBytes(data)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrSyntax, shortJSONError(err))
	}
	obj, err := v.Object()
	if err != nil {
		return fmt.Errorf("%w: alert must be a JSON object, got %s", ErrType, v.Type())
	}

	b, err := requiredString(obj, "rule")
	if err != nil {
		return err
	}
	ps.text(&a.Rule, b)
	if b, err = requiredString(obj, "priority"); err != nil {
		return err
	}
	if a.Priority, err = parsePriorityBytes(b); err != nil {
		return fmt.Errorf("%w: key \"priority\": %v", ErrValue, err)
	}
	if b, err = requiredString(obj, "time"); err != nil {
		return err
	}
	if a.Time, err = parseTimeBytes(b); err != nil {
		return fmt.Errorf("%w: key \"time\": %v", ErrValue, err)
	}
	for _, k := range [...]struct {
		key string
		dst *string
	}{{"source", &a.Source}, {"hostname", &a.Hostname}, {"uuid", &a.UUID}, {"output", &a.Output}} {
		b, err := optionalString(obj, k.key)
		if err != nil {
			return err
		}
		ps.text(k.dst, b)
	}
	if a.Tags, err = ps.parseTags(obj.Get("tags"), tags); err != nil {
		return err
	}
	if a.Fields, err = ps.parseFields(obj.Get("output_fields"), fields); err != nil {
		return err
	}
	all := string(ps.arena)
	for _, sp := range ps.spans {
		*sp.dst = all[sp.start:sp.end]
	}
	return nil
}

// text queues b to become *dst, as valid UTF-8 without NUL: b comes from
// fastjson's unescaping, where "\u0000" becomes a NUL byte, and Falco reads
// every string a plugin extracts as a C string, so a NUL would hide the
// rest of the value from rules (a field "ok\u0000evil" would read "ok").
// Each NUL becomes U+FFFD, like invalid UTF-8, so the whole value stays
// visible; other control characters are kept as they are (Falco does not
// cut at them). Every string of an alert goes through here.
func (ps *Parser) text(dst *string, b []byte) {
	if len(b) == 0 {
		return
	}
	start := len(ps.arena)
	switch {
	case utf8.Valid(b) && bytes.IndexByte(b, 0) < 0:
		ps.arena = append(ps.arena, b...)
	default:
		ps.arena = appendClean(ps.arena, b)
	}
	ps.spans = append(ps.spans, span{dst, start, len(ps.arena)})
}

// appendClean appends b to dst with each run of invalid UTF-8 and each NUL
// replaced by U+FFFD.
func appendClean(dst, b []byte) []byte {
	b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	for {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return append(dst, b...)
		}
		dst = append(append(dst, b[:i]...), "\uFFFD"...)
		b = b[i+1:]
	}
}

// marshal queues the JSON text of v to become *dst.
func (ps *Parser) marshal(dst *string, v *fastjson.Value, validate bool) {
	start := len(ps.arena)
	ps.arena = v.MarshalTo(ps.arena)
	if tail := ps.arena[start:]; validate && !utf8.Valid(tail) {
		fixed := bytes.ToValidUTF8(tail, []byte("\uFFFD"))
		ps.arena = append(ps.arena[:start], fixed...)
	}
	ps.spans = append(ps.spans, span{dst, start, len(ps.arena)})
}

func requiredString(obj *fastjson.Object, key string) ([]byte, error) {
	v := obj.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, fmt.Errorf("%w %q", ErrMissing, key)
	}
	b, err := v.StringBytes()
	if err != nil {
		return nil, fmt.Errorf("%w: key %q must be a string, got %s", ErrType, key, v.Type())
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w %q (empty string)", ErrMissing, key)
	}
	return b, nil
}

func optionalString(obj *fastjson.Object, key string) ([]byte, error) {
	v := obj.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	b, err := v.StringBytes()
	if err != nil {
		return nil, fmt.Errorf("%w: key %q must be a string, got %s", ErrType, key, v.Type())
	}
	return b, nil
}

// reuse returns s resized to n, on its own array when it has room.
func reuse[T any](s []T, n int) []T {
	if s == nil || cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s) // every element is rewritten, but some only in part
	return s
}

func (ps *Parser) parseTags(v *fastjson.Value, reuseTags []string) ([]string, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	arr, err := v.Array()
	if err != nil {
		return nil, fmt.Errorf("%w: key \"tags\" must be an array of strings, got %s", ErrType, v.Type())
	}
	tags := reuse(reuseTags, len(arr))
	for i, t := range arr {
		b, err := t.StringBytes()
		if err != nil {
			return nil, fmt.Errorf("%w: tags[%d] must be a string, got %s", ErrType, i, t.Type())
		}
		ps.text(&tags[i], b)
	}
	return tags, nil
}

func (ps *Parser) parseFields(v *fastjson.Value, reuseFields []Field) ([]Field, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	obj, err := v.Object()
	if err != nil {
		return nil, fmt.Errorf("%w: key \"output_fields\" must be an object, got %s", ErrType, v.Type())
	}
	fields := reuse(reuseFields, obj.Len())
	i := 0
	var bad []byte
	obj.Visit(func(key []byte, fv *fastjson.Value) {
		f := &fields[i]
		i++
		ps.text(&f.Key, key)
		switch fv.Type() {
		case fastjson.TypeNull:
			f.Kind = KindNull
		case fastjson.TypeString:
			f.Kind = KindString
			ps.text(&f.Value, fv.GetStringBytes())
		case fastjson.TypeNumber:
			// MarshalTo writes the number text as it arrived: exact for
			// integers beyond 2^53 and for negative values.
			f.Kind = KindNumber
			ps.marshal(&f.Value, fv, false)
			if bad == nil && !validNumber(ps.arena[ps.spans[len(ps.spans)-1].start:]) {
				bad = key
			}
		case fastjson.TypeTrue:
			f.Kind, f.Value = KindBool, "true"
		case fastjson.TypeFalse:
			f.Kind, f.Value = KindBool, "false"
		case fastjson.TypeArray, fastjson.TypeObject:
			f.Kind = KindArray
			if fv.Type() == fastjson.TypeObject {
				f.Kind = KindObject
			}
			ps.marshal(&f.Value, fv, true)
			if bad == nil && !numbersValid(ps.arena[ps.spans[len(ps.spans)-1].start:]) {
				bad = key
			}
		}
	})
	if bad != nil {
		return nil, fmt.Errorf("%w: output_fields[%q]: invalid JSON number", ErrSyntax, truncate(strings.ToValidUTF8(string(bad), "\uFFFD"), 64))
	}
	return fields[:i], nil
}

// numbersValid reports whether every number token in the JSON text b is
// a JSON number as RFC 8259 writes them. fastjson also takes ".", "00" or
// "1." and would hand them on as numbers; Falco never writes those. The
// text is scanned rather than the parsed tree walked, because asking
// fastjson for the type of a nested string unescapes it in place and its
// re-encoding would then carry raw control characters.
func numbersValid(b []byte) bool {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '-' || c == '.' || (c >= '0' && c <= '9'):
			start := i
			for i < len(b) && strings.IndexByte("+-.0123456789eE", b[i]) >= 0 {
				i++
			}
			if !validNumber(b[start:i]) {
				return false
			}
			i--
		}
	}
	return true
}

// validNumber matches -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i, n := 0, len(b)
	digits := func() int {
		start := i
		for i < n && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < n && b[i] == '-' {
		i++
	}
	switch {
	case i < n && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < n && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == n
}

// parsePriorityBytes is ParsePriority without allocating for ASCII input.
func parsePriorityBytes(b []byte) (Priority, error) {
	t := bytes.TrimSpace(b)
	for _, c := range t {
		if c >= utf8.RuneSelf {
			return ParsePriority(string(b))
		}
	}
	for i, n := range priorityNames {
		if asciiEqualFold(t, n) {
			return Priority(i), nil
		}
	}
	for _, al := range [...]struct {
		name string
		p    Priority
	}{{"info", PriorityInformational}, {"warn", PriorityWarning}, {"err", PriorityError}, {"crit", PriorityCritical}, {"emerg", PriorityEmergency}} {
		if asciiEqualFold(t, al.name) {
			return al.p, nil
		}
	}
	return ParsePriority(string(b)) // the error, worded once
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseTimeBytes is ParseTime for the strict shape Falco and Falcosidekick
// write (YYYY-MM-DDTHH:MM:SS[.fraction]Z) without allocating; anything
// else, and every error, goes through ParseTime.
func parseTimeBytes(b []byte) (int64, error) {
	if t, ok := fastRFC3339(b); ok {
		return t, nil
	}
	return ParseTime(string(b))
}

func fastRFC3339(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return 0, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, false
	}
	nsec := 0
	if rest := b[19 : len(b)-1]; len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return 0, false
		}
		frac, ok := num(rest[1:])
		if !ok {
			return 0, false
		}
		for i := len(rest) - 1; i < 9; i++ {
			frac *= 10
		}
		nsec = frac
	}
	if year < 1970 || year > 2261 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // e.g. February 30: let time.Parse word the error
		return 0, false
	}
	return t.UnixNano(), true
}

// ParseTime parses an RFC 3339 time with 0 to 9 fraction digits (Falco
// prints 9; Falcosidekick trims trailing zeros) into Unix nanoseconds.
func ParseTime(s string) (int64, error) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		digits := 0
		for _, c := range s[i+1:] {
			if c < '0' || c > '9' {
				break
			}
			digits++
		}
		if digits > 9 {
			return 0, fmt.Errorf("time %q has more than 9 fraction digits", truncate(s, 64))
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("not an RFC 3339 time: %q", truncate(s, 64))
	}
	// UnixNano is only defined for 1678..2262; outside that the value
	// would wrap around silently.
	if t.Year() < 1970 || t.Year() > 2261 {
		return 0, fmt.Errorf("time %q is out of range (1970-2261)", truncate(s, 64))
	}
	return t.UnixNano(), nil
}

// shortJSONError keeps fastjson's message but bounds its length: it quotes
// the input, which may be huge.
func shortJSONError(err error) string {
	return truncate(err.Error(), 200)
}

// Value returns the value of a present, non-null output field (the shape
// kb.DetectEnv asks for).
func (a *Alert) Value(key string) (string, bool) {
	for i := range a.Fields {
		if f := &a.Fields[i]; f.Key == key {
			return f.Value, f.Kind != KindNull
		}
	}
	return "", false
}

// Recycling: inputs take alerts with Acquire and the plugin gives them back
// with Release once they are encoded into events, so in steady state a parse
// reuses the alert's tag and field slices and allocates only its strings.
var pool = sync.Pool{New: func() any { return new(Alert) }}

// maxPooledFields bounds what a recycled alert keeps: one alert with a huge
// output_fields must not pin that much memory in the pool.
const maxPooledFields = 256

// Acquire returns an empty alert for ParseInto, recycled when possible.
func Acquire() *Alert { return pool.Get().(*Alert) }

// Release recycles a. Nobody may use a, or its tags and fields, afterwards.
func Release(a *Alert) {
	if a == nil || cap(a.Fields) > maxPooledFields || cap(a.Tags) > maxPooledFields {
		return
	}
	// Drop every string, up to capacity, so the pool keeps no alert text alive.
	clear(a.Tags[:cap(a.Tags)])
	clear(a.Fields[:cap(a.Fields)])
	*a = Alert{Tags: a.Tags[:0], Fields: a.Fields[:0]}
	pool.Put(a)
}
