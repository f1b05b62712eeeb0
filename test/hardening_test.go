package test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/internal/testpki"
	"github.com/triage-dev/triage/test/harness"
)

// e2ePKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate (both signed by the CA) to dir; it returns the file names and
// the client's key pair.
type e2ePKI struct {
	ca, cert, key string
	pool          *x509.CertPool
	client        tls.Certificate
}

func newE2EPKI(t *testing.T, dir string) e2ePKI {
	t.Helper()
	ca := testpki.NewCA(t, "e2e CA")
	srvCert, srvKey := ca.Issue(t, "triage webhook", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.Issue(t, "falco", x509.ExtKeyUsageClientAuth)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	out := e2ePKI{ca: write("ca.pem", ca.PEM()), cert: write("server.pem", srvCert), key: write("server.key", srvKey), pool: ca.Pool()}
	var err error
	out.client, err = tls.X509KeyPair(cliCert, cliKey)
	require.NoError(t, err)
	return out
}

// TestHardenedWebhookEndToEnd runs the webhook as Falco would with every
// protection on: https with client certificates, a shared secret and
// /metrics. Alerts posted by an authenticated client reach next_batch, and
// the metrics count what Falco was handed.
func TestHardenedWebhookEndToEnd(t *testing.T) {
	dir := t.TempDir()
	pki := newE2EPKI(t, dir)
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("e2e-secret\n"), 0o600))
	cfg, err := json.Marshal(map[string]any{"webhook": map[string]any{
		"tlsCertFile": pki.cert, "tlsKeyFile": pki.key, "tlsClientCAFile": pki.ca,
		"secretFile": secret, "metrics": true,
	}})
	require.NoError(t, err)
	p := newPlugin(t, string(cfg))
	port := freePort(t)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	inst, err := p.Open(base + "/alerts")
	require.NoError(t, err)
	t.Cleanup(inst.Close)

	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, MinVersion: tls.VersionTLS12},
	}}
	do := func(method, url, body string, headers ...string) (int, string) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, _ := do("POST", base+"/alerts", falcoShape("no secret", 0))
	assert.Equal(t, 401, code)
	var body strings.Builder
	for i := 0; i < 5; i++ {
		body.WriteString(falcoShape(fmt.Sprintf("hardened-%d", i), i) + "\n")
	}
	code, msg := do("POST", base+"/alerts", body.String(), "X-Triage-Secret", "e2e-secret")
	require.Equal(t, 200, code, msg)

	w := &webhookPlugin{p: p, inst: inst}
	evts := w.collect(t, 5)
	require.Len(t, evts, 5)
	for i, e := range evts {
		assert.Equal(t, fmt.Sprintf("hardened-%d", i), ruleOf(t, p, e, "alert.rule"))
	}

	code, text := do("GET", base+"/metrics", "", "X-Triage-Secret", "e2e-secret")
	require.Equal(t, 200, code)
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 2 && !strings.HasPrefix(line, "#") {
			m[f[0]] = f[1]
		}
	}
	assert.Equal(t, "5", m["triage_alerts_received_total"])
	assert.Equal(t, "5", m["triage_alerts_queued_total"])
	assert.Equal(t, "5", m["triage_alerts_delivered_total"], "delivered counts what next_batch handed to Falco")
	assert.Equal(t, "1", m["triage_webhook_unauthorized_total"])
	assert.Contains(t, text, "# TYPE triage_alerts_delivered_total counter")

	// Without a client certificate the TLS handshake fails: nothing more arrives.
	bare := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}}}
	req, _ := http.NewRequest("POST", base+"/alerts", strings.NewReader(falcoShape("anonymous", 9)))
	req.Header.Set("X-Triage-Secret", "e2e-secret")
	if resp, err := bare.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %d", resp.StatusCode)
	}
}

// TestInitRejectsBadWebhookSecurity: Init refuses, naming the key, a TLS
// or secret configuration that could not work at open.
func TestInitRejectsBadWebhookSecurity(t *testing.T) {
	dir := t.TempDir()
	pki := newE2EPKI(t, dir)
	cases := map[string]map[string]any{
		"webhook.tlsKeyFile":      {"tlsCertFile": pki.cert},
		"webhook.tlsCertFile":     {"tlsCertFile": filepath.Join(dir, "nope.pem"), "tlsKeyFile": pki.key},
		"webhook.tlsClientCAFile": {"tlsClientCAFile": pki.ca},
		"webhook.secretFile":      {"secretFile": filepath.Join(dir, "no-secret")},
	}
	for key, wh := range cases {
		cfg, err := json.Marshal(map[string]any{"webhook": wh})
		require.NoError(t, err)
		p, err := harness.Load(libPath)
		require.NoError(t, err)
		err = p.InitRaw(string(cfg))
		require.Error(t, err, key)
		assert.Contains(t, err.Error(), key)
		p.Destroy()
	}
}
