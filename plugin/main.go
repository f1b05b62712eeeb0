// Command plugin is built with -buildmode=c-shared into libtriage.so. It only
// registers the plugin; everything else lives in pkg/.
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
