package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmptyMeansDefaults(t *testing.T) {
	// "null" is what Falco sends for `init_config: {}` (falco-facts.md fact 1).
	for _, in := range []string{"", "  ", "{}", "null", " null\n"} {
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
		`{"webhook": {"port": 1}}`:                 `"webhook.port"`,
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

// selfSigned writes a self-signed certificate and its key, PEM encoded.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

func webhookJSON(t *testing.T, kv ...any) string {
	t.Helper()
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, err := json.Marshal(map[string]any{"webhook": m})
	require.NoError(t, err)
	return string(b)
}

func TestWebhookSecurityConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "a")
	otherCert, otherKey := selfSigned(t, dir, "b")
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("token\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte(" \n"), 0o600))
	ctrl := filepath.Join(dir, "ctrl")
	require.NoError(t, os.WriteFile(ctrl, []byte("a\x01b"), 0o600))
	missing := filepath.Join(dir, "missing.pem")
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	unreadable := filepath.Join(dir, "unreadable.pem")
	require.NoError(t, os.WriteFile(unreadable, []byte("x"), 0o000))
	_, unreadableErr := os.ReadFile(unreadable) // root can read anything

	// Valid combinations.
	for _, in := range []string{
		webhookJSON(t, "tlsCertFile", cert, "tlsKeyFile", key),
		webhookJSON(t, "tlsCertFile", cert, "tlsKeyFile", key, "tlsClientCAFile", otherCert),
		webhookJSON(t, "secretFile", secret),
		webhookJSON(t, "secretFile", secret, "secretHeader", "X-Falco-Token"),
		webhookJSON(t, "readHeaderTimeoutMs", 500, "readTimeoutMs", 500, "idleTimeoutMs", 100, "maxConnections", 1, "metrics", true),
	} {
		c, err := Parse(in)
		require.NoError(t, err, in)
		assert.NotEqual(t, Default(), c, in)
	}
	c, err := Parse(webhookJSON(t, "secretFile", secret))
	require.NoError(t, err)
	s, err := c.Webhook.LoadSecret()
	require.NoError(t, err)
	assert.Equal(t, "token", string(s), "surrounding whitespace is not part of the secret")

	cases := []struct {
		in      string
		key     string
		mention string
	}{
		{webhookJSON(t, "tlsCertFile", cert), `"webhook.tlsKeyFile"`, "missing"},
		{webhookJSON(t, "tlsKeyFile", key), `"webhook.tlsCertFile"`, "missing"},
		{webhookJSON(t, "tlsClientCAFile", cert), `"webhook.tlsClientCAFile"`, "tlsCertFile"},
		{webhookJSON(t, "tlsCertFile", missing, "tlsKeyFile", key), `"webhook.tlsCertFile"`, "missing.pem"},
		{webhookJSON(t, "tlsCertFile", cert, "tlsKeyFile", missing), `"webhook.tlsKeyFile"`, "missing.pem"},
		{webhookJSON(t, "tlsCertFile", cert, "tlsKeyFile", key, "tlsClientCAFile", missing), `"webhook.tlsClientCAFile"`, "missing.pem"},
		{webhookJSON(t, "tlsCertFile", notPEM, "tlsKeyFile", key), `"webhook.tlsCertFile"`, "no PEM certificate"},
		{webhookJSON(t, "tlsCertFile", cert, "tlsKeyFile", notPEM), `"webhook.tlsKeyFile"`, "no PEM private key"},
		{webhookJSON(t, "tlsCertFile", cert, "tlsKeyFile", otherKey), `"webhook.tlsKeyFile"`, "match"},
		{webhookJSON(t, "tlsCertFile", cert, "tlsKeyFile", key, "tlsClientCAFile", notPEM), `"webhook.tlsClientCAFile"`, "no PEM CA"},
		{webhookJSON(t, "tlsCertFile", dir, "tlsKeyFile", key), `"webhook.tlsCertFile"`, "directory"},
		{webhookJSON(t, "secretFile", missing), `"webhook.secretFile"`, "missing.pem"},
		{webhookJSON(t, "secretFile", empty), `"webhook.secretFile"`, "empty"},
		{webhookJSON(t, "secretFile", ctrl), `"webhook.secretFile"`, "control character"},
		{webhookJSON(t, "secretFile", secret, "secretHeader", "X Token"), `"webhook.secretHeader"`, "header name"},
		{webhookJSON(t, "secretFile", secret, "secretHeader", ""), `"webhook.secretHeader"`, "empty"},
		{webhookJSON(t, "readHeaderTimeoutMs", 10), `"webhook.readHeaderTimeoutMs"`, "out of range"},
		{webhookJSON(t, "readTimeoutMs", 1000, "readHeaderTimeoutMs", 2000), `"webhook.readHeaderTimeoutMs"`, "readTimeoutMs"},
		{webhookJSON(t, "idleTimeoutMs", 0), `"webhook.idleTimeoutMs"`, "out of range"},
		{webhookJSON(t, "maxConnections", 0), `"webhook.maxConnections"`, "out of range"},
		{webhookJSON(t, "metrics", "yes"), `"webhook.metrics"`, "true or false"},
		{`{"follow": {"stateFile": "/nonexistent-dir/state.json"}}`, `"follow.stateFile"`, "nonexistent-dir"},
		{`{"follow": {"stateFile": ` + strconv.Quote(dir) + `}}`, `"follow.stateFile"`, "is a directory"},
	}
	if unreadableErr != nil {
		cases = append(cases, struct{ in, key, mention string }{webhookJSON(t, "tlsCertFile", unreadable, "tlsKeyFile", key), `"webhook.tlsCertFile"`, "permission denied"})
	}
	for _, tc := range cases {
		_, err := Parse(tc.in)
		require.Error(t, err, tc.in)
		assert.Contains(t, err.Error(), tc.key, tc.in)
		assert.Contains(t, err.Error(), tc.mention, tc.in)
		assert.NotContains(t, err.Error(), "token", "errors never show the secret")
		assert.NotContains(t, err.Error(), "PRIVATE KEY", "errors never show key material")
	}
}

// Falco converts a YAML init_config to JSON before triage sees it
// (falco-facts.md fact 1): empty maps and lists become null, numeric-looking
// strings become numbers, quoted or not. Each form works or fails naming the key.
func TestParseFalcoConvertedForms(t *testing.T) {
	d := Default()

	// Nested empty maps (`risk: {}`) keep the defaults.
	c, err := Parse(`{"risk":null,"webhook":null,"correlation":{"windowSec":null}}`)
	require.NoError(t, err)
	assert.Equal(t, d.Risk, c.Risk)
	assert.Equal(t, d.Correlation, c.Correlation)

	// An empty YAML list arrives as null and means the empty list.
	c, err = Parse(`{"risk":{"criticalNamespaces":null}}`)
	require.NoError(t, err)
	assert.Empty(t, c.Risk.CriticalNamespaces)
	assert.NotEmpty(t, d.Risk.CriticalNamespaces, "the default must differ, or this proves nothing")

	// `secretHeader: "12345"` arrives as 12345 and is used as "12345", with a note.
	c, err = Parse(`{"webhook":{"secretHeader":12345}}`)
	require.NoError(t, err)
	assert.Equal(t, "12345", c.Webhook.SecretHeader)
	require.Len(t, c.Notes, 1)
	assert.Contains(t, c.Notes[0], `"webhook.secretHeader"`)

	// A 12-digit AWS account ID overflows int and arrives as a double.
	c, err = Parse(`{"risk":{"assets":[{"accounts":[123456789012.0, 987654321098],"criticality":"high"}]}}`)
	require.NoError(t, err)
	assert.Equal(t, []string{"123456789012", "987654321098"}, c.Risk.Assets[0].Accounts)

	// One whose leading zero was lost cannot be an AWS account ID.
	_, err = Parse(`{"risk":{"assets":[{"accounts":[12345678901.0],"criticality":"high"}]}}`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"risk.assets[0].accounts[0]"`)
	assert.Contains(t, err.Error(), "leading zeros")

	// Numbers in glob lists are taken as their digits.
	c, err = Parse(`{"risk":{"assets":[{"hosts":[42],"criticality":"low"}]}}`)
	require.NoError(t, err)
	assert.Equal(t, []string{"42"}, c.Risk.Assets[0].Hosts)

	for in, mention := range map[string]string{
		`{"webhook":{"secretHeader":true}}`:                        `"webhook.secretHeader"`, // `secretHeader: yes`
		`{"follow":{"stateFile":1.5e300}}`:                         `"follow.stateFile"`,
		`{"risk":{"criticalNamespaces":[null]}}`:                   `"risk.criticalNamespaces[0]"`,
		`{"risk":{"assets":[{"hosts":["a"],"criticality":null}]}}`: `"risk.assets[0].criticality"`,
		`{"risk":{"assets":[{"bogus":1}]}}`:                        `"risk.assets[0].bogus"`,
		`"queueSize"`:                                              `JSON object`,
		`true`:                                                     `JSON object`,
	} {
		_, err := Parse(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), mention, in)
	}
}

// The schema Falco validates against before Init must accept every shape
// its conversion produces for a valid config: null at the root and for any
// key, numbers and booleans where a string is expected (Parse explains
// them), and null in an enumeration.
func TestSchemaAcceptsFalcoShapes(t *testing.T) {
	s, err := Schema()
	require.NoError(t, err)
	var tree map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &tree))
	assert.ElementsMatch(t, []any{"object", "null"}, tree["type"])
	props := tree["properties"].(map[string]any)
	webhook := props["webhook"].(map[string]any)
	assert.ElementsMatch(t, []any{"object", "null"}, webhook["type"])
	header := webhook["properties"].(map[string]any)["secretHeader"].(map[string]any)
	assert.ElementsMatch(t, []any{"string", "number", "boolean", "null"}, header["type"])
	startAt := props["follow"].(map[string]any)["properties"].(map[string]any)["startAt"].(map[string]any)
	assert.Contains(t, startAt["enum"], nil)
	assert.Contains(t, startAt["enum"], "end")
	queue := props["queueSize"].(map[string]any)
	assert.ElementsMatch(t, []any{"integer", "null"}, queue["type"])
	assert.EqualValues(t, 16, queue["minimum"], "ranges stay")
}
