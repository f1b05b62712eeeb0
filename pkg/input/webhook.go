package input

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/logging"
)

// Timeouts against slow or stuck clients. Falco and Falcosidekick send
// small bodies quickly and reuse connections.
const (
	webhookReadHeaderTimeout = 10 * time.Second
	webhookReadTimeout       = 60 * time.Second
	webhookWriteTimeout      = 30 * time.Second
	webhookIdleTimeout       = 120 * time.Second
	webhookMaxHeaderBytes    = 64 << 10
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

// Webhook receives alerts over HTTP and queues them.
type Webhook struct {
	addr     string
	path     string
	ln       net.Listener
	srv      *http.Server
	q        *AlertQueue
	c        *Counters
	log      *logging.Logger
	maxBody  int64
	maxEvent int
	parsers  sync.Pool
	done     chan struct{}
	serveErr error
}

// ListenWebhook binds the address in u now, so that a busy port or a bad
// address is an error at open time, not a silent failure later.
func ListenWebhook(u *url.URL, cfg config.Config, q *AlertQueue, c *Counters, log *logging.Logger) (*Webhook, error) {
	if u.Scheme == "https" {
		return nil, errors.New("open_params: https is not supported yet; use http on loopback")
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
	if !isLoopback(host) && !cfg.Webhook.AllowNonLoopback {
		return nil, fmt.Errorf("open_params: refusing to listen on non-loopback address %q: the webhook has no TLS or authentication yet, so anyone who can reach it could inject alerts; listen on 127.0.0.1, or set init_config webhook.allowNonLoopback: true if the network is trusted", host)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	addr := net.JoinHostPort(host, port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("webhook: cannot listen on %s: port already in use (another triage or program holds it; pick another port in open_params)", addr)
		}
		return nil, fmt.Errorf("webhook: cannot listen on %s: %w", addr, err)
	}
	w := &Webhook{
		addr:     ln.Addr().String(),
		path:     path,
		ln:       ln,
		q:        q,
		c:        c,
		log:      log,
		maxBody:  int64(cfg.Webhook.MaxBodyBytes),
		maxEvent: cfg.MaxEventBytes,
		done:     make(chan struct{}),
	}
	w.parsers.New = func() any { return new(alert.Parser) }
	w.srv = &http.Server{
		Handler:           w,
		ReadHeaderTimeout: webhookReadHeaderTimeout,
		ReadTimeout:       webhookReadTimeout,
		WriteTimeout:      webhookWriteTimeout,
		IdleTimeout:       webhookIdleTimeout,
		MaxHeaderBytes:    webhookMaxHeaderBytes,
		ErrorLog:          nil,
	}
	go func() {
		defer close(w.done)
		if err := w.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.serveErr = err
			log.Printf("webhook on %s stopped: %v", w.addr, err)
		}
	}()
	return w, nil
}

// Addr returns the bound address (useful with port 0).
func (w *Webhook) Addr() string { return w.addr }

// URL returns the URL senders should post to.
func (w *Webhook) URL() string { return "http://" + w.addr + w.path }

// Shutdown stops accepting, lets in-flight requests finish (bounded by
// ctx), then closes.
func (w *Webhook) Shutdown(ctx context.Context) error {
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

// ServeHTTP implements the webhook protocol: 200 only when every alert of
// the body is queued, 4xx with the reason otherwise, 503 when the queue is
// full (nothing of the body is queued, the sender should retry).
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	defer func() {
		// A panic here must not reach net/http's recovery (which logs
		// and drops the connection) unanswered; nothing was queued yet
		// or the push was atomic, so 500 is honest.
		if v := recover(); v != nil {
			w.log.Limitedf("webhook: recovered from panic: %v", v)
			http.Error(rw, "internal error", http.StatusInternalServerError)
		}
	}()
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
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, w.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			w.c.Oversize.Add(1)
			http.Error(rw, fmt.Sprintf("body is over the limit of %d bytes", w.maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "cannot read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	alerts, loops, status, reason := w.parseBody(body)
	if status != http.StatusOK {
		w.log.Limitedf("webhook: rejected request from %s: %d %s", r.RemoteAddr, status, reason)
		http.Error(rw, reason, status)
		return
	}
	if !w.q.TryPushAll(alerts) {
		w.c.QueueFull.Add(uint64(len(alerts)))
		w.log.Limitedf("webhook: queue full (%d alerts), answered 503 to %s for %d alerts", w.q.Cap(), r.RemoteAddr, len(alerts))
		rw.Header().Set("Retry-After", "1")
		http.Error(rw, "queue full: retry later", http.StatusServiceUnavailable)
		return
	}
	w.c.Queued.Add(uint64(len(alerts)))
	rw.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(rw, "{\"accepted\":%d,\"loop_dropped\":%d}\n", len(alerts), loops)
}

// parseBody splits a body into alerts: one JSON object (possibly pretty
// printed over several lines) or NDJSON. On any bad alert the whole body
// is rejected, so the sender can fix and resend it without duplicates.
func (w *Webhook) parseBody(body []byte) (alerts []*alert.Alert, loops int, status int, reason string) {
	p := w.parsers.Get().(*alert.Parser)
	defer w.parsers.Put(p)

	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		w.c.Malformed.Add(1)
		return nil, 0, http.StatusBadRequest, "empty body: expected one alert or one alert per line"
	}
	lines := splitLines(trimmed)
	if len(lines) > 1 {
		// A pretty-printed single alert spans lines too; its first line
		// is not valid JSON on its own.
		if _, err := p.Parse(lines[0]); errors.Is(err, alert.ErrSyntax) {
			if _, err := p.Parse(trimmed); err == nil {
				lines = [][]byte{trimmed}
			}
		}
	}
	alerts = make([]*alert.Alert, 0, len(lines))
	var counted Counters
	for i, line := range lines {
		a, err := parseAlert(p, line, w.maxEvent, &counted)
		switch {
		case errors.Is(err, errLoop):
			loops++
		case err != nil:
			w.addCounts(&counted)
			where := ""
			if len(lines) > 1 {
				where = fmt.Sprintf("line %d: ", i+1)
			}
			st := http.StatusBadRequest
			if counted.Oversize.Load() > 0 {
				st = http.StatusRequestEntityTooLarge
			}
			return nil, 0, st, fmt.Sprintf("%s%v (nothing in this body was accepted)", where, err)
		default:
			alerts = append(alerts, a)
		}
	}
	w.addCounts(&counted)
	return alerts, loops, http.StatusOK, ""
}

func (w *Webhook) addCounts(c *Counters) {
	w.c.Received.Add(c.Received.Load())
	w.c.Malformed.Add(c.Malformed.Load())
	w.c.Oversize.Add(c.Oversize.Load())
	w.c.LoopDropped.Add(c.LoopDropped.Load())
}

// splitLines splits on "\n", dropping "\r" endings and blank lines.
func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i], b[i+1:]
		}
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			out = append(out, line)
		}
	}
	return out
}
