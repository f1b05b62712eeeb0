package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/event"
)

func parse(t *testing.T, line string) *alert.Alert {
	t.Helper()
	var p alert.Parser
	var a alert.Alert
	require.NoError(t, p.ParseInto([]byte(line), &a))
	return &a
}

// One upstream rule through the engine: the knowledge base maps it by
// name, risk scores it, correlation places it on its container.
func TestProcessFillsEveryPart(t *testing.T) {
	e, err := New(config.Default())
	require.NoError(t, err)
	a := parse(t, `{"rule":"Fileless execution via memfd_create","priority":"Critical","source":"syscall","hostname":"node-7",
		"time":"2026-11-21T09:14:00Z","tags":["maturity_stable","mitre_defense_evasion","T1620"],
		"output_fields":{"container.id":"0123456789ab","user.uid":0}}`)
	var rec event.Record
	e.Process(a, &rec)
	assert.Equal(t, "Fileless execution via memfd_create", rec.Alert.Rule)
	assert.Contains(t, rec.KB.Techniques, "T1620", "Reflective Code Loading, ATT&CK's technique for memfd execution")
	assert.Equal(t, "container", rec.KB.Env)
	assert.True(t, rec.Risk.Scored)
	assert.GreaterOrEqual(t, int(rec.Risk.Score), 74, "a stable critical rule run as root scores critical")
	assert.Equal(t, "container:node-7/0123456789ab", rec.Corr.EntityID)
	assert.True(t, rec.Corr.DedupFirst)
	assert.EqualValues(t, 1, rec.Corr.Alerts)
}

// State changes once per Process call, in arrival order: the same alert
// again is a repeat of its rule on its entity.
func TestProcessAppliesCorrelationOncePerAlert(t *testing.T) {
	e, err := New(config.Default())
	require.NoError(t, err)
	line := `{"rule":"Terminal shell in container","priority":"Notice","source":"syscall","hostname":"n1",
		"time":"%s","tags":["mitre_execution"],"output_fields":{"container.id":"abcdefabcdef"}}`
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	var rec event.Record
	for i := 0; i < 3; i++ {
		e.Process(parse(t, fmt.Sprintf(line, at.Add(time.Duration(i)*time.Minute).Format(time.RFC3339))), &rec)
	}
	assert.EqualValues(t, 3, rec.Corr.DedupCount)
	assert.False(t, rec.Corr.DedupFirst, "a plain repeat")
	assert.EqualValues(t, 1, e.Tracker().Tracked())
}

// A custom rule the knowledge base does not know falls back to its tags.
func TestProcessCustomRuleUsesTags(t *testing.T) {
	e, err := New(config.Default())
	require.NoError(t, err)
	var rec event.Record
	e.Process(parse(t, `{"rule":"My own rule","priority":"Warning","time":"2026-11-21T09:00:00Z","tags":["T1059.004"]}`), &rec)
	assert.Equal(t, []string{"T1059.004"}, rec.KB.Techniques)
	assert.Equal(t, "host", rec.KB.Env)
}
