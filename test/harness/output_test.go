package harness

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFormatOutput renders templates for the self-test plugin's event
// "evt-2" (number 2, timestamp 1,000,002 ns, mini.list = evt, 2). The
// expected text follows libsinsp's rules as listed in output.go.
func TestFormatOutput(t *testing.T) {
	p, in := openMini(t, `{"n":2}`)
	evts := collectAll(t, in)
	e := evts[1]
	require.Equal(t, "evt-2", string(e.Data))
	require.Equal(t, uint64(1_000_002), e.Timestamp)

	out, err := p.FormatOutput(e, `list=(%mini.list) str=%mini.str num=%mini.num even=%mini.even `+
		`key=%mini.key[abc] miss=%mini.key[missing] idx=%mini.idx[5] ts=%mini.ts dur=%mini.dur.`)
	require.NoError(t, err)
	assert.Equal(t, `list=((evt,2)) str=evt-2 num=2 even=true key=abc@evt-2 miss=<NA> idx=7 ts=1000002 dur=2000000.`, out.Message)
	js, err := json.Marshal(out.Fields)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"mini.list": ["evt", "2"],
		"mini.str": "evt-2",
		"mini.num": 2,
		"mini.even": true,
		"mini.key[abc]": "abc@evt-2",
		"mini.key[missing]": null,
		"mini.idx[5]": 7,
		"mini.ts": 1000002,
		"mini.dur": 2000000,
		"evt.time": 1000002
	}`, string(js))
	assert.IsType(t, uint64(0), out.Fields["mini.num"], "numbers stay numbers")

	// Falco's leading '*', widths, adjacent tokens, a field name followed
	// by more name-like text, a quoted argument (its key is quoted too),
	// quotes escaped in the text line.
	out, err = p.FormatOutput(e, `*[%10mini.str|%3mini.str|%mini.str%mini.num|%mini.strx] "%mini.key["a b"]"`)
	require.NoError(t, err)
	assert.Equal(t, `[evt-2     |evt|evt-22|evt-2x] "a b@evt-2"`, out.Message)
	assert.Equal(t, `[evt-2     |evt|evt-22|evt-2x] \"a b@evt-2\"`, out.Line)
	assert.Equal(t, "a b@evt-2", out.Fields[`mini.key["a b"]`])

	names, err := p.ParseOutput(`%mini.str and %mini.key[x] (%mini.list)`)
	require.NoError(t, err)
	assert.Equal(t, []string{"mini.str", "mini.key[x]", "mini.list"}, names)

	// What Falco refuses when it loads the rule, and fields that are not
	// the plugin's.
	for _, bad := range []string{"100%", "%", "%12", "%nosuch.field", "%mini.key", "% mini.str", "%proc.name", "%mini.key[abc"} {
		_, err := p.FormatOutput(e, bad)
		assert.Error(t, err, bad)
	}
	// An argument the field does not take: libsinsp's set_format retries
	// shorter text until a field compiles, so the bracket stays literal.
	out, err = p.FormatOutput(e, "%mini.str[x]")
	require.NoError(t, err)
	assert.Equal(t, "evt-2[x]", out.Message)
	// An extraction error is reported.
	_, err = p.FormatOutput(e, "%mini.key[fail]")
	assert.ErrorContains(t, err, "failed on event")
}

// TestFormatOutputCutsLongLists: libsinsp prints a list into a 1024-byte
// buffer (1023 characters and the NUL); a single string is not cut.
func TestFormatOutputCutsLongLists(t *testing.T) {
	text, js, err := renderValue(Value{Present: true, Type: "string", IsList: true, Str: []string{string(make([]byte, 600)), string(make([]byte, 600))}})
	require.NoError(t, err)
	assert.Len(t, text, 1023)
	assert.Equal(t, byte('('), text[0])
	assert.Len(t, js, 2)
	long := string(make([]byte, 5000))
	text, _, err = renderValue(Value{Present: true, Type: "string", Str: []string{long}})
	require.NoError(t, err)
	assert.Len(t, text, 5000)
	text, js, err = renderValue(Value{Type: "string", IsList: true})
	require.NoError(t, err)
	assert.Equal(t, "<NA>", text)
	assert.Nil(t, js)
}

func TestFalcoTextEscape(t *testing.T) {
	// nlohmann::json dump: quotes, backslashes and control characters
	// escaped, non-ASCII kept, invalid UTF-8 replaced by U+FFFD.
	assert.Equal(t, `a\"b\\c\nd\te\u0001 ü `+"\uFFFD", falcoTextEscape("a\"b\\c\nd\te\x01 ü \xff"))
}
