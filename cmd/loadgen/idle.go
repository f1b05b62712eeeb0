package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/triage-dev/triage/test/loadgen"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// idleResult is what `loadgen idle` prints.
type idleResult struct {
	Lib            string    `json:"lib"`
	Idle           int       `json:"idle_connections"`
	Silent         bool      `json:"silent"`
	MaxConnections int       `json:"max_connections"`
	SetupAnswered  int       `json:"setup_answered"`
	SetupClosed    int       `json:"setup_closed_by_server"`
	SetupSeconds   float64   `json:"setup_seconds"`
	GoodPOSTms     []float64 `json:"good_post_ms"`
	GoodPOSTMaxms  float64   `json:"good_post_max_ms"`
	TimedOut       int       `json:"good_post_timed_out"`
}

// idleCmd measures how long a good POST waits behind idle keep-alive
// connections: N clients connect, each posts one alert and keeps its
// connection open without sending more (with -silent: sends nothing); then, samples times, a new client
// posts one alert on a new connection and its latency (dial to answer) is
// taken. Bounded: the setup by -setup, each sample by -timeout.
func idleCmd(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	lib := fs.String("lib", "libtriage.so", "plugin library")
	idle := fs.Int("idle", 2000, "idle keep-alive connections opened first")
	maxConns := fs.Int("max-connections", 256, "init_config webhook.maxConnections")
	samples := fs.Int("samples", 5, "good POSTs measured, one after the other")
	setup := fs.Duration("setup", 60*time.Second, "bound on opening the idle connections")
	timeout := fs.Duration("timeout", 180*time.Second, "bound on one good POST")
	silent := fs.Bool("silent", false, "the idle clients connect and send nothing (no first request)")
	fs.Parse(args)

	_, inst, url, closeAll, err := loadgen.OpenWebhook(*lib, fmt.Sprintf(`{"queueSize": 65536, "webhook": {"maxConnections": %d}}`, *maxConns))
	if err != nil {
		return err
	}
	defer closeAll()
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/alerts")
	// Falco's side: drain the queue.
	stop := make(chan struct{})
	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			evts, _, err := inst.NextBatch()
			if err != nil {
				return
			}
			for _, e := range evts {
				e.Free()
			}
		}
	}()
	defer func() { close(stop); drained.Wait() }()

	alert := func(rule string) string {
		return fmt.Sprintf(`{"output":"o","priority":"Warning","rule":%q,"source":"syscall","time":"2026-11-21T04:45:00.682554049Z","output_fields":{"proc.name":"bash"},"hostname":"h"}`, rule)
	}
	post := func(c net.Conn, br *bufio.Reader, rule string, d time.Duration) error {
		a := alert(rule)
		c.SetDeadline(time.Now().Add(d)) //nolint:errcheck
		if _, err := fmt.Fprintf(c, "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(a), a); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}

	res := idleResult{Lib: *lib, Idle: *idle, Silent: *silent, MaxConnections: *maxConns}
	conns := make([]net.Conn, 0, *idle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var answered, closed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*setup)
	for i := 0; i < *idle; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err != nil {
			return fmt.Errorf("dialing idle connection %d: %w (ulimit -n?)", i, err)
		}
		conns = append(conns, c)
		if *silent {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReader(c)
			if post(c, br, fmt.Sprintf("idle-%d", i), time.Until(deadline)) == nil {
				answered.Add(1)
				// Idle from here on; note whether the server closes it.
				c.SetReadDeadline(deadline) //nolint:errcheck
				if _, err := br.ReadByte(); err != nil {
					if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
						closed.Add(1)
					}
				}
			}
		}()
		if i%64 == 63 {
			time.Sleep(time.Millisecond) // let the accept loop breathe
		}
	}
	// Wait for every idle client to have its answer, or the bound.
	for !*silent && answered.Load() < int64(*idle) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	res.SetupSeconds = time.Since(start).Seconds()
	res.SetupAnswered = int(answered.Load())

	for s := 0; s < *samples; s++ {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp", addr, *timeout)
		if err == nil {
			err = post(c, bufio.NewReader(c), fmt.Sprintf("good-%d", s), *timeout-time.Since(t0))
			c.Close()
		}
		ms := float64(time.Since(t0).Microseconds()) / 1000
		if err != nil {
			res.TimedOut++
			fmt.Fprintf(os.Stderr, "good POST %d: %v after %.0f ms\n", s, err, ms)
		}
		res.GoodPOSTms = append(res.GoodPOSTms, ms)
	}
	res.SetupClosed = int(closed.Load())
	sorted := append([]float64(nil), res.GoodPOSTms...)
	sort.Float64s(sorted)
	res.GoodPOSTMaxms = sorted[len(sorted)-1]
	kind := "idle keep-alive"
	if *silent {
		kind = "silent"
	}
	fmt.Fprintf(os.Stderr, "good POST behind %d %s connections (maxConnections %d): max %.1f ms over %d samples; setup %d/%d answered in %.1f s\n",
		*idle, kind, *maxConns, res.GoodPOSTMaxms, len(sorted), res.SetupAnswered, *idle, res.SetupSeconds)
	return json.NewEncoder(os.Stdout).Encode(res)
}
