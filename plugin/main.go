// Command plugin is built with -buildmode=c-shared into libtriage.so. It only
// registers the plugin; everything else lives in pkg/.
package main

import (
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/extractor"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/source"

	"github.com/triage-dev/triage/pkg/extractmode"
	"github.com/triage-dev/triage/pkg/plugin"
)

func init() {
	plugins.SetFactory(func() plugins.Plugin {
		p := plugin.New()
		// extractor.Register installs the SDK's async-extraction hooks;
		// extractmode applies init_config useAsync and keeps those hooks
		// from panicking when Falco destroys a state whose init failed.
		p.SetAfterInit(extractmode.AfterInit)
		source.Register(p)
		extractor.Register(p)
		return p
	})
}

func main() {}
