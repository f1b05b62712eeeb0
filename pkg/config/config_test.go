package config

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmptyMeansDefaults(t *testing.T) {
	for _, in := range []string{"", "  ", "{}"} {
		c, err := Parse(in)
		require.NoError(t, err, in)
		assert.Equal(t, Default(), c, in)
	}
}

func TestParseOverridesOnlyGivenKeys(t *testing.T) {
	c, err := Parse(`{"queueSize": 100, "webhook": {"allowNonLoopback": true}, "follow": {"startAt": "beginning"}}`)
	require.NoError(t, err)
	d := Default()
	assert.Equal(t, 100, c.QueueSize)
	assert.True(t, c.Webhook.AllowNonLoopback)
	assert.Equal(t, d.Webhook.MaxBodyBytes, c.Webhook.MaxBodyBytes)
	assert.Equal(t, "beginning", c.Follow.StartAt)
	assert.Equal(t, d.Follow.PollIntervalMs, c.Follow.PollIntervalMs)
}

func TestParseErrorsNameTheKey(t *testing.T) {
	cases := map[string]string{
		`{"queueSize": "big"}`:                     `"queueSize"`,
		`{"queueSize": 1.5}`:                       `"queueSize"`,
		`{"queueSize": 0}`:                         `"queueSize"`,
		`{"queueSize": 99999999}`:                  `"queueSize"`,
		`{"maxEventBytes": 10}`:                    `"maxEventBytes"`,
		`{"batchSize": 0}`:                         `"batchSize"`,
		`{"idleTimeoutMs": 5000}`:                  `"idleTimeoutMs"`,
		`{"statsIntervalSec": -1}`:                 `"statsIntervalSec"`,
		`{"webhook": {"maxBodyBytes": 100}}`:       `"webhook.maxBodyBytes"`,
		`{"webhook": {"maxBodyBytes": 2048}}`:      `"webhook.maxBodyBytes"`, // below maxEventBytes
		`{"webhook": {"allowNonLoopback": "yes"}}`: `"webhook.allowNonLoopback"`,
		`{"webhook": 5}`:                           `"webhook"`,
		`{"follow": {"startAt": "middle"}}`:        `"follow.startAt"`,
		`{"follow": {"pollIntervalMs": 1}}`:        `"follow.pollIntervalMs"`,
		`{"queusize": 10}`:                         `"queusize"`,
		`{"webhook": {"port": 1}}`:                 `"port"`,
		`{"queueSize": 10`:                         `malformed`,
		`[1,2]`:                                    `JSON object`,
		`{"queueSize": 100} {"queueSize": 200}`:    `after the JSON object`,
	}
	for in, mention := range cases {
		_, err := Parse(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), mention, in)
		assert.Contains(t, err.Error(), "init_config", in)
	}
}

// The schema Falco shows must list every key with the same default Reset sets.
func TestSchemaDefaultsMatchReset(t *testing.T) {
	s, err := Schema()
	require.NoError(t, err)
	var schema struct {
		Properties map[string]struct {
			Default    any `json:"default"`
			Properties map[string]struct {
				Default any `json:"default"`
			} `json:"properties"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	require.NoError(t, json.Unmarshal([]byte(s), &schema))
	assert.Empty(t, schema.Required, "every key is optional")

	var defaults map[string]any
	b, _ := json.Marshal(Default())
	require.NoError(t, json.Unmarshal(b, &defaults))
	require.Equal(t, len(defaults), len(schema.Properties))
	for key, def := range defaults {
		prop, ok := schema.Properties[key]
		require.True(t, ok, key)
		if nested, isObj := def.(map[string]any); isObj {
			require.Equal(t, len(nested), len(prop.Properties), key)
			for k2, d2 := range nested {
				assert.Equal(t, d2, prop.Properties[k2].Default, key+"."+k2)
			}
			continue
		}
		assert.Equal(t, def, prop.Default, key)
	}
}
