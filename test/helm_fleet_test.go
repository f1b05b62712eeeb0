package test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/triage-dev/triage/pkg/input"
	"github.com/triage-dev/triage/pkg/input/kafka"
	"github.com/triage-dev/triage/pkg/plugin"
	"github.com/triage-dev/triage/test/harness"
)

// fleetRouteSpecs returns the --from and --to of deploy/fleet/route.yaml.
func fleetRouteSpecs(t *testing.T) (from, to kafka.Spec) {
	t.Helper()
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args []string `yaml:"args"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	require.NoError(t, yaml.Unmarshal(readDeploy(t, "fleet/route.yaml"), &dep))
	require.NotEmpty(t, dep.Spec.Template.Spec.Containers)
	args := dep.Spec.Template.Spec.Containers[0].Args
	i, j := slices.Index(args, "--from"), slices.Index(args, "--to")
	require.True(t, i >= 0 && i+1 < len(args) && j >= 0 && j+1 < len(args), "route args %v", args)
	from, err := kafka.ParseURL(args[i+1], true)
	require.NoError(t, err)
	to, err = kafka.ParseURL(args[j+1], false)
	require.NoError(t, err)
	return from, to
}

// The Helm values of the central fleet tier (deploy/helm/values-fleet.yaml,
// falcosecurity/falco chart 9.1.0): a Deployment of several Falco replicas
// with no driver, triage on the keyed topic route writes, one consumer
// group. What the chart renders from these keys is noted in the file's
// header (the chart's templates, read at the version named there).
func TestDeployHelmFleetValues(t *testing.T) {
	const name = "helm/values-fleet.yaml"
	raw := readDeploy(t, name)
	var v struct {
		Driver struct {
			Enabled *bool `yaml:"enabled"`
		} `yaml:"driver"`
		Controller struct {
			Kind       string `yaml:"kind"`
			Deployment struct {
				Replicas int `yaml:"replicas"`
			} `yaml:"deployment"`
		} `yaml:"controller"`
		Extra struct {
			Args []string `yaml:"args"`
		} `yaml:"extra"`
		Falcoctl struct {
			Artifact struct {
				Install struct {
					Enabled bool `yaml:"enabled"`
				} `yaml:"install"`
			} `yaml:"artifact"`
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
		Falco falcoConfig `yaml:"falco"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &v))
	var hostinfo struct {
		Falco struct {
			PluginsHostinfo *bool `yaml:"plugins_hostinfo"`
		} `yaml:"falco"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &hostinfo))

	// No driver. The chart's default is enabled: true, so it must be said;
	// with it off and no -u/--userspace in extra.args the chart passes
	// `--disable-source syscall` and mounts nothing of the host but /proc,
	// which plugins_hostinfo: false drops too.
	require.NotNil(t, v.Driver.Enabled, "driver.enabled must be set (the chart's default is true)")
	assert.False(t, *v.Driver.Enabled, "the central tier runs no driver")
	assert.NotContains(t, v.Extra.Args, "-u", "userspace instrumentation would keep the syscall source")
	assert.NotContains(t, v.Extra.Args, "--userspace")
	require.NotNil(t, hostinfo.Falco.PluginsHostinfo, "falco.plugins_hostinfo (chart default true mounts the host's /proc)")
	assert.False(t, *hostinfo.Falco.PluginsHostinfo)

	// N replicas of one Deployment.
	assert.Equal(t, "deployment", v.Controller.Kind)
	assert.Greater(t, v.Controller.Deployment.Replicas, 1, "N replicas in one group")

	// The triage entry as Falco hands it over: YAML→JSON conversion, the
	// schema, plugin_init of the built .so; the init_config carries kafka keys.
	initConfig, openParams := triageEntry(t, name, v.Falco)
	assert.Equal(t, []string{plugin.PluginName}, v.Falco.LoadPlugins, "only triage: the chart adds no container plugin without a driver")
	p, err := harness.Load(libPath)
	require.NoError(t, err)
	_, err = p.ValidateInitConfig(initConfig)
	require.NoError(t, err, "Falco's schema check of %q", initConfig)
	p.Destroy()
	cfg := checkInitConfig(t, name, initConfig) // config.Parse, then schema and plugin_init
	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(initConfig), &keys))
	assert.Contains(t, keys, "kafka", "init_config has the kafka keys")
	assert.Positive(t, cfg.Kafka.SessionTimeoutMs)

	// The open params are the kafka input's, on the topic route writes, in a
	// group of their own (not route's), the group of the plain manifest.
	spec, err := input.ParseOpenParams(openParams)
	require.NoError(t, err, "open_params %q", openParams)
	require.Equal(t, input.KindKafka, spec.Kind, "open_params %q", openParams)
	from, to := fleetRouteSpecs(t)
	assert.Equal(t, to.Topic, spec.Kafka.Topic, "the central Falco reads what route writes (--to)")
	assert.Equal(t, to.Brokers, spec.Kafka.Brokers, "same brokers as route's --to")
	assert.NotEmpty(t, spec.Kafka.Group)
	assert.NotEqual(t, from.Group, spec.Kafka.Group, "route's group reads the unkeyed topic")
	dec := yaml.NewDecoder(strings.NewReader(string(readDeploy(t, "fleet/falco-central-kafka.yaml"))))
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	require.NoError(t, dec.Decode(&cm))
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["falco.yaml"]), &n))
	plain, err := harness.FalcoPlugins(&n)
	require.NoError(t, err)
	require.Len(t, plain, 1)
	plainSpec, err := input.ParseOpenParams(plain[0].OpenParams)
	require.NoError(t, err)
	assert.Equal(t, plainSpec.Kafka.Group, spec.Kafka.Group, "the Helm values and deploy/fleet/falco-central-kafka.yaml name one group")

	// Outputs and rules as in the other configs; the chart's suggested_output kept.
	checkTriageOutputs(t, name, v.Falco)
	suggested := false
	for _, a := range v.Falco.AppendOutput {
		suggested = suggested || a.SuggestedOutput
	}
	assert.True(t, suggested, "overriding append_output must keep the chart's suggested_output entry")
	assert.False(t, v.Falcosidekick.Enabled, "the chart would point http_output at Falcosidekick")

	// The plugin comes from falcoctl's install init container.
	assert.True(t, v.Falcoctl.Artifact.Install.Enabled)
	assert.Contains(t, v.Falcoctl.Config.Artifact.AllowedTypes, "plugin", "the chart mounts the plugins volume only for allowedTypes plugin")
	pluginRef := ""
	for _, r := range v.Falcoctl.Config.Artifact.Install.Refs {
		if strings.Contains(r, "/plugin/"+plugin.PluginName+":") {
			pluginRef = r
		}
	}
	require.NotEmpty(t, pluginRef, "falcoctl installs the triage plugin artifact")
	assert.True(t, strings.HasSuffix(pluginRef, ":"+plugin.Version), "plugin ref %s should name version %s", pluginRef, plugin.Version)
}
