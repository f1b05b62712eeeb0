package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const miniID = 999999

var miniPath string

// TestMain builds the self-test plugin once per test binary (go test -count=N
// reruns tests, not TestMain).
func TestMain(m *testing.M) {
	if os.Getenv("HARNESS_CHILD_SCENARIO") != "" { // see runChild
		miniPath = os.Getenv("HARNESS_MINI_PATH")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "harness-mini-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	miniPath = filepath.Join(dir, "libmini.so")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", miniPath, "./testdata/miniplugin")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building miniplugin:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir) // the library stays mapped; unlinking the file is fine
	os.Exit(code)
}

func load(t *testing.T) *Plugin {
	t.Helper()
	p, err := Load(miniPath)
	require.NoError(t, err)
	return p
}

func initMini(t *testing.T, cfg string) *Plugin {
	t.Helper()
	p := load(t)
	require.NoError(t, p.Init(cfg))
	t.Cleanup(p.Destroy)
	return p
}

func openMini(t *testing.T, cfg string) (*Plugin, *Instance) {
	t.Helper()
	p := initMini(t, cfg)
	in, err := p.Open("default")
	require.NoError(t, err)
	t.Cleanup(in.Close)
	return p, in
}

func collectAll(t *testing.T, in *Instance) []*Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	evts, err := in.Collect(ctx, 0, 5*time.Second)
	require.NoError(t, err)
	return evts
}

// layoutExprs must list, in order, what hs_layout() in harness.c reports.
var layoutExprs = []string{
	"sizeof(ss_plugin_event)",
	"offsetof(ss_plugin_event, ts)",
	"offsetof(ss_plugin_event, tid)",
	"offsetof(ss_plugin_event, len)",
	"offsetof(ss_plugin_event, type)",
	"offsetof(ss_plugin_event, nparams)",
	"sizeof(ss_plugin_event_input)",
	"offsetof(ss_plugin_event_input, evt)",
	"offsetof(ss_plugin_event_input, evtnum)",
	"offsetof(ss_plugin_event_input, evtsrc)",
	"sizeof(ss_plugin_byte_buffer)",
	"offsetof(ss_plugin_byte_buffer, ptr)",
	"sizeof(ss_plugin_extract_value_offsets)",
	"sizeof(ss_plugin_extract_field)",
	"offsetof(ss_plugin_extract_field, res)",
	"offsetof(ss_plugin_extract_field, res_len)",
	"offsetof(ss_plugin_extract_field, field_id)",
	"offsetof(ss_plugin_extract_field, field)",
	"offsetof(ss_plugin_extract_field, arg_key)",
	"offsetof(ss_plugin_extract_field, arg_index)",
	"offsetof(ss_plugin_extract_field, arg_present)",
	"offsetof(ss_plugin_extract_field, ftype)",
	"offsetof(ss_plugin_extract_field, flist)",
	"sizeof(ss_plugin_state_data)",
	"sizeof(ss_plugin_table_info)",
	"sizeof(ss_plugin_table_fieldinfo)",
	"sizeof(ss_plugin_table_fields_vtable)",
	"sizeof(ss_plugin_table_reader_vtable)",
	"sizeof(ss_plugin_table_reader_vtable_ext)",
	"sizeof(ss_plugin_table_writer_vtable)",
	"sizeof(ss_plugin_table_input)",
	"sizeof(ss_plugin_init_tables_input)",
	"offsetof(ss_plugin_init_tables_input, fields)",
	"offsetof(ss_plugin_init_tables_input, fields_ext)",
	"offsetof(ss_plugin_init_tables_input, reader_ext)",
	"offsetof(ss_plugin_init_tables_input, writer_ext)",
	"sizeof(ss_plugin_init_input)",
	"offsetof(ss_plugin_init_input, config)",
	"offsetof(ss_plugin_init_input, owner)",
	"offsetof(ss_plugin_init_input, get_owner_last_error)",
	"offsetof(ss_plugin_init_input, tables)",
	"offsetof(ss_plugin_init_input, log_fn)",
	"sizeof(ss_plugin_field_extract_input)",
	"offsetof(ss_plugin_field_extract_input, owner)",
	"offsetof(ss_plugin_field_extract_input, get_owner_last_error)",
	"offsetof(ss_plugin_field_extract_input, num_fields)",
	"offsetof(ss_plugin_field_extract_input, fields)",
	"offsetof(ss_plugin_field_extract_input, table_reader)",
	"offsetof(ss_plugin_field_extract_input, table_reader_ext)",
	"offsetof(ss_plugin_field_extract_input, value_offsets)",
}

// TestABILayout compiles a C program against plugin-sdk-go's own headers
// and checks that our hand-written declarations have the same layout.
func TestABILayout(t *testing.T) {
	ours := layout()
	require.Len(t, ours, len(layoutExprs), "layoutExprs out of sync with hs_layout")

	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	require.NoError(t, err)
	inc := filepath.Join(strings.TrimSpace(string(out)), "github.com/falcosecurity/plugin-sdk-go@v0.8.3/pkg/sdk")
	if _, err := os.Stat(filepath.Join(inc, "plugin_api.h")); err != nil {
		t.Skipf("SDK headers not in module cache: %v", err)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler: %v", err)
	}
	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include \"plugin_api.h\"\nint main(void) {\n")
	for _, e := range layoutExprs {
		fmt.Fprintf(&src, "\tprintf(\"%%llu\\n\", (unsigned long long)(%s));\n", e)
	}
	src.WriteString("\treturn 0;\n}\n")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "l.c"), []byte(src.String()), 0o644))
	bin := filepath.Join(dir, "l")
	b, err := exec.Command(cc, "-I", inc, "-o", bin, filepath.Join(dir, "l.c")).CombinedOutput()
	require.NoError(t, err, string(b))
	b, err = exec.Command(bin).Output()
	require.NoError(t, err)
	lines := strings.Fields(string(b))
	require.Len(t, lines, len(layoutExprs))
	for i, l := range lines {
		want, err := strconv.ParseUint(l, 10, 64)
		require.NoError(t, err)
		assert.Equal(t, want, ours[i], layoutExprs[i])
	}
	assert.Equal(t, uint64(26), ours[0], "packed ss_plugin_event header")
	assert.Equal(t, uint64(22), ours[5], "nparams offset")
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.so"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope.so")
	assert.Contains(t, err.Error(), "cannot open shared object file") // dlerror()

	// the SDK's default required API version vs an older framework
	_, err = LoadWithOptions(miniPath, Options{FrameworkAPIVersion: "3.0.0"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "framework's minor is less than the requested one")

	assert.NoError(t, CheckRequiredAPIVersion("3.2.1", "3.11.0"))
	assert.Error(t, CheckRequiredAPIVersion("2.0.0", "3.11.0"))
	assert.Error(t, CheckRequiredAPIVersion("3.11.1", "3.11.0"))
	assert.Error(t, CheckRequiredAPIVersion("x", "3.11.0"))
}

func TestInfoFieldsSchema(t *testing.T) {
	p := load(t)
	info := p.Info()
	assert.Equal(t, uint32(miniID), info.ID)
	assert.Equal(t, "mini", info.Name)
	assert.Equal(t, "harness self-test plugin", info.Description)
	assert.Equal(t, "github.com/triage-dev/triage", info.Contact)
	assert.Equal(t, "0.1.0", info.Version)
	assert.Equal(t, "mini", info.EventSource)
	assert.Equal(t, []string{"mini"}, info.ExtractEventSources)
	assert.Regexp(t, `^3\.\d+\.\d+$`, info.RequiredAPIVersion)
	t.Logf("plugin-sdk-go v0.8.3 default required API version: %s", info.RequiredAPIVersion)
	assert.Equal(t, CapSourcing|CapExtraction, p.Capabilities(), p.Capabilities().String())

	for _, s := range []string{"plugin_init", "plugin_next_batch", "plugin_extract_fields", "plugin_get_progress"} {
		assert.True(t, p.HasSymbol(s), s)
	}
	assert.False(t, p.HasSymbol("plugin_parse_event"))

	fields, err := p.Fields()
	require.NoError(t, err)
	byName := map[string]Field{}
	var names []string
	for _, f := range fields {
		byName[f.Name] = f
		names = append(names, f.Name)
	}
	assert.Equal(t, []string{"mini.str", "mini.num", "mini.list", "mini.key", "mini.idx", "mini.even", "mini.ts", "mini.dur", "mini.const"}, names)
	assert.Equal(t, Field{Type: "string", Name: "mini.str", Display: "Payload", Desc: "the event payload"}, byName["mini.str"])
	assert.Equal(t, "uint64", byName["mini.num"].Type)
	assert.True(t, byName["mini.list"].IsList)
	assert.Equal(t, FieldArg{IsKey: true, IsRequired: true}, byName["mini.key"].Arg)
	assert.Equal(t, FieldArg{IsIndex: true}, byName["mini.idx"].Arg)
	assert.Equal(t, []string{"info"}, byName["mini.even"].Properties)
	assert.Equal(t, "abstime", byName["mini.ts"].Type)
	assert.Equal(t, "reltime", byName["mini.dur"].Type)

	schema, err := p.InitSchema()
	require.NoError(t, err)
	assert.Contains(t, schema, `"additionalProperties": false`)
}

func TestOwnerCallbacks(t *testing.T) {
	p := load(t)
	entries, dropped := p.Logs()
	assert.Empty(t, entries)
	assert.Zero(t, dropped)
	p.testLog("mini", "hello", 6)
	p.testLog("", "bye", 3)
	entries, dropped = p.Logs()
	assert.Equal(t, []LogEntry{{"mini", "hello", 6}, {"", "bye", 3}}, entries)
	assert.Zero(t, dropped)
	for k := 0; k < 5000; k++ {
		p.testLog("c", strconv.Itoa(k), 7)
	}
	entries, dropped = p.Logs()
	assert.Len(t, entries, 4096)
	assert.Equal(t, uint64(5000-4096), dropped)
	entries, _ = p.Logs()
	assert.Empty(t, entries)

	found, ownerErr := p.testOwnerGetTable("threads")
	assert.False(t, found)
	assert.Equal(t, "harness: state table 'threads' not available", ownerErr)
}

func TestParseFieldsLikeLibsinsp(t *testing.T) {
	_, err := parseFields("x", `{"not":"array"}`)
	assert.ErrorContains(t, err, "invalid JSON")
	_, err = parseFields("x", `[{"type":"string","name":"a"}]`)
	assert.ErrorContains(t, err, "has no desc")
	_, err = parseFields("x", `[{"type":"int32","name":"a","desc":"d"}]`)
	assert.ErrorContains(t, err, "invalid field type int32")
	_, err = parseFields("x", `[{"type":"string","name":"a","desc":"d","arg":{"isRequired":true}}]`)
	assert.ErrorContains(t, err, "none of isKey nor isIndex")
	_, err = parseFields("x", `[{"type":"string","name":"a","desc":"d","isList":"yes"}]`)
	assert.ErrorContains(t, err, "isList property is not boolean")
	f, err := parseFields("x", `[{"type":"ipnet","name":"a","desc":"d","properties":["hidden"]}]`)
	require.NoError(t, err)
	assert.Equal(t, []string{"hidden"}, f[0].Properties)
}

// loadLeaky loads the plugin with LeakStateOnInitFailure, for in-process
// tests of init failures (other tests have already initialized the library
// successfully; see TestChildProcesses for the Falco-faithful behaviour).
func loadLeaky(t *testing.T) *Plugin {
	t.Helper()
	p, err := LoadWithOptions(miniPath, Options{LeakStateOnInitFailure: true})
	require.NoError(t, err)
	return p
}

func TestInitErrorPropagatesLastError(t *testing.T) {
	p := loadLeaky(t)
	err := p.Init(`{"failInit":"boom: the thing is broken"}`)
	require.Error(t, err)
	assert.Equal(t, "boom: the thing is broken", err.Error())
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "init", ce.Op)
	assert.Equal(t, Failure, ce.Result)
	assert.Equal(t, "boom: the thing is broken", p.LastError())

	_, err = p.Open("")
	assert.ErrorIs(t, err, ErrNotInitialized)

	// a fresh Init works
	require.NoError(t, p.Init(`{"n":1}`))
	defer p.Destroy()
	assert.Equal(t, "", p.LastError())
	assert.Error(t, p.Init(`{}`), "double init")
}

func TestInitConfigValidation(t *testing.T) {
	p := loadLeaky(t)

	err := p.Init(`{"n":-1}`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "error in plugin mini init config: In <root>[n], value -1 is less than minimum 0")
	assert.False(t, errors.As(err, new(*CallError)), "rejected before plugin_init, like Falco")

	err = p.Init(`{"bogus":1}`)
	assert.ErrorContains(t, err, "additional property 'bogus' is not allowed")
	err = p.Init(`{"n":"3"}`)
	assert.ErrorContains(t, err, "value type string does not match required type integer")
	err = p.Init(`not json`)
	assert.ErrorContains(t, err, "init config is not a valid json")

	cfg, err := p.ValidateInitConfig("")
	require.NoError(t, err)
	assert.Equal(t, "{}", cfg, "Falco stubs an empty config to {}")

	// the plugin's own validation, reached only without Falco's pre-check
	err = p.InitRaw(`{"n":-1}`)
	require.Error(t, err)
	assert.Equal(t, "mini: n must be >= 0, got -1", err.Error())

	require.NoError(t, p.Init(""))
	p.Destroy()
}

func TestSchemaValidatorSubset(t *testing.T) {
	schema := `{
	  "$schema": "https://json-schema.org/draft/2020-12/schema",
	  "$ref": "#/$defs/Cfg",
	  "$defs": {
	    "Cfg": {"type":"object","additionalProperties":false,"required":["mode"],
	      "properties": {
	        "mode": {"type":"string","enum":["a","b"]},
	        "tags": {"type":"array","items":{"type":"string","minLength":1},"maxItems":2},
	        "ratio": {"type":"number","exclusiveMaximum":1},
	        "sub": {"$ref":"#/$defs/Sub"}
	      }},
	    "Sub": {"type":"object","properties":{"x":{"type":["integer","null"]}}}
	  }
	}`
	ok := []string{`{"mode":"a"}`, `{"mode":"b","tags":["t"],"ratio":0.5,"sub":{"x":null}}`, `{"mode":"a","sub":{"x":3}}`}
	for _, c := range ok {
		assert.NoError(t, validateJSONSchema("p", schema, c), c)
	}
	bad := map[string]string{
		`{}`:                                "missing required property 'mode'",
		`{"mode":"c"}`:                      "is not one of the enumerated values",
		`{"mode":"a","tags":["a","b","c"]}`: "more than maxItems",
		`{"mode":"a","tags":[""]}`:          "In <root>[tags][0], string is shorter than minLength",
		`{"mode":"a","ratio":1}`:            "exclusiveMaximum",
		`{"mode":"a","sub":{"x":1.5}}`:      "In <root>[sub][x], value type number",
		`{"mode":"a","zzz":1}`:              "additional property 'zzz'",
		`[]`:                                "value type array does not match required type object",
	}
	for c, want := range bad {
		assert.ErrorContains(t, validateJSONSchema("p", schema, c), want, c)
	}
}

func TestOpenNextBatchEOF(t *testing.T) {
	_, in := openMini(t, `{"n":10,"batch":3}`)
	var sizes []int
	var results []Result
	var all []*Event
	for k := 0; k < 10; k++ {
		evts, rc, err := in.NextBatch()
		require.NoError(t, err)
		sizes = append(sizes, len(evts))
		results = append(results, rc)
		all = append(all, evts...)
		if rc == EOF {
			break
		}
	}
	assert.Equal(t, []int{3, 3, 3, 1, 0}, sizes)
	assert.Equal(t, []Result{Success, Success, Success, Success, EOF}, results)
	require.Len(t, all, 10)
	before := uint64(time.Now().Add(-time.Minute).UnixNano())
	for k, e := range all {
		i := k + 1
		assert.Equal(t, uint64(i), e.Num)
		assert.Equal(t, PluginEventType, e.Type)
		assert.Equal(t, uint32(miniID), e.PluginID, "0 in the plugin's event, set by the harness like libscap")
		assert.Equal(t, "evt-"+strconv.Itoa(i), string(e.Data))
		assert.Equal(t, "mini", e.Source)
		if i%2 == 0 {
			assert.Equal(t, uint64(1_000_000+i), e.Timestamp)
		} else {
			assert.Greater(t, e.Timestamp, before, "UINT64_MAX timestamp replaced by now")
		}
		raw := e.Raw()
		require.Len(t, raw, 26+12+len(e.Data))
		assert.Equal(t, e.Data, raw[38:])
	}
	// EOF is sticky
	evts, rc, err := in.NextBatch()
	assert.NoError(t, err)
	assert.Empty(t, evts)
	assert.Equal(t, EOF, rc)
}

func TestCollect(t *testing.T) {
	_, in := openMini(t, `{"n":300}`)
	evts := collectAll(t, in)
	require.Len(t, evts, 300)
	assert.Equal(t, uint64(300), evts[299].Num)

	_, in2 := openMini(t, `{"n":300,"batch":7}`)
	ctx := context.Background()
	evts, err := in2.Collect(ctx, 10, time.Second)
	require.NoError(t, err)
	assert.Len(t, evts, 14, "whole batches are returned")
	more, err := in2.Collect(ctx, 0, time.Second)
	require.NoError(t, err)
	assert.Len(t, more, 286)
	assert.Equal(t, uint64(15), more[0].Num, "numbering continues across calls")
}

func TestTimeouts(t *testing.T) {
	_, in := openMini(t, `{"n":2,"timeouts":3}`)
	for k := 0; k < 3; k++ {
		evts, rc, err := in.NextBatch()
		require.NoError(t, err)
		assert.Equal(t, Timeout, rc)
		assert.Empty(t, evts)
	}
	evts := collectAll(t, in)
	require.Len(t, evts, 2)
	assert.Equal(t, uint64(1), evts[0].Num)

	// only timeouts: idle limit
	_, in2 := openMini(t, `{"n":1,"timeouts":1000000000}`)
	start := time.Now()
	evts, err := in2.Collect(context.Background(), 1, 50*time.Millisecond)
	assert.ErrorIs(t, err, ErrIdle)
	assert.Empty(t, evts)
	assert.Less(t, time.Since(start), 10*time.Second)

	// only timeouts: context
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = in2.Collect(ctx, 1, 0)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestZeroEventSuccessIsAnError(t *testing.T) {
	_, in := openMini(t, `{"zeroSuccess":true}`)
	_, rc, err := in.NextBatch()
	assert.Equal(t, Success, rc)
	assert.ErrorIs(t, err, ErrEmptySuccess)
	_, err = in.Collect(context.Background(), 5, time.Second)
	assert.ErrorIs(t, err, ErrEmptySuccess)
}

func TestOpenFailure(t *testing.T) {
	p := initMini(t, `{"failOnOpen":true}`)
	_, err := p.Open("some-params")
	require.Error(t, err)
	assert.Equal(t, `mini: open failed (params="some-params")`, err.Error())
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "open", ce.Op)
}

func TestListOpenParamsAndProgress(t *testing.T) {
	p, in := openMini(t, `{"n":10,"batch":5}`)
	s, err := p.ListOpenParams()
	require.NoError(t, err)
	assert.JSONEq(t, `[{"value":"default","desc":"the only stream","separator":""}]`, s)
	ops, err := p.OpenParams()
	require.NoError(t, err)
	assert.Equal(t, []OpenParam{{Value: "default", Desc: "the only stream"}}, ops)

	pct, text := in.Progress()
	assert.Equal(t, 0.0, pct)
	assert.Equal(t, "0/10", text)
	_, _, err = in.NextBatch()
	require.NoError(t, err)
	pct, text = in.Progress()
	assert.Equal(t, 50.0, pct)
	assert.Equal(t, "5/10", text)
}

func TestExtractEveryField(t *testing.T) {
	p, in := openMini(t, `{"n":4}`)
	evts := collectAll(t, in)
	require.Len(t, evts, 4)

	reqs := []Request{
		{Field: "mini.str"},
		{Field: "mini.num"},
		{Field: "mini.list"},
		{Field: "mini.key", Arg: "abc"},
		{Field: "mini.idx", Arg: "5"},
		{Field: "mini.even"},
		{Field: "mini.ts"},
		{Field: "mini.dur"},
	}
	for k, e := range evts {
		i := uint64(k + 1)
		payload := "evt-" + strconv.Itoa(k+1)
		vals, err := p.Extract(e, reqs...)
		require.NoError(t, err)
		require.Len(t, vals, len(reqs))
		for _, v := range vals {
			assert.True(t, v.Present)
		}
		one, err := p.ExtractOneCall(e, reqs...)
		require.NoError(t, err)
		assert.Equal(t, vals, one, "one call for all fields gives the same values")
		assert.Equal(t, Value{Present: true, Type: "string", Str: []string{payload}}, vals[0])
		assert.Equal(t, Value{Present: true, Type: "uint64", U64: []uint64{i}}, vals[1])
		assert.Equal(t, Value{Present: true, Type: "string", Str: []string{"evt", strconv.Itoa(k + 1)}, IsList: true}, vals[2])
		assert.Equal(t, []string{"abc@" + payload}, vals[3].Str)
		assert.Equal(t, []uint64{i + 5}, vals[4].U64)
		assert.Equal(t, []bool{i%2 == 0}, vals[5].Bool)
		assert.Equal(t, []uint64{e.Timestamp}, vals[6].U64)
		assert.Equal(t, "abstime", vals[6].Type)
		assert.Equal(t, []uint64{i * uint64(time.Millisecond)}, vals[7].U64)
	}
	e := evts[0]

	// optional index arg absent / explicit index
	vals, err := p.Extract(e, Request{Field: "mini.idx"}, Request{Field: "mini.key", ArgIsIndex: true, ArgIndex: 7})
	require.NoError(t, err)
	assert.Equal(t, []uint64{1}, vals[0].U64)
	assert.Equal(t, []string{"7@evt-1"}, vals[1].Str, "numeric arg of a key field is passed as key")

	// no value -> Present=false
	vals, err = p.Extract(e, Request{Field: "mini.key", Arg: "missing"}, Request{Field: "mini.str"})
	require.NoError(t, err)
	assert.False(t, vals[0].Present)
	assert.Empty(t, vals[0].Str)
	assert.True(t, vals[1].Present)

	// plugin error -> last error
	_, err = p.Extract(e, Request{Field: "mini.key", Arg: "fail"})
	require.Error(t, err)
	assert.Equal(t, "mini: extraction of mini.key[fail] failed on event 1", err.Error())
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "extract_fields", ce.Op)

	// argument rules (rejected before calling the plugin, like rule compilation)
	_, err = p.Extract(e, Request{Field: "mini.key"})
	assert.ErrorContains(t, err, "requires an argument but none provided")
	_, err = p.Extract(e, Request{Field: "mini.str", Arg: "x"})
	assert.ErrorContains(t, err, "does not allow nor require an argument")
	_, err = p.Extract(e, Request{Field: "mini.idx", Arg: "05"})
	assert.ErrorContains(t, err, "invalid index argument")
	_, err = p.Extract(e, Request{Field: "mini.idx", Arg: "x"})
	assert.ErrorContains(t, err, "invalid index argument")
	_, err = p.Extract(e, Request{Field: "mini.nope"})
	assert.ErrorContains(t, err, `no field "mini.nope"`)

	r, err := ParseRequest("mini.key[a.b/c]")
	require.NoError(t, err)
	assert.Equal(t, Request{Field: "mini.key", Arg: "a.b/c"}, r)
	r, err = ParseRequest("mini.str")
	require.NoError(t, err)
	assert.Equal(t, Request{Field: "mini.str"}, r)
	_, err = ParseRequest("mini.key[a")
	assert.Error(t, err)
}

func TestExtractDuplicateFieldInOneCall(t *testing.T) {
	p, in := openMini(t, `{"n":1}`)
	evts := collectAll(t, in)
	e := evts[0]
	a, b := Request{Field: "mini.key", Arg: "a"}, Request{Field: "mini.key", Arg: "b"}

	// Extract makes one call per request (like libsinsp): each its own value.
	for _, extract := range []func(*Event, ...Request) ([]Value, error){p.Extract, p.ExtractEach} {
		vals, err := extract(e, a, b)
		require.NoError(t, err)
		assert.Equal(t, []string{"a@evt-1"}, vals[0].Str)
		assert.Equal(t, []string{"b@evt-1"}, vals[1].Str)
	}

	// ExtractOneCall passes both in one call, as the plugin API allows. The
	// self-test plugin keeps plugin-sdk-go v0.8.3's own result buffers, one
	// per field id, so the second answer overwrites the first: what
	// pkg/cabi fixes for triage (test/extractcall_test.go checks triage).
	vals, err := p.ExtractOneCall(e, a, b)
	require.NoError(t, err)
	t.Logf("same field twice in one call, SDK buffers: got %q and %q", vals[0].Str, vals[1].Str)
	assert.Equal(t, []string{"b@evt-1"}, vals[1].Str)
	assert.Equal(t, vals[1].Str, vals[0].Str, "plugin-sdk-go changed its buffers? then update this note")
}

func TestExtractWithOffsets(t *testing.T) {
	p, in := openMini(t, `{"n":12}`)
	evts := collectAll(t, in)
	e := evts[11] // "evt-12"
	reqs := []Request{{Field: "mini.str"}, {Field: "mini.num"}, {Field: "mini.even"}}
	for name, extract := range map[string]func(*Event, ...Request) ([]Value, []Offset, error){
		"one call per field": p.ExtractWithOffsets, "one call": p.ExtractOneCallWithOffsets,
	} {
		vals, offs, err := extract(e, reqs...)
		require.NoError(t, err, name)
		assert.Equal(t, []string{"evt-12"}, vals[0].Str, name)
		assert.Equal(t, []uint64{12}, vals[1].U64, name)
		require.Len(t, offs, 3, name)
		assert.Equal(t, Offset{0, 6}, offs[0], name)
		assert.Equal(t, Offset{4, 2}, offs[1], name)
		assert.Equal(t, Offset{0, 0}, offs[2], "%s: no offset reported", name)
	}
}

func TestEventToString(t *testing.T) {
	p, in := openMini(t, `{"n":3}`)
	evts := collectAll(t, in)
	for _, e := range evts {
		s, err := p.EventToString(e)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("mini #%d: %s", e.Num, e.Data), s)
		f, err := p.FormatEvent(e)
		require.NoError(t, err)
		assert.Equal(t, s, f)
	}

	other := NewEvent("other", 42, 1, 123, []byte("x"))
	defer other.Free()
	_, err := p.EventToString(other)
	assert.ErrorContains(t, err, "non-plugin event")
	// an event of a source the plugin does not extract from: Falco does not
	// call the plugin and the field has no value
	vals, err := p.Extract(other, Request{Field: "mini.str"})
	require.NoError(t, err)
	assert.False(t, vals[0].Present)

	own := NewEvent("mini", miniID, 77, 123, []byte("evt-9"))
	defer own.Free()
	s, err := p.EventToString(own)
	require.NoError(t, err)
	assert.Equal(t, "mini #77: evt-9", s)
	vals, err = p.Extract(own, Request{Field: "mini.num"})
	require.NoError(t, err)
	assert.Equal(t, []uint64{9}, vals[0].U64)
}

func TestCloseDestroyLifecycle(t *testing.T) {
	p := load(t)
	require.NoError(t, p.Init(`{"n":5}`))
	in, err := p.Open("")
	require.NoError(t, err)
	evts := collectAll(t, in)
	require.Len(t, evts, 5)

	in.Close()
	in.Close() // idempotent
	_, _, err = in.NextBatch()
	assert.ErrorIs(t, err, ErrClosed)
	pct, text := in.Progress()
	assert.Zero(t, pct)
	assert.Empty(t, text)

	// events outlive their instance
	vals, err := p.Extract(evts[4], Request{Field: "mini.str"})
	require.NoError(t, err)
	assert.Equal(t, []string{"evt-5"}, vals[0].Str)

	evts[4].Free()
	evts[4].Free()
	_, err = p.Extract(evts[4], Request{Field: "mini.str"})
	assert.ErrorIs(t, err, ErrFreed)
	assert.Nil(t, evts[4].Raw())

	// Destroy closes open instances first
	in2, err := p.Open("")
	require.NoError(t, err)
	p.Destroy()
	p.Destroy()
	_, _, err = in2.NextBatch()
	assert.ErrorIs(t, err, ErrClosed)
	_, err = p.Extract(evts[0], Request{Field: "mini.str"})
	assert.ErrorIs(t, err, ErrNotInitialized)

	// re-init and reuse
	require.NoError(t, p.Init(`{"n":1}`))
	defer p.Destroy()
	in3, err := p.Open("")
	require.NoError(t, err)
	defer in3.Close()
	assert.Len(t, collectAll(t, in3), 1)
}

func TestManyPluginStates(t *testing.T) {
	// plugin-sdk-go keeps states and instances in one table of 255 cgo
	// handles; init/destroy and open/close cycles must give them back.
	// One state stays alive meanwhile, otherwise every destroy of the last
	// state waits for the SDK's async-extraction worker to exit (it naps
	// 10 ms when idle). plugin_open is slow (~20 ms: the SDK callocs its
	// event batch), so fewer of those.
	_ = initMini(t, `{}`)
	states, opens := 300, 40
	if testing.Short() {
		states, opens = 10, 5
	}
	p := load(t)
	for k := 0; k < states; k++ {
		require.NoError(t, p.Init(`{"n":1}`))
		if k < opens {
			in, err := p.Open("")
			require.NoError(t, err)
			in.Close()
		}
		p.Destroy()
	}
}

// TestChildProcesses runs scenarios that need a fresh process (no earlier
// successful init of the library) or that are expected to crash it.
func TestChildProcesses(t *testing.T) {
	t.Run("destroy after failed init, before any success", func(t *testing.T) {
		out, err := runChild(t, "fail-first")
		require.NoError(t, err, out)
		assert.Contains(t, out, "child ok")
	})
	t.Run("without that destroy the SDK's 255 handles run out", func(t *testing.T) {
		out, err := runChild(t, "leak-exhausts")
		require.Error(t, err, out)
		assert.Contains(t, out, "could not obtain a new handle", out)
	})
	t.Run("destroy after failed init, after a success (plugin-sdk-go panic)", func(t *testing.T) {
		out, err := runChild(t, "fail-after-success")
		require.Error(t, err, "plugin-sdk-go fixed? then LeakStateOnInitFailure can be retired:\n"+out)
		assert.Contains(t, out, "async worker stopped without being started", out)
	})
}

func runChild(t *testing.T, scenario string) (string, error) {
	t.Helper()
	return runChildTimeout(t, scenario, time.Minute)
}

func runChildTimeout(t *testing.T, scenario string, d time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildScenario$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "HARNESS_CHILD_SCENARIO="+scenario, "HARNESS_MINI_PATH="+miniPath)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// TestChildScenario is only active inside runChild's child process.
func TestChildScenario(t *testing.T) {
	scenario := os.Getenv("HARNESS_CHILD_SCENARIO")
	if scenario == "" {
		t.Skip("only runs as a child of TestChildProcesses")
	}
	load := func() *Plugin {
		p, err := Load(miniPath)
		require.NoError(t, err)
		return p
	}
	switch scenario {
	case "fail-first":
		p := load()
		// 300 > 255 handles: would exhaust the SDK's handle table if the
		// failed states were not destroyed.
		for k := 0; k < 300; k++ {
			err := p.Init(`{"failInit":"nope"}`)
			require.EqualError(t, err, "nope")
		}
		require.NoError(t, p.Init(`{"n":2}`))
		in, err := p.Open("")
		require.NoError(t, err)
		evts, err := in.Collect(context.Background(), 0, time.Second)
		require.NoError(t, err)
		require.Len(t, evts, 2)
		p.Destroy()
		fmt.Println("child ok")
	case "leak-exhausts":
		p, err := LoadWithOptions(miniPath, Options{LeakStateOnInitFailure: true})
		require.NoError(t, err)
		for k := 0; k < 300; k++ {
			_ = p.Init(`{"failInit":"nope"}`) // the SDK panics at handle 256
		}
		fmt.Println("child survived")
	case "preempt-chain":
		preemptScenario(t, Options{})
	case "preempt-nochain":
		preemptScenario(t, Options{KeepPluginSignalHandlers: true})
	case "fail-after-success":
		p := load()
		require.NoError(t, p.Init(`{}`))
		p.Destroy()
		_ = p.Init(`{"failInit":"nope"}`) // plugin_destroy panics in the plugin
		fmt.Println("child survived")
	default:
		t.Fatalf("unknown scenario %q", scenario)
	}
}

func rssBytes(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	require.NoError(t, err)
	return pages * uint64(os.Getpagesize())
}

func TestNoLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	p, in := openMini(t, `{"n":10000,"batch":64}`)
	evts := collectAll(t, in)
	require.Len(t, evts, 10000)

	reqs := []Request{{Field: "mini.str"}, {Field: "mini.num"}, {Field: "mini.list"},
		{Field: "mini.key", Arg: "some-key"}, {Field: "mini.idx", Arg: "3"}, {Field: "mini.even"}}
	round := func(n int) {
		for k := 0; k < n; k++ {
			e := evts[k%len(evts)]
			if _, err := p.Extract(e, reqs...); err != nil {
				t.Fatal(err)
			}
			if _, _, err := p.ExtractWithOffsets(e, reqs[0]); err != nil {
				t.Fatal(err)
			}
			if _, err := p.EventToString(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	round(2000) // warm up both runtimes and the SDK's buffers
	runtime.GC()
	rss0, heap0 := rssBytes(t), mallocInUse()
	round(10000)
	runtime.GC()
	rss1, heap1 := rssBytes(t), mallocInUse()
	t.Logf("10000 extraction rounds: RSS %d -> %d KiB, malloc in use %d -> %d KiB", rss0>>10, rss1>>10, heap0>>10, heap1>>10)
	assert.Less(t, int64(rss1)-int64(rss0), int64(8<<20), "RSS grew by more than 8 MiB")
	assert.Less(t, int64(heap1)-int64(heap0), int64(256<<10), "C heap grew by more than 256 KiB")

	// events: 10000 copies freed explicitly give their memory back
	for _, e := range evts {
		e.Free()
	}
	heapFreed := mallocInUse()
	t.Logf("after freeing 10000 events: malloc in use %d KiB", heapFreed>>10)
	assert.Less(t, heapFreed, heap1)

	// open / next_batch / free / close cycles on one plugin state
	p2 := initMini(t, `{"n":500,"batch":50}`)
	cycle := func() {
		in2, err := p2.Open("")
		require.NoError(t, err)
		for _, e := range collectAll(t, in2) {
			e.Free()
		}
		in2.Close()
	}
	cycle()
	heapA := mallocInUse()
	for k := 0; k < 20; k++ {
		cycle()
	}
	heapB := mallocInUse()
	t.Logf("20 x (open, 500 events, free, close): malloc in use %d -> %d KiB", heapA>>10, heapB>>10)
	assert.Less(t, int64(heapB)-int64(heapA), int64(256<<10))
}

func TestFinalizerFreesForgottenEvents(t *testing.T) {
	_, in := openMini(t, `{"n":2000,"batch":100}`)
	runtime.GC()
	before := mallocInUse()
	evts := collectAll(t, in)
	require.Len(t, evts, 2000)
	during := mallocInUse()
	evts = nil
	_ = evts
	for k := 0; k < 5; k++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	after := mallocInUse()
	t.Logf("malloc in use: before %d, with 2000 events %d, after GC %d KiB", before>>10, during>>10, after>>10)
	assert.Less(t, after, during)
}

// TestTwoRuntimesStress drives the plugin from many goroutines (hence many
// OS threads, each of which the plugin's Go runtime adopts as a foreign C
// thread) while both runtimes garbage-collect.
func TestTwoRuntimesStress(t *testing.T) {
	p, in := openMini(t, `{"n":200}`)
	evts := collectAll(t, in)
	var wg sync.WaitGroup
	var calls atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	const goroutines, perG = 8, 150
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			if g%2 == 0 {
				runtime.LockOSThread() // force distinct threads
				defer runtime.UnlockOSThread()
			}
			for k := 0; k < perG; k++ {
				e := evts[(g*31+k)%len(evts)]
				v, err := p.Extract(e, Request{Field: "mini.str"}, Request{Field: "mini.list"})
				if err != nil {
					t.Error(err)
					return
				}
				if v[0].Str[0] != string(e.Data) {
					t.Errorf("got %q for %q", v[0].Str[0], e.Data)
					return
				}
				calls.Add(1)
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	assert.Equal(t, int64(goroutines*perG), calls.Load())
}

// TestTwoRuntimesHostPreemption: a goroutine spinning without preemption
// points must not block the test binary's GC after a Go plugin is loaded.
// Without the SIGURG chaining (KeepPluginSignalHandlers) it does: the
// plugin's runtime owns SIGURG and ignores the host's preemption requests.
// Both cases run in child processes because the failing one hangs forever.
func TestTwoRuntimesHostPreemption(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2")
	}
	t.Logf("SIGURG handler owner in this process: %s", sigurgOwner())
	out, err := runChildTimeout(t, "preempt-chain", 20*time.Second)
	require.NoError(t, err, out)
	assert.Contains(t, out, "GC done", out)
	assert.Contains(t, out, "sigurg after load: harness-trampoline", out)

	if testing.Short() || raceEnabled {
		return
	}
	out, err = runChildTimeout(t, "preempt-nochain", 3*time.Second)
	t.Logf("without chaining: err=%v\n%s", err, firstLines(out, 3))
	assert.NotContains(t, out, "GC done", "plugin runtime stopped swallowing the host's SIGURG? chaining may be unnecessary")
	assert.Contains(t, out, "libmini.so", out)
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

func preemptScenario(t *testing.T, opts Options) {
	fmt.Printf("sigurg before load: %s\n", sigurgOwner())
	p, err := LoadWithOptions(miniPath, opts)
	require.NoError(t, err)
	require.NoError(t, p.Init(`{}`))
	fmt.Printf("sigurg after load: %s\n", sigurgOwner())
	var stop atomic.Bool
	started := make(chan struct{})
	go func() {
		close(started)
		n := 0
		for !stop.Load() {
			n++
		}
		_ = n
	}()
	<-started
	time.Sleep(10 * time.Millisecond)
	runtime.GC() // needs to stop the spinning goroutine
	stop.Store(true)
	fmt.Println("GC done")
}

func TestTimeExtract(t *testing.T) {
	p, in := openMini(t, `{"n":3}`)
	evts := collectAll(t, in)
	reqs := []Request{{Field: "mini.str"}, {Field: "mini.key", Arg: "abc"}, {Field: "mini.list"}}
	for _, perField := range []bool{false, true} {
		d, err := p.TimeExtract(evts, reqs, perField, 50)
		require.NoError(t, err)
		assert.Positive(t, d)
	}
	// A failing call stops the loop and reports the plugin's error.
	_, err := p.TimeExtract(evts, []Request{{Field: "mini.key", Arg: "fail"}}, false, 10)
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, ce.Msg, "failed on event")
	_, err = p.TimeExtract(nil, reqs, false, 10)
	assert.Error(t, err)
	// The values Extract reads back after the timed calls are still right.
	vals, err := p.Extract(evts[0], reqs[0])
	require.NoError(t, err)
	assert.Equal(t, []string{"evt-1"}, vals[0].Str)
}

// BenchmarkHostExtractFloor times, from a loop in C, one extraction of a
// field the self-test plugin answers with a constant: what a
// plugin-sdk-go v0.8.3 plugin costs per extract_fields call on this machine
// before doing any work (the C->Go crossing and the SDK's request setup).
func BenchmarkHostExtractFloor(b *testing.B) { benchFloor(b, `{"n":1,"sync":true}`) }

// BenchmarkHostExtractFloorAsync is the same with the SDK's async
// extraction on (its default when GOMAXPROCS > 1).
func BenchmarkHostExtractFloorAsync(b *testing.B) { benchFloor(b, `{"n":1}`) }

func benchFloor(b *testing.B, config string) {
	p, err := Load(miniPath)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Init(config); err != nil {
		b.Fatal(err)
	}
	defer p.Destroy()
	in, err := p.Open("default")
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	evts, err := in.Collect(ctx, 0, 5*time.Second)
	if err != nil || len(evts) == 0 {
		b.Fatalf("collect: %d events, %v", len(evts), err)
	}
	vals, err := p.Extract(evts[0], Request{Field: "mini.const"})
	if err != nil || len(vals[0].U64) != 1 || vals[0].U64[0] != 42 {
		b.Fatalf("mini.const: %v %v", vals, err)
	}
	d, err := p.TimeExtract(evts[:1], []Request{{Field: "mini.const"}}, false, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "host-ns/op")
	b.ReportMetric(1, "fields/op")
}
