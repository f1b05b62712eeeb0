package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/logging"
)

// Limits that are not configurable: Falco and Falcosidekick send small
// headers and read answers at once.
const (
	webhookWriteSlack     = 30 * time.Second // WriteTimeout = readTimeout + this (it also covers the body read)
	webhookMaxHeaderBytes = 64 << 10
	metricsPath           = "/metrics"
)

// acceptedContentTypes are the media types the webhook takes. Falco's
// http_output sends application/json, Falcosidekick
// "application/json; charset=utf-8"; NDJSON senders use the others.
var acceptedContentTypes = map[string]bool{
	"application/json":     true,
	"application/x-ndjson": true,
	"application/ndjson":   true,
	"application/jsonl":    true,
	"text/plain":           true,
}

// Server receives alerts over HTTP and queues them.
type Server struct {
	addr     string
	scheme   string
	path     string
	ln       net.Listener
	srv      *http.Server
	q        *ingest.AlertQueue
	c        *ingest.Counters
	log      *logging.Logger
	maxBody  int64
	maxEvent int
	parsers  sync.Pool
	done     chan struct{}
	serveErr error

	// secretHeader is non-empty when a shared secret is required;
	// secretSum is the SHA-256 of the secret (the secret itself is not
	// kept, and comparing digests keeps the compare constant-time whatever
	// the length sent).
	secretHeader string
	secretSum    [sha256.Size]byte
	metrics      bool
	unauthorized atomic.Uint64
	in           *intake // body.go: in-flight budget and holds
	spill        *spillSide
	conns        *limitListener
}

// newWebhook builds the handler without listening (Listen binds it;
// the fuzz test drives ServeHTTP directly).
func newWebhook(path string, cfg config.Config, q *ingest.AlertQueue, c *ingest.Counters, log *logging.Logger) (*Server, error) {
	w := &Server{
		scheme:   "http",
		path:     path,
		q:        q,
		c:        c,
		log:      log,
		maxBody:  int64(cfg.Webhook.MaxBodyBytes),
		maxEvent: cfg.MaxEventBytes,
		metrics:  cfg.Webhook.Metrics,
		done:     make(chan struct{}),
		in:       newIntake(cfg),
	}
	w.parsers.New = func() any { return new(alert.Parser) }
	if cfg.Webhook.SecretConfigured() {
		secret, err := cfg.Webhook.LoadSecret()
		if err != nil {
			return nil, err
		}
		w.secretHeader = http.CanonicalHeaderKey(cfg.Webhook.SecretHeader)
		w.secretSum = sha256.Sum256(secret)
		clear(secret)
	}
	if w.metrics && path == metricsPath {
		return nil, fmt.Errorf("open_params: the webhook path %s is where init_config webhook.metrics serves the counters; post alerts to another path", metricsPath)
	}
	return w, nil
}

// Listen binds the address in u now, so that a busy port or a bad
// address is an error at open time, not a silent failure later.
func Listen(u *url.URL, cfg config.Config, q *ingest.AlertQueue, c *ingest.Counters, log *logging.Logger) (*Server, error) {
	wc := &cfg.Webhook
	switch {
	case u.Scheme == "https" && !wc.TLSConfigured():
		return nil, errors.New("open_params: https:// needs a certificate: set init_config webhook.tlsCertFile and webhook.tlsKeyFile")
	case u.Scheme == "http" && wc.TLSConfigured():
		return nil, fmt.Errorf("open_params: %q is plain http but init_config webhook.tlsCertFile is set; write https:// to serve TLS", u.Redacted())
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("open_params: unsupported webhook scheme %q", u.Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("open_params: %q: user info, query and fragment are not supported in the webhook URL", u.Redacted())
	}
	host := u.Hostname()
	if host == "" {
		host = "127.0.0.1"
	}
	port := u.Port()
	if port == "" {
		port = strconv.Itoa(config.DefaultPort)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("open_params: bad port %q", port)
	}
	protected := wc.TLSConfigured() || wc.SecretConfigured()
	if !isLoopback(host) {
		switch {
		case !protected && !wc.AllowNonLoopback:
			return nil, fmt.Errorf("open_params: refusing to listen on non-loopback address %q without protection: anyone who reaches the port could inject alerts. Listen on 127.0.0.1, or configure TLS (init_config webhook.tlsCertFile and webhook.tlsKeyFile, with webhook.tlsClientCAFile for client certificates) and/or a shared secret (webhook.secretFile), or set webhook.allowNonLoopback: true if the network is trusted", host)
		case !protected:
			log.Printf("webhook: listening on non-loopback address %s with neither TLS nor a shared secret (webhook.allowNonLoopback is set): anyone who reaches it can inject alerts", host)
		case wc.TLSClientCAFile == "" && !wc.SecretConfigured():
			log.Printf("webhook: TLS without client certificates or a shared secret on %s: traffic is encrypted but anyone who reaches the port can inject alerts (set webhook.tlsClientCAFile or webhook.secretFile)", host)
		case !wc.TLSConfigured():
			log.Printf("webhook: shared secret over plain http on %s: the secret crosses the network in clear text (set webhook.tlsCertFile and webhook.tlsKeyFile)", host)
		}
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	w, err := newWebhook(path, cfg, q, c, log)
	if err != nil {
		return nil, err
	}
	var tlsCfg *tls.Config
	if wc.TLSConfigured() {
		// Read at open, so certificates renewed since init are picked up.
		pair, err := wc.LoadKeyPair()
		if err != nil {
			return nil, err
		}
		tlsCfg = &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{pair},
			NextProtos:   []string{"http/1.1"},
		}
		if wc.TLSClientCAFile != "" {
			pool, err := wc.LoadClientCAs()
			if err != nil {
				return nil, err
			}
			tlsCfg.ClientCAs = pool
			tlsCfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		w.scheme = "https"
	}
	addr := net.JoinHostPort(host, port)
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("webhook: cannot listen on %s: port already in use (another triage or program holds it; pick another port in open_params)", addr)
		}
		return nil, fmt.Errorf("webhook: cannot listen on %s: %w", addr, err)
	}
	w.addr = tcp.Addr().String()
	w.conns = newLimitListener(tcp, wc.MaxConnections, log)
	w.ln = w.conns
	if tlsCfg != nil {
		w.ln = tls.NewListener(w.conns, tlsCfg)
	}
	readTimeout := time.Duration(wc.ReadTimeoutMs) * time.Millisecond
	w.srv = &http.Server{
		Handler:           w,
		ReadHeaderTimeout: time.Duration(wc.ReadHeaderTimeoutMs) * time.Millisecond,
		ReadTimeout:       readTimeout,
		WriteTimeout:      readTimeout + webhookWriteSlack,
		IdleTimeout:       time.Duration(wc.IdleTimeoutMs) * time.Millisecond,
		MaxHeaderBytes:    webhookMaxHeaderBytes,
		ConnState:         w.conns.ConnState, // conns.go: idle connections make room at the cap
		// net/http's own messages (TLS handshake failures, accept errors)
		// are driven by clients: rate-limit them into the plugin log.
		ErrorLog: stdlog.New(limitedWriter{log}, "", 0),
	}
	go func() {
		defer close(w.done)
		if err := w.srv.Serve(w.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.serveErr = err
			log.Printf("webhook on %s stopped: %v", w.addr, err)
		}
	}()
	return w, nil
}

// limitedWriter turns net/http's error log into rate-limited plugin log lines.
type limitedWriter struct{ log *logging.Logger }

func (l limitedWriter) Write(p []byte) (int, error) {
	l.log.Limitedf("webhook: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Addr returns the bound address (useful with port 0).
func (w *Server) Addr() string { return w.addr }

// URL returns the URL senders should post to.
func (w *Server) URL() string { return w.scheme + "://" + w.addr + w.path }

// Shutdown stops accepting, lets in-flight requests finish (bounded by
// ctx), then closes.
func (w *Server) Shutdown(ctx context.Context) error {
	err := w.srv.Shutdown(ctx)
	if err != nil {
		w.srv.Close()
	}
	<-w.done
	return err
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authorized checks the shared-secret header in constant time. A request
// may carry the header once; several values are refused.
func (w *Server) authorized(r *http.Request) bool {
	if w.secretHeader == "" {
		return true
	}
	vals := r.Header.Values(w.secretHeader)
	if len(vals) != 1 {
		return false
	}
	sum := sha256.Sum256([]byte(vals[0]))
	return subtle.ConstantTimeCompare(sum[:], w.secretSum[:]) == 1
}

// ServeHTTP implements the webhook protocol: 200 only when every alert of
// the body is queued, 4xx with the reason otherwise (413 also for a body
// the whole queue could not take), and 503 only when the queue stayed full
// for webhook.maxHoldMs while the request was held (nothing of the body is
// queued). The body is read and parsed as a stream (body.go).
func (w *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	defer func() {
		// A panic here must not reach net/http's recovery (which logs
		// and drops the connection) unanswered; nothing was queued yet
		// or the push was atomic, so 500 is honest.
		if v := recover(); v != nil {
			w.log.Limitedf("webhook: recovered from panic: %v", v)
			http.Error(rw, "internal error", http.StatusInternalServerError)
		}
	}()
	if !w.authorized(r) {
		w.unauthorized.Add(1)
		w.log.Limitedf("webhook: refused request from %s: missing or wrong %s header", r.RemoteAddr, w.secretHeader)
		http.Error(rw, fmt.Sprintf("unauthorized: send the shared secret in the %s header", w.secretHeader), http.StatusUnauthorized)
		return
	}
	if w.metrics && r.URL.Path == metricsPath {
		w.serveMetrics(rw, r)
		return
	}
	if r.URL.Path != w.path {
		http.Error(rw, fmt.Sprintf("not found: triage accepts alerts at %s", w.path), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		rw.Header().Set("Allow", "POST, PUT")
		http.Error(rw, "method not allowed: send alerts with POST or PUT", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !acceptedContentTypes[strings.ToLower(mt)] {
			http.Error(rw, fmt.Sprintf("unsupported content type %q: send application/json (one alert, or one alert per line)", ct), http.StatusUnsupportedMediaType)
			return
		}
	}
	if r.ContentLength > w.maxBody {
		w.c.Oversize.Add(1)
		http.Error(rw, fmt.Sprintf("body of %d bytes is over the limit of %d bytes", r.ContentLength, w.maxBody), http.StatusRequestEntityTooLarge)
		return
	}
	w.receive(rw, r) // body.go
}

// metric is one line of the /metrics page.
type metric struct {
	name, kind, help string
	value            uint64
}

// serveMetrics writes the counters in the Prometheus text exposition
// format (version 0.0.4).
func (w *Server) serveMetrics(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rw.Header().Set("Allow", "GET, HEAD")
		http.Error(rw, "method not allowed: read metrics with GET", http.StatusMethodNotAllowed)
		return
	}
	s := w.c.Snapshot()
	ms := []metric{
		{"triage_alerts_received_total", "counter", "Alerts (lines or bodies) that reached an input.", s.Received},
		{"triage_alerts_queued_total", "counter", "Alerts put in the queue towards Falco.", s.Queued},
		{"triage_alerts_delivered_total", "counter", "Events handed to Falco by next_batch.", s.Delivered},
		{"triage_alerts_malformed_total", "counter", "Alerts rejected as malformed (bad JSON, wrong types, missing keys, bad values).", s.Malformed},
		{"triage_alerts_oversize_total", "counter", "Alerts or bodies rejected for exceeding the size limits.", s.Oversize},
		{"triage_alerts_loop_dropped_total", "counter", "Alerts from source falco_alert dropped by the loop guard.", s.LoopDropped},
		{"triage_alerts_queue_full_total", "counter", "Alerts refused with 503 because the queue stayed full for webhook.maxHoldMs (lost unless the sender retries).", s.QueueFull},
		{"triage_alerts_skipped_total", "counter", "Alerts dropped inside next_batch (a recovered panic or an event too large to encode).", s.Skipped},
		{"triage_webhook_unauthorized_total", "counter", "Requests refused with 401 for a missing or wrong shared secret.", w.unauthorized.Load()},
	}
	if w.conns != nil {
		ms = append(ms, metric{"triage_webhook_connections", "gauge", "Client connections currently open.", uint64(w.conns.Open())})
		ms = append(ms, metric{"triage_webhook_idle_closed_total", "counter", "Idle or silent connections closed to make room for a new one at webhook.maxConnections.", w.conns.ClosedIdle()})
	}
	ms = append(ms, w.bodyMetrics()...)  // body.go: queue, in-flight bodies, holds
	ms = append(ms, w.spillMetrics()...) // spill.go: the on-disk spill, when configured
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.name, m.help, m.name, m.kind, m.name, m.value)
	}
	w.writeHoldHistogram(&b)
	rw.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	rw.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	if r.Method == http.MethodHead {
		return
	}
	io.WriteString(rw, b.String()) //nolint:errcheck // the client went away; nothing to do
}
