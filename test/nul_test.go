package test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/test/harness"
)

// A NUL inside a JSON string reaches libsinsp as a C string, which would
// cut the value there and let a rule condition be evaded
// (../shared/design/falco-facts.md, fact 12). triage replaces each NUL by
// U+FFFD, so what Falco reads (the harness reads extracted strings as C
// strings, like libsinsp) is the whole value.
func TestNULCannotEvadeRules(t *testing.T) {
	w := openWebhook(t, "")
	evil := `{"rule":"Shell spawned\u0000 quietly","priority":"Warning","time":"2026-11-21T04:45:00Z","source":"syscall",` +
		`"hostname":"node\u0000-1","output":"Shell ok\u0000evil spawned","tags":["T1059\u0000x"],` +
		`"output_fields":{"proc.cmdline":"ok\u0000evil","proc.name":"bash"}}`
	key := `{"rule":"NUL key","priority":"Warning","time":"2026-11-21T04:45:00Z","source":"syscall",` +
		`"output_fields":{"proc.cmdline\u0000x":"evil","proc.name":"bash"}}`
	code, body := send(t, "POST", w.url, "application/x-ndjson", evil+"\n"+key)
	require.Equal(t, 200, code, body)
	evts := w.collect(t, 2)
	require.Len(t, evts, 2)

	get := func(e *harness.Event) harness.Getter {
		return func(field, arg string) (harness.Value, error) {
			v, err := w.p.ExtractEach(e, harness.Request{Field: field, Arg: arg})
			if err != nil {
				return harness.Value{}, err
			}
			return v[0], nil
		}
	}
	eval := func(e *harness.Event, cond string) bool {
		t.Helper()
		c, err := harness.CompileCondition(cond, harness.CondEnv{})
		require.NoError(t, err, cond)
		ok, err := c.Eval(get(e))
		require.NoError(t, err, cond)
		return ok
	}
	str := func(e *harness.Event, field, arg string) string {
		t.Helper()
		v, err := get(e)(field, arg)
		require.NoError(t, err)
		require.True(t, v.Present, "%s[%s] has no value", field, arg)
		return v.Str[0]
	}

	e := evts[0]
	cmdline := str(e, "alert.field", "proc.cmdline")
	assert.Equal(t, "ok\uFFFDevil", cmdline)
	// `alert.field[proc.cmdline] contains evil` (the harness's evaluator
	// has no `contains`: the same test on the string Falco reads).
	assert.True(t, strings.Contains(cmdline, "evil"), "a rule on the field must see past the NUL")
	assert.True(t, eval(e, "alert.field[proc.cmdline] = \"ok\uFFFDevil\""))
	assert.False(t, eval(e, "alert.field[proc.cmdline] = ok"), "the value must not read as cut at the NUL")
	assert.True(t, strings.Contains(str(e, "alert.output", ""), "evil"))
	assert.Equal(t, "Shell ok\uFFFDevil spawned", str(e, "alert.output", ""))
	assert.Equal(t, "Shell spawned\uFFFD quietly", str(e, "alert.rule", ""))
	assert.Equal(t, "node\uFFFD-1", str(e, "alert.hostname", ""))
	tags, err := get(e)("alert.tags", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"T1059\uFFFDx"}, tags.Str)
	assert.True(t, eval(e, "alert.field[proc.name] = bash"))

	// A NUL in a key: the key is not cut to "proc.cmdline" (which would let
	// it stand in for, or hide behind, the real field); it is its own key
	// with U+FFFD in place of the NUL.
	e = evts[1]
	assert.Equal(t, "evil", str(e, "alert.field", "proc.cmdline\uFFFDx"))
	v, err := get(e)("alert.field", "proc.cmdline")
	require.NoError(t, err)
	assert.False(t, v.Present, fmt.Sprintf("got %q", v.Str))
	assert.False(t, eval(e, "alert.field[proc.cmdline] exists"))
}
