package alert

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const falcoAlert = `{"hostname":"node-a","output":"12:00:00.123456789: Warning Shell spawned (proc.name=bash)","output_fields":{"container.id":"host","evt.time":1795236300682554049,"proc.name":"bash","proc.tty":34816,"user.loginuid":-1,"k8s.ns.name":null,"fd.sport":null,"proc.is_exe_from_memfd":true,"proc.is_exe_upper_layer":false,"proc.args":["-c","id"],"big":18446744073709551615,"float":1.5e3,"obj":{"a":1}},"priority":"Warning","rule":"Terminal shell in container","source":"syscall","tags":["T1059","container","maturity_stable","mitre_execution"],"time":"2026-11-21T04:45:00.682554049Z"}`

// Falcosidekick's key order, a uuid, trimmed nanoseconds.
const sidekickAlert = `{"uuid":"9c1f9bb4-2b4b-4a47-9a0d-6f5e8b8a0e11","output":"x","priority":"Critical","rule":"Drop and execute new binary in container","time":"2026-11-21T04:45:00.6825Z","output_fields":{"proc.exepath":"/tmp/x"},"source":"syscall","tags":["T1105"],"hostname":"node-b"}`

func TestParseFalcoShape(t *testing.T) {
	var p Parser
	a, err := p.Parse([]byte(falcoAlert))
	require.NoError(t, err)
	assert.Equal(t, "Terminal shell in container", a.Rule)
	assert.Equal(t, PriorityWarning, a.Priority)
	assert.Equal(t, "syscall", a.Source)
	assert.Equal(t, "node-a", a.Hostname)
	assert.Equal(t, "", a.UUID)
	assert.Equal(t, time.Date(2026, 11, 21, 4, 45, 0, 682554049, time.UTC).UnixNano(), a.Time)
	assert.Equal(t, []string{"T1059", "container", "maturity_stable", "mitre_execution"}, a.Tags)

	want := map[string]Field{
		"container.id":            {Key: "container.id", Kind: KindString, Value: "host"},
		"evt.time":                {Key: "evt.time", Kind: KindNumber, Value: "1795236300682554049"},
		"proc.tty":                {Key: "proc.tty", Kind: KindNumber, Value: "34816"},
		"user.loginuid":           {Key: "user.loginuid", Kind: KindNumber, Value: "-1"},
		"k8s.ns.name":             {Key: "k8s.ns.name", Kind: KindNull},
		"proc.is_exe_from_memfd":  {Key: "proc.is_exe_from_memfd", Kind: KindBool, Value: "true"},
		"proc.is_exe_upper_layer": {Key: "proc.is_exe_upper_layer", Kind: KindBool, Value: "false"},
		"proc.args":               {Key: "proc.args", Kind: KindArray, Value: `["-c","id"]`},
		"big":                     {Key: "big", Kind: KindNumber, Value: "18446744073709551615"},
		"float":                   {Key: "float", Kind: KindNumber, Value: "1.5e3"},
		"obj":                     {Key: "obj", Kind: KindObject, Value: `{"a":1}`},
	}
	for k, w := range want {
		got, ok := a.Field(k)
		require.True(t, ok, k)
		assert.Equal(t, w, got, k)
	}
	_, ok := a.Field("absent")
	assert.False(t, ok)
}

func TestParseSidekickShape(t *testing.T) {
	var p Parser
	a, err := p.Parse([]byte(sidekickAlert))
	require.NoError(t, err)
	assert.Equal(t, "9c1f9bb4-2b4b-4a47-9a0d-6f5e8b8a0e11", a.UUID)
	assert.Equal(t, PriorityCritical, a.Priority)
	assert.Equal(t, time.Date(2026, 11, 21, 4, 45, 0, 682500000, time.UTC).UnixNano(), a.Time)
	assert.Equal(t, "node-b", a.Hostname)
}

func TestParsePriorityAnyCasing(t *testing.T) {
	cases := map[string]Priority{
		"info": PriorityInformational, "INFORMATIONAL": PriorityInformational, "Informational": PriorityInformational,
		"debug": PriorityDebug, "notice": PriorityNotice, "WARNING": PriorityWarning, "warn": PriorityWarning,
		"error": PriorityError, "critical": PriorityCritical, "alert": PriorityAlert, "emergency": PriorityEmergency,
		" Critical ": PriorityCritical,
	}
	for in, want := range cases {
		got, err := ParsePriority(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "severe", "5", "informationall"} {
		_, err := ParsePriority(bad)
		assert.Error(t, err, bad)
	}
	// Ranks: Debug lowest, Emergency highest, names in Falco casing.
	assert.Equal(t, uint8(0), uint8(PriorityDebug))
	assert.Equal(t, uint8(7), uint8(PriorityEmergency))
	assert.Equal(t, "Informational", PriorityInformational.String())
	assert.False(t, Priority(8).Valid())
}

func TestParseTimeFractionDigits(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	for digits, want := range map[string]int64{
		"":           base,
		".1":         base + 100000000,
		".12":        base + 120000000,
		".123456":    base + 123456000,
		".12345678":  base + 123456780,
		".123456789": base + 123456789,
	} {
		got, err := ParseTime("2026-01-02T03:04:05" + digits + "Z")
		require.NoError(t, err, digits)
		assert.Equal(t, want, got, digits)
	}
	got, err := ParseTime("2026-01-02T05:04:05+02:00")
	require.NoError(t, err)
	assert.Equal(t, base, got)
	for _, bad := range []string{"2026-01-02", "yesterday", "2026-01-02T03:04:05.1234567890Z", "1969-12-31T23:59:59Z", "2300-01-01T00:00:00Z"} {
		_, err := ParseTime(bad)
		assert.Error(t, err, bad)
	}
}

func TestParseRejects(t *testing.T) {
	valid := `"rule":"r","priority":"Warning","time":"2026-01-02T03:04:05Z"`
	cases := []struct {
		name, in string
		kind     error
		mention  string
	}{
		{"not json", `{rule`, ErrSyntax, ""},
		{"truncated", `{"rule":"r"`, ErrSyntax, ""},
		{"array", `[{"rule":"r"}]`, ErrType, "object"},
		{"string", `"hello"`, ErrType, "object"},
		{"missing rule", `{"priority":"Warning","time":"2026-01-02T03:04:05Z"}`, ErrMissing, `"rule"`},
		{"null rule", `{"rule":null,"priority":"Warning","time":"2026-01-02T03:04:05Z"}`, ErrMissing, `"rule"`},
		{"empty rule", `{"rule":" ","priority":"Warning","time":"2026-01-02T03:04:05Z"}`, ErrMissing, `"rule"`},
		{"missing priority", `{"rule":"r","time":"2026-01-02T03:04:05Z"}`, ErrMissing, `"priority"`},
		{"missing time", `{"rule":"r","priority":"Warning"}`, ErrMissing, `"time"`},
		{"rule number", `{"rule":5,"priority":"Warning","time":"2026-01-02T03:04:05Z"}`, ErrType, `"rule"`},
		{"priority number", `{"rule":"r","priority":4,"time":"2026-01-02T03:04:05Z"}`, ErrType, `"priority"`},
		{"unknown priority", `{"rule":"r","priority":"Severe","time":"2026-01-02T03:04:05Z"}`, ErrValue, "Severe"},
		{"time number", `{"rule":"r","priority":"Warning","time":1700000000}`, ErrType, `"time"`},
		{"bad time", `{"rule":"r","priority":"Warning","time":"soon"}`, ErrValue, "soon"},
		{"tags string", `{` + valid + `,"tags":"T1059"}`, ErrType, "tags"},
		{"tag number", `{` + valid + `,"tags":["a",1]}`, ErrType, "tags[1]"},
		{"output_fields array", `{` + valid + `,"output_fields":[1]}`, ErrType, "output_fields"},
		{"hostname number", `{` + valid + `,"hostname":1}`, ErrType, "hostname"},
		{"source bool", `{` + valid + `,"source":true}`, ErrType, "source"},
		{"trailing garbage", `{` + valid + `} x`, ErrSyntax, ""},
		{"number dot", `{` + valid + `,"output_fields":{"k":.}}`, ErrSyntax, "invalid JSON number"},
		{"number leading zeros", `{` + valid + `,"output_fields":{"k":00}}`, ErrSyntax, "invalid JSON number"},
		{"number trailing dot", `{` + valid + `,"output_fields":{"k":1.}}`, ErrSyntax, "invalid JSON number"},
		{"number in array", `{` + valid + `,"output_fields":{"k":[1,00]}}`, ErrSyntax, "invalid JSON number"},
		{"number in object", `{` + valid + `,"output_fields":{"k":{"a":01}}}`, ErrSyntax, "invalid JSON number"},
	}
	var p Parser
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.Parse([]byte(c.in))
			require.Error(t, err)
			assert.True(t, errors.Is(err, c.kind), "want %v, got %v", c.kind, err)
			assert.Contains(t, err.Error(), c.mention)
		})
	}
}

func TestValidNumber(t *testing.T) {
	for _, ok := range []string{"0", "-0", "1", "-12", "1.5", "0.25", "1e3", "1E+3", "-1.5e-3", "18446744073709551616"} {
		assert.True(t, validNumber([]byte(ok)), ok)
	}
	for _, bad := range []string{"", "-", ".", "00", "01", "1.", ".5", "1e", "1e+", "+1", "1.5.5", "0x10", "1 "} {
		assert.False(t, validNumber([]byte(bad)), bad)
	}
}

func TestNumbersValidInJSONText(t *testing.T) {
	assert.True(t, numbersValid([]byte(`[1,-2.5e3,{"a":0,"b":"00 . 1."},true,null,"\"5.",[0.5]]`)))
	for _, bad := range []string{`[00]`, `[1.]`, `{"a":.}`, `[1,-]`, `[{"a":[01]}]`} {
		assert.False(t, numbersValid([]byte(bad)), bad)
	}
}

func TestParseInvalidUTF8IsReplacedNotRejected(t *testing.T) {
	in := []byte("{\"rule\":\"r\xff\",\"priority\":\"Warning\",\"time\":\"2026-01-02T03:04:05Z\",\"output_fields\":{\"fd.name\":\"/tmp/\xc3\x28\"}}")
	var p Parser
	a, err := p.Parse(in)
	require.NoError(t, err)
	assert.Equal(t, "r\uFFFD", a.Rule)
	f, _ := a.Field("fd.name")
	assert.True(t, strings.HasPrefix(f.Value, "/tmp/\uFFFD"), f.Value)
}

func TestParseNullOptionalKeysAreAbsent(t *testing.T) {
	var p Parser
	a, err := p.Parse([]byte(`{"rule":"r","priority":"debug","time":"2026-01-02T03:04:05Z","source":null,"hostname":null,"tags":null,"output_fields":null}`))
	require.NoError(t, err)
	assert.Equal(t, "", a.Source)
	assert.Nil(t, a.Tags)
	assert.Nil(t, a.Fields)
	assert.Equal(t, PriorityDebug, a.Priority)
}

func TestParserReuseDoesNotAlias(t *testing.T) {
	var p Parser
	a1, err := p.Parse([]byte(falcoAlert))
	require.NoError(t, err)
	_, err = p.Parse([]byte(sidekickAlert))
	require.NoError(t, err)
	assert.Equal(t, "Terminal shell in container", a1.Rule, "first alert must survive the parser's reuse")
	f, _ := a1.Field("proc.name")
	assert.Equal(t, "bash", f.Value)
}

// TestParseIntoReusesWithoutStaleValues parses into the same alert again
// and again, as recycled alerts are: nothing of an earlier alert may show
// through, whatever the order of longer and shorter alerts.
func TestParseIntoReusesWithoutStaleValues(t *testing.T) {
	big := `{"rule":"r1","priority":"Warning","time":"2026-11-21T04:45:00Z","tags":["a","b","c"],` +
		`"output_fields":{"k1":"v1","k2":2,"k3":true,"k4":null,"k5":["x"]}}`
	small := `{"rule":"r2","priority":"Notice","time":"2026-11-21T04:45:01Z","tags":[""],` +
		`"output_fields":{"k4":null,"k1":""}}`
	none := `{"rule":"r3","priority":"Notice","time":"2026-11-21T04:45:02Z"}`
	var p Parser
	var fresh Parser
	a := Acquire()
	for _, line := range []string{big, small, none, big, none, small} {
		require.NoError(t, p.ParseInto([]byte(line), a))
		want, err := fresh.Parse([]byte(line))
		require.NoError(t, err)
		assert.Equal(t, want.Rule, a.Rule)
		assert.Equal(t, want.Tags, a.Tags, line)
		assert.Equal(t, want.Fields, a.Fields, line)
		assert.Equal(t, *want, *a, line)
	}
	Release(a)
	b := Acquire()
	assert.Empty(t, b.Rule)
	assert.Empty(t, b.Fields)
	assert.Empty(t, b.Tags)
	for _, f := range b.Fields[:cap(b.Fields)] {
		assert.Equal(t, Field{}, f, "a recycled alert keeps no text")
	}
	for _, s := range b.Tags[:cap(b.Tags)] {
		assert.Empty(t, s)
	}
	Release(nil) // harmless
}

func TestReleaseSkipsHugeAlerts(t *testing.T) {
	a := &Alert{Fields: make([]Field, 0, maxPooledFields+1)}
	Release(a)
	assert.Equal(t, maxPooledFields+1, cap(a.Fields), "not recycled: left as it was")
}
