// Package plugin is triage's Falco plugin: info, init config, the
// falco_alert event source and field extraction. plugin/main.go only
// registers it with plugin-sdk-go.
//
// Every method the SDK calls recovers from panics: a Go panic that crossed
// the cgo boundary would abort Falco.
package plugin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/falcosecurity/plugin-sdk-go/pkg/ptr"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/source"

	"github.com/triage-dev/triage/pkg/cabi"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/fields"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/logging"
)

const (
	// PluginID is triage's plugin ID, in the range Falco reserves for
	// plugins not (yet) registered upstream (1073741824–2147483647).
	PluginID = 1213346887
	// PluginName is the name used in falco.yaml's plugins and load_plugins.
	PluginName = "triage"
	// EventSource is the name of triage's event source; rules on it say
	// `source: falco_alert`.
	EventSource = ingest.LoopSource
	// RequiredAPIVersion is the plugin API version of plugin-sdk-go
	// v0.8.3, first shipped in Falco 0.41.
	RequiredAPIVersion = "3.11.0"
)

// Version is the plugin version. Builds may override it with
// -ldflags "-X github.com/triage-dev/triage/pkg/plugin.Version=…".
var Version = "0.1.0"

// Plugin is one plugin state (Falco creates one per source thread).
type Plugin struct {
	plugins.BasePlugin

	cfg      config.Config
	log      *logging.Logger
	counters ingest.Counters
	faults   *faults
	engine   *engine.Engine

	// afterInit, when set, runs at the end of every Init with the useAsync
	// setting and the init's error (plugin/main.go: pkg/extractmode).
	afterInit func(useAsync bool, err error)

	// Extraction cache: the last decoded event, so all fields of one
	// event are answered from a single decode.
	cachedNum uint64
	cachedTS  uint64
	cachedOK  bool
	cachedErr error
	record    event.Record
	payload   bytes.Buffer
}

// New returns a plugin state with default config.
func New() *Plugin {
	p := &Plugin{log: logging.Default()}
	p.cfg.Reset()
	return p
}

// Info describes the plugin.
func (p *Plugin) Info() *plugins.Info {
	return &plugins.Info{
		ID:                  PluginID,
		Name:                PluginName,
		Description:         "Triage for Falco alerts: ingests alerts (webhook, file) as the falco_alert source and gives rules their ATT&CK mapping, mitigations, risk and correlation",
		Contact:             "github.com/triage-dev/triage",
		Version:             Version,
		RequiredAPIVersion:  RequiredAPIVersion,
		EventSource:         EventSource,
		ExtractEventSources: []string{EventSource},
	}
}

// InitSchema returns the JSON schema of init_config.
func (p *Plugin) InitSchema() *sdk.SchemaInfo {
	s, err := config.Schema()
	if err != nil {
		return nil
	}
	return &sdk.SchemaInfo{Schema: s}
}

// SetAfterInit sets a function run at the end of every Init, successful or
// not, with the config's useAsync and Init's error.
func (p *Plugin) SetAfterInit(fn func(useAsync bool, err error)) { p.afterInit = fn }

// Init parses init_config. A bad value is an error naming the key.
func (p *Plugin) Init(cfg string) (err error) {
	defer p.runAfterInit(&err) // deferred first: runs after the recover below
	defer recoverInto(&err, "init", nil)
	p.faults = faultsFromEnv()
	p.faults.maybePanic("init")
	c, err := config.Parse(cfg)
	if err != nil {
		return err
	}
	p.cfg = c
	for _, n := range c.Notes {
		p.log.Printf("%s", n)
	}
	applyMemoryLimit(c, p.log)
	// Before plugin-sdk-go would install its own pool (see pkg/cabi).
	p.SetExtractRequests(cabi.NewRequestPool())
	if p.engine, err = engine.New(c); err != nil {
		return fmt.Errorf("knowledge base: %w", err)
	}
	if live.add(p) == 1 {
		startProfile(p.log)
	}
	return nil
}

func (p *Plugin) runAfterInit(err *error) {
	if p.afterInit == nil {
		return
	}
	defer recoverInto(err, "init", nil)
	async := *err == nil && p.cfg.UseAsync
	p.afterInit(async, *err)
	if async {
		p.log.Printf("field extraction: async requested (plugin-sdk-go runs it only when GOMAXPROCS > 1; here %d)", runtime.GOMAXPROCS(0))
	}
}

// live lists the plugin states whose Init succeeded and that are not yet
// destroyed, oldest first. plugin-sdk-go v0.8.3 sends every plugin_open to
// the plugin object its factory made last, whatever state Falco passes, and
// the factory runs for failed inits too: Open forwards to the newest live
// state instead, so an input never opens with the defaults (and no engine)
// of a failed init, which would e.g. drop the webhook's TLS and secret.
var live liveStates

type liveStates struct {
	mu     sync.Mutex
	states []*Plugin
}

// add records p and returns how many states are live.
func (l *liveStates) add(p *Plugin) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.states = append(l.states, p)
	return len(l.states)
}

// remove forgets p and reports whether it was the last live state.
func (l *liveStates) remove(p *Plugin) (wasLast bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.states, p)
	if i < 0 {
		return false
	}
	l.states = slices.Delete(l.states, i, i+1)
	return len(l.states) == 0
}

func (l *liveStates) latest() *Plugin {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.states) == 0 {
		return nil
	}
	return l.states[len(l.states)-1]
}

// errNoError is what LastError reports before anything failed.
var errNoError = errors.New("no error")

// LastError never returns nil: plugin-sdk-go v0.8.3 calls Error() on it,
// so a host asking before any failure would otherwise abort.
func (p *Plugin) LastError() error {
	if err := p.BasePlugin.LastError(); err != nil {
		return err
	}
	return errNoError
}

// Destroy releases the plugin state.
func (p *Plugin) Destroy() {
	defer recoverInto(nil, "destroy", p.log)
	if live.remove(p) {
		stopProfile()
	}
	p.faults.maybePanic("destroy")
	p.log.Printf("destroyed; totals: %s", p.counters.Snapshot())
}

// Counters exposes the plugin's counters (tests, CLI).
func (p *Plugin) Counters() *ingest.Counters { return &p.counters }

// Config returns the active configuration.
func (p *Plugin) Config() config.Config { return p.cfg }

// OpenParams suggests values for open_params.
func (p *Plugin) OpenParams() ([]sdk.OpenParam, error) {
	return []sdk.OpenParam{
		{Value: config.DefaultOpenParams, Desc: "Webhook on loopback for Falco's http_output or Falcosidekick's webhook (the default)"},
		{Value: "file:///var/log/falco/events.json", Desc: "Follow Falco's file_output like tail -F"},
		{Value: "/path/to/alerts.jsonl", Desc: "Read an NDJSON file of alerts once, then stop"},
	}, nil
}

// Open starts the input named by open_params.
func (p *Plugin) Open(params string) (inst source.Instance, err error) {
	defer recoverInto(&err, "open", p.log)
	if q := live.latest(); q != nil {
		p = q
	}
	p.faults.maybePanic("open")
	i, err := newInstance(p, params)
	if err != nil {
		return nil, err // a typed nil would look like a valid instance
	}
	return i, nil
}

// Fields lists the exported fields; a field's ID is its index.
func (p *Plugin) Fields() []sdk.FieldEntry {
	defs := fields.All()
	out := make([]sdk.FieldEntry, len(defs))
	for i, d := range defs {
		out[i] = sdk.FieldEntry{
			Name:    d.Name,
			Type:    d.Type,
			IsList:  d.List,
			Display: d.Display,
			Desc:    d.Desc,
		}
		if d.KeyArg {
			out[i].Arg = sdk.FieldEntryArg{IsKey: true, IsRequired: true}
		}
	}
	return out
}

// Extract answers one field of one event. The payload is decoded once per
// event number; every further field of that event is a lookup.
func (p *Plugin) Extract(req sdk.ExtractRequest, evt sdk.EventReader) (err error) {
	defer recoverInto(&err, "extract", p.log)
	p.faults.maybePanic("extract")
	rec, err := p.decoded(evt)
	if err != nil {
		return err
	}
	defs := fields.All()
	id := req.FieldID()
	if id >= uint64(len(defs)) {
		return fmt.Errorf("unknown field ID %d (triage has %d fields)", id, len(defs))
	}
	d := &defs[id]
	key := ""
	if d.KeyArg {
		if !req.ArgPresent() || req.ArgKey() == "" {
			return fmt.Errorf("field %s requires a key, e.g. %s[proc.exepath]", d.Name, d.Name)
		}
		key = req.ArgKey()
	}
	if v, ok := d.Value(rec, p.engine.KB(), key); ok {
		req.SetValue(v)
	}
	return nil
}

func (p *Plugin) decoded(evt sdk.EventReader) (*event.Record, error) {
	num, ts := evt.EventNum(), evt.Timestamp()
	if p.cachedOK && num == p.cachedNum && ts == p.cachedTS {
		return &p.record, p.cachedErr
	}
	p.cachedOK = false
	data, err := p.payloadOf(evt)
	if err != nil {
		return nil, fmt.Errorf("event %d: cannot read payload: %w", num, err)
	}
	p.cachedErr = event.Decode(data, &p.record)
	if p.cachedErr != nil {
		p.cachedErr = fmt.Errorf("event %d: %w", num, p.cachedErr)
	}
	p.cachedNum, p.cachedTS, p.cachedOK = num, ts, true
	return &p.record, p.cachedErr
}

// payloadOf returns the event's payload. plugin-sdk-go's reader copies one
// byte per loop iteration; when it exposes the event's memory (it does in
// v0.8.3) the payload is read from there directly. The slice is only valid
// during this call: Decode copies what it keeps.
func (p *Plugin) payloadOf(evt sdk.EventReader) ([]byte, error) {
	r := evt.Reader()
	if mem, ok := r.(ptr.BytesReadWriter); ok && mem.BufferPtr() != nil {
		return unsafe.Slice((*byte)(mem.BufferPtr()), mem.Len()), nil
	}
	p.payload.Reset()
	if _, err := p.payload.ReadFrom(r); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return p.payload.Bytes(), nil
}

// String renders an event as one line: priority, rule, host, source.
func (p *Plugin) String(evt sdk.EventReader) (s string, err error) {
	defer recoverInto(&err, "event_to_string", p.log)
	p.faults.maybePanic("event_to_string")
	var data bytes.Buffer
	if _, err := data.ReadFrom(evt.Reader()); err != nil {
		return "", err
	}
	var r event.Record
	if err := event.Decode(data.Bytes(), &r); err != nil {
		return "", err
	}
	a := &r.Alert
	var b strings.Builder
	b.WriteString(a.Priority.String())
	b.WriteString(" rule=")
	b.WriteString(strconv.Quote(a.Rule))
	for _, kv := range [...][2]string{{"hostname", a.Hostname}, {"source", a.Source}} {
		if kv[1] != "" {
			b.WriteString(" " + kv[0] + "=" + strconv.Quote(kv[1]))
		}
	}
	return b.String(), nil
}
