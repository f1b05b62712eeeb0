// Package harness is a stand-in for Falco in tests: it dlopens a plugin
// shared library (e.g. libtriage.so built with -buildmode=c-shared) and
// drives it through the Falco plugin C API (3.x) the way libscap/libsinsp do:
//
//	Load       dlopen(RTLD_NOW|RTLD_LOCAL), dlsym every symbol, then the same
//	           load-time checks as libsinsp (required API version, required
//	           symbols, capabilities, version string, fields JSON).
//	Init       validates the config against the init schema (JSON schema
//	           subset, see schema.go; "" becomes "{}"), then plugin_init with
//	           an owner, get_owner_last_error, a tables input and log_fn.
//	           On failure the error text is plugin_get_last_error and the
//	           returned state is destroyed, as Falco does.
//	Open       plugin_open; on failure plugin_close(state, handle) is still
//	           called, because libscap tears the engine down that way.
//	NextBatch  one plugin_next_batch call; events are validated like libscap
//	           (type 322, 2 params, lengths, plugin ID) and copied into
//	           harness-owned C memory, numbered 1, 2, 3, ... per Instance.
//	Extract    plugin_extract_fields with field_id/ftype/flist from the
//	           plugin's own field list, arguments parsed like libsinsp.
//
// # Concurrency
//
// Falco never calls into one plugin state concurrently and plugins may rely
// on that. The harness is used the same way: a Plugin and its Instances are
// not meant to be driven from several goroutines at once. Every call into the
// library is nevertheless serialized by a per-Plugin mutex, so accidental
// concurrent use is safe, just not parallel.
//
// # Two Go runtimes
//
// A Go test binary loading a Go c-shared plugin puts two Go runtimes in one
// process. That works if the library is only entered through cgo (every call
// goes through the C trampolines in harness.c). Calls are made from whatever
// OS thread the calling goroutine is on; the plugin's runtime adopts each
// such thread as a foreign C thread (extra M), as it would Falco's threads.
// runtime.LockOSThread is not needed. What we found:
//
//   - SIGURG: the library's runtime installs its own SIGURG handler (Go's
//     async-preemption signal) over the test binary's, and does not forward
//     SIGURG. The host then loses async preemption, and worse, an M whose
//     signal got swallowed keeps m.signalPending=1 forever and is never
//     signalled again: a GC can then hang for good behind a goroutine
//     spinning without function calls (TestTwoRuntimesHostPreemption
//     reproduces it). By default the harness chains the handlers of all
//     runtimes and re-signals every thread once (harness.c); plugin
//     behaviour is unchanged. Options.KeepPluginSignalHandlers disables it.
//   - State/instance pointers from plugin-sdk-go are small integers (cgo
//     handles), so they are kept as uintptr_t, never as Go pointers.
//   - plugin-sdk-go (v0.8.3) panics in plugin_get_last_error if no error was
//     ever set, so, like Falco, the harness only calls it after a failure.
//   - plugin-sdk-go extractor plugins panic in plugin_destroy for a state
//     whose init failed once another init succeeded in the process; see
//     Options.LeakStateOnInitFailure.
//   - plugin-sdk-go's async extraction (on when the plugin's GOMAXPROCS > 1):
//     back-to-back extractions take ~2 µs, but after ~1 ms of idleness the
//     worker naps 10 ms and the next extract_fields call busy-waits for it
//     (measured 1-10 ms). Timing-sensitive tests should keep that in mind.
//
// # Memory
//
// Per-call C allocations (config/params strings, extraction field arrays,
// argument keys) are freed before each call returns. An Event owns a C copy
// of the whole event (plugins may read it during extraction); it is freed by
// Event.Free or, if forgotten, by a finalizer. Events stay valid after their
// Instance is closed (only the plugin state must still be initialized to
// extract from them). Libraries are never dlclose'd: a Go runtime cannot be
// unloaded.
package harness

/*
#cgo CFLAGS: -O2 -Wall
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "harness.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// PluginEventType is the libscap event code of plugin events (PPME_PLUGINEVENT_E).
const PluginEventType uint16 = 322

// DefaultFrameworkAPIVersion is the plugin API version the harness claims to
// implement when checking plugin_get_required_api_version. It is the version
// of the ABI declared in harness.h (plugin-sdk-go v0.8.3's plugin_api.h).
// Use LoadWithOptions to emulate an older Falco.
const DefaultFrameworkAPIVersion = "3.11.0"

const (
	eventHeaderSize    = 26 // packed ss_plugin_event
	pluginEventDataOff = eventHeaderSize + 4 + 4 + 4
	maxEventLen        = 64 << 20 // sanity bound before copying an event
	maxBatchEvents     = 1 << 24  // sanity bound on nevts before reading the array
	maxResLen          = 1 << 20  // sanity bound on an extraction res_len
)

// SaneBatchLimit is the largest batch Collect accepts from one
// plugin_next_batch call (plugin-sdk-go's default batch size is 128).
const SaneBatchLimit = 1 << 16

// Result mirrors ss_plugin_rc.
type Result int

const (
	Success      Result = 0
	Failure      Result = 1
	Timeout      Result = -1
	EOF          Result = 2
	NotSupported Result = 3
)

func (r Result) String() string {
	switch r {
	case Success:
		return "SUCCESS"
	case Failure:
		return "FAILURE"
	case Timeout:
		return "TIMEOUT"
	case EOF:
		return "EOF"
	case NotSupported:
		return "NOT_SUPPORTED"
	}
	return fmt.Sprintf("ss_plugin_rc(%d)", int(r))
}

// CallError is returned when a plugin call reports something other than
// success. Its Error() text is exactly the plugin's last error
// (plugin_get_last_error), like Falco reports it; Op and Result say which
// call failed and how.
type CallError struct {
	Op     string // "init", "open", "next_batch", "extract_fields", "list_open_params"
	Result Result
	Msg    string
}

func (e *CallError) Error() string { return e.Msg }

var (
	// ErrEmptySuccess: next_batch returned SUCCESS with zero events, which
	// libscap rejects ("unexpected 0 size event returned by plugin").
	ErrEmptySuccess = errors.New("harness: next_batch returned SUCCESS with 0 events")
	// ErrIdle: Collect saw only timeouts for longer than its idle limit.
	ErrIdle = errors.New("harness: idle limit reached (only TIMEOUTs)")
	// ErrNotInitialized: the call needs a successful Init first.
	ErrNotInitialized = errors.New("harness: plugin not initialized")
	// ErrClosed: the Instance was closed.
	ErrClosed = errors.New("harness: instance closed")
	// ErrFreed: the Event's memory was freed.
	ErrFreed = errors.New("harness: event already freed")
)

// Info is the plugin's self-description, read once at Load.
type Info struct {
	ID                  uint32
	Name                string
	Description         string
	Contact             string
	Version             string
	RequiredAPIVersion  string
	EventSource         string
	ExtractEventSources []string
}

// FieldArg describes a field's argument.
type FieldArg struct {
	IsKey, IsIndex, IsRequired bool
}

// Field is one entry of plugin_get_fields.
type Field struct {
	Type, Name, Display, Desc string
	IsList                    bool
	Arg                       FieldArg
	Properties                []string
}

// Caps is a bit set of plugin capabilities, derived from exported symbols
// like libscap's plugin_get_capabilities.
type Caps uint32

const (
	CapSourcing Caps = 1 << iota
	CapExtraction
	CapParsing
	CapAsync
	CapCaptureListening
)

func (c Caps) String() string {
	var s []string
	for _, x := range []struct {
		c Caps
		n string
	}{{CapSourcing, "sourcing"}, {CapExtraction, "extraction"}, {CapParsing, "parsing"},
		{CapAsync, "async"}, {CapCaptureListening, "capture_listening"}} {
		if c&x.c != 0 {
			s = append(s, x.n)
		}
	}
	return strings.Join(s, "|")
}

// OpenParam is one entry of plugin_list_open_params.
type OpenParam struct {
	Value     string `json:"value"`
	Desc      string `json:"desc"`
	Separator string `json:"separator"`
}

// LogEntry is one message the plugin sent through log_fn.
type LogEntry struct {
	Component string
	Message   string
	Severity  int32 // ss_plugin_log_severity: 1 fatal ... 8 trace
}

// Options tune Load.
type Options struct {
	// FrameworkAPIVersion is the plugin API version the harness pretends to
	// implement ("" = DefaultFrameworkAPIVersion).
	FrameworkAPIVersion string

	// LeakStateOnInitFailure skips the plugin_destroy Falco makes on the
	// state returned by a failed plugin_init. Needed for plugin-sdk-go
	// (<= v0.8.3 at least) extractor plugins: their plugin_destroy runs the
	// async-extraction stop hook, which is only armed by a successful init,
	// so once any init of the library has succeeded in the process,
	// destroying a failed-init state panics inside the plugin ("async worker
	// stopped without being started") and aborts the process. Falco hits
	// this too (e.g. a hot reload with a bad plugin config); tests that want
	// to exercise init failures after a successful init must set this. The
	// leaked state costs one of the SDK's 255 cgo handles.
	LeakStateOnInitFailure bool

	// KeepPluginSignalHandlers leaves SIGURG to the plugin's Go runtime, as
	// it is under Falco. By default the harness chains the SIGURG handlers
	// of the test binary's runtime and of every loaded Go library (see
	// harness.c): without that, loading a Go c-shared plugin silently
	// disables async preemption in the test binary, and a GC can hang
	// forever behind a goroutine spinning without function calls. The
	// plugin's runtime behaves identically either way. Process-wide.
	KeepPluginSignalHandlers bool
}

func init() {
	// Remember the host runtime's SIGURG handler before any dlopen.
	C.hs_sigurg_record()
}

// rechainSignals re-installs the SIGURG trampoline if a library's Go
// runtime replaced it. A c-shared Go runtime installs its handlers before
// its first exported function returns, so calling this after any call into
// the library is enough.
func rechainSignals(opts Options) {
	if !opts.KeepPluginSignalHandlers {
		C.hs_sigurg_rechain()
	}
}

// sigurgOwner reports which object file owns the SIGURG handler (tests).
func sigurgOwner() string { return C.GoString(C.hs_sig_owner(C.int(syscall.SIGURG))) }

// Plugin is a loaded plugin library plus (after Init) one plugin state.
// See the package doc for concurrency and memory rules.
type Plugin struct {
	mu sync.Mutex

	path  string
	opts  Options
	api   *C.hs_api   // C memory, never freed (the library is never unloaded)
	owner *C.hs_owner // C memory, never freed (the plugin may keep the pointer)

	info          Info
	caps          Caps
	fields        []Field
	fieldIdx      map[string]int
	fieldCNames   []*C.char       // C copies of field names, lifetime = Plugin
	extractSrcSet map[string]bool // extract-compatible sources; empty = all

	state       C.uintptr_t
	inited      bool
	lastErr     string
	extractEvts map[uint16]bool // from get_extract_event_types; nil = all plugin events
	instances   map[*Instance]struct{}
}

// Load is LoadWithOptions(path, Options{}).
func Load(path string) (*Plugin, error) {
	return LoadWithOptions(path, Options{})
}

// LoadWithOptions dlopens the library and performs libsinsp's load-time
// checks. Errors from dlopen carry dlerror().
func LoadWithOptions(path string, opts Options) (*Plugin, error) {
	fw := opts.FrameworkAPIVersion
	if fw == "" {
		fw = DefaultFrameworkAPIVersion
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	api := (*C.hs_api)(C.calloc(1, C.sizeof_hs_api))
	var errbuf [C.HS_MAX_ERRLEN]C.char
	if C.hs_load(cpath, api, &errbuf[0], C.size_t(len(errbuf))) != 0 {
		C.free(unsafe.Pointer(api))
		return nil, fmt.Errorf("harness: cannot load plugin %s: %s", path, C.GoString(&errbuf[0]))
	}
	p := &Plugin{path: path, opts: opts, api: api, instances: map[*Instance]struct{}{}}
	err := p.resolve(fw)
	rechainSignals(opts)
	if err != nil {
		// The library stays mapped (see package doc); only our bookkeeping goes.
		return nil, fmt.Errorf("harness: cannot load plugin %s: %w", path, err)
	}
	p.owner = C.hs_owner_new()
	if p.owner == nil {
		return nil, errors.New("harness: out of memory")
	}
	return p, nil
}

func cstr(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

var semverRe = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// CheckRequiredAPIVersion applies libscap's rule: same major, framework minor
// >= required minor, and framework patch >= required patch on equal minors.
func CheckRequiredAPIVersion(required, framework string) error {
	parse := func(s string) ([3]uint64, bool) {
		var v [3]uint64
		m := semverRe.FindStringSubmatch(s)
		if m == nil {
			return v, false
		}
		for i := 0; i < 3; i++ {
			n, err := strconv.ParseUint(m[i+1], 10, 32)
			if err != nil {
				return v, false
			}
			v[i] = n
		}
		return v, true
	}
	r, ok := parse(required)
	if !ok {
		return fmt.Errorf("plugin provided an invalid required API version: '%s'", required)
	}
	f, ok := parse(framework)
	if !ok {
		return fmt.Errorf("invalid framework API version: '%s'", framework)
	}
	var fail string
	switch {
	case r[0] != f[0]:
		fail = "major versions disagree"
	case f[1] < r[1]:
		fail = "framework's minor is less than the requested one"
	case f[1] == r[1] && f[2] < r[2]:
		fail = "framework's patch is less than the requested one"
	}
	if fail != "" {
		return fmt.Errorf("plugin required API version '%s' not compatible with the framework's API version '%s': %s",
			required, framework, fail)
	}
	return nil
}

// resolve mirrors sinsp_plugin::resolve_dylib_symbols.
func (p *Plugin) resolve(fw string) error {
	a := p.api
	if a.get_required_api_version == nil {
		return errors.New("plugin_get_required_api_version symbol not implemented")
	}
	p.info.RequiredAPIVersion = cstr(C.hs_call_str(a.get_required_api_version))
	if err := CheckRequiredAPIVersion(p.info.RequiredAPIVersion, fw); err != nil {
		return err
	}
	for _, s := range []struct {
		ok   bool
		name string
	}{
		{a.get_required_api_version != nil, "get_required_api_version"},
		{a.get_version != nil, "get_version"},
		{a.get_name != nil, "get_name"},
		{a.get_description != nil, "get_description"},
		{a.get_contact != nil, "get_contact"},
		{a.init != nil, "init"},
		{a.destroy != nil, "destroy"},
		{a.get_last_error != nil, "get_last_error"},
	} {
		if !s.ok {
			return fmt.Errorf("required symbol not implemented: '%s'", s.name)
		}
	}
	p.info.Name = cstr(C.hs_call_str(a.get_name))
	p.info.Description = cstr(C.hs_call_str(a.get_description))
	p.info.Contact = cstr(C.hs_call_str(a.get_contact))
	p.info.Version = cstr(C.hs_call_str(a.get_version))
	if !semverRe.MatchString(p.info.Version) {
		return fmt.Errorf("plugin provided an invalid version string: '%s'", p.info.Version)
	}
	p.info.ID = uint32(C.hs_get_id(a))
	p.info.EventSource = cstr(C.hs_call_str(a.get_event_source))

	// capabilities (libscap plugin_get_capabilities)
	var broken []string
	if a.open != nil && a.close != nil && a.next_batch != nil {
		hasID := a.get_id != nil && p.info.ID != 0
		hasSrc := a.get_event_source != nil && p.info.EventSource != ""
		if hasID == hasSrc {
			p.caps |= CapSourcing
		} else {
			broken = append(broken, "must implement both 'plugin_get_id' and 'plugin_get_event_source' or neither (event sourcing)")
		}
	} else if a.open != nil || a.close != nil || a.next_batch != nil {
		broken = append(broken, "must implement all of 'plugin_open', 'plugin_close', and 'plugin_next_batch' (event sourcing)")
	}
	if a.get_fields != nil && a.extract_fields != nil {
		p.caps |= CapExtraction
	} else if a.extract_fields != nil {
		broken = append(broken, "must implement both 'plugin_get_fields' and 'plugin_extract_fields' (field extraction)")
	}
	if p.HasSymbol("plugin_parse_event") {
		p.caps |= CapParsing
	}
	if p.HasSymbol("plugin_get_async_events") && p.HasSymbol("plugin_set_async_event_handler") {
		p.caps |= CapAsync
	} else if p.HasSymbol("plugin_set_async_event_handler") {
		broken = append(broken, "must implement both 'plugin_get_async_events' and 'plugin_set_async_event_handler' (async events)")
	}
	if p.HasSymbol("plugin_capture_open") && p.HasSymbol("plugin_capture_close") {
		p.caps |= CapCaptureListening
	} else if p.HasSymbol("plugin_capture_open") {
		broken = append(broken, "must implement both 'plugin_capture_open' and 'plugin_capture_close' (capture listening)")
	}
	if len(broken) > 0 {
		return errors.New("broken plugin capabilities: " + strings.Join(broken, ", "))
	}
	if p.caps == 0 {
		return errors.New("plugin does not implement any capability")
	}
	if p.caps&CapSourcing != 0 && p.info.ID != 0 && p.info.EventSource == "syscall" {
		return fmt.Errorf("plugin can't implement the reserved event source '%s'", p.info.EventSource)
	}

	if p.caps&CapExtraction != 0 {
		raw := C.hs_call_str(a.get_fields)
		if raw == nil {
			return fmt.Errorf("error in plugin %s: get_fields returned a null string", p.info.Name)
		}
		fields, err := parseFields(p.info.Name, C.GoString(raw))
		if err != nil {
			return err
		}
		p.fields = fields
		p.fieldIdx = make(map[string]int, len(fields))
		for i, f := range fields {
			if _, dup := p.fieldIdx[f.Name]; !dup {
				p.fieldIdx[f.Name] = i // libsinsp resolves a name to its first entry
			}
			p.fieldCNames = append(p.fieldCNames, C.CString(f.Name))
		}
		srcs, err := parseStrList(p.info.Name, "get_extract_event_sources", cstr(C.hs_call_str(a.get_extract_event_sources)))
		if err != nil {
			return err
		}
		p.info.ExtractEventSources = srcs
		p.extractSrcSet = map[string]bool{}
		for _, s := range srcs {
			p.extractSrcSet[s] = true
		}
		if len(p.extractSrcSet) > 0 && p.caps&CapSourcing != 0 && p.info.EventSource != "" {
			p.extractSrcSet[p.info.EventSource] = true
		}
	}
	return nil
}

// parseStrList mirrors libsinsp's resolve_dylib_json_strlist (empty allowed).
func parseStrList(plugin, symbol, s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var raw []any
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("error in plugin %s: '%s' did not return a json array", plugin, symbol)
	}
	var out []string
	for _, v := range raw {
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("error in plugin %s: '%s' did not return a json array", plugin, symbol)
		}
		if str != "" {
			out = append(out, str)
		}
	}
	return out, nil
}

var fieldTypes = map[string]uint32{
	"uint64": 8, "string": 9, "reltime": 20, "abstime": 21, "bool": 25, "ipaddr": 40, "ipnet": 41,
}

// parseFields mirrors libsinsp's validation of plugin_get_fields.
func parseFields(plugin, js string) ([]Field, error) {
	var root []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(js), &root); err != nil {
		return nil, fmt.Errorf("error in plugin %s: get_fields returned an invalid JSON", plugin)
	}
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		if v, ok := m[k]; ok {
			_ = json.Unmarshal(v, &s)
		}
		return s
	}
	boolean := func(m map[string]json.RawMessage, k, fname string) (bool, error) {
		v, ok := m[k]
		if !ok || string(v) == "null" {
			return false, nil
		}
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return false, fmt.Errorf("error in plugin %s: field %s %s property is not boolean", plugin, fname, k)
		}
		return b, nil
	}
	out := make([]Field, 0, len(root))
	for _, m := range root {
		var f Field
		f.Type, f.Name, f.Display, f.Desc = str(m, "type"), str(m, "name"), str(m, "display"), str(m, "desc")
		if f.Type == "" {
			return nil, fmt.Errorf("error in plugin %s: field JSON entry has no type", plugin)
		}
		if f.Name == "" {
			return nil, fmt.Errorf("error in plugin %s: field JSON entry has no name", plugin)
		}
		if f.Desc == "" {
			return nil, fmt.Errorf("error in plugin %s: field JSON entry has no desc", plugin)
		}
		if _, ok := fieldTypes[f.Type]; !ok {
			return nil, fmt.Errorf("error in plugin %s: invalid field type %s", plugin, f.Type)
		}
		var err error
		if f.IsList, err = boolean(m, "isList", f.Name); err != nil {
			return nil, err
		}
		if argRaw, ok := m["arg"]; ok && string(argRaw) != "null" {
			var am map[string]json.RawMessage
			if err := json.Unmarshal(argRaw, &am); err != nil {
				return nil, fmt.Errorf("error in plugin %s: field %s arg is not an object", plugin, f.Name)
			}
			if f.Arg.IsRequired, err = boolean(am, "isRequired", f.Name); err != nil {
				return nil, err
			}
			if f.Arg.IsIndex, err = boolean(am, "isIndex", f.Name); err != nil {
				return nil, err
			}
			if f.Arg.IsKey, err = boolean(am, "isKey", f.Name); err != nil {
				return nil, err
			}
			if f.Arg.IsRequired && !f.Arg.IsIndex && !f.Arg.IsKey {
				return nil, fmt.Errorf("error in plugin %s: field %s arg has isRequired true, but none of isKey nor isIndex is true", plugin, f.Name)
			}
		}
		if pr, ok := m["properties"]; ok && string(pr) != "null" {
			var props []any
			if err := json.Unmarshal(pr, &props); err != nil {
				return nil, fmt.Errorf("error in plugin %s: field %s properties property is not array", plugin, f.Name)
			}
			for _, x := range props {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("error in plugin %s: field %s properties value is not string", plugin, f.Name)
				}
				f.Properties = append(f.Properties, s)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

var (
	internMu sync.Mutex
	interned = map[string]*C.char{}
)

// internCString returns a process-lifetime C copy of s (used for event
// source names, of which there are few).
func internCString(s string) *C.char {
	internMu.Lock()
	defer internMu.Unlock()
	if c, ok := interned[s]; ok {
		return c
	}
	c := C.CString(s)
	interned[s] = c
	return c
}

// Path returns the path the library was loaded from.
func (p *Plugin) Path() string { return p.path }

// Info returns the plugin's self-description (read at Load).
func (p *Plugin) Info() Info {
	i := p.info
	i.ExtractEventSources = append([]string(nil), p.info.ExtractEventSources...)
	return i
}

// Capabilities returns the capabilities derived at Load.
func (p *Plugin) Capabilities() Caps { return p.caps }

// HasSymbol reports whether the library exports the named symbol.
func (p *Plugin) HasSymbol(name string) bool {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	return C.hs_dlsym(p.api.dl, cn) != nil
}

// InitSchema returns plugin_get_init_schema's string when the schema type is
// JSON, "" when the plugin has no schema (symbol absent or type NONE), and an
// error for an unknown schema type or a JSON schema that is not an object.
func (p *Plugin) InitSchema() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.initSchemaLocked()
}

func (p *Plugin) initSchemaLocked() (string, error) {
	var typ C.int32_t
	s := cstr(C.hs_get_init_schema(p.api, &typ))
	switch {
	case s == "" || typ == 0:
		return "", nil
	case typ != 1:
		return "", fmt.Errorf("error in plugin %s: get_init_schema returned an unknown schema type %d", p.info.Name, int(typ))
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(s), &obj); err != nil || obj == nil {
		return "", fmt.Errorf("error in plugin %s: get_init_schema did not return a json object", p.info.Name)
	}
	return s, nil
}

// Fields returns the plugin's fields (parsed and validated at Load).
func (p *Plugin) Fields() ([]Field, error) {
	if p.caps&CapExtraction == 0 {
		return nil, errors.New("harness: plugin has no field extraction capability")
	}
	out := make([]Field, len(p.fields))
	for i, f := range p.fields {
		f.Properties = append([]string(nil), f.Properties...)
		out[i] = f
	}
	return out, nil
}

// ValidateInitConfig performs Falco's pre-init step: with a JSON init
// schema, "" becomes "{}", the config must be valid JSON and must satisfy
// the schema (subset of JSON Schema, see schema.go). It returns the config
// that would be passed to plugin_init.
func (p *Plugin) ValidateInitConfig(config string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.validateInitConfigLocked(config)
}

func (p *Plugin) validateInitConfigLocked(config string) (string, error) {
	schema, err := p.initSchemaLocked()
	if err != nil || schema == "" {
		return config, err
	}
	if config == "" {
		config = "{}"
	}
	if err := validateJSONSchema(p.info.Name, schema, config); err != nil {
		return "", err
	}
	return config, nil
}

// Init validates config like Falco (see ValidateInitConfig) and calls
// plugin_init. On failure the error text is plugin_get_last_error and the
// state the plugin returned is passed to plugin_destroy, as Falco does
// (unless Options.LeakStateOnInitFailure: read it if the plugin uses
// plugin-sdk-go's extractor package).
func (p *Plugin) Init(config string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inited {
		return errors.New("harness: plugin already initialized")
	}
	cfg, err := p.validateInitConfigLocked(config)
	if err != nil {
		return err
	}
	return p.initLocked(cfg)
}

// InitRaw calls plugin_init with config verbatim, skipping Falco's schema
// validation (to exercise the plugin's own config error paths).
func (p *Plugin) InitRaw(config string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inited {
		return errors.New("harness: plugin already initialized")
	}
	return p.initLocked(config)
}

func (p *Plugin) initLocked(config string) error {
	cc := C.CString(config)
	defer C.free(unsafe.Pointer(cc))
	var rc C.int32_t
	withTables := C.int(0)
	if p.caps&(CapParsing|CapExtraction) != 0 {
		withTables = 1
	}
	st := C.hs_init(p.api, p.owner, cc, withTables, &rc)
	rechainSignals(p.opts)
	if Result(rc) != Success {
		msg := "unknown error (plugin_init failed and returned a NULL state)"
		if st != 0 {
			msg = cstr(C.hs_get_last_error(p.api, st))
			if !p.opts.LeakStateOnInitFailure {
				C.hs_destroy(p.api, st) // Falco: ~sinsp_plugin -> destroy(m_state)
			}
		}
		p.lastErr = msg
		return &CallError{Op: "init", Result: Result(rc), Msg: msg}
	}
	p.state = st
	p.inited = true
	p.lastErr = ""
	p.extractEvts = nil
	if p.caps&CapExtraction != 0 && p.api.get_extract_event_types != nil {
		var n C.uint32_t
		arr := C.hs_get_extract_event_types(p.api, st, &n)
		if arr != nil && n > 0 && n < 1<<16 {
			p.extractEvts = map[uint16]bool{}
			for _, t := range unsafe.Slice((*uint16)(unsafe.Pointer(arr)), int(n)) {
				p.extractEvts[t] = true
			}
		}
	}
	return nil
}

// Destroy closes any open Instance and calls plugin_destroy. Afterwards the
// Plugin may be Init'ed again. No-op if not initialized.
func (p *Plugin) Destroy() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.inited {
		return
	}
	for in := range p.instances {
		in.closeLocked()
	}
	C.hs_destroy(p.api, p.state)
	p.state = 0
	p.inited = false
}

// LastError returns the plugin's last error as of the most recent failed
// call ("" if none failed since Init). Like Falco, the harness calls
// plugin_get_last_error only right after a call reported failure: with
// plugin-sdk-go v0.8.3 calling it when no error was ever set panics inside
// the plugin (nil error) and aborts the process.
func (p *Plugin) LastError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// fetchLastErrorLocked calls plugin_get_last_error; only after a failure.
// QueryLastError calls plugin_get_last_error now, whether or not a call
// failed: a host may ask at any time, and a plugin must not crash on it.
func (p *Plugin) QueryLastError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fetchLastErrorLocked()
}

func (p *Plugin) fetchLastErrorLocked() string {
	p.lastErr = cstr(C.hs_get_last_error(p.api, p.state))
	return p.lastErr
}

// Logs drains what the plugin sent through log_fn since the last call, and
// how many entries were dropped because the buffer (4096 entries) was full.
func (p *Plugin) Logs() (entries []LogEntry, dropped uint64) {
	var arr *C.hs_log_entry
	var d C.uint64_t
	n := C.hs_owner_take_logs(p.owner, &arr, &d)
	if arr == nil {
		return nil, 0
	}
	for _, e := range unsafe.Slice(arr, int(n)) {
		entries = append(entries, LogEntry{Component: cstr(e.component), Message: cstr(e.msg), Severity: int32(e.sev)})
	}
	C.hs_free_logs(arr, n)
	return entries, uint64(d)
}

// ExtractEventTypes returns what plugin_get_extract_event_types reported
// after Init (nil if absent/empty: all plugin events).
func (p *Plugin) ExtractEventTypes() []uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []uint16
	for t := range p.extractEvts {
		out = append(out, t)
	}
	return out
}

// ListOpenParams returns plugin_list_open_params verbatim ("" if the symbol
// is absent). Like libsinsp, a non-empty answer must be a JSON array whose
// entries all have a non-empty "value".
func (p *Plugin) ListOpenParams() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.inited {
		return "", ErrNotInitialized
	}
	if p.api.list_open_params == nil {
		return "", nil
	}
	var rc C.int32_t
	s := cstr(C.hs_list_open_params(p.api, p.state, &rc))
	if Result(rc) != Success {
		return "", &CallError{Op: "list_open_params", Result: Result(rc), Msg: p.fetchLastErrorLocked()}
	}
	if _, err := parseOpenParams(p.info.Name, s); err != nil {
		return s, err
	}
	return s, nil
}

// OpenParams is ListOpenParams, parsed.
func (p *Plugin) OpenParams() ([]OpenParam, error) {
	s, err := p.ListOpenParams()
	if err != nil {
		return nil, err
	}
	return parseOpenParams(p.info.Name, s)
}

func parseOpenParams(plugin, s string) ([]OpenParam, error) {
	if s == "" {
		return nil, nil
	}
	var out []OpenParam
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("error in plugin %s: list_open_params returned a non-array JSON", plugin)
	}
	for _, op := range out {
		if op.Value == "" {
			return nil, fmt.Errorf("error in plugin %s: list_open_params has entry with no value", plugin)
		}
	}
	return out, nil
}

// Instance is an open capture (plugin_open's ss_instance_t*).
type Instance struct {
	p       *Plugin
	h       C.uintptr_t
	params  string
	closed  bool
	nextNum uint64
}

// Open calls plugin_open. On failure the error text is the plugin's last
// error and plugin_close(state, handle) is still called (handle possibly
// NULL), because that is what libscap's engine teardown does.
func (p *Plugin) Open(params string) (*Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.inited {
		return nil, ErrNotInitialized
	}
	if p.caps&CapSourcing == 0 {
		return nil, errors.New("harness: plugin has no event sourcing capability")
	}
	cp := C.CString(params)
	defer C.free(unsafe.Pointer(cp))
	var rc C.int32_t
	h := C.hs_open(p.api, p.state, cp, &rc)
	if Result(rc) != Success {
		msg := p.fetchLastErrorLocked()
		C.hs_close(p.api, p.state, h)
		return nil, &CallError{Op: "open", Result: Result(rc), Msg: msg}
	}
	in := &Instance{p: p, h: h, params: params}
	p.instances[in] = struct{}{}
	return in, nil
}

// Close calls plugin_close once. Events already returned stay valid.
func (i *Instance) Close() {
	i.p.mu.Lock()
	defer i.p.mu.Unlock()
	i.closeLocked()
}

func (i *Instance) closeLocked() {
	if i.closed {
		return
	}
	C.hs_close(i.p.api, i.p.state, i.h)
	i.closed = true
	delete(i.p.instances, i)
}

// Progress calls plugin_get_progress. pct is a percentage (0..100, from the
// API's 0..10000 encoding); text is the plugin's string ("" if NULL). Zero
// values if the symbol is absent or the instance is closed.
func (i *Instance) Progress() (pct float64, text string) {
	i.p.mu.Lock()
	defer i.p.mu.Unlock()
	if i.closed || i.p.api.get_progress == nil {
		return 0, ""
	}
	var v C.uint32_t
	s := C.hs_get_progress(i.p.api, i.p.state, i.h, &v)
	return float64(v) / 100, cstr(s)
}

// Event is a plugin event as Falco sees it after libscap's checks. The
// exported fields are Go copies; the Event also owns a C copy of the whole
// event that is what plugins receive in extract/event_to_string.
type Event struct {
	Num       uint64 // evtnum: 1, 2, 3, ... per Instance
	Timestamp uint64 // ns since epoch (UINT64_MAX from the plugin -> now)
	Type      uint16 // always 322
	PluginID  uint32 // 0 from the plugin -> the plugin's ID
	Data      []byte // payload copy
	Source    string // event source name passed as evtsrc

	raw    unsafe.Pointer // malloc'd copy of the whole event
	rawLen uint32
	srcC   *C.char
}

func newOwnedEvent(raw unsafe.Pointer, rawLen uint32, num, ts uint64, pid uint32, src string) *Event {
	dataLen := rawLen - pluginEventDataOff
	e := &Event{
		Num: num, Timestamp: ts, Type: PluginEventType, PluginID: pid,
		Data:   C.GoBytes(unsafe.Add(raw, pluginEventDataOff), C.int(dataLen)),
		Source: src, raw: raw, rawLen: rawLen, srcC: internCString(src),
	}
	runtime.SetFinalizer(e, (*Event).Free)
	return e
}

// NewEvent builds a well-formed plugin event in harness-owned memory, e.g.
// to feed an extractor events of another source.
func NewEvent(source string, pluginID uint32, num, ts uint64, data []byte) *Event {
	var dp unsafe.Pointer
	if len(data) > 0 {
		dp = C.CBytes(data)
		defer C.free(dp)
	}
	raw := C.hs_event_build(C.uint64_t(ts), C.uint32_t(pluginID), dp, C.uint32_t(len(data)))
	if raw == nil {
		panic("harness: out of memory")
	}
	return newOwnedEvent(raw, uint32(pluginEventDataOff+len(data)), num, ts, pluginID, source)
}

// Free releases the event's C copy. Idempotent; later Extract/EventToString
// calls on it fail with ErrFreed. Must not race with such calls.
func (e *Event) Free() {
	if e.raw != nil {
		C.free(e.raw)
		e.raw = nil
		runtime.SetFinalizer(e, nil)
	}
}

// Raw returns a Go copy of the whole event (header, param lengths, plugin
// ID, payload) exactly as passed to the plugin; nil after Free.
func (e *Event) Raw() []byte {
	if e.raw == nil {
		return nil
	}
	b := C.GoBytes(e.raw, C.int(e.rawLen))
	runtime.KeepAlive(e)
	return b
}

// NextBatch performs one plugin_next_batch call and returns the batch's
// events (validated and copied like libscap does), the plugin's result and:
//   - on FAILURE, a *CallError with the plugin's last error;
//   - ErrEmptySuccess if SUCCESS came with 0 events;
//   - a harness error for malformed events or result codes other than
//     SUCCESS/TIMEOUT/EOF/FAILURE.
//
// TIMEOUT and EOF may come with events; Falco processes them first.
func (i *Instance) NextBatch() ([]*Event, Result, error) {
	p := i.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if i.closed {
		return nil, Failure, ErrClosed
	}
	var n C.uint32_t
	var arr *unsafe.Pointer
	rc := Result(C.hs_next_batch(p.api, p.state, i.h, &n, &arr))
	switch rc {
	case Success, Timeout, EOF, Failure:
	default:
		return nil, rc, fmt.Errorf("harness: next_batch returned unexpected result %v", rc)
	}
	if n > maxBatchEvents {
		return nil, rc, fmt.Errorf("harness: next_batch returned an absurd event count %d", uint32(n))
	}
	if n > 0 && arr == nil {
		return nil, rc, fmt.Errorf("harness: next_batch returned %d events and a NULL array", uint32(n))
	}
	if rc == Success && n == 0 {
		return nil, rc, fmt.Errorf("%w (libscap: unexpected 0 size event returned by plugin %s)", ErrEmptySuccess, p.info.Name)
	}
	var evts []*Event
	if n > 0 {
		ptrs := unsafe.Slice(arr, int(n))
		evts = make([]*Event, 0, int(n))
		for k, ptr := range ptrs {
			e, err := i.adoptLocked(ptr)
			if err != nil {
				for _, prev := range evts {
					prev.Free()
				}
				i.nextNum -= uint64(len(evts))
				return nil, Failure, fmt.Errorf("harness: event %d of %d in batch: %w", k+1, int(n), err)
			}
			evts = append(evts, e)
		}
	}
	if rc == Failure {
		return evts, rc, &CallError{Op: "next_batch", Result: rc, Msg: p.fetchLastErrorLocked()}
	}
	return evts, rc, nil
}

// adoptLocked validates a plugin-owned event like libscap's source-plugin
// engine and copies it into harness memory.
func (i *Instance) adoptLocked(ptr unsafe.Pointer) (*Event, error) {
	p := i.p
	if ptr == nil {
		return nil, errors.New("NULL event pointer")
	}
	var hdr C.hs_evt_hdr
	C.hs_event_header(ptr, &hdr)
	if uint16(hdr._type) != PluginEventType || hdr.nparams != 2 {
		return nil, fmt.Errorf("malformed plugin event produced by plugin: '%s' (type=%d nparams=%d)",
			p.info.Name, uint16(hdr._type), uint32(hdr.nparams))
	}
	evLen := uint32(hdr.len)
	if evLen < pluginEventDataOff || evLen > maxEventLen {
		return nil, fmt.Errorf("plugin event has invalid len %d", evLen)
	}
	l0 := uint32(C.hs_u32_at(ptr, eventHeaderSize))
	l1 := uint32(C.hs_u32_at(ptr, eventHeaderSize+4))
	if l0 != 4 {
		return nil, fmt.Errorf("plugin event: plugin ID param has len %d, want 4", l0)
	}
	if uint64(eventHeaderSize)+8+uint64(l0)+uint64(l1) != uint64(evLen) {
		return nil, fmt.Errorf("plugin event: len %d inconsistent with param lengths %d+%d", evLen, l0, l1)
	}
	pid := uint32(C.hs_u32_at(ptr, eventHeaderSize+8))
	if p.info.ID != 0 {
		if pid == 0 {
			pid = p.info.ID
		} else if pid != p.info.ID {
			return nil, fmt.Errorf("unexpected plugin ID in plugin event: plugin='%s', expected_id=%d, actual_id=%d",
				p.info.Name, p.info.ID, pid)
		}
	}
	if pid == 0 {
		return nil, fmt.Errorf("malformed plugin event produced by plugin (no ID): '%s'", p.info.Name)
	}
	ts := uint64(hdr.ts)
	if ts == math.MaxUint64 {
		ts = uint64(time.Now().UnixNano())
	}
	raw := C.hs_event_copy(ptr, C.uint32_t(evLen))
	if raw == nil {
		return nil, errors.New("out of memory")
	}
	// like libscap: fix up ID and timestamp; plugin events have no thread
	C.hs_event_patch(raw, C.uint64_t(ts), C.uint64_t(math.MaxUint64), C.uint32_t(pid))
	i.nextNum++
	return newOwnedEvent(raw, evLen, i.nextNum, ts, pid, p.info.EventSource), nil
}

// Collect loops NextBatch like Falco's event loop until it has at least want
// events (want <= 0: no target), EOF, ctx is done, or TIMEOUTs with no
// events have been seen for idleLimit in a row (idleLimit <= 0: no limit).
// It returns everything received (possibly more than want, batches are not
// split) and nil on EOF/target, ctx.Err(), ErrIdle, or the first protocol
// error: FAILURE, SUCCESS with 0 events, a batch above SaneBatchLimit or a
// malformed event.
func (i *Instance) Collect(ctx context.Context, want int, idleLimit time.Duration) ([]*Event, error) {
	var out []*Event
	var idleSince time.Time
	for {
		if want > 0 && len(out) >= want {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		evts, rc, err := i.NextBatch()
		out = append(out, evts...)
		if err != nil {
			return out, err
		}
		if len(evts) > SaneBatchLimit {
			return out, fmt.Errorf("harness: next_batch returned %d events, more than SaneBatchLimit (%d)", len(evts), SaneBatchLimit)
		}
		switch rc {
		case EOF:
			return out, nil
		case Timeout:
			if len(evts) > 0 {
				idleSince = time.Time{}
				continue
			}
			now := time.Now()
			if idleSince.IsZero() {
				idleSince = now
			}
			if idleLimit > 0 && now.Sub(idleSince) >= idleLimit {
				return out, ErrIdle
			}
		default:
			idleSince = time.Time{}
		}
	}
}

func (p *Plugin) checkEventLocked(e *Event) error {
	if !p.inited {
		return ErrNotInitialized
	}
	if e == nil || e.raw == nil {
		return ErrFreed
	}
	return nil
}

// EventToString calls plugin_event_to_string and returns the plugin's
// string verbatim ("" if the symbol is absent). Like libsinsp it refuses
// events that are not plugin events of this plugin's ID. See FormatEvent for
// Falco's fallback rendering.
func (p *Plugin) EventToString(e *Event) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkEventLocked(e); err != nil {
		return "", err
	}
	if e.Type != PluginEventType || e.PluginID != p.info.ID {
		return "", errors.New("can't format unknown non-plugin event to string")
	}
	if p.api.event_to_string == nil {
		return "", nil
	}
	s := cstr(C.hs_event_to_string(p.api, p.state, e.raw, C.uint64_t(e.Num), e.srcC))
	runtime.KeepAlive(e)
	return s, nil
}

// FormatEvent is what Falco prints for %evt.plugininfo-style output: the
// plugin's string, or, when that is empty, "datalen=N data=..." (first 50
// bytes, "<binary>" if not printable).
func (p *Plugin) FormatEvent(e *Event) (string, error) {
	s, err := p.EventToString(e)
	if err != nil || s != "" {
		return s, err
	}
	n := len(e.Data)
	s = "datalen=" + strconv.Itoa(n) + " data="
	show := e.Data
	if len(show) > 50 {
		show = show[:50]
	}
	for _, c := range show {
		if c < 0x20 || c > 0x7e {
			return s + "<binary>", nil
		}
	}
	s += string(show)
	if n > 50 {
		s += "..."
	}
	return s, nil
}

// Request is one field to extract. Arg is the text between brackets
// ("" = no argument); for an index argument you may instead set ArgIsIndex
// and ArgIndex. How the argument is passed (arg_key and/or arg_index) follows
// the field's isKey/isIndex flags, exactly like libsinsp.
type Request struct {
	Field      string
	Arg        string
	ArgIndex   uint64
	ArgIsIndex bool
}

var reqRe = regexp.MustCompile(`^([^\[\]\s]+)(?:\[(.*)\])?$`)

// ParseRequest parses Falco field syntax: "name" or "name[arg]".
func ParseRequest(s string) (Request, error) {
	m := reqRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Request{}, fmt.Errorf("harness: cannot parse field %q", s)
	}
	return Request{Field: m[1], Arg: m[2]}, nil
}

// Value is one extracted field value (list or not).
type Value struct {
	Present bool   // false when the plugin returned res_len == 0
	Type    string // field type from Fields()
	Str     []string
	U64     []uint64 // uint64, reltime, abstime
	Bool    []bool
	Buf     [][]byte // ipaddr, ipnet
	IsList  bool
}

// Offset is a value offset reported through value_offsets.
type Offset struct {
	Start, Length uint32
}

type resolvedReq struct {
	idx      int
	argKey   string
	hasKey   bool
	argIndex uint64
	present  bool
}

func (p *Plugin) resolveRequest(r Request) (resolvedReq, error) {
	idx, ok := p.fieldIdx[r.Field]
	if !ok {
		return resolvedReq{}, fmt.Errorf("harness: plugin %s has no field %q", p.info.Name, r.Field)
	}
	f := p.fields[idx]
	rr := resolvedReq{idx: idx, present: r.Arg != "" || r.ArgIsIndex}
	full := r.Field
	if rr.present {
		full += "[" + r.Arg + "]"
	}
	if rr.present && !(f.Arg.IsKey || f.Arg.IsIndex || f.Arg.IsRequired) {
		return rr, fmt.Errorf("filter '%s': %s does not allow nor require an argument but one is provided: %s", full, f.Name, r.Arg)
	}
	if !rr.present && f.Arg.IsRequired {
		return rr, fmt.Errorf("filter '%s': %s requires an argument but none provided", full, f.Name)
	}
	if rr.present && f.Arg.IsIndex {
		if r.ArgIsIndex {
			rr.argIndex = r.ArgIndex
		} else {
			s := r.Arg
			valid := s != "" && !(len(s) > 1 && s[0] == '0')
			for _, c := range s {
				if c < '0' || c > '9' {
					valid = false
				}
			}
			v, err := strconv.ParseUint(s, 10, 64)
			if !valid || err != nil {
				return rr, fmt.Errorf("filter %s %s has an invalid index argument: %s", full, f.Name, s)
			}
			rr.argIndex = v
		}
	}
	if rr.present && f.Arg.IsKey {
		rr.hasKey = true
		rr.argKey = r.Arg
		if r.Arg == "" && r.ArgIsIndex {
			rr.argKey = strconv.FormatUint(r.ArgIndex, 10)
		}
	}
	return rr, nil
}

// compatibleLocked mirrors the checks sinsp_filter_check_plugin::extract
// makes before calling the plugin: event source and event type.
func (p *Plugin) compatibleLocked(e *Event) bool {
	if len(p.extractSrcSet) > 0 && !p.extractSrcSet[e.Source] {
		return false
	}
	if p.extractEvts != nil && !p.extractEvts[e.Type] {
		return false
	}
	return true
}

// Extract extracts the requests the way Falco does (falco-facts.md fact 7):
// one plugin_extract_fields call per request, num_fields = 1, from one
// request struct the harness reuses, as libsinsp's
// sinsp_filter_check_plugin::extract_nocache (libs
// userspace/libsinsp/plugin_filtercheck.cpp) asks from its stack. field_id
// is the field's index in Fields(), ftype/flist come from Fields() and
// arg_key/arg_index/arg_present are set like libsinsp. Each value is copied
// out right after its call, before the next one (the plugin API keeps a
// result valid only until the next extract_fields call). If the event's
// source or type is not one the plugin extracts from, Falco does not call
// the plugin and neither does Extract (all values come back not Present).
//
// ExtractOneCall asks for all requests in one call instead.
func (p *Plugin) Extract(e *Event, reqs ...Request) ([]Value, error) {
	v, _, err := p.extract(e, reqs, false, false)
	return v, err
}

// ExtractEach is Extract (one call per request); it predates Extract's
// switch to that mode.
func (p *Plugin) ExtractEach(e *Event, reqs ...Request) ([]Value, error) {
	return p.Extract(e, reqs...)
}

// ExtractWithOffsets is Extract with value_offsets passed (as Falco >= 0.41
// may do), one call per request. offs is nil when the plugin left the offset
// arrays NULL in every call (no offsets support); otherwise offs[i] belongs
// to reqs[i] (zero where that call left them NULL).
func (p *Plugin) ExtractWithOffsets(e *Event, reqs ...Request) (vals []Value, offs []Offset, err error) {
	return p.extract(e, reqs, true, false)
}

// ExtractOneCall sends all requests in ONE plugin_extract_fields call
// (num_fields = len(reqs)), which Falco never does but the plugin API
// allows. The same field may be asked for more than once (say with two
// arguments); each request must get its own value. Values are copied out
// after the call.
func (p *Plugin) ExtractOneCall(e *Event, reqs ...Request) ([]Value, error) {
	v, _, err := p.extract(e, reqs, false, true)
	return v, err
}

// ExtractOneCallWithOffsets is ExtractOneCall with value_offsets passed.
func (p *Plugin) ExtractOneCallWithOffsets(e *Event, reqs ...Request) (vals []Value, offs []Offset, err error) {
	return p.extract(e, reqs, true, true)
}

func (p *Plugin) extract(e *Event, reqs []Request, withOffsets, oneCall bool) ([]Value, []Offset, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer runtime.KeepAlive(e)
	if err := p.checkEventLocked(e); err != nil {
		return nil, nil, err
	}
	if p.caps&CapExtraction == 0 {
		return nil, nil, errors.New("harness: plugin has no field extraction capability")
	}
	rrs, err := p.resolveRequests(reqs)
	if err != nil {
		return nil, nil, err
	}
	vals := make([]Value, len(reqs))
	for k, rr := range rrs {
		vals[k] = Value{Type: p.fields[rr.idx].Type, IsList: p.fields[rr.idx].IsList}
	}
	if len(reqs) == 0 || !p.compatibleLocked(e) {
		return vals, nil, nil
	}

	n := len(reqs)
	// One more struct than requests: the one the per-request calls reuse.
	cf, free, err := p.cFieldsLocked(rrs, 1)
	if err != nil {
		return nil, nil, err
	}
	defer free()
	want := C.int(0)
	if withOffsets {
		want = 1
	}
	var offs []Offset
	call := func(first *C.ss_plugin_extract_field, num int) (starts, lens []uint32, err error) {
		var offStart, offLen *C.uint32_t
		rc := Result(C.hs_extract(p.api, p.state, p.owner, e.raw, C.uint64_t(e.Num), e.srcC,
			C.uint32_t(num), first, want, &offStart, &offLen))
		if rc != Success {
			return nil, nil, &CallError{Op: "extract_fields", Result: rc, Msg: p.fetchLastErrorLocked()}
		}
		if withOffsets && offStart != nil && offLen != nil {
			starts = unsafe.Slice((*uint32)(unsafe.Pointer(offStart)), num)
			lens = unsafe.Slice((*uint32)(unsafe.Pointer(offLen)), num)
		}
		return starts, lens, nil
	}
	if oneCall {
		starts, lens, err := call(&cf[0], n)
		if err != nil {
			return nil, nil, err
		}
		for k := range n {
			if err := readValue(&cf[k], &vals[k], reqs[k].Field); err != nil {
				return nil, nil, err
			}
		}
		if starts != nil {
			offs = make([]Offset, n)
			for k := range offs {
				offs[k] = Offset{Start: starts[k], Length: lens[k]}
			}
		}
		return vals, offs, nil
	}
	slot := &cf[n]
	for k := range n {
		*slot = cf[k]
		starts, lens, err := call(slot, 1)
		if err != nil {
			return nil, nil, err
		}
		if err := readValue(slot, &vals[k], reqs[k].Field); err != nil {
			return nil, nil, err
		}
		if starts != nil {
			if offs == nil {
				offs = make([]Offset, n)
			}
			offs[k] = Offset{Start: starts[0], Length: lens[0]}
		}
	}
	return vals, offs, nil
}

// resolveRequests resolves reqs. A field may appear more than once (the
// plugin API allows it in one call; see ExtractOneCall).
func (p *Plugin) resolveRequests(reqs []Request) ([]resolvedReq, error) {
	rrs := make([]resolvedReq, len(reqs))
	for k, r := range reqs {
		rr, err := p.resolveRequest(r)
		if err != nil {
			return nil, err
		}
		rrs[k] = rr
	}
	return rrs, nil
}

// cFieldsLocked builds the C request array for resolved requests, followed
// by spare zeroed structs; free releases it and its argument keys.
func (p *Plugin) cFieldsLocked(rrs []resolvedReq, spare int) (cf []C.ss_plugin_extract_field, free func(), err error) {
	base := C.calloc(C.size_t(len(rrs)+spare), C.size_t(C.sizeof_ss_plugin_extract_field))
	if base == nil {
		return nil, nil, errors.New("harness: out of memory")
	}
	var keys []*C.char
	free = func() {
		for _, k := range keys {
			C.free(unsafe.Pointer(k))
		}
		C.free(base)
	}
	cf = unsafe.Slice((*C.ss_plugin_extract_field)(base), len(rrs)+spare)
	for k, rr := range rrs {
		f := p.fields[rr.idx]
		cf[k].field_id = C.uint32_t(rr.idx)
		cf[k].field = p.fieldCNames[rr.idx]
		if rr.hasKey {
			ck := C.CString(rr.argKey)
			keys = append(keys, ck)
			cf[k].arg_key = ck
		}
		cf[k].arg_index = C.uint64_t(rr.argIndex)
		cf[k].arg_present = boolU32(rr.present)
		cf[k].ftype = C.uint32_t(fieldTypes[f.Type])
		cf[k].flist = boolU32(f.IsList)
	}
	return cf, free, nil
}

// TimeExtract measures extraction the way a C++ host pays for it: the
// requests are prepared once, then a loop in C makes rounds
// extract_fields calls back to back (round r on evts[r % len(evts)]; with
// perField one call per request, else one call for all) and times them with
// CLOCK_MONOTONIC. Nothing is read back, so it measures the plugin and the
// C ABI crossing only; Extract checks the values. For benchmarks.
func (p *Plugin) TimeExtract(evts []*Event, reqs []Request, perField bool, rounds int) (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer runtime.KeepAlive(evts)
	if len(evts) == 0 || len(reqs) == 0 || rounds <= 0 {
		return 0, errors.New("harness: TimeExtract needs events, requests and rounds")
	}
	if p.caps&CapExtraction == 0 {
		return 0, errors.New("harness: plugin has no field extraction capability")
	}
	rrs, err := p.resolveRequests(reqs)
	if err != nil {
		return 0, err
	}
	raws := (*[1 << 20]unsafe.Pointer)(C.calloc(C.size_t(len(evts)), C.size_t(unsafe.Sizeof(uintptr(0)))))[:len(evts):len(evts)]
	nums := (*[1 << 20]C.uint64_t)(C.calloc(C.size_t(len(evts)), 8))[:len(evts):len(evts)]
	defer C.free(unsafe.Pointer(&raws[0]))
	defer C.free(unsafe.Pointer(&nums[0]))
	for k, e := range evts {
		if err := p.checkEventLocked(e); err != nil {
			return 0, err
		}
		if !p.compatibleLocked(e) || e.srcC != evts[0].srcC {
			return 0, errors.New("harness: TimeExtract needs events of one source the plugin extracts from")
		}
		raws[k], nums[k] = e.raw, C.uint64_t(e.Num)
	}
	cf, free, err := p.cFieldsLocked(rrs, 0)
	if err != nil {
		return 0, err
	}
	defer free()
	var elapsed C.uint64_t
	rc := Result(C.hs_time_extract(p.api, p.state, p.owner, &raws[0], &nums[0], C.size_t(len(evts)), evts[0].srcC,
		C.uint32_t(len(cf)), &cf[0], C.int(boolU32(perField)), C.uint64_t(rounds), &elapsed))
	if rc != Success {
		return 0, &CallError{Op: "extract_fields", Result: rc, Msg: p.fetchLastErrorLocked()}
	}
	return time.Duration(elapsed), nil
}

func boolU32(b bool) C.uint32_t {
	if b {
		return 1
	}
	return 0
}

func readValue(f *C.ss_plugin_extract_field, v *Value, name string) error {
	n := uint64(f.res_len)
	if n == 0 {
		return nil
	}
	if n > 1 && !v.IsList {
		return fmt.Errorf("harness: plugin returned %d values for non-list field %s (res_len must be 0 or 1)", n, name)
	}
	if n > maxResLen {
		return fmt.Errorf("harness: plugin returned absurd res_len %d for field %s", n, name)
	}
	res := *(*unsafe.Pointer)(unsafe.Pointer(&f.res))
	if res == nil {
		return fmt.Errorf("harness: plugin returned res_len %d and a NULL res for field %s", n, name)
	}
	v.Present = true
	switch v.Type {
	case "string":
		for _, s := range unsafe.Slice((**C.char)(res), int(n)) {
			if s == nil {
				return fmt.Errorf("harness: plugin returned a NULL string for field %s", name)
			}
			v.Str = append(v.Str, C.GoString(s))
		}
	case "uint64", "reltime", "abstime":
		v.U64 = append(v.U64, unsafe.Slice((*uint64)(res), int(n))...)
	case "bool":
		for _, b := range unsafe.Slice((*uint32)(res), int(n)) {
			v.Bool = append(v.Bool, b != 0)
		}
	case "ipaddr", "ipnet":
		for _, b := range unsafe.Slice((*C.ss_plugin_byte_buffer)(res), int(n)) {
			if b.ptr == nil && b.len > 0 {
				return fmt.Errorf("harness: plugin returned a NULL buffer for field %s", name)
			}
			v.Buf = append(v.Buf, C.GoBytes(b.ptr, C.int(b.len)))
		}
	default:
		return fmt.Errorf("harness: unsupported field type %s", v.Type)
	}
	return nil
}

// testLog and testOwnerGetTable call the callbacks the plugin gets (tests).
func (p *Plugin) testLog(component, msg string, sev int32) {
	cc, cm := C.CString(component), C.CString(msg)
	defer C.free(unsafe.Pointer(cc))
	defer C.free(unsafe.Pointer(cm))
	C.hs_test_log(p.owner, cc, cm, C.int32_t(sev))
}

func (p *Plugin) testOwnerGetTable(name string) (found bool, ownerErr string) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var lastErr *C.char
	found = C.hs_test_get_table(p.owner, cn, &lastErr) != 0
	return found, C.GoString(lastErr)
}

// mallocInUse reports glibc's in-use malloc bytes (test-only leak probe).
func mallocInUse() uint64 { return uint64(C.hs_malloc_in_use()) }

// layout returns hs_layout's numbers (see TestABILayout).
func layout() []uint64 {
	buf := make([]uint64, 128)
	n := C.hs_layout((*C.uint64_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return buf[:int(n)]
}
