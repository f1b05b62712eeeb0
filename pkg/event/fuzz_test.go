package event_test

import (
	"bytes"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/triage-dev/triage/internal/shareddata"
	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/fields"
	"github.com/triage-dev/triage/pkg/kb"
)

var (
	kbOnce sync.Once
	theKB  *kb.KB
	kbErr  error
)

func embeddedKB(t testing.TB) *kb.KB {
	kbOnce.Do(func() { theKB, kbErr = kb.Default() })
	if kbErr != nil {
		t.Fatal(kbErr)
	}
	return theKB
}

// seedPayloads encodes every alert of ../shared/data/alerts through the
// engine (knowledge base, risk, correlation), so seeds carry every section
// kind; absent data means only the hand-made seeds.
func seedPayloads(f *testing.F) {
	eng, err := engine.New(config.Default())
	if err != nil {
		f.Fatal(err)
	}
	var p alert.Parser
	for _, line := range shareddata.Lines("alerts/*.jsonl") {
		a, err := p.Parse(line)
		if err != nil {
			continue
		}
		var rec event.Record
		eng.Process(a, &rec)
		f.Add(event.Encode(nil, &rec), "proc.name")
	}
	minimal := event.Record{Alert: alert.Alert{Rule: "r", Priority: alert.Priority(3), Time: 1}}
	f.Add(event.Encode(nil, &minimal), "")
	f.Add([]byte{}, "")
	f.Add([]byte("TRG"), "k")
	f.Add([]byte("TRG\x01"), "k")
	f.Add([]byte("TRG\x02\x01\x01r"), "k")
	f.Add([]byte("TRG\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), "k")
	f.Add([]byte("TRG\x01\x09\x01\x00"), "k")                     // field section too short
	f.Add([]byte("TRG\x01\x1a\x03\x00\x00\x00"), "k")             // correlation section cut short
	f.Add([]byte("TRG\x01\x18\x01\x65\x02\x01\x09\x05\x00"), "k") // risk score 101
}

// FuzzDecodeExtract decodes arbitrary payloads and, for every one that
// decodes, answers every field the way extraction does (with the embedded
// knowledge base; key fields with each of the alert's keys and a fuzzed
// one). Nothing may panic, values must have the field's declared type and
// valid UTF-8, and re-encoding a decoded record must decode to the same
// record.
func FuzzDecodeExtract(f *testing.F) {
	seedPayloads(f)
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		k := embeddedKB(t)
		var rec event.Record
		if err := event.Decode(data, &rec); err != nil {
			return
		}
		defs := fields.All()
		for i := range defs {
			d := &defs[i]
			keys := []string{""}
			if d.KeyArg {
				keys = []string{key}
				for _, fl := range rec.Alert.Fields {
					keys = append(keys, fl.Key)
				}
			}
			for _, key := range keys {
				v, ok := d.Value(&rec, k, key)
				if ok {
					checkValue(t, d, v)
				}
			}
		}
		for _, nv := range fields.Values(&rec, k) {
			if nv.Value == nil {
				t.Fatalf("%s: nil value reported as present", nv.Name)
			}
		}
		var again event.Record
		enc := event.Encode(nil, &rec)
		if err := event.Decode(enc, &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		want := rec
		if !want.Risk.Scored {
			want.Risk.Factors = nil // factors without a score are not written back
		}
		if !reflect.DeepEqual(want, again) {
			t.Fatalf("re-encoding changed the record:\nfirst  %#v\nsecond %#v", want, again)
		}
		if !bytes.Equal(enc, event.Encode(nil, &again)) {
			t.Fatal("encoding is not deterministic")
		}
	})
}

func checkValue(t *testing.T, d *fields.Def, v any) {
	t.Helper()
	str := func(string) {
		if d.Type != fields.TypeString {
			t.Fatalf("%s: string value for a %s field", d.Name, d.Type)
		}
	}
	switch x := v.(type) {
	case string:
		if d.List {
			t.Fatalf("%s: scalar value for a list field", d.Name)
		}
		str(x)
	case []string:
		if !d.List {
			t.Fatalf("%s: list value for a scalar field", d.Name)
		}
		for _, s := range x {
			str(s)
		}
	case time.Time:
		if d.Type != fields.TypeAbsTime {
			t.Fatalf("%s: time value for a %s field", d.Name, d.Type)
		}
	case uint64:
		if d.Type != fields.TypeUint64 {
			t.Fatalf("%s: uint64 value for a %s field", d.Name, d.Type)
		}
	case bool:
		if d.Type != fields.TypeBool {
			t.Fatalf("%s: bool value for a %s field", d.Name, d.Type)
		}
	default:
		t.Fatalf("%s: value of type %T", d.Name, v)
	}
}
