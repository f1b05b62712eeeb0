package plugin

import (
	"bytes"
	"errors"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/logging"
)

// recoverInto turns a panic into an error naming the entry point and a
// logged stack, so Falco gets a failure code instead of an abort.
func TestRecoverIntoTurnsPanicIntoError(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, 100, time.Minute)
	run := func() (err error) {
		defer recoverInto(&err, "extract", log)
		panic(errors.New("boom"))
	}
	err := run()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "internal error in extract")
	assert.Contains(t, err.Error(), "boom")
	assert.Contains(t, buf.String(), "recovered from panic in extract")
	assert.Contains(t, buf.String(), "plugin_test.go", "the stack is logged")

	ok := func() (err error) {
		defer recoverInto(&err, "extract", log)
		return nil
	}
	assert.NoError(t, ok())
}

// Injected faults fire once per armed entry point, and never without the
// environment variable.
func TestFaultsFireOnce(t *testing.T) {
	t.Setenv(FaultEnv, "open, extract")
	f := faultsFromEnv()
	assert.Panics(t, func() { f.maybePanic("open") })
	assert.NotPanics(t, func() { f.maybePanic("open") }, "once")
	assert.NotPanics(t, func() { f.maybePanic("init") }, "not armed")
	assert.Panics(t, func() { f.maybePanic("extract") })
	t.Setenv(FaultEnv, "")
	assert.Nil(t, faultsFromEnv())
	assert.NotPanics(t, func() { faultsFromEnv().maybePanic("open") })
}

// The automatic memory limit grows with maxEntities from a floor; an
// explicit memoryLimitMiB wins, -1 and GOMEMLIMIT leave the runtime alone,
// and with several states the largest limit applies.
func TestMemoryLimit(t *testing.T) {
	c := config.Default()
	c.Correlation.MaxEntities = 1000
	assert.Equal(t, int64(128<<20), autoMemoryLimit(c), "floor")
	c.Correlation.MaxEntities = 1_000_000
	assert.Equal(t, int64(40<<20+128_000_000), autoMemoryLimit(c))

	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	memLimit.mu.Lock()
	memLimit.set = 0
	memLimit.mu.Unlock()
	var buf bytes.Buffer
	log := logging.New(&buf, 100, time.Minute)

	t.Setenv("GOMEMLIMIT", "")
	c.MemoryLimitMiB = 300
	applyMemoryLimit(c, log)
	assert.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1))
	c.MemoryLimitMiB = 200
	applyMemoryLimit(c, log)
	assert.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1), "a smaller limit of a second state does not lower it")
	c.MemoryLimitMiB = -1
	applyMemoryLimit(c, log)
	assert.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "1GiB")
	c.MemoryLimitMiB = 0
	applyMemoryLimit(c, log)
	assert.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1), "GOMEMLIMIT wins over the automatic limit")
	assert.Equal(t, 1, strings.Count(buf.String(), "memory limit of the plugin's Go runtime"))
}
