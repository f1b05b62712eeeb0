package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/triage-dev/triage/internal/testpki"
	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/logging"
)

// Generous: only reached when something is broken, never a timing assertion.
const waitFor = 15 * time.Second

func testAlert(rule string) string {
	return fmt.Sprintf(`{"output":"o","priority":"Warning","rule":%q,"source":"syscall","time":"2026-11-21T04:45:00.682554049Z","output_fields":{"proc.name":"bash"},"hostname":"h"}`, rule)
}

type webhookFixture struct {
	w   *Server
	q   *ingest.AlertQueue
	c   *ingest.Counters
	url string
}

func startWebhook(t *testing.T, rawURL string, mutate func(*config.Config)) *webhookFixture {
	t.Helper()
	return startWebhookLog(t, rawURL, io.Discard, mutate)
}

func (f *webhookFixture) drain() []*alert.Alert {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	out, _ := f.q.PopBatch(nil, f.q.Cap(), timer, time.Millisecond)
	return out
}

func post(t *testing.T, method, url, ctype, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestWebhookSingleAndBatch(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)

	code, body, _ := post(t, "POST", f.url, "application/json", testAlert("one"))
	require.Equal(t, 200, code, body)
	assert.JSONEq(t, `{"accepted":1,"loop_dropped":0}`, body)

	// Falcosidekick: PUT, charset parameter.
	code, _, _ = post(t, "PUT", f.url, "application/json; charset=utf-8", testAlert("two"))
	require.Equal(t, 200, code)

	var nd strings.Builder
	for i := 0; i < 50; i++ {
		nd.WriteString(testAlert(fmt.Sprintf("batch-%d", i)))
		nd.WriteString("\r\n")
		if i%10 == 0 {
			nd.WriteString("\n   \n") // blank lines are ignored
		}
	}
	code, body, _ = post(t, "POST", f.url, "application/x-ndjson", nd.String())
	require.Equal(t, 200, code, body)
	assert.JSONEq(t, `{"accepted":50,"loop_dropped":0}`, body)

	got := f.drain()
	require.Len(t, got, 52)
	assert.Equal(t, "one", got[0].Rule)
	assert.Equal(t, "two", got[1].Rule)
	for i := 0; i < 50; i++ {
		assert.Equal(t, fmt.Sprintf("batch-%d", i), got[2+i].Rule)
	}
	assert.Equal(t, uint64(52), f.c.Queued.Load())
}

func TestWebhookPrettyPrintedAlert(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/", nil)
	pretty := "{\n  \"rule\": \"pretty\",\n  \"priority\": \"Notice\",\n  \"time\": \"2026-11-21T04:45:00Z\"\n}\n"
	code, body, _ := post(t, "POST", f.url, "application/json", pretty)
	require.Equal(t, 200, code, body)
	got := f.drain()
	require.Len(t, got, 1)
	assert.Equal(t, "pretty", got[0].Rule)
}

func TestWebhookRejectsWholeBodyOnOneBadLine(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	body := testAlert("a") + "\n" + testAlert("b") + "\n" + `{"rule":"c","priority":"Severe","time":"2026-11-21T04:45:00Z"}` + "\n"
	code, msg, _ := post(t, "POST", f.url, "application/json", body)
	assert.Equal(t, 400, code)
	assert.Contains(t, msg, "line 3")
	assert.Contains(t, msg, "Severe")
	assert.Empty(t, f.drain(), "nothing of a rejected body may be queued")
	assert.Equal(t, uint64(1), f.c.Malformed.Load())
}

func TestWebhookStatusCodes(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	base := strings.TrimSuffix(f.url, "/alerts")
	cases := []struct {
		name, method, url, ctype, body string
		code                           int
		mention                        string
	}{
		{"get", "GET", f.url, "", "", 405, "POST or PUT"},
		{"delete", "DELETE", f.url, "", "", 405, "POST or PUT"},
		{"wrong path", "POST", base + "/other", "application/json", testAlert("x"), 404, "/alerts"},
		{"form content type", "POST", f.url, "application/x-www-form-urlencoded", testAlert("x"), 415, "application/json"},
		{"xml content type", "POST", f.url, "application/xml", "<a/>", 415, "content type"},
		{"empty body", "POST", f.url, "application/json", "", 400, "empty body"},
		{"whitespace body", "POST", f.url, "application/json", " \n\t\n", 400, "empty body"},
		{"not json", "POST", f.url, "application/json", "hello", 400, "malformed JSON"},
		{"json array", "POST", f.url, "application/json", "[" + testAlert("x") + "]", 400, "object"},
		{"missing rule", "POST", f.url, "application/json", `{"priority":"Warning","time":"2026-11-21T04:45:00Z"}`, 400, `"rule"`},
		{"oversize alert", "POST", f.url, "application/json", `{"rule":"` + strings.Repeat("x", 5000) + `","priority":"Warning","time":"2026-11-21T04:45:00Z"}`, 413, "maxEventBytes"},
		{"oversize body", "POST", f.url, "application/json", strings.Repeat(testAlert("x")+"\n", 500), 413, "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, msg, hdr := post(t, c.method, c.url, c.ctype, c.body)
			assert.Equal(t, c.code, code, msg)
			assert.Contains(t, msg, c.mention)
			if c.code == 405 {
				assert.Equal(t, "POST, PUT", hdr.Get("Allow"))
			}
		})
	}
	assert.Empty(t, f.drain())
}

func TestWebhookChunkedBodyOverCap(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 1000; i++ { // ~190 KB, over the 64 KiB cap
			if _, err := pw.Write([]byte(testAlert("x") + "\n")); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", f.url, pr) // no Content-Length: chunked
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 413, resp.StatusCode)
	assert.Empty(t, f.drain())
}

// A body that does not fit is held; with a short hold and nobody draining,
// the hold expires: 503 with Retry-After, nothing queued, counted.
// (Was TestWebhookQueueFullIs503AndAtomic, which expected an immediate 503.)
func TestWebhookHoldExpiresIs503AndAtomic(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) {
		c.QueueSize = 16
		c.Webhook.MaxHoldMs = 100
	})
	var ten strings.Builder
	for i := 0; i < 10; i++ {
		ten.WriteString(testAlert("x") + "\n")
	}
	code, _, _ := post(t, "POST", f.url, "application/json", ten.String())
	require.Equal(t, 200, code)
	code, msg, hdr := post(t, "POST", f.url, "application/json", ten.String()) // 20 > 16
	assert.Equal(t, 503, code, msg)
	assert.Contains(t, msg, "webhook.maxHoldMs")
	assert.Equal(t, "1", hdr.Get("Retry-After"))
	assert.Len(t, f.drain(), 10, "the refused body must not be partly queued")
	assert.Equal(t, uint64(10), f.c.QueueFull.Load())
	assert.Equal(t, uint64(1), f.w.in.held.Load())
	// After draining, the retry succeeds at once.
	code, _, _ = post(t, "POST", f.url, "application/json", ten.String())
	assert.Equal(t, 200, code)
}

func TestWebhookLoopGuard(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	own := strings.Replace(testAlert("triage rule"), `"source":"syscall"`, `"source":"falco_alert"`, 1)
	code, body, _ := post(t, "POST", f.url, "application/json", own+"\n"+testAlert("kept"))
	require.Equal(t, 200, code)
	assert.JSONEq(t, `{"accepted":1,"loop_dropped":1}`, body)
	got := f.drain()
	require.Len(t, got, 1)
	assert.Equal(t, "kept", got[0].Rule)
	assert.Equal(t, uint64(1), f.c.LoopDropped.Load())
}

func TestWebhookMissingPathMeansRoot(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0", nil)
	assert.True(t, strings.HasSuffix(f.url, "/"), f.url)
	code, _, _ := post(t, "POST", f.url, "application/json", testAlert("x"))
	assert.Equal(t, 200, code)
}

func TestWebhookEmptyHostBindsLoopback(t *testing.T) {
	f := startWebhook(t, "http://:0/a", nil)
	host, _, err := net.SplitHostPort(f.w.Addr())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)
}

func TestWebhookBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	u, _ := url.Parse("http://" + ln.Addr().String() + "/alerts")
	_, err = Listen(u, config.Default(), ingest.NewAlertQueue(16, 1<<30), &ingest.Counters{}, logging.Default())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already in use")
	assert.Contains(t, err.Error(), ln.Addr().String())
}

func TestWebhookRefusesNonLoopbackUnlessAllowed(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "[::]", "192.0.2.1", "example.com"} {
		u, _ := url.Parse("http://" + host + ":0/alerts")
		_, err := Listen(u, config.Default(), ingest.NewAlertQueue(16, 1<<30), &ingest.Counters{}, logging.Default())
		require.Error(t, err, host)
		assert.Contains(t, err.Error(), "allowNonLoopback", host)
	}
	f := startWebhook(t, "http://0.0.0.0:0/alerts", func(c *config.Config) { c.Webhook.AllowNonLoopback = true })
	assert.NotEmpty(t, f.w.Addr())
}

func TestWebhookRejectsBadURLs(t *testing.T) {
	for _, raw := range []string{"https://127.0.0.1:0/", "http://127.0.0.1:99999/", "http://127.0.0.1:0/a?x=1", "http://u:p@127.0.0.1:0/"} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		_, err = Listen(u, config.Default(), ingest.NewAlertQueue(16, 1<<30), &ingest.Counters{}, logging.Default())
		assert.Error(t, err, raw)
	}
}

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and
// localhost, and client certificates from this CA and from a second,
// untrusted one. Everything is generated per test; nothing is checked in.
type testPKI struct {
	dir                        string
	caFile, certFile, keyFile  string // server side
	caPool                     *x509.CertPool
	client, strangerClient     tls.Certificate
	otherCAFile                string
	clientCertFile, clientKeyF string
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t, "triage test CA")
	other := testpki.NewCA(t, "someone else's CA")
	srvCert, srvKey := ca.Issue(t, "triage webhook", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.Issue(t, "falco", x509.ExtKeyUsageClientAuth)
	strCert, strKey := other.Issue(t, "stranger", x509.ExtKeyUsageClientAuth)
	p := &testPKI{
		dir:            dir,
		caFile:         writeFile(t, dir, "ca.pem", ca.PEM()),
		otherCAFile:    writeFile(t, dir, "other-ca.pem", other.PEM()),
		certFile:       writeFile(t, dir, "server.pem", srvCert),
		keyFile:        writeFile(t, dir, "server.key", srvKey),
		clientCertFile: writeFile(t, dir, "client.pem", cliCert),
		clientKeyF:     writeFile(t, dir, "client.key", cliKey),
		caPool:         ca.Pool(),
	}
	var err error
	p.client, err = tls.X509KeyPair(cliCert, cliKey)
	require.NoError(t, err)
	p.strangerClient, err = tls.X509KeyPair(strCert, strKey)
	require.NoError(t, err)
	return p
}

// client returns an HTTP client that trusts roots and presents certs; it
// keeps no connections between tests.
func tlsClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		},
	}
}

func doPost(c *http.Client, url, body string, headers ...string) (int, string, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestWebhookTLS(t *testing.T) {
	pki := newTestPKI(t)
	f := startWebhook(t, "https://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.TLSCertFile, c.Webhook.TLSKeyFile = pki.certFile, pki.keyFile
	})
	require.True(t, strings.HasPrefix(f.url, "https://127.0.0.1:"), f.url)

	code, body, err := doPost(tlsClient(pki.caPool), f.url, testAlert("over tls"))
	require.NoError(t, err)
	require.Equal(t, 200, code, body)

	// A client that does not trust the CA refuses the server.
	_, _, err = doPost(tlsClient(x509.NewCertPool()), f.url, testAlert("untrusted"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate")

	// Plain http to the TLS port is not served.
	plainURL := "http://" + strings.TrimPrefix(f.url, "https://")
	code, _, err = doPost(&http.Client{Timeout: 20 * time.Second}, plainURL, testAlert("plain"))
	if err == nil {
		assert.Equal(t, http.StatusBadRequest, code, "a plain request to the TLS port must not be accepted")
	}

	got := f.drain()
	require.Len(t, got, 1, "only the request over verified TLS is queued")
	assert.Equal(t, "over tls", got[0].Rule)
}

func TestWebhookMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	f := startWebhook(t, "https://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.TLSCertFile, c.Webhook.TLSKeyFile = pki.certFile, pki.keyFile
		c.Webhook.TLSClientCAFile = pki.caFile
	})
	// No client certificate: the handshake (or the first read, in TLS 1.3) fails.
	_, _, err := doPost(tlsClient(pki.caPool), f.url, testAlert("anonymous"))
	require.Error(t, err, "a client without a certificate must be refused")
	// A certificate from another CA.
	_, _, err = doPost(tlsClient(pki.caPool, pki.strangerClient), f.url, testAlert("stranger"))
	require.Error(t, err, "a client certificate from an untrusted CA must be refused")
	// The right one.
	code, body, err := doPost(tlsClient(pki.caPool, pki.client), f.url, testAlert("falco"))
	require.NoError(t, err)
	require.Equal(t, 200, code, body)

	got := f.drain()
	require.Len(t, got, 1)
	assert.Equal(t, "falco", got[0].Rule)
}

func TestWebhookSharedSecret(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", []byte("s3cret-value\n")) // trailing newline is not part of it
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.SecretFile = secretFile
	})
	c := &http.Client{Timeout: 20 * time.Second}
	cases := []struct {
		name    string
		headers []string
		code    int
	}{
		{"missing", nil, 401},
		{"wrong", []string{"X-Triage-Secret", "s3cret-valuE"}, 401},
		{"prefix", []string{"X-Triage-Secret", "s3cret"}, 401},
		{"other header", []string{"Authorization", "s3cret-value"}, 401},
		{"twice", []string{"X-Triage-Secret", "s3cret-value", "X-Triage-Secret", "s3cret-value"}, 401},
		{"right", []string{"X-Triage-Secret", "s3cret-value"}, 200},
		{"right, header name in lower case", []string{"x-triage-secret", "s3cret-value"}, 200},
	}
	for _, tc := range cases {
		code, body, err := doPost(c, f.url, testAlert(tc.name), tc.headers...)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.code, code, "%s: %s", tc.name, body)
		if code == 401 {
			assert.NotContains(t, body, "s3cret", "the answer must not echo the secret")
			assert.Contains(t, body, "X-Triage-Secret")
		}
	}
	got := f.drain()
	require.Len(t, got, 2)
	assert.Equal(t, "right", got[0].Rule)
	assert.Equal(t, uint64(5), f.w.unauthorized.Load())
	assert.Equal(t, uint64(2), f.c.Received.Load(), "refused requests are not parsed")
}

func TestWebhookSecretHeaderName(t *testing.T) {
	secretFile := writeFile(t, t.TempDir(), "secret", []byte("abc"))
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.SecretFile = secretFile
		c.Webhook.SecretHeader = "X-Falcosidekick-Token"
	})
	c := &http.Client{Timeout: 20 * time.Second}
	code, _, err := doPost(c, f.url, testAlert("a"), "X-Triage-Secret", "abc")
	require.NoError(t, err)
	assert.Equal(t, 401, code)
	code, _, err = doPost(c, f.url, testAlert("b"), "X-Falcosidekick-Token", "abc")
	require.NoError(t, err)
	assert.Equal(t, 200, code)
}

func TestWebhookNonLoopbackNeedsProtection(t *testing.T) {
	pki := newTestPKI(t)
	secretFile := writeFile(t, t.TempDir(), "secret", []byte("abc"))
	u, _ := url.Parse("http://0.0.0.0:0/alerts")
	_, err := Listen(u, config.Default(), ingest.NewAlertQueue(16, 1<<30), &ingest.Counters{}, logging.New(io.Discard, 1, time.Second))
	require.Error(t, err)
	for _, want := range []string{"0.0.0.0", "webhook.tlsCertFile", "webhook.secretFile", "webhook.allowNonLoopback"} {
		assert.Contains(t, err.Error(), want)
	}

	var logs strings.Builder
	withSecret := startWebhookLog(t, "http://0.0.0.0:0/alerts", &logs, func(c *config.Config) { c.Webhook.SecretFile = secretFile })
	assert.NotEmpty(t, withSecret.w.Addr())
	assert.Contains(t, logs.String(), "clear text", "a secret over plain http off loopback is warned about")

	withTLS := startWebhook(t, "https://0.0.0.0:0/alerts", func(c *config.Config) {
		c.Webhook.TLSCertFile, c.Webhook.TLSKeyFile = pki.certFile, pki.keyFile
		c.Webhook.TLSClientCAFile = pki.caFile
	})
	assert.True(t, strings.HasPrefix(withTLS.url, "https://"))
}

func TestWebhookSchemeMustMatchTLSConfig(t *testing.T) {
	pki := newTestPKI(t)
	cfg := config.Default()
	cfg.Webhook.TLSCertFile, cfg.Webhook.TLSKeyFile = pki.certFile, pki.keyFile
	u, _ := url.Parse("http://127.0.0.1:0/alerts")
	_, err := Listen(u, cfg, ingest.NewAlertQueue(16, 1<<30), &ingest.Counters{}, logging.New(io.Discard, 1, time.Second))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "https://")

	u, _ = url.Parse("https://127.0.0.1:0/alerts")
	_, err = Listen(u, config.Default(), ingest.NewAlertQueue(16, 1<<30), &ingest.Counters{}, logging.New(io.Discard, 1, time.Second))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "webhook.tlsCertFile")
}

func startWebhookLog(t *testing.T, rawURL string, logs io.Writer, mutate func(*config.Config)) *webhookFixture {
	t.Helper()
	cfg := config.Default()
	cfg.MaxEventBytes = 4096
	cfg.Webhook.MaxBodyBytes = 64 << 10
	if mutate != nil {
		mutate(&cfg)
	}
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	q := ingest.NewAlertQueue(cfg.QueueSize, int64(cfg.QueueBytes))
	c := &ingest.Counters{}
	w, err := Listen(u, cfg, q, c, logging.New(logs, 100, time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	return &webhookFixture{w: w, q: q, c: c, url: w.URL()}
}

// closedBy reads from conn until the server closes it. It fails the test
// if the generous deadline passes first: the server is meant to cut the
// connection itself, much earlier.
func closedBy(t *testing.T, conn net.Conn) string {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(waitFor)))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", waitFor)
	}
	return string(b)
}

func TestWebhookSlowClientsAreCut(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.ReadHeaderTimeoutMs = 200
		c.Webhook.ReadTimeoutMs = 300
		c.Webhook.IdleTimeoutMs = 300
	})
	// Slowloris: headers that never end.
	conn, err := net.Dial("tcp", f.w.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
	require.NoError(t, err)
	closedBy(t, conn)

	// A body that never completes.
	conn2, err := net.Dial("tcp", f.w.Addr())
	require.NoError(t, err)
	defer conn2.Close()
	a := testAlert("slow body")
	_, err = fmt.Fprintf(conn2, "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(a), a[:10])
	require.NoError(t, err)
	closedBy(t, conn2)

	// An idle kept-alive connection.
	conn3, err := net.Dial("tcp", f.w.Addr())
	require.NoError(t, err)
	defer conn3.Close()
	a = testAlert("quick")
	_, err = fmt.Fprintf(conn3, "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(a), a)
	require.NoError(t, err)
	resp := closedBy(t, conn3)
	assert.True(t, strings.HasPrefix(resp, "HTTP/1.1 200"), resp)

	got := f.drain()
	require.Len(t, got, 1, "only the complete request is queued")
	assert.Equal(t, "quick", got[0].Rule)
}

// TestWebhookConnectionCap is in conns_test.go, with the other tests of conns.go.

// metricsOf fetches /metrics and returns the samples by name, checking
// that each has HELP and TYPE lines.
func metricsOf(t *testing.T, c *http.Client, url string, headers ...string) map[string]uint64 {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4"), resp.Header.Get("Content-Type"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]uint64{}
	help, typ := map[string]bool{}, map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		fs := strings.Fields(line)
		switch {
		case len(fs) >= 4 && fs[0] == "#" && fs[1] == "HELP":
			help[fs[2]] = true
		case len(fs) == 4 && fs[0] == "#" && fs[1] == "TYPE":
			typ[fs[2]] = fs[3]
		case len(fs) == 2:
			// A histogram's samples (NAME_bucket{le="…"}, NAME_sum,
			// NAME_count) belong to the family NAME; _sum may be fractional.
			v, err := strconv.ParseFloat(fs[1], 64)
			require.NoError(t, err, line)
			out[fs[0]] = uint64(v)
			family, _, _ := strings.Cut(fs[0], "{")
			if typ[family] == "" {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if f := strings.TrimSuffix(family, suf); f != family && typ[f] == "histogram" {
						family = f
					}
				}
			}
			require.True(t, help[family], "HELP before %s", fs[0])
			require.NotEmpty(t, typ[family], "TYPE before %s", fs[0])
			if strings.HasSuffix(fs[0], "_total") {
				assert.Equal(t, "counter", typ[fs[0]], fs[0])
			}
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	return out
}

func TestWebhookMetrics(t *testing.T) {
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) { c.Webhook.Metrics = true })
	base := strings.TrimSuffix(f.url, "/alerts")
	c := &http.Client{Timeout: 20 * time.Second}

	var three strings.Builder
	for i := 0; i < 3; i++ {
		three.WriteString(testAlert("ok") + "\n")
	}
	own := strings.Replace(testAlert("own"), `"source":"syscall"`, `"source":"falco_alert"`, 1)
	for _, b := range []struct {
		body string
		code int
	}{
		{three.String(), 200},
		{`{"rule":"x"}`, 400},
		{own + "\n" + testAlert("ok"), 200},
		{`{"rule":"` + strings.Repeat("x", 5000) + `","priority":"Warning","time":"2026-11-21T04:45:00Z"}`, 413},
	} {
		code, body, err := doPost(c, f.url, b.body)
		require.NoError(t, err)
		require.Equal(t, b.code, code, body)
	}
	m := metricsOf(t, c, base+"/metrics")
	want := map[string]uint64{
		"triage_alerts_received_total":      7,
		"triage_alerts_queued_total":        4,
		"triage_alerts_delivered_total":     0, // counted by next_batch, which this test does not run
		"triage_alerts_malformed_total":     1,
		"triage_alerts_oversize_total":      1,
		"triage_alerts_loop_dropped_total":  1,
		"triage_alerts_queue_full_total":    0,
		"triage_alerts_skipped_total":       0,
		"triage_webhook_unauthorized_total": 0,
	}
	for k, v := range want {
		got, ok := m[k]
		if assert.True(t, ok, "missing %s", k) {
			assert.Equal(t, v, got, k)
		}
	}
	assert.Contains(t, m, "triage_webhook_connections")

	code, _, err := doPost(c, base+"/metrics", "")
	require.NoError(t, err)
	assert.Equal(t, 405, code)

	// Off by default: /metrics is just another wrong path.
	g := startWebhook(t, "http://127.0.0.1:0/alerts", nil)
	resp, err := c.Get(strings.TrimSuffix(g.url, "/alerts") + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 404, resp.StatusCode)
}

func TestWebhookMetricsBehindSecret(t *testing.T) {
	secretFile := writeFile(t, t.TempDir(), "secret", []byte("abc"))
	f := startWebhook(t, "http://127.0.0.1:0/alerts", func(c *config.Config) {
		c.Webhook.Metrics = true
		c.Webhook.SecretFile = secretFile
	})
	c := &http.Client{Timeout: 20 * time.Second}
	murl := strings.TrimSuffix(f.url, "/alerts") + "/metrics"
	resp, err := c.Get(murl)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode)
	m := metricsOf(t, c, murl, "X-Triage-Secret", "abc")
	assert.Equal(t, uint64(1), m["triage_webhook_unauthorized_total"])
}

func TestWebhookMetricsPathCollision(t *testing.T) {
	cfg := config.Default()
	cfg.Webhook.Metrics = true
	u, _ := url.Parse("http://127.0.0.1:0/metrics")
	_, err := Listen(u, cfg, ingest.NewAlertQueue(16, 1<<30), &ingest.Counters{}, logging.New(io.Discard, 1, time.Second))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "webhook.metrics")
}
