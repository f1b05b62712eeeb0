package logging

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Input-driven lines are rate limited; what was suppressed is reported
// when the next period starts; Printf is never limited.
func TestLimitedfSuppressesAndReports(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, 2, 50*time.Millisecond)
	for i := 0; i < 5; i++ {
		l.Limitedf("bad line %d", i)
	}
	l.Printf("always")
	out := buf.String()
	assert.Contains(t, out, "bad line 0")
	assert.Contains(t, out, "bad line 1")
	assert.NotContains(t, out, "bad line 2")
	assert.Contains(t, out, "always")
	assert.True(t, strings.HasPrefix(out, "[triage] "), "Falco shows plugin lines with the prefix")

	time.Sleep(60 * time.Millisecond)
	l.Limitedf("next period")
	out = buf.String()
	assert.Contains(t, out, "3 similar messages suppressed")
	assert.Contains(t, out, "next period")
}
