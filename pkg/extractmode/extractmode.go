// Package extractmode turns plugin-sdk-go's async field extraction on or
// off per plugin init (init_config useAsync) and keeps the SDK's
// bookkeeping of it balanced when an init fails.
//
// Only plugin/main.go imports it: it links the SDK's extraction symbols.
//
// Why the balancing: extractor.Register makes the SDK call StartAsync after
// every successful plugin_init and, once one has succeeded, StopAsync in
// every plugin_destroy, including the destroy of a state whose init failed
// (Falco destroys those too). StopAsync without a matching StartAsync
// panics inside plugin_destroy ("async worker stopped without being
// started" or "worker 0 can't be stopped"), where no recover of ours can
// run, and the panic aborts Falco. A failed init therefore makes one
// StartAsync with async disabled, which only counts the state and starts
// nothing, so the destroy that follows finds its count.
package extractmode

import (
	"sync"

	"github.com/falcosecurity/plugin-sdk-go/pkg/cgo"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/symbols/extract"
)

var (
	mu sync.Mutex
	// stopHookArmed is true once an init succeeded in this process: from
	// then on the SDK runs StopAsync in every plugin_destroy.
	stopHookArmed bool
)

// AfterInit must run at the end of every plugin Init, with the init's
// error and the useAsync setting of its config. The SDK runs Init calls one
// after another and calls StartAsync right after a successful one returns,
// so the switch set here applies to that state only.
func AfterInit(useAsync bool, initErr error) {
	mu.Lock()
	defer mu.Unlock()
	if initErr == nil {
		extract.SetAsync(useAsync)
		stopHookArmed = true
		return
	}
	if !stopHookArmed {
		return // no StopAsync will run for this state's destroy
	}
	previous := extract.Async()
	extract.SetAsync(false)
	// With async disabled StartAsync only counts; the handle is not used.
	extract.StartAsync(cgo.Handle(1))
	extract.SetAsync(previous)
}
