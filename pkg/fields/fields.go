// Package fields defines every field triage exports to Falco rules and how
// each is answered from a decoded event. The list is the single source of
// truth: the plugin's field table, field IDs (the index in the list), the
// README table and the CLI all come from it, so they cannot drift apart.
package fields

import (
	"fmt"
	"strings"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
)

// Falco field types used by triage.
const (
	TypeString  = "string"
	TypeUint64  = "uint64"
	TypeAbsTime = "abstime"
	TypeBool    = "bool"
)

// Def describes one field.
type Def struct {
	Name    string
	Type    string
	List    bool
	Display string
	Desc    string
	// KeyArg marks fields written name[KEY]; the key is then required.
	KeyArg bool
	// Value answers the field for one record. ok=false means "no value"
	// (Falco then treats the field as absent), never an error.
	Value func(r *event.Record, k *kb.KB, key string) (v any, ok bool)
}

// defs is the field list; a field's ID is its index, so new fields are
// appended, never inserted.
var defs = concat(alertDefs, knowledgeDefs, riskDefs, correlationDefs, outcomeDefs, talonDefs)

func concat(lists ...[]Def) []Def {
	var out []Def
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

var alertDefs = []Def{
	{Name: "alert.rule", Type: TypeString, Display: "Rule",
		Desc:  "Name of the Falco rule that raised the alert.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return nonEmpty(r.Alert.Rule) }},
	{Name: "alert.priority", Type: TypeString, Display: "Priority",
		Desc:  "Priority of the alert in Falco's casing (Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug), whatever casing the input used.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return r.Alert.Priority.String(), true }},
	{Name: "alert.priority.rank", Type: TypeUint64, Display: "Priority rank",
		Desc:  "Priority as a number, higher is more severe: Debug 0, Informational 1, Notice 2, Warning 3, Error 4, Critical 5, Alert 6, Emergency 7.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return uint64(r.Alert.Priority), true }},
	{Name: "alert.source", Type: TypeString, Display: "Alert source",
		Desc:  "Event source of the original alert (syscall, k8s_audit, aws_cloudtrail, …).",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return nonEmpty(r.Alert.Source) }},
	{Name: "alert.hostname", Type: TypeString, Display: "Hostname",
		Desc:  "Hostname of the Falco instance that raised the alert.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return nonEmpty(r.Alert.Hostname) }},
	{Name: "alert.time", Type: TypeAbsTime, Display: "Alert time",
		Desc:  "Time of the original alert (also the timestamp of the triage event).",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return time.Unix(0, r.Alert.Time), true }},
	{Name: "alert.uuid", Type: TypeString, Display: "Alert UUID",
		Desc:  "UUID that Falcosidekick adds to each alert; no value for alerts straight from Falco.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return nonEmpty(r.Alert.UUID) }},
	{Name: "alert.output", Type: TypeString, Display: "Alert output",
		Desc:  "Formatted output line of the original alert.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) { return nonEmpty(r.Alert.Output) }},
	{Name: "alert.tags", Type: TypeString, List: true, Display: "Alert tags",
		Desc: "Tags of the rule that raised the alert.",
		Value: func(r *event.Record, _ *kb.KB, _ string) (any, bool) {
			if len(r.Alert.Tags) == 0 {
				return nil, false
			}
			return r.Alert.Tags, true
		}},
	{Name: "alert.field", Type: TypeString, KeyArg: true, Display: "Alert output field",
		Desc: "Value of one output field of the original alert, by its key, e.g. alert.field[proc.exepath]. Numbers in decimal as written, booleans as true/false, arrays and objects as compact JSON text; null or absent keys have no value.",
		Value: func(r *event.Record, _ *kb.KB, key string) (any, bool) {
			f, ok := r.Alert.Field(key)
			if !ok || f.Kind == alert.KindNull {
				return nil, false
			}
			return f.Value, true
		}},
}

// All returns the field definitions; a field's ID is its index.
func All() []Def { return defs }

// ByName returns the ID of the named field.
func ByName(name string) (int, bool) {
	for i := range defs {
		if defs[i].Name == name {
			return i, true
		}
	}
	return 0, false
}

func nonEmpty(s string) (any, bool) {
	if s == "" {
		return nil, false
	}
	return s, true
}

// Syntax returns how a rule writes the field, e.g. "alert.field[KEY]".
func (d Def) Syntax() string {
	if d.KeyArg {
		return d.Name + "[KEY]"
	}
	return d.Name
}

// TypeLabel is the type as the field table shows it, e.g. "list[string]".
func (d Def) TypeLabel() string {
	if d.List {
		return "list[" + d.Type + "]"
	}
	return d.Type
}

// MarkdownTable renders the field list as the README's table.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| Name | Type | Description |\n|------|------|-------------|\n")
	for _, d := range defs {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", d.Syntax(), d.TypeLabel(), strings.ReplaceAll(d.Desc, "|", "\\|"))
	}
	return b.String()
}

// NamedValue is one field's value for a record.
type NamedValue struct {
	Name  string
	Value any
}

// Values returns every field that has a value for r, in field-list order.
// Fields that need a key argument are left out: their keys come from the
// alert itself.
func Values(r *event.Record, k *kb.KB) []NamedValue {
	out := make([]NamedValue, 0, len(defs))
	for i := range defs {
		if defs[i].KeyArg {
			continue
		}
		if v, ok := defs[i].Value(r, k, ""); ok {
			out = append(out, NamedValue{Name: defs[i].Name, Value: v})
		}
	}
	return out
}
