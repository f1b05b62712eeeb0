package alert

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/triage-dev/triage/internal/shareddata"
)

// addSharedSeeds adds every line of ../shared/data/alerts/*.jsonl (the
// reference data beside the repository) as a seed; absent data just means
// fewer seeds.
func addSharedSeeds(f *testing.F) {
	for _, line := range shareddata.Lines("alerts/*.jsonl") {
		f.Add(line)
	}
}

var malformedSeeds = []string{
	``, `{}`, `[]`, `null`, `"x"`, `{"rule":`, `{"rule":"r","priority":"Warning","time":"2026-11-21T04:45:00Z"}`,
	`{"rule":"r","priority":"info","time":"2026-11-21T04:45:00.5+02:00","output_fields":{"a":-1,"b":18446744073709551616,"c":null,"d":[1,{"x":"\u0000"}],"e":true,"f":{"g":"h"}},"tags":["T1059"]}`,
	`{"rule":"r","priority":"Severe","time":"2026-11-21T04:45:00Z"}`,
	`{"rule":"r","priority":"Warning","time":"2026-11-21T04:45:00.1234567890Z"}`,
	`{"rule":"r","priority":"Warning","time":"1969-12-31T23:59:59Z"}`,
	`{"rule":"r","priority":"Warning","time":"2262-01-01T00:00:00Z"}`,
	`{"rule":" ","priority":"Warning","time":"2026-11-21T04:45:00Z"}`,
	`{"rule":1,"priority":"Warning","time":"2026-11-21T04:45:00Z"}`,
	`{"rule":"r","priority":"Warning","time":"2026-11-21T04:45:00Z","tags":"x"}`,
	`{"rule":"r","priority":"Warning","time":"2026-11-21T04:45:00Z","tags":[1]}`,
	`{"rule":"r","priority":"Warning","time":"2026-11-21T04:45:00Z","output_fields":[]}`,
	"{\"rule\":\"\xff\xfe\",\"priority\":\"Warning\",\"time\":\"2026-11-21T04:45:00Z\",\"output_fields\":{\"\xc3\":\"\xed\xa0\x80\",\"k\":[\"\xff\"]}}",
	`{"rule":"r","rule":"s","priority":"Warning","time":"2026-11-21T04:45:00Z","output_fields":{"a":1,"a":2}}`,
	`{"rule":"r\ud800","priority":"ERROR","time":"2026-11-21T04:45:00Z"}`,
	`{"rule":"r\u0000","priority":"Warning","time":"2026-11-21T04:45:00Z","output":"ok\u0000evil","tags":["\u0000"],"output_fields":{"proc.cmdline":"ok\u0000evil","k\u0000":"\u001b[31m"}}`,
	"{\"rule\":\"r\x00\",\"priority\":\"Warning\",\"time\":\"2026-11-21T04:45:00Z\",\"output_fields\":{\"k\":\"\xff\x00\\u0000\"}}",
	strings.Repeat(`[`, 10000),
}

// FuzzParse checks that Parse never panics and that what it accepts is
// sound: valid UTF-8 everywhere, a known priority, a time in range, field
// values of the right shape, and a faithful re-encoding (the alert written
// back as JSON parses to the same alert).
func FuzzParse(f *testing.F) {
	addSharedSeeds(f)
	for _, s := range malformedSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Parser
		a, err := p.Parse(data)
		if err != nil {
			if a != nil {
				t.Fatal("an alert together with an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		checkAlert(t, a)
		again, err := p.Parse(encodeAlert(t, a))
		if err != nil {
			t.Fatalf("re-encoded alert does not parse: %v\n%s", err, encodeAlert(t, a))
		}
		if !reflect.DeepEqual(normalize(a), normalize(again)) {
			t.Fatalf("re-encoding changed the alert:\nfirst  %#v\nsecond %#v", a, again)
		}
	})
}

func checkAlert(t *testing.T, a *Alert) {
	t.Helper()
	for _, s := range append([]string{a.Rule, a.Source, a.Hostname, a.UUID, a.Output}, a.Tags...) {
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 in %q", s)
		}
		if strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("NUL in %q: Falco would cut the value there", s)
		}
	}
	if strings.TrimSpace(a.Rule) == "" {
		t.Fatal("accepted an alert without a rule")
	}
	if !a.Priority.Valid() {
		t.Fatalf("priority %d is not valid", a.Priority)
	}
	if y := time.Unix(0, a.Time).UTC().Year(); y < 1970 || y > 2261 {
		t.Fatalf("time %d out of range", a.Time)
	}
	for _, fl := range a.Fields {
		if !utf8.ValidString(fl.Key) || !utf8.ValidString(fl.Value) {
			t.Fatalf("invalid UTF-8 in field %q=%q", fl.Key, fl.Value)
		}
		if strings.IndexByte(fl.Key, 0) >= 0 || strings.IndexByte(fl.Value, 0) >= 0 {
			t.Fatalf("NUL in field %q=%q: Falco would cut it there", fl.Key, fl.Value)
		}
		switch fl.Kind {
		case KindNull:
			if fl.Value != "" {
				t.Fatalf("null field %q has value %q", fl.Key, fl.Value)
			}
		case KindString:
		case KindBool:
			if fl.Value != "true" && fl.Value != "false" {
				t.Fatalf("bool field %q is %q", fl.Key, fl.Value)
			}
		case KindNumber:
			// Strict RFC 8259 numbers only: fastjson alone also takes
			// ".", "00" and "1." (fuzz findings, docs/reliability.md).
			if !strictNumber.MatchString(fl.Value) {
				t.Fatalf("number field %q is %q", fl.Key, fl.Value)
			}
		case KindArray, KindObject:
			if !json.Valid([]byte(fl.Value)) {
				t.Fatalf("%s field %q is not valid JSON: %q", fl.Kind, fl.Key, fl.Value)
			}
		default:
			t.Fatalf("field %q has kind %d", fl.Key, fl.Kind)
		}
	}
}

var strictNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// encodeAlert writes a back in Falco's json_output shape.
func encodeAlert(t *testing.T, a *Alert) []byte {
	t.Helper()
	var b bytes.Buffer
	str := func(s string) {
		enc, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(enc)
	}
	b.WriteString(`{"rule":`)
	str(a.Rule)
	b.WriteString(`,"priority":`)
	str(a.Priority.String())
	b.WriteString(`,"time":`)
	str(time.Unix(0, a.Time).UTC().Format(time.RFC3339Nano))
	for _, kv := range [][2]string{{"source", a.Source}, {"hostname", a.Hostname}, {"uuid", a.UUID}, {"output", a.Output}} {
		if kv[1] != "" {
			b.WriteString(`,"` + kv[0] + `":`)
			str(kv[1])
		}
	}
	if a.Tags != nil {
		b.WriteString(`,"tags":[`)
		for i, tag := range a.Tags {
			if i > 0 {
				b.WriteByte(',')
			}
			str(tag)
		}
		b.WriteByte(']')
	}
	if a.Fields != nil {
		b.WriteString(`,"output_fields":{`)
		for i, fl := range a.Fields {
			if i > 0 {
				b.WriteByte(',')
			}
			str(fl.Key)
			b.WriteByte(':')
			switch fl.Kind {
			case KindNull:
				b.WriteString("null")
			case KindString:
				str(fl.Value)
			default:
				b.WriteString(fl.Value)
			}
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.Bytes()
}

// normalize makes empty and nil lists compare equal: the encoding cannot
// tell them apart and neither can any consumer.
func normalize(a *Alert) Alert {
	c := *a
	if len(c.Tags) == 0 {
		c.Tags = nil
	}
	if len(c.Fields) == 0 {
		c.Fields = nil
	}
	return c
}
