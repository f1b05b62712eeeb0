package extractmode

import (
	"errors"
	"testing"

	"github.com/falcosecurity/plugin-sdk-go/pkg/cgo"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/symbols/extract"
	"github.com/stretchr/testify/assert"
)

// The SDK's sequence with two states, the second of whose init fails:
// init ok -> StartAsync; init fails -> (no StartAsync by the SDK); then a
// StopAsync in each plugin_destroy. AfterInit must make the counts match,
// or the second StopAsync panics (inside plugin_destroy, aborting Falco).
// Run with async off so no worker goroutine spins. Without AfterInit's
// extra start (checked by removing it) the second StopAsync panics.
func TestFailedInitKeepsAsyncStartsAndStopsBalanced(t *testing.T) {
	h := cgo.Handle(1)
	AfterInit(false, nil)
	extract.StartAsync(h) // the SDK, after the successful init
	AfterInit(true, errors.New("bad config"))
	assert.False(t, extract.Async(), "a failed init leaves the previous setting in place")
	assert.NotPanics(t, func() {
		extract.StopAsync(h) // destroy of the failed state
		extract.StopAsync(h) // destroy of the good state
	})
}
