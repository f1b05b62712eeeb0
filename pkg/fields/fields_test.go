package fields

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/event"
	"github.com/triage-dev/triage/pkg/kb"
)

// Field names are unique (Falco refuses a plugin whose fields clash,
// falco-facts.md fact 3, and a duplicate here would shadow the second) and
// ByName finds each at its index, which is its field ID.
func TestFieldNamesUniqueAndFound(t *testing.T) {
	seen := map[string]bool{}
	for i, d := range All() {
		require.False(t, seen[d.Name], "duplicate field %s", d.Name)
		seen[d.Name] = true
		id, ok := ByName(d.Name)
		require.True(t, ok, d.Name)
		assert.Equal(t, i, id)
		assert.NotEmpty(t, strings.TrimSpace(d.Desc), d.Name)
		assert.Contains(t, []string{"string", "uint64", "bool", "abstime"}, d.Type, d.Name)
	}
	_, ok := ByName("alert.nosuch")
	assert.False(t, ok)
}

// A record without correlation or risk gives those fields no value (Falco
// shows <NA>), while the alert's own fields are answered.
func TestValuesOfABareRecord(t *testing.T) {
	k, err := kb.Default()
	require.NoError(t, err)
	r := &event.Record{Alert: alert.Alert{Rule: "x", Priority: alert.PriorityWarning, Fields: []alert.Field{
		{Key: "proc.name", Kind: alert.KindString, Value: "sh"},
		{Key: "gone", Kind: alert.KindNull},
	}}}
	got := map[string]any{}
	for _, v := range Values(r, k) {
		got[v.Name] = v.Value
	}
	assert.Equal(t, "x", got["alert.rule"])
	assert.NotContains(t, got, "risk.score")
	assert.NotContains(t, got, "entity.id")

	id, _ := ByName("alert.field")
	v, ok := All()[id].Value(r, k, "proc.name")
	assert.True(t, ok)
	assert.Equal(t, "sh", v)
	_, ok = All()[id].Value(r, k, "gone")
	assert.False(t, ok, "a JSON null has no value")
	_, ok = All()[id].Value(r, k, "absent")
	assert.False(t, ok)
}

func TestMarkdownTableListsEveryField(t *testing.T) {
	table := MarkdownTable()
	for _, d := range All() {
		assert.Contains(t, table, "| `"+d.Syntax()+"` | "+d.TypeLabel()+" |")
	}
}

// mitigation.attack_ids and mitigation.recommended_ids split mitigation.ids
// by whether ATT&CK relates each to the alert's techniques.
func TestMitigationProvenanceFields(t *testing.T) {
	k, err := kb.Default()
	require.NoError(t, err)
	r := &event.Record{Alert: alert.Alert{Rule: "x"}}
	r.KB.Via = kb.ViaRuleMap
	r.KB.Techniques = []string{"T1548.001"}
	r.KB.Mitigations = []string{"M1028", "M1022"}
	got := map[string]any{}
	for _, v := range Values(r, k) {
		got[v.Name] = v.Value
	}
	assert.Equal(t, []string{"M1028", "M1022"}, got["mitigation.ids"])
	assert.Equal(t, []string{"M1028"}, got["mitigation.attack_ids"], "ATT&CK: Operating System Configuration mitigates T1548.001")
	assert.Equal(t, []string{"M1022"}, got["mitigation.recommended_ids"], "ATT&CK does not relate M1022 to T1548.001")
}
