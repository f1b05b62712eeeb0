package test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/triage-dev/triage/pkg/plugin"
	"github.com/triage-dev/triage/test/harness"
)

// Every documented triage plugin entry (README.md, docs/, deploy/ and the
// Helm values, and the config the Dockerfile installs) goes through the path
// a real Falco takes (falco-facts.md facts 1 and 2): Falco's YAML→JSON
// conversion of init_config (harness.FalcoPlugins), the JSON-schema check
// libsinsp runs before plugin_init, then plugin_init of the built .so. The
// snippets are read from the files, never copied here.

type documentedEntry struct {
	where string // file and block
	entry harness.FalcoPluginEntry
}

var yamlFence = regexp.MustCompile("(?ms)^```ya?ml\\s*\\n(.*?)^```")

// falcoDocsFromMarkdown returns the YAML blocks of a Markdown file that hold
// a `plugins:` list or a plugin's `init_config:` alone.
func falcoDocsFromMarkdown(t *testing.T, path string) map[string]*yaml.Node {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]*yaml.Node{}
	for i, m := range yamlFence.FindAllStringSubmatch(string(b), -1) {
		if !regexp.MustCompile(`(?m)^\s*(plugins|init_config):`).MatchString(m[1]) {
			continue
		}
		var n yaml.Node
		require.NoError(t, yaml.Unmarshal([]byte(m[1]), &n), "%s block %d", path, i)
		out[fmt.Sprintf("%s yaml block %d", filepath.Base(path), i+1)] = &n
	}
	return out
}

func documentedTriageEntries(t *testing.T) []documentedEntry {
	t.Helper()
	docs := map[string]*yaml.Node{}
	mds, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	for _, md := range append([]string{"../README.md"}, mds...) {
		for k, v := range falcoDocsFromMarkdown(t, md) {
			docs[k] = v
		}
	}
	// Falco configs in deploy/ and its folders (fleet/, talon/), including
	// those a Kubernetes ConfigMap carries as its falco.yaml.
	ymls, err := filepath.Glob("../deploy/*.yaml")
	require.NoError(t, err)
	sub, err := filepath.Glob("../deploy/*/*.yaml")
	require.NoError(t, err)
	for _, y := range append(ymls, sub...) {
		name := strings.TrimPrefix(y, "../deploy/")
		if strings.HasPrefix(name, "helm/") {
			continue // values files: their falco: key, below
		}
		dec := yaml.NewDecoder(bytes.NewReader(readDeploy(t, name)))
		for i := 0; ; i++ {
			var n yaml.Node
			if err := dec.Decode(&n); err == io.EOF {
				break
			} else {
				require.NoError(t, err, y)
			}
			where := fmt.Sprintf("deploy/%s#%d", name, i)
			if i == 0 {
				where = "deploy/" + name
			}
			var cm struct {
				Kind string            `yaml:"kind"`
				Data map[string]string `yaml:"data"`
			}
			if n.Decode(&cm) == nil && cm.Kind == "ConfigMap" && cm.Data["falco.yaml"] != "" {
				var inner yaml.Node
				require.NoError(t, yaml.Unmarshal([]byte(cm.Data["falco.yaml"]), &inner), where)
				docs[where+" falco.yaml"] = &inner
				continue
			}
			if len(n.Content) == 1 && n.Content[0].Kind == yaml.MappingNode {
				docs[where] = &n // a Falco config is a map (Talon's rules file is a list)
			}
		}
	}
	// The Helm chart passes its `falco:` values through as falco.yaml.
	for _, values := range []string{"helm/values.yaml", "helm/values-fleet.yaml"} {
		var helm struct {
			Falco yaml.Node `yaml:"falco"`
		}
		require.NoError(t, yaml.Unmarshal(readDeploy(t, values), &helm))
		docs["deploy/"+values+" falco:"] = &helm.Falco
	}

	var out []documentedEntry
	for where, n := range docs {
		entries, err := harness.FalcoPlugins(n)
		require.NoError(t, err, where)
		if ic := initConfigAlone(n); ic != nil {
			// A doc block showing only triage's init_config (docs/risk-model.md).
			conv, err := harness.FalcoInitConfig(ic)
			require.NoError(t, err, where)
			entries = append(entries, harness.FalcoPluginEntry{Name: plugin.PluginName, InitConfig: conv})
		}
		for _, e := range entries {
			if e.Name == plugin.PluginName {
				out = append(out, documentedEntry{where, e})
			}
		}
	}
	return out
}

// initConfigAlone returns the value of a top-level init_config key of a
// block that has no plugins list.
func initConfigAlone(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var ic *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case "plugins":
			return nil
		case "init_config":
			ic = n.Content[i+1]
		}
	}
	return ic
}

// localFiles points the files the central config names at real ones made
// here: TLS certificates, the secret, and the spill's parent directory.
func localFiles(t *testing.T, initConfig string) string {
	t.Helper()
	if !strings.Contains(initConfig, "/etc/triage/") && !strings.Contains(initConfig, "/var/lib/triage/") {
		return initConfig
	}
	dir := t.TempDir()
	pki := newE2EPKI(t, dir)
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cr3t-for-the-test\n"), 0o600))
	return strings.NewReplacer(
		"/etc/triage/tls/server.crt", pki.cert, "/etc/triage/tls/server.key", pki.key,
		"/etc/triage/tls/ca.crt", pki.ca, "/etc/triage/secret", secret,
		"/var/lib/triage/", dir+"/",
	).Replace(initConfig)
}

func TestDocumentedInitConfigsLoadAsFalcoSendsThem(t *testing.T) {
	entries := documentedTriageEntries(t)
	seen := map[string]bool{}
	for _, d := range entries {
		seen[strings.Fields(d.where)[0]] = true
	}
	// The documents the issue names must be among them, or this checks nothing.
	for _, must := range []string{"README.md", "deploy/falco-single-process.yaml", "deploy/falco-file-follow.yaml",
		"deploy/falco-central-sidekick.yaml", "deploy/helm/values.yaml", "risk-model.md",
		"deploy/talon/falco-talon.yaml", "deploy/fleet/falco-central-kafka.yaml", "deploy/helm/values-fleet.yaml", "fleet.md"} {
		assert.True(t, seen[must], "no triage plugin entry found in %s", must)
	}

	// The image installs one of the deploy/ configs as /etc/falco/falco.yaml.
	df, err := os.ReadFile("../deploy/Dockerfile")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^COPY (deploy/\S+\.yaml) /etc/falco/falco\.yaml`).FindStringSubmatch(string(df))
	require.NotNil(t, m, "the Dockerfile installs a falco.yaml from deploy/")
	assert.True(t, seen[m[1]], "the image's config %s is among the checked ones", m[1])

	for _, d := range entries {
		t.Run(d.where, func(t *testing.T) {
			ic := localFiles(t, d.entry.InitConfig)
			p, err := harness.Load(libPath)
			require.NoError(t, err)
			toInit, err := p.ValidateInitConfig(ic)
			require.NoError(t, err, "Falco's schema check of %q", ic)
			require.NoError(t, p.Init(ic), "plugin_init with %q (passed as %q)", ic, toInit)
			p.Destroy()
		})
	}
}

// Every form Falco can hand over (fact 1) passes its schema check and
// plugin_init, or fails with an error naming the key.
func TestInitConfigFormsThroughTheSchemaAndInit(t *testing.T) {
	ok := []string{
		"    init_config: {}\n",
		"",
		"    init_config:\n",
		"    init_config: \"\"\n",
		"    init_config: '{\"queueSize\": 64}'\n",
		"    init_config:\n      risk: {}\n      webhook: {}\n      correlation:\n        windowSec: 600\n",
		"    init_config:\n      risk:\n        criticalNamespaces: []\n",
		"    init_config:\n      webhook:\n        secretHeader: \"12345\"\n",
		"    init_config:\n      queueSize: \"0x400\"\n      useAsync: \"no\"\n",
		"    init_config:\n      risk:\n        assets:\n          - accounts: ['123456789012']\n            criticality: high\n",
		"    init_config:\n      follow:\n        startAt: ~\n",
	}
	for _, y := range ok {
		ic := initConfigFromYAML(t, y)
		p, err := harness.Load(libPath)
		require.NoError(t, err)
		require.NoError(t, p.Init(ic), "YAML %q → init_config %q", y, ic)
		p.Destroy()
	}

	bad := map[string]string{
		// `secretHeader: yes` arrives as true.
		"    init_config:\n      webhook:\n        secretHeader: yes\n": "webhook.secretHeader",
		// A leading zero lost on the way.
		"    init_config:\n      risk:\n        assets:\n          - accounts: ['012345678901']\n            criticality: high\n": "risk.assets[0].accounts[0]",
		"    init_config:\n      queueSize: 1\n":                         "queueSize",
		"    init_config:\n      follow:\n        startAt: 5\n":          "follow",
		"    init_config:\n      correlation:\n        windowSec: 1.5\n": "windowSec",
		"    init_config:\n      nosuchkey: 1\n":                         "nosuchkey",
	}
	for y, key := range bad {
		ic := initConfigFromYAML(t, y)
		p, err := harness.Load(libPath)
		require.NoError(t, err)
		err = p.Init(ic)
		require.Error(t, err, "YAML %q → %q", y, ic)
		assert.Contains(t, err.Error(), key, "YAML %q", y)
		p.Destroy()
	}
}

func initConfigFromYAML(t *testing.T, initConfigLines string) string {
	t.Helper()
	var n yaml.Node
	doc := "plugins:\n  - name: triage\n    library_path: libtriage.so\n" + initConfigLines
	require.NoError(t, yaml.Unmarshal([]byte(doc), &n))
	ps, err := harness.FalcoPlugins(&n)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	return ps[0].InitConfig
}
