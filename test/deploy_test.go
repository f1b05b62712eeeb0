package test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/input"
	"github.com/triage-dev/triage/pkg/plugin"
	"github.com/triage-dev/triage/test/harness"
)

// The deploy/ configurations are checked statically (no Falco, Falcosidekick,
// container engine or registry runs here): they parse, every triage field
// and init_config key they name exists, the real plugin accepts their
// init_config, and the pieces that must agree (URLs, versions, file names,
// the Makefile's build) do.

// falcoConfig is the part of falco.yaml the deployments use.
type falcoConfig struct {
	Engine struct {
		Kind string `yaml:"kind"`
	} `yaml:"engine"`
	JSONOutput                      bool     `yaml:"json_output"`
	JSONIncludeOutputProperty       bool     `yaml:"json_include_output_property"`
	JSONIncludeTagsProperty         bool     `yaml:"json_include_tags_property"`
	JSONIncludeOutputFieldsProperty *bool    `yaml:"json_include_output_fields_property"`
	RulesFiles                      []string `yaml:"rules_files"`
	Plugins                         []struct {
		Name        string    `yaml:"name"`
		LibraryPath string    `yaml:"library_path"`
		InitConfig  yaml.Node `yaml:"init_config"`
		OpenParams  string    `yaml:"open_params"`
	} `yaml:"plugins"`
	LoadPlugins []string `yaml:"load_plugins"`
	HTTPOutput  struct {
		Enabled bool   `yaml:"enabled"`
		URL     string `yaml:"url"`
	} `yaml:"http_output"`
	AppendOutput []struct {
		Match struct {
			Source string `yaml:"source"`
		} `yaml:"match"`
		ExtraFields     []string `yaml:"extra_fields"`
		SuggestedOutput bool     `yaml:"suggested_output"`
	} `yaml:"append_output"`
}

// triageAppendFields is what every triage alert carries in output_fields.
var triageAppendFields = []string{"risk.score", "risk.level", "mitre.techniques", "mitigation.ids", "entity.id"}

func readDeploy(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", name))
	require.NoError(t, err)
	return b
}

func loadFalcoConfig(t *testing.T, name string) (falcoConfig, string) {
	t.Helper()
	raw := readDeploy(t, name)
	var c falcoConfig
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	require.NoError(t, dec.Decode(&c), name)
	return c, string(raw)
}

// triageEntry returns the triage plugin's init_config as the string Falco
// passes on (harness.FalcoInitConfig), and its open_params.
func triageEntry(t *testing.T, name string, c falcoConfig) (initConfig, openParams string) {
	t.Helper()
	found := 0
	for _, p := range c.Plugins {
		if p.Name != plugin.PluginName {
			continue
		}
		found++
		assert.Equal(t, "libtriage.so", p.LibraryPath, "%s: library_path", name)
		// As Falco converts it (fact 1), not as encoding/json would.
		ic, err := harness.FalcoInitConfig(&p.InitConfig)
		require.NoError(t, err)
		initConfig, openParams = ic, strings.TrimSpace(p.OpenParams)
	}
	require.Equal(t, 1, found, "%s: one plugins entry named triage", name)
	assert.Contains(t, c.LoadPlugins, plugin.PluginName, "%s: load_plugins", name)
	return initConfig, openParams
}

// checkInitConfig parses init_config like the plugin does and initializes the
// real libtriage.so with it.
func checkInitConfig(t *testing.T, name, initConfig string) config.Config {
	t.Helper()
	cfg, err := config.Parse(initConfig)
	require.NoError(t, err, "%s: init_config %s", name, initConfig)
	p, err := harness.Load(libPath)
	require.NoError(t, err)
	require.NoError(t, p.Init(initConfig), "%s: plugin_init with %s", name, initConfig)
	p.Destroy()
	return cfg
}

func checkTriageOutputs(t *testing.T, name string, c falcoConfig) {
	t.Helper()
	assert.True(t, c.JSONOutput, "%s: json_output", name)
	assert.True(t, c.JSONIncludeOutputProperty, "%s: json_include_output_property", name)
	assert.True(t, c.JSONIncludeTagsProperty, "%s: json_include_tags_property (ATT&CK and maturity tags)", name)
	if c.JSONIncludeOutputFieldsProperty != nil {
		assert.True(t, *c.JSONIncludeOutputFieldsProperty, "%s: json_include_output_fields_property", name)
	}
	assert.Contains(t, c.RulesFiles, "/etc/falco/rules.d", "%s: rules_files must load the directory triage_rules.yaml is installed in", name)
	var triageAppend []string
	for _, a := range c.AppendOutput {
		if a.Match.Source == plugin.EventSource {
			triageAppend = a.ExtraFields
		}
	}
	assert.Equal(t, triageAppendFields, triageAppend, "%s: append_output for source %s", name, plugin.EventSource)
	for _, f := range triageAppend {
		name, arg := f, ""
		if i := strings.IndexByte(f, '['); i >= 0 {
			name, arg = f[:i], f[i:]
		}
		assert.Empty(t, checkField(name, arg), "%s: extra_fields %s", name, f)
	}
}

func TestDeploySingleProcessConfig(t *testing.T) {
	const name = "falco-single-process.yaml"
	c, _ := loadFalcoConfig(t, name)
	initConfig, openParams := triageEntry(t, name, c)
	checkInitConfig(t, name, initConfig)
	checkTriageOutputs(t, name, c)

	spec, err := input.ParseOpenParams(openParams)
	require.NoError(t, err)
	require.Equal(t, input.KindWebhook, spec.Kind)
	assert.True(t, net.ParseIP(spec.URL.Hostname()).IsLoopback(), "the webhook has no TLS or secret: loopback only")

	// http_output must deliver to triage's webhook, or triage sees nothing.
	assert.True(t, c.HTTPOutput.Enabled, "http_output.enabled")
	assert.Equal(t, openParams, c.HTTPOutput.URL, "http_output.url = triage's open_params")

	assert.Equal(t, []string{"container", plugin.PluginName}, c.LoadPlugins)
	hasContainer := false
	for _, p := range c.Plugins {
		hasContainer = hasContainer || (p.Name == "container" && p.LibraryPath == "libcontainer.so")
	}
	assert.True(t, hasContainer, "container plugin entry (libcontainer.so)")
	assert.NotEmpty(t, c.Engine.Kind, "the syscall source needs an engine")
}

func TestDeployFileFollowConfig(t *testing.T) {
	const name = "falco-file-follow.yaml"
	c, raw := loadFalcoConfig(t, name)
	initConfig, openParams := triageEntry(t, name, c)
	cfg := checkInitConfig(t, name, initConfig)
	checkTriageOutputs(t, name, c)

	spec, err := input.ParseOpenParams(openParams)
	require.NoError(t, err)
	require.Equal(t, input.KindFollow, spec.Kind)
	assert.Equal(t, "/var/log/falco/events.json", spec.Path)
	assert.Equal(t, "end", cfg.Follow.StartAt)
	// The header shows the producing Falco's file_output and how to run this one.
	assert.Contains(t, raw, "filename: "+spec.Path, "the file_output snippet writes the followed file")
	assert.Contains(t, raw, "--disable-source syscall")
	assert.Equal(t, []string{plugin.PluginName}, c.LoadPlugins)
	assert.False(t, c.HTTPOutput.Enabled)
}

func TestDeployCentralSidekickConfig(t *testing.T) {
	const name = "falco-central-sidekick.yaml"
	c, raw := loadFalcoConfig(t, name)
	initConfig, openParams := triageEntry(t, name, c)

	// The config names files under /etc/triage and /var/lib/triage; give
	// them real content and point the copy there (falcoconfig_test.go).
	local := localFiles(t, initConfig)
	require.NotEqual(t, initConfig, local, "the config names the TLS and secret files")
	cfg := checkInitConfig(t, name, local)
	checkTriageOutputs(t, name, c)

	spec, err := input.ParseOpenParams(openParams)
	require.NoError(t, err)
	require.Equal(t, input.KindWebhook, spec.Kind)
	assert.Equal(t, "https", spec.URL.Scheme)
	ip := net.ParseIP(spec.URL.Hostname())
	require.NotNil(t, ip, "a literal private address")
	assert.True(t, ip.IsPrivate(), "bound to a private address, not %s", ip)
	assert.False(t, cfg.Webhook.AllowNonLoopback, "TLS and a secret, not allowNonLoopback")
	assert.NotEmpty(t, cfg.Webhook.TLSClientCAFile, "mutual TLS")
	assert.NotEmpty(t, cfg.Webhook.SecretFile, "shared secret")
	assert.NotEmpty(t, cfg.Spill.Dir, "Falcosidekick never resends: a spill makes its 200s survive a crash")
	assert.True(t, cfg.Spill.WriteAhead)
	assert.Contains(t, raw, "--disable-source syscall")

	// Without TLS and secret the real plugin refuses this address.
	var without map[string]any
	require.NoError(t, json.Unmarshal([]byte(local), &without))
	wh := without["webhook"].(map[string]any)
	for _, k := range []string{"tlsCertFile", "tlsKeyFile", "tlsClientCAFile", "secretFile"} {
		delete(wh, k)
	}
	b, err := json.Marshal(without)
	require.NoError(t, err)
	p := newPlugin(t, string(b))
	_, err = p.Open(strings.Replace(openParams, "https://", "http://", 1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "allowNonLoopback")

	// Falcosidekick's webhook output points at that URL.
	var sk struct {
		BracketReplacer *string `yaml:"bracketreplacer"`
		Webhook         struct {
			Address         string            `yaml:"address"`
			Method          string            `yaml:"method"`
			MinimumPriority string            `yaml:"minimumpriority"`
			CustomHeaders   map[string]string `yaml:"customHeaders"`
			MutualTLS       bool              `yaml:"mutualtls"`
			CheckCert       bool              `yaml:"checkcert"`
		} `yaml:"webhook"`
	}
	require.NoError(t, yaml.Unmarshal(readDeploy(t, "falcosidekick.yaml"), &sk))
	assert.Equal(t, openParams, sk.Webhook.Address, "falcosidekick.yaml webhook.address = triage's open_params")
	assert.Contains(t, []string{"POST", "PUT"}, strings.ToUpper(sk.Webhook.Method))
	assert.Equal(t, "debug", sk.Webhook.MinimumPriority, "every alert feeds correlation")
	require.NotNil(t, sk.BracketReplacer, "bracketreplacer is set explicitly (and explained)")
	assert.True(t, sk.Webhook.MutualTLS && sk.Webhook.CheckCert, "Falcosidekick presents a client certificate and checks triage's")
	header := cfg.Webhook.SecretHeader
	if header == "" {
		header = "X-Triage-Secret"
	}
	assert.Contains(t, sk.Webhook.CustomHeaders, header, "Falcosidekick sends the secret header triage expects")
}

func TestDeployHelmValues(t *testing.T) {
	var v struct {
		Driver struct {
			Kind string `yaml:"kind"`
		} `yaml:"driver"`
		Collectors struct {
			ContainerEngine struct {
				Enabled bool `yaml:"enabled"`
			} `yaml:"containerEngine"`
		} `yaml:"collectors"`
		Falcoctl struct {
			Config struct {
				Artifact struct {
					AllowedTypes []string `yaml:"allowedTypes"`
					Install      struct {
						Refs []string `yaml:"refs"`
					} `yaml:"install"`
				} `yaml:"artifact"`
			} `yaml:"config"`
		} `yaml:"falcoctl"`
		Falcosidekick struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"falcosidekick"`
		Falco       falcoConfig       `yaml:"falco"`
		CustomRules map[string]string `yaml:"customRules"`
	}
	require.NoError(t, yaml.Unmarshal(readDeploy(t, "helm/values.yaml"), &v))

	const name = "helm/values.yaml"
	initConfig, openParams := triageEntry(t, name, v.Falco)
	checkInitConfig(t, name, initConfig)
	assert.Equal(t, []string{"container", plugin.PluginName}, v.Falco.LoadPlugins)
	assert.True(t, v.Collectors.ContainerEngine.Enabled, "the chart adds the container plugin through collectors")
	assert.True(t, v.Falco.HTTPOutput.Enabled)
	assert.Equal(t, openParams, v.Falco.HTTPOutput.URL, "http_output.url = triage's open_params")
	spec, err := input.ParseOpenParams(openParams)
	require.NoError(t, err)
	assert.True(t, net.ParseIP(spec.URL.Hostname()).IsLoopback())
	assert.False(t, v.Falcosidekick.Enabled, "the chart would point http_output at Falcosidekick")

	// rules_files is the chart's default (it loads /etc/falco/rules.d, where
	// customRules lands), so the check of the other configs does not apply.
	var triageAppend []string
	suggested := false
	for _, a := range v.Falco.AppendOutput {
		suggested = suggested || a.SuggestedOutput
		if a.Match.Source == plugin.EventSource {
			triageAppend = a.ExtraFields
		}
	}
	assert.True(t, suggested, "overriding append_output must keep the chart's suggested_output entry")
	assert.Equal(t, triageAppendFields, triageAppend)

	rules, err := os.ReadFile("../rules/triage_rules.yaml")
	require.NoError(t, err)
	assert.Equal(t, string(rules), v.CustomRules["triage_rules.yaml"],
		"deploy/helm/values.yaml embeds an old copy of rules/triage_rules.yaml: run deploy/helm/sync-rules.sh")
	// The fleet tier's values (test/helm_fleet_test.go) carry the same copy.
	var fleet struct {
		CustomRules map[string]string `yaml:"customRules"`
	}
	require.NoError(t, yaml.Unmarshal(readDeploy(t, "helm/values-fleet.yaml"), &fleet))
	assert.Equal(t, string(rules), fleet.CustomRules["triage_rules.yaml"],
		"deploy/helm/values-fleet.yaml embeds an old copy of rules/triage_rules.yaml: run deploy/helm/sync-rules.sh")

	assert.Contains(t, v.Falcoctl.Config.Artifact.AllowedTypes, "plugin")
	pluginRef := ""
	for _, r := range v.Falcoctl.Config.Artifact.Install.Refs {
		if strings.Contains(r, "/plugin/"+plugin.PluginName+":") {
			pluginRef = r
		}
	}
	require.NotEmpty(t, pluginRef, "falcoctl installs the triage plugin artifact")
	assert.True(t, strings.HasSuffix(pluginRef, ":"+plugin.Version), "plugin ref %s should name version %s", pluginRef, plugin.Version)
}

func TestDeployFalcoctlCommands(t *testing.T) {
	doc := string(readDeploy(t, "falcoctl.md"))
	var rules []rulesFileEntry
	raw, err := os.ReadFile("../rules/triage_rules.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &rules))
	engine := ""
	for _, e := range rules {
		if e.RequiredEngineVersion != "" {
			engine = e.RequiredEngineVersion
		}
	}
	require.NotEmpty(t, engine)

	for _, want := range []string{
		"VERSION=" + plugin.Version,
		"--type plugin",
		"--type rulesfile",
		"--platform linux/amd64",
		"--requires plugin_api_version:" + plugin.RequiredAPIVersion,
		"--requires engine_version_semver:" + engine,
		"--depends-on " + plugin.PluginName + ":$VERSION",
		"falcoctl registry push",
		"tar -C dist/oci -czf dist/triage-$VERSION-linux-amd64.tar.gz libtriage.so",
	} {
		assert.Contains(t, doc, want)
	}
}

// dockerStage is one FROM ... AS name block of a Dockerfile.
type dockerStage struct {
	image, name string
	instrs      [][2]string // instruction, arguments
}

// parseDockerfile splits a Dockerfile into global ARG defaults and stages,
// joining continuation lines and dropping comments.
func parseDockerfile(t *testing.T, src string) (map[string]string, []dockerStage) {
	t.Helper()
	args := map[string]string{}
	var stages []dockerStage
	var logical []string
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		logical = append(logical, cur+line)
		cur = ""
	}
	require.NoError(t, sc.Err())
	require.Empty(t, cur, "dangling continuation line")
	for _, l := range logical {
		instr, rest, _ := strings.Cut(l, " ")
		instr = strings.ToUpper(instr)
		rest = strings.TrimSpace(rest)
		switch {
		case instr == "FROM":
			f := strings.Fields(rest)
			st := dockerStage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			st.image = os.Expand(st.image, func(k string) string { return args[k] })
			stages = append(stages, st)
		case instr == "ARG" && len(stages) == 0:
			k, val, _ := strings.Cut(rest, "=")
			args[k] = val
		default:
			require.NotEmpty(t, stages, "instruction %s before FROM", instr)
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, [2]string{instr, rest})
		}
	}
	return args, stages
}

// shellWords splits a shell command into words, honouring '...' and "...".
func shellWords(s string) []string {
	var out []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, w.String())
	}
	return out
}

// versionAtLeast compares dotted numeric versions.
func versionAtLeast(got, min string) bool {
	g, m := strings.Split(got, "."), strings.Split(min, ".")
	for i := range m {
		gi, mi := 0, 0
		if i < len(g) {
			gi, _ = strconv.Atoi(g[i])
		}
		mi, _ = strconv.Atoi(m[i])
		if gi != mi {
			return gi > mi
		}
	}
	return true
}

func TestDeployDockerfile(t *testing.T) {
	args, stages := parseDockerfile(t, string(readDeploy(t, "Dockerfile")))
	require.Len(t, stages, 3)
	build, runtimeStage := stages[0], stages[len(stages)-1]
	require.Equal(t, "build", build.name)
	require.Equal(t, "runtime", runtimeStage.name, "the Falco image is the last (default) stage")

	// Go toolchain: at least go.mod's go directive.
	gomod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	goDirective := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	require.NotNil(t, goDirective)
	goImage := regexp.MustCompile(`^golang:(\d+\.\d+(?:\.\d+)?)`).FindStringSubmatch(build.image)
	require.NotNil(t, goImage, "build stage from a golang image, got %s", build.image)
	assert.True(t, versionAtLeast(goImage[1], string(goDirective[1])), "golang %s < go.mod's go %s", goImage[1], goDirective[1])

	// Falco: plugin API 3.11 arrived in 0.41.
	falcoImage := regexp.MustCompile(`^falcosecurity/falco:(\d+\.\d+\.\d+)$`).FindStringSubmatch(runtimeStage.image)
	require.NotNil(t, falcoImage, "runtime from a concrete falcosecurity/falco tag, got %s (FALCO_VERSION=%s)", runtimeStage.image, args["FALCO_VERSION"])
	assert.True(t, versionAtLeast(falcoImage[1], "0.41.0"), "Falco %s predates plugin API 3.11", falcoImage[1])

	// What the build stage produces, from its RUN commands.
	produced := map[string]bool{}
	var goBuild []string
	var versionCmd string
	for _, in := range build.instrs {
		if in[0] != "RUN" {
			continue
		}
		for _, cmd := range strings.Split(in[1], "&&") {
			w := shellWords(strings.TrimSpace(cmd))
			if len(w) >= 2 && w[0] == "go" && w[1] == "build" {
				goBuild = w
				if i := slices.Index(w, "-o"); i >= 0 && i+1 < len(w) {
					produced[w[i+1]] = true
				}
			}
			if len(w) == 3 && w[0] == "cp" {
				produced[w[2]] = true
			}
			if m := regexp.MustCompile(`VERSION=\$\((sed .*plugin\.go)\)`).FindStringSubmatch(cmd); m != nil {
				versionCmd = m[1]
			}
		}
	}
	require.NotEmpty(t, goBuild, "the build stage runs go build")

	// COPY sources: from the repository (build context = repository root) or
	// from the build stage's outputs. Destinations: where Falco looks.
	dests := map[string]string{}
	for _, st := range stages {
		for _, in := range st.instrs {
			if in[0] != "COPY" {
				continue
			}
			w := strings.Fields(in[1])
			from := ""
			if strings.HasPrefix(w[0], "--from=") {
				from, w = strings.TrimPrefix(w[0], "--from="), w[1:]
			}
			require.GreaterOrEqual(t, len(w), 2, "COPY %s", in[1])
			srcs, dst := w[:len(w)-1], w[len(w)-1]
			for _, s := range srcs {
				switch from {
				case "":
					_, err := os.Stat(filepath.Join("..", s))
					assert.NoError(t, err, "COPY %s: not in the repository", s)
				case "build":
					assert.True(t, produced[s], "COPY --from=build %s: the build stage does not produce it (%v)", s, produced)
				default:
					t.Errorf("COPY --from=%s: unknown stage", from)
				}
				if st.name == "runtime" {
					dests[dst] = s
				}
			}
		}
	}
	assert.Equal(t, map[string]string{
		"/usr/share/falco/plugins/libtriage.so": "/out/libtriage.so",
		"/etc/falco/rules.d/triage_rules.yaml":  "/out/triage_rules.yaml",
		"/etc/falco/falco.yaml":                 "deploy/falco-single-process.yaml",
	}, dests)

	// The go build is the Makefile's c-shared build, the version from the same
	// place with the same command.
	mk, err := os.ReadFile("../Makefile")
	require.NoError(t, err)
	ldflags := regexp.MustCompile(`(?m)^LDFLAGS := (.*)$`).FindSubmatch(mk)
	require.NotNil(t, ldflags)
	recipe := regexp.MustCompile(`(?m)^\$\(LIB\):.*\n\t(.*)$`).FindSubmatch(mk)
	require.NotNil(t, recipe, "Makefile's $(LIB) recipe")
	expanded := strings.NewReplacer("$(GO)", "go", "$(LDFLAGS)", string(ldflags[1])).Replace(string(recipe[1]))
	expanded = strings.ReplaceAll(expanded, "$(VERSION)", "${VERSION}")
	makeBuild := shellWords(expanded)
	withoutOutput := func(w []string) []string {
		i := slices.Index(w, "-o")
		require.True(t, i >= 0 && i+1 < len(w), "go build without -o: %v", w)
		return append(slices.Clone(w[:i]), w[i+2:]...)
	}
	assert.Equal(t, withoutOutput(makeBuild), withoutOutput(goBuild), "Dockerfile's go build differs from the Makefile's")
	assert.Contains(t, goBuild, "-buildmode=c-shared")

	makeVersion := regexp.MustCompile(`(?m)^VERSION \?= \$\(shell (sed .*plugin\.go)\)$`).FindSubmatch(mk)
	require.NotNil(t, makeVersion)
	require.Equal(t, string(makeVersion[1]), versionCmd, "the Dockerfile reads the version like the Makefile")
	// And that command really yields pkg/plugin.Version.
	w := shellWords(versionCmd)
	cmd := exec.Command(w[0], w[1:]...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, plugin.Version, strings.TrimSpace(string(out)))

	// The runtime stage only copies: the default Falco image has no shell.
	for _, in := range runtimeStage.instrs {
		assert.NotEqual(t, "RUN", in[0], "RUN in the runtime stage: %s", in[1])
	}
}

// `make release` builds the versioned plugin, copies the rules and writes
// SHA256SUMS that verify; the released plugin reports the version.
func TestReleaseArtifacts(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is required: %v", err)
	}
	dist := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "release", "DIST="+dist)
	cmd.Dir = ".."
	// A parent make's flags and an exported VERSION must not leak in.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, p := range []string{"MAKEFLAGS=", "MFLAGS=", "MAKELEVEL=", "VERSION="} {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	})
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make release:\n%s", out)

	lib := fmt.Sprintf("libtriage-%s-%s-%s.so", plugin.Version, runtime.GOOS, runtime.GOARCH)
	entries, err := os.ReadDir(dist)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{lib, "triage_rules.yaml", "SHA256SUMS"}, names)

	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	require.NoError(t, err)
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, file, ok := strings.Cut(line, "  ")
		require.True(t, ok, "sha256sum line %q", line)
		listed[file] = sum
	}
	require.Len(t, listed, 2)
	for _, file := range []string{lib, "triage_rules.yaml"} {
		b, err := os.ReadFile(filepath.Join(dist, file))
		require.NoError(t, err)
		h := sha256.Sum256(b)
		assert.Equal(t, hex.EncodeToString(h[:]), listed[file], "SHA256SUMS entry for %s", file)
	}
	rules, err := os.ReadFile("../rules/triage_rules.yaml")
	require.NoError(t, err)
	released, err := os.ReadFile(filepath.Join(dist, "triage_rules.yaml"))
	require.NoError(t, err)
	assert.Equal(t, string(rules), string(released))

	// The released library reports the version it is named after. It is
	// loaded in a child process: one Go c-shared library per test process.
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestReleaseHelperPluginInfo$", "-test.count=1")
	child.Env = append(os.Environ(), "TRIAGE_LIB="+filepath.Join(dist, lib), "TRIAGE_RELEASE_HELPER=1")
	info, err := child.CombinedOutput()
	require.NoError(t, err, "%s", info)
	assert.Contains(t, string(info), fmt.Sprintf("plugin-info name=%s version=%s api=%s\n", plugin.PluginName, plugin.Version, plugin.RequiredAPIVersion))
}

// TestReleaseHelperPluginInfo prints the info of $TRIAGE_LIB; it is the child
// process of TestReleaseArtifacts and does nothing on its own.
func TestReleaseHelperPluginInfo(t *testing.T) {
	if os.Getenv("TRIAGE_RELEASE_HELPER") != "1" {
		t.Skip("child process of TestReleaseArtifacts")
	}
	p, err := harness.Load(libPath)
	require.NoError(t, err)
	info := p.Info()
	fmt.Printf("plugin-info name=%s version=%s api=%s\n", info.Name, info.Version, info.RequiredAPIVersion)
}
