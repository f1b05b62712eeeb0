// Package loadgen drives libtriage.so's webhook on loopback the way Falco
// and Falcosidekick feed it, with test/harness standing in for Falco on
// the other side (next_batch, then field extraction per event), and
// measures throughput and delivery latency. It is bounded in alerts and in
// time, and only ever talks to 127.0.0.1.
//
// Latency: each alert's "time" is the wall clock when its request was
// about to be written, so the event timestamp next_batch hands back says
// when the alert entered; latency is the clock at delivery minus it.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triage-dev/triage/test/harness"
)

// Options describes one run.
type Options struct {
	Lib          string        // path of libtriage.so
	InitConfig   string        // init_config ("" = {})
	Mix          string        // NDJSON file of alert templates (one per rule)
	Mode         string        // "single": one alert per POST; "ndjson": Batch alerts per POST
	Batch        int           // alerts per POST in ndjson mode
	Conns        int           // concurrent keep-alive connections
	Alerts       int           // alerts to send (bound)
	Rate         float64       // target alerts/s over all connections; 0 = as fast as accepted
	MaxDuration  time.Duration // bound on the whole run
	Extract      []string      // fields extracted per event, one call each like libsinsp (none = no extraction)
	WarmupAlerts int           // sent and delivered before measuring (not counted)
	// Bare replaces the plugin with a do-nothing net/http server on
	// loopback that reads each body, counts its lines and answers 200: the
	// naive baseline, i.e. what this machine and these senders reach
	// before triage does any work. Lib, InitConfig and Extract are unused.
	Bare bool
}

// Result is what one run measured.
type Result struct {
	Options      Options       `json:"-"`
	Sent         int           `json:"sent"`
	Delivered    int           `json:"delivered"`
	Retries503   int           `json:"retries_503"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	AlertsPerSec float64       `json:"alerts_per_sec"`
	P50          time.Duration `json:"p50_ns"`
	P99          time.Duration `json:"p99_ns"`
	Max          time.Duration `json:"max_ns"`
	ExtractCalls int           `json:"extract_calls"`
	TimedOut     bool          `json:"timed_out"`
}

// template is one alert of the mix split around its time value.
type template struct{ head, tail []byte }

func loadTemplates(path string) ([]template, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []template
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber() // keep big integers exact
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return nil, err
		}
		m["time"] = "\x00TS\x00"
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		marker := []byte(`"\u0000TS\u0000"`)
		i := bytes.Index(b, marker)
		if i < 0 {
			return nil, errors.New("loadgen: time placeholder lost")
		}
		out = append(out, template{head: bytes.Clone(b[:i]), tail: bytes.Clone(b[i+len(marker):])})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("loadgen: no alerts in %s", path)
	}
	return out, sc.Err()
}

// appendAlert appends template t with the current wall clock as its time.
func appendAlert(dst []byte, t template) []byte {
	dst = append(dst, t.head...)
	dst = append(dst, '"')
	dst = time.Now().UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000000Z07:00")
	dst = append(dst, '"')
	return append(dst, t.tail...)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// OpenWebhook loads the plugin library, initializes it with initConfig and
// opens its webhook on a free loopback port. close destroys both.
func OpenWebhook(lib, initConfig string) (p *harness.Plugin, inst *harness.Instance, url string, close func(), err error) {
	if p, err = harness.Load(lib); err != nil {
		return nil, nil, "", nil, err
	}
	if err = p.Init(initConfig); err != nil {
		return nil, nil, "", nil, err
	}
	port, err := freePort()
	if err != nil {
		p.Destroy()
		return nil, nil, "", nil, err
	}
	url = fmt.Sprintf("http://127.0.0.1:%d/alerts", port)
	if inst, err = p.Open(url); err != nil {
		p.Destroy()
		return nil, nil, "", nil, err
	}
	return p, inst, url, func() { inst.Close(); p.Destroy() }, nil
}

// Run performs one bounded run.
func Run(o Options) (Result, error) {
	res := Result{Options: o}
	if o.Conns <= 0 {
		o.Conns = 1
	}
	if o.Batch <= 0 {
		o.Batch = 1
	}
	if o.Mode == "single" {
		o.Batch = 1
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 30 * time.Second
	}
	if o.InitConfig == "" {
		o.InitConfig = "{}"
	}
	tpls, err := loadTemplates(o.Mix)
	if err != nil {
		return res, err
	}
	if o.Bare {
		return runBare(o, tpls)
	}
	p, inst, url, closeAll, err := OpenWebhook(o.Lib, o.InitConfig)
	if err != nil {
		return res, err
	}
	defer closeAll()
	var reqs []harness.Request
	for _, f := range o.Extract {
		r, err := harness.ParseRequest(f)
		if err != nil {
			return res, err
		}
		reqs = append(reqs, r)
	}

	falco := &pluginConsumer{inst: inst, p: p, reqs: reqs}
	lat := make([]time.Duration, 0, o.Alerts)
	return measure(o, url, tpls, falco, func() { falco.lat = &lat }, &lat)
}

// measure sends the warm-up alerts (connections, correlation tables, the
// plugin's buffers), calls measuring, then sends and times o.Alerts. lat,
// when not nil, holds the latencies c recorded.
func measure(o Options, url string, tpls []template, c consumer, measuring func(), lat *[]time.Duration) (Result, error) {
	res := Result{Options: o}
	ctx, cancel := context.WithTimeout(context.Background(), o.MaxDuration)
	defer cancel()
	tr := &http.Transport{MaxIdleConns: o.Conns * 2, MaxIdleConnsPerHost: o.Conns * 2, MaxConnsPerHost: o.Conns, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if o.WarmupAlerts > 0 {
		if _, err := runPhase(ctx, client, url, tpls, o, o.WarmupAlerts, 0, c); err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
	}
	measuring()
	ph, err := runPhase(ctx, client, url, tpls, o, o.Alerts, o.Rate, c)
	res.Sent, res.Delivered, res.Retries503, res.ExtractCalls = ph.sent, ph.delivered, ph.retries, ph.extracts
	res.Elapsed = ph.elapsed
	res.TimedOut = errors.Is(err, context.DeadlineExceeded)
	if err != nil && !res.TimedOut {
		return res, err
	}
	if res.Elapsed > 0 {
		res.AlertsPerSec = float64(res.Delivered) / res.Elapsed.Seconds()
	}
	if lat != nil && len(*lat) > 0 {
		l := *lat
		slices.Sort(l)
		res.P50 = l[len(l)/2]
		res.P99 = l[min(len(l)-1, len(l)*99/100)]
		res.Max = l[len(l)-1]
	}
	return res, nil
}

type phase struct {
	sent, delivered, retries, extracts int
	elapsed                            time.Duration
}

// consumer is the receiving side of a phase: deliver returns what arrived
// since the last call, waiting a little when nothing did.
type consumer interface {
	deliver(ctx context.Context, ph *phase) (n int, err error)
}

// pluginConsumer plays Falco: next_batch, extraction per event, latency
// per event.
type pluginConsumer struct {
	inst *harness.Instance
	p    *harness.Plugin
	reqs []harness.Request
	lat  *[]time.Duration
}

func (c *pluginConsumer) deliver(_ context.Context, ph *phase) (int, error) {
	evts, rc, err := c.inst.NextBatch()
	if err != nil {
		return 0, err
	}
	now := time.Now().UnixNano()
	for _, e := range evts {
		if c.lat != nil {
			*c.lat = append(*c.lat, time.Duration(now-int64(e.Timestamp)))
		}
		if len(c.reqs) > 0 {
			if _, xerr := c.p.ExtractEach(e, c.reqs...); xerr != nil && err == nil {
				err = xerr
			}
			ph.extracts += len(c.reqs)
		}
		e.Free()
	}
	if rc == harness.EOF && err == nil {
		err = errors.New("loadgen: unexpected EOF from the webhook input")
	}
	return len(evts), err
}

// bareConsumer counts the alerts the bare server accepted.
type bareConsumer struct {
	accepted atomic.Int64
	seen     int64
	arrived  chan struct{}
}

func (c *bareConsumer) deliver(ctx context.Context, _ *phase) (int, error) {
	select {
	case <-c.arrived:
	case <-ctx.Done():
	case <-time.After(30 * time.Millisecond):
	}
	total := c.accepted.Load()
	n := total - c.seen
	c.seen = total
	return int(n), nil
}

func (c *bareConsumer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.accepted.Add(int64(bytes.Count(body, []byte("\n"))))
	select {
	case c.arrived <- struct{}{}:
	default:
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{}\n")
}

// runBare measures the naive baseline (Options.Bare).
func runBare(o Options, tpls []template) (Result, error) {
	res := Result{Options: o}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	bare := &bareConsumer{arrived: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.Handle("/alerts", bare)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/alerts"
	return measure(o, url, tpls, bare, func() {}, nil)
}

// runPhase sends n alerts over o.Conns connections (paced to rate when
// rate > 0) while this goroutine takes delivered alerts from c.
func runPhase(ctx context.Context, client *http.Client, url string, tpls []template, o Options, n int, rate float64, c consumer) (phase, error) {
	var ph phase
	var next atomic.Int64 // alerts claimed by senders
	var sent, retries atomic.Int64
	sendErr := make(chan error, o.Conns)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < o.Conns; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			var body []byte
			var interval time.Duration
			if rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(o.Batch) * float64(o.Conns) / rate)
			}
			due := start.Add(time.Duration(c) * interval / time.Duration(o.Conns))
			for ctx.Err() == nil {
				first := int(next.Add(int64(o.Batch))) - o.Batch
				if first >= n {
					return
				}
				k := min(o.Batch, n-first)
				if interval > 0 {
					if d := time.Until(due); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
					due = due.Add(interval)
				}
				for {
					body = body[:0]
					for j := 0; j < k; j++ {
						body = appendAlert(body, tpls[(first+j)%len(tpls)])
						body = append(body, '\n')
					}
					code, err := post(ctx, client, url, body)
					if err != nil {
						if ctx.Err() == nil {
							sendErr <- err
						}
						return
					}
					if code == http.StatusServiceUnavailable {
						retries.Add(1)
						time.Sleep(time.Millisecond)
						continue
					}
					if code != http.StatusOK {
						sendErr <- fmt.Errorf("loadgen: webhook answered %d", code)
						return
					}
					sent.Add(int64(k))
					break
				}
			}
		}(c)
	}
	defer wg.Wait()

	var err error
	for ph.delivered < n {
		select {
		case err = <-sendErr:
		default:
		}
		if err != nil {
			break
		}
		if ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		got, derr := c.deliver(ctx, &ph)
		ph.delivered += got
		if derr != nil {
			err = derr
			break
		}
	}
	ph.elapsed = time.Since(start)
	if err != nil {
		cancel()
	}
	wg.Wait() // once all alerts arrived the senders end by themselves, their last answers read
	ph.sent, ph.retries = int(sent.Load()), int(retries.Load())
	return ph, err
}

func post(ctx context.Context, client *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body) // drain so the connection is reused
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Describe is a one-line summary of a result.
func (r Result) Describe() string {
	return fmt.Sprintf("%d alerts in %s: %s alerts/s, latency p50 %s p99 %s max %s, 503 retries %d",
		r.Delivered, r.Elapsed.Round(time.Millisecond), strconv.FormatFloat(r.AlertsPerSec, 'f', 0, 64),
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.Retries503)
}
