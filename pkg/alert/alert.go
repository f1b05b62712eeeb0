// Package alert parses Falco alerts as Falco's json_output/http_output and
// Falcosidekick's webhook output write them, and validates them.
package alert

import (
	"errors"
	"fmt"
	"strings"
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
type Parser struct {
	p fastjson.Parser
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

// ParseInto parses one alert into a, overwriting it.
func (ps *Parser) ParseInto(data []byte, a *Alert) error {
	*a = Alert{}
	v, err := ps.p.ParseBytes(data)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrSyntax, shortJSONError(err))
	}
	obj, err := v.Object()
	if err != nil {
		return fmt.Errorf("%w: alert must be a JSON object, got %s", ErrType, v.Type())
	}

	if a.Rule, err = requiredString(obj, "rule"); err != nil {
		return err
	}
	prio, err := requiredString(obj, "priority")
	if err != nil {
		return err
	}
	if a.Priority, err = ParsePriority(prio); err != nil {
		return fmt.Errorf("%w: key \"priority\": %v", ErrValue, err)
	}
	ts, err := requiredString(obj, "time")
	if err != nil {
		return err
	}
	if a.Time, err = ParseTime(ts); err != nil {
		return fmt.Errorf("%w: key \"time\": %v", ErrValue, err)
	}
	for _, k := range [...]struct {
		key string
		dst *string
	}{{"source", &a.Source}, {"hostname", &a.Hostname}, {"uuid", &a.UUID}, {"output", &a.Output}} {
		if *k.dst, err = optionalString(obj, k.key); err != nil {
			return err
		}
	}
	if a.Tags, err = parseTags(obj.Get("tags")); err != nil {
		return err
	}
	if a.Fields, err = parseFields(obj.Get("output_fields")); err != nil {
		return err
	}
	return nil
}

func requiredString(obj *fastjson.Object, key string) (string, error) {
	v := obj.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		return "", fmt.Errorf("%w %q", ErrMissing, key)
	}
	b, err := v.StringBytes()
	if err != nil {
		return "", fmt.Errorf("%w: key %q must be a string, got %s", ErrType, key, v.Type())
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return "", fmt.Errorf("%w %q (empty string)", ErrMissing, key)
	}
	return validText(b), nil
}

func optionalString(obj *fastjson.Object, key string) (string, error) {
	v := obj.Get(key)
	if v == nil || v.Type() == fastjson.TypeNull {
		return "", nil
	}
	b, err := v.StringBytes()
	if err != nil {
		return "", fmt.Errorf("%w: key %q must be a string, got %s", ErrType, key, v.Type())
	}
	return validText(b), nil
}

func parseTags(v *fastjson.Value) ([]string, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	arr, err := v.Array()
	if err != nil {
		return nil, fmt.Errorf("%w: key \"tags\" must be an array of strings, got %s", ErrType, v.Type())
	}
	tags := make([]string, 0, len(arr))
	for i, t := range arr {
		b, err := t.StringBytes()
		if err != nil {
			return nil, fmt.Errorf("%w: tags[%d] must be a string, got %s", ErrType, i, t.Type())
		}
		tags = append(tags, validText(b))
	}
	return tags, nil
}

func parseFields(v *fastjson.Value) ([]Field, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	obj, err := v.Object()
	if err != nil {
		return nil, fmt.Errorf("%w: key \"output_fields\" must be an object, got %s", ErrType, v.Type())
	}
	fields := make([]Field, 0, obj.Len())
	obj.Visit(func(key []byte, fv *fastjson.Value) {
		f := Field{Key: validText(key)}
		switch fv.Type() {
		case fastjson.TypeNull:
			f.Kind = KindNull
		case fastjson.TypeString:
			f.Kind = KindString
			f.Value = validText(fv.GetStringBytes())
		case fastjson.TypeNumber:
			// MarshalTo writes the number text as it arrived: exact for
			// integers beyond 2^53 and for negative values.
			f.Kind = KindNumber
			f.Value = string(fv.MarshalTo(nil))
		case fastjson.TypeTrue:
			f.Kind, f.Value = KindBool, "true"
		case fastjson.TypeFalse:
			f.Kind, f.Value = KindBool, "false"
		case fastjson.TypeArray:
			f.Kind = KindArray
			f.Value = validText(fv.MarshalTo(nil))
		case fastjson.TypeObject:
			f.Kind = KindObject
			f.Value = validText(fv.MarshalTo(nil))
		}
		fields = append(fields, f)
	})
	return fields, nil
}

// validText converts to a string, replacing invalid UTF-8 with U+FFFD.
func validText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
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
