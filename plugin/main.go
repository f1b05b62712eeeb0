//go:build !triage_async

// Command plugin is built with -buildmode=c-shared into libtriage.so. It only
// registers the plugin; everything else lives in pkg/.
package main

import (
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/source"
	_ "github.com/falcosecurity/plugin-sdk-go/pkg/sdk/symbols/extract"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/symbols/fields"

	"github.com/triage-dev/triage/pkg/plugin"
)

func init() {
	plugins.SetFactory(func() plugins.Plugin {
		p := plugin.New()
		source.Register(p)
		// Field extraction is registered by hand instead of with
		// extractor.Register: in plugin-sdk-go v0.8.3 that also installs
		// the async-extraction hooks, whose destroy hook panics (and aborts
		// Falco) when Falco destroys the state of a failed init after any
		// successful one. Extraction then always runs synchronously.
		fields.SetFields(p.Fields())
		return p
	})
}

func main() {}
