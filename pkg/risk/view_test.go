package risk

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/internal/shareddata"
	"github.com/triage-dev/triage/pkg/alert"
)

// referenceValue is what scoring asked of an alert before fieldView: the
// first field of the key, if present, not null, not empty and not "<NA>".
func referenceValue(a *alert.Alert, key string) (string, bool) {
	f, ok := a.Field(key)
	if !ok || f.Kind == alert.KindNull || f.Value == "" || f.Value == "<NA>" {
		return "", false
	}
	return f.Value, true
}

// TestFieldViewMatchesFieldLookups compares the one-pass view with a
// lookup per key over every sample alert and over hand-made alerts with
// duplicate keys, nulls, empty and "<NA>" values.
func TestFieldViewMatchesFieldLookups(t *testing.T) {
	var alerts []*alert.Alert
	var p alert.Parser
	for _, line := range shareddata.Lines("alerts/upstream-rules.jsonl") {
		a, err := p.Parse(line)
		require.NoError(t, err)
		alerts = append(alerts, a)
	}
	if len(alerts) == 0 {
		t.Log("../shared/data not present: hand-made alerts only")
	}
	for _, fields := range [][]alert.Field{
		{{Key: "user.uid", Kind: alert.KindNull}, {Key: "user.uid", Kind: alert.KindNumber, Value: "0"}},
		{{Key: "user.uid", Kind: alert.KindNumber, Value: "0"}, {Key: "user.uid", Kind: alert.KindNumber, Value: "1000"}},
		{{Key: "proc.exepath", Kind: alert.KindString, Value: "<NA>"}, {Key: "proc.exe", Kind: alert.KindString, Value: "/tmp/x"}},
		{{Key: "k8s.ns.name", Kind: alert.KindString, Value: ""}, {Key: "ka.target.namespace", Kind: alert.KindString, Value: "kube-system"}},
		{{Key: "container.privileged", Kind: alert.KindBool, Value: "true"}, {Key: "fd.rip", Kind: alert.KindString, Value: "8.8.8.8"}},
		{{Key: "unrelated", Kind: alert.KindString, Value: "x"}},
		nil,
	} {
		alerts = append(alerts, &alert.Alert{Rule: "r", Fields: fields})
	}
	var v fieldView
	for i, a := range alerts {
		v.fill(a)
		for k, key := range keyNames {
			want, wantOK := referenceValue(a, key)
			got, gotOK := v.value(k)
			assert.Equal(t, wantOK, gotOK, "alert %d key %s", i, key)
			assert.Equal(t, want, got, "alert %d key %s", i, key)
		}
	}
}
