//go:build triage_async

// Command plugin, built with -tags triage_async, is the variant with
// plugin-sdk-go's async extraction: extractor.Register installs the hooks
// that start a spinning worker after init. It exists to measure async
// against the default synchronous build (docs/performance.md); it is not
// what `make` builds, because the destroy hook it installs panics when
// Falco destroys a state whose init failed after an earlier success (see
// main.go).
package main

import (
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/extractor"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/source"

	"github.com/triage-dev/triage/pkg/plugin"
)

func init() {
	plugins.SetFactory(func() plugins.Plugin {
		p := plugin.New()
		source.Register(p)
		extractor.Register(p)
		return p
	})
}

func main() {}
