package harness

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func pluginsOf(t *testing.T, doc string) []FalcoPluginEntry {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(doc), &n))
	ps, err := FalcoPlugins(&n)
	require.NoError(t, err)
	return ps
}

func initConfigOf(t *testing.T, initConfig string) string {
	t.Helper()
	ps := pluginsOf(t, "plugins:\n  - name: p\n    library_path: libp.so\n"+initConfig)
	require.Len(t, ps, 1)
	return ps[0].InitConfig
}

// Each expectation is a measured or source-checked Falco behaviour
// (falco-facts.md fact 1), not this converter's output.
func TestFalcoInitConfigConversion(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"", ""},                          // absent
		{"    init_config:\n", ""},        // null
		{"    init_config: ~\n", ""},      // null
		{"    init_config: {}\n", "null"}, // empty map: nothing inserted
		{"    init_config: \"\"\n", ""},   // a YAML string, verbatim
		{"    init_config: '{\"a\": 1}'\n", `{"a": 1}`},
		{"    init_config:\n      risk: {}\n      queueSize: 64\n", `{"queueSize":64,"risk":null}`},
		{"    init_config:\n      list: []\n", `{"list":null}`},
		{"    init_config:\n      secretHeader: \"12345\"\n", `{"secretHeader":12345}`}, // quoted, still a number
		{"    init_config:\n      acct: '123456789012'\n", `{"acct":123456789012.0}`},   // overflows int: a double
		{"    init_config:\n      oct: '0755'\n      hex: 0x1F\n", `{"hex":31,"oct":493}`},
		{"    init_config:\n      a: yes\n      b: \"Off\"\n      c: \"yEs\"\n", `{"a":true,"b":false,"c":"yEs"}`},
		{"    init_config:\n      s: 'null'\n      n: null\n", `{"n":null,"s":"null"}`},
		{"    init_config:\n      f: 1.5\n      g: 1e20\n      h: .inf\n", `{"f":1.5,"g":1e+20,"h":null}`},
		{"    init_config:\n      t: \"a\\\"b\\\\c\\n\"\n", `{"t":"a\"b\\c\n"}`},
		{"    init_config:\n      l: [a, 1, {}]\n", `{"l":["a",1,null]}`},
	} {
		assert.Equal(t, c.want, initConfigOf(t, c.yaml), c.yaml)
	}
}

func TestFalcoPluginsEntries(t *testing.T) {
	ps := pluginsOf(t, `
plugins:
  - name: a
    library_path: liba.so
    open_params: "  http://127.0.0.1:1/x  "
  - name: b
    library_path: libb.so
    init_config: {}
`)
	require.Len(t, ps, 2)
	assert.Equal(t, "http://127.0.0.1:1/x", ps[0].OpenParams, "open_params is trimmed (fact 2)")
	assert.Equal(t, "", ps[0].InitConfig)
	assert.Equal(t, "null", ps[1].InitConfig)

	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("plugins:\n  - name: a\n    library_path: l\n    init_config: [1]\n"), &n))
	_, err := FalcoPlugins(&n)
	assert.Error(t, err, "a list init_config is refused")
}

func TestNlohmannDouble(t *testing.T) {
	for f, want := range map[float64]string{
		8: "8.0", -2.5: "-2.5", 1e14: "100000000000000.0", 1e15: "1e+15", 0.0001: "0.0001",
		0.001: "0.001", 0.00001: "1e-05", 123456789012: "123456789012.0", 1.25e-7: "1.25e-07",
	} {
		assert.Equal(t, want, nlohmannDouble(f), "%v", f)
	}
}
