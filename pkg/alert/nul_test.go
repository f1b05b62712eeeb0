package alert

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Falco reads every extracted string as a C string, so a NUL inside a value
// would hide what follows it from rules (../shared/design/falco-facts.md,
// fact 12). Every string of an alert has each NUL replaced by U+FFFD, in
// every position, so the whole value stays visible.
func TestParseReplacesNUL(t *testing.T) {
	const in = `{"rule":"r\u0000evil","priority":"Warning","time":"2026-11-21T04:45:00Z",` +
		`"source":"sys\u0000call","hostname":"node\u0000x","uuid":"u\u0000u","output":"ok\u0000evil out",` +
		`"tags":["t\u0000x","\u0000"],` +
		`"output_fields":{"proc.cmdline":"ok\u0000evil","k\u0000ey":"v","nul":"\u0000\u0000","mixed":"a\u0000\u001b[31m\u0000b",` +
		`"arr":["a\u0000b"],"obj":{"k\u0000":"v\u0000"}}}`
	var p Parser
	a, err := p.Parse([]byte(in))
	require.NoError(t, err)

	assert.Equal(t, "r\uFFFDevil", a.Rule)
	assert.Equal(t, "sys\uFFFDcall", a.Source)
	assert.Equal(t, "node\uFFFDx", a.Hostname)
	assert.Equal(t, "u\uFFFDu", a.UUID)
	assert.Equal(t, "ok\uFFFDevil out", a.Output)
	assert.Equal(t, []string{"t\uFFFDx", "\uFFFD"}, a.Tags)

	v, ok := a.Value("proc.cmdline")
	require.True(t, ok)
	assert.Equal(t, "ok\uFFFDevil", v)
	v, ok = a.Value("k\uFFFDey")
	require.True(t, ok, "a NUL in a key is replaced too, not cut")
	assert.Equal(t, "v", v)
	_, ok = a.Value("k")
	assert.False(t, ok, "the key is not cut at the NUL")
	v, _ = a.Value("nul")
	assert.Equal(t, "\uFFFD\uFFFD", v, "one U+FFFD per NUL")
	v, _ = a.Value("mixed")
	assert.Equal(t, "a\uFFFD\x1b[31m\uFFFDb", v, "other control characters are kept as they are")

	// Arrays and objects are compact JSON text: a NUL stays escaped as
	// \u0000 there, six visible characters, and is never cut.
	v, _ = a.Value("arr")
	assert.Equal(t, `["a\u0000b"]`, v)
	v, _ = a.Value("obj")
	assert.Equal(t, `{"k\u0000":"v\u0000"}`, v)

	for _, s := range append([]string{a.Rule, a.Source, a.Hostname, a.UUID, a.Output}, a.Tags...) {
		assert.NotContains(t, s, "\x00")
	}
	for _, f := range a.Fields {
		assert.NotContains(t, f.Key, "\x00")
		assert.NotContains(t, f.Value, "\x00")
	}
}

// A NUL next to invalid UTF-8: both replaced, in order, the rest kept.
func TestParseReplacesNULAndInvalidUTF8(t *testing.T) {
	in := "{\"rule\":\"r\",\"priority\":\"Warning\",\"time\":\"2026-11-21T04:45:00Z\",\"output_fields\":{\"k\":\"a\xff\\u0000b\xfe\xfd\\u0000\"}}"
	var p Parser
	a, err := p.Parse([]byte(in))
	require.NoError(t, err)
	v, _ := a.Value("k")
	assert.Equal(t, "a\uFFFD\uFFFDb\uFFFD\uFFFD", v)
}

// Required keys that cannot hold a NUL (priority, time) reject the alert
// with the usual reason: no Falco writes one there.
func TestParseNULInPriorityOrTime(t *testing.T) {
	var p Parser
	for in, key := range map[string]string{
		`{"rule":"r","priority":"Warning\u0000","time":"2026-11-21T04:45:00Z"}`: "priority",
		`{"rule":"r","priority":"Warning","time":"2026-11-21T04:45:00Z\u0000"}`: "time",
	} {
		_, err := p.Parse([]byte(in))
		require.Error(t, err, in)
		assert.ErrorIs(t, err, ErrValue)
		assert.Contains(t, err.Error(), key)
	}
}

// fastjson also takes a raw NUL byte (and other raw control characters)
// inside a string, which RFC 8259 forbids; no Falco writes one. The same
// policy applies: the NUL becomes U+FFFD, the rest is kept.
func TestParseRawNULByte(t *testing.T) {
	var p Parser
	a, err := p.Parse([]byte("{\"rule\":\"r\x00x\",\"priority\":\"Warning\",\"time\":\"2026-11-21T04:45:00Z\",\"output_fields\":{\"k\x00\":\"ok\x00evil\x1b\"}}"))
	require.NoError(t, err)
	assert.Equal(t, "r\uFFFDx", a.Rule)
	v, ok := a.Value("k\uFFFD")
	require.True(t, ok)
	assert.Equal(t, "ok\uFFFDevil\x1b", v)
	assert.False(t, strings.ContainsRune(a.Rule+v, 0))
}
