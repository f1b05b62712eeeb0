// Command miniplugin is a throwaway Falco plugin used only to self-test the
// harness package. Build with:
//
//	go build -buildmode=c-shared -o libmini.so ./test/harness/testdata/miniplugin
//
// Source "mini" (ID 999999) emits N events with payload "evt-<i>", i = 1..N,
// then EOF. Init config (JSON):
//
//	n            number of events (default 3)
//	batch        max events per next_batch (default: SDK batch size)
//	timeouts     TIMEOUTs (with 0 events) returned before the first event
//	failOnOpen   plugin_open fails
//	failInit     if set, plugin_init fails with this message
//	zeroSuccess  next_batch returns SUCCESS with 0 events (protocol violation)
//
// Fields: mini.str, mini.num, mini.list (list), mini.key[KEY] (required key;
// KEY "missing" -> no value, KEY "fail" -> extraction error), mini.idx[N]
// (optional index), mini.even (bool), mini.ts (abstime), mini.dur (reltime).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/extractor"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/source"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/symbols/extract"
)

type config struct {
	N           int    `json:"n"`
	Batch       int    `json:"batch"`
	Timeouts    int    `json:"timeouts"`
	FailOnOpen  bool   `json:"failOnOpen"`
	FailInit    string `json:"failInit"`
	ZeroSuccess bool   `json:"zeroSuccess"`
	Sync        bool   `json:"sync"` // turn plugin-sdk-go's async extraction off for this state
}

const schema = `{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "n": {"type": "integer", "minimum": 0},
    "batch": {"type": "integer", "minimum": 0},
    "timeouts": {"type": "integer", "minimum": 0},
    "failOnOpen": {"type": "boolean"},
    "failInit": {"type": "string"},
    "sync": {"type": "boolean"},
    "zeroSuccess": {"type": "boolean"}
  }
}`

type miniPlugin struct {
	plugins.BasePlugin
	cfg config
}

type miniInstance struct {
	source.BaseInstance
	cfg      config
	next     int
	timeouts int
}

func (p *miniPlugin) Info() *plugins.Info {
	return &plugins.Info{
		ID:                  999999,
		Name:                "mini",
		Description:         "harness self-test plugin",
		Contact:             "github.com/triage-dev/triage",
		Version:             "0.1.0",
		EventSource:         "mini",
		ExtractEventSources: []string{"mini"},
	}
}

func (p *miniPlugin) InitSchema() *sdk.SchemaInfo {
	return &sdk.SchemaInfo{Schema: schema}
}

func (p *miniPlugin) Init(cfg string) error {
	p.cfg = config{N: 3}
	if cfg != "" {
		if err := json.Unmarshal([]byte(cfg), &p.cfg); err != nil {
			return fmt.Errorf("mini: bad config: %w", err)
		}
	}
	if p.cfg.FailInit != "" {
		return errors.New(p.cfg.FailInit)
	}
	if p.cfg.N < 0 {
		return fmt.Errorf("mini: n must be >= 0, got %d", p.cfg.N)
	}
	extract.SetAsync(!p.cfg.Sync) // read by the SDK right after this init
	return nil
}

func (p *miniPlugin) OpenParams() ([]sdk.OpenParam, error) {
	return []sdk.OpenParam{{Value: "default", Desc: "the only stream"}}, nil
}

func (p *miniPlugin) Open(params string) (source.Instance, error) {
	if p.cfg.FailOnOpen {
		return nil, fmt.Errorf("mini: open failed (params=%q)", params)
	}
	return &miniInstance{cfg: p.cfg, timeouts: p.cfg.Timeouts}, nil
}

func (i *miniInstance) NextBatch(_ sdk.PluginState, evts sdk.EventWriters) (int, error) {
	if i.cfg.ZeroSuccess {
		return 0, nil
	}
	if i.timeouts > 0 {
		i.timeouts--
		return 0, sdk.ErrTimeout
	}
	if i.next >= i.cfg.N {
		return 0, sdk.ErrEOF
	}
	max := evts.Len()
	if i.cfg.Batch > 0 && i.cfg.Batch < max {
		max = i.cfg.Batch
	}
	n := 0
	for n < max && i.next < i.cfg.N {
		i.next++
		w := evts.Get(n)
		if _, err := w.Writer().Write([]byte("evt-" + strconv.Itoa(i.next))); err != nil {
			return 0, err
		}
		// Event writers are reused across batches and keep their previous
		// timestamp, so always set it. UINT64_MAX = "framework, use now".
		if i.next%2 == 0 {
			w.SetTimestamp(uint64(1_000_000 + i.next))
		} else {
			w.SetTimestamp(math.MaxUint64)
		}
		n++
	}
	return n, nil
}

func (i *miniInstance) Progress(_ sdk.PluginState) (float64, string) {
	if i.cfg.N == 0 {
		return 1, "0/0"
	}
	return float64(i.next) / float64(i.cfg.N), fmt.Sprintf("%d/%d", i.next, i.cfg.N)
}

func (p *miniPlugin) String(evt sdk.EventReader) (string, error) {
	b, err := io.ReadAll(evt.Reader())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("mini #%d: %s", evt.EventNum(), b), nil
}

func (p *miniPlugin) Fields() []sdk.FieldEntry {
	return []sdk.FieldEntry{
		{Type: "string", Name: "mini.str", Display: "Payload", Desc: "the event payload"},
		{Type: "uint64", Name: "mini.num", Display: "Number", Desc: "the event's sequence number"},
		{Type: "string", Name: "mini.list", IsList: true, Desc: "payload split on '-'"},
		{Type: "string", Name: "mini.key", Desc: "KEY@payload", Arg: sdk.FieldEntryArg{IsRequired: true, IsKey: true}},
		{Type: "uint64", Name: "mini.idx", Desc: "number + index", Arg: sdk.FieldEntryArg{IsIndex: true}},
		{Type: "bool", Name: "mini.even", Desc: "number is even", Properties: []string{"info"}},
		{Type: "abstime", Name: "mini.ts", Desc: "event timestamp"},
		{Type: "reltime", Name: "mini.dur", Desc: "number milliseconds"},
		{Type: "uint64", Name: "mini.const", Desc: "always 42, answered without reading the event (the cost floor of one extraction)"},
	}
}

func (p *miniPlugin) Extract(req sdk.ExtractRequest, evt sdk.EventReader) error {
	if req.FieldID() == 8 { // mini.const
		req.SetValue(uint64(42))
		return nil
	}
	b, err := io.ReadAll(evt.Reader())
	if err != nil {
		return err
	}
	payload := string(b)
	num, _ := strconv.ParseUint(strings.TrimPrefix(payload, "evt-"), 10, 64)
	switch req.Field() {
	case "mini.str":
		req.SetValue(payload)
		req.SetValueOffset(0, uint32(len(payload)))
	case "mini.num":
		req.SetValue(num)
		req.SetValueOffset(4, uint32(len(payload)-4))
	case "mini.list":
		req.SetValue(strings.Split(payload, "-"))
	case "mini.key":
		switch req.ArgKey() {
		case "missing":
		case "fail":
			return fmt.Errorf("mini: extraction of %s[fail] failed on event %d", req.Field(), evt.EventNum())
		default:
			req.SetValue(req.ArgKey() + "@" + payload)
		}
	case "mini.idx":
		if req.ArgPresent() {
			req.SetValue(num + req.ArgIndex())
		} else {
			req.SetValue(num)
		}
	case "mini.even":
		req.SetValue(num%2 == 0)
	case "mini.ts":
		req.SetValue(time.Unix(0, int64(evt.Timestamp())))
	case "mini.dur":
		req.SetValue(time.Duration(num) * time.Millisecond)
	default:
		return fmt.Errorf("mini: unknown field %s (id %d)", req.Field(), req.FieldID())
	}
	return nil
}

func init() {
	plugins.SetFactory(func() plugins.Plugin {
		p := &miniPlugin{}
		source.Register(p)
		extractor.Register(p)
		return p
	})
}

func main() {}
