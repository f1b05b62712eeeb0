package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/triage-dev/triage/test/loadgen"
)

// stallResult is what `loadgen stall` prints.
type stallResult struct {
	Lib          string         `json:"lib"`
	Config       string         `json:"init_config"`
	Alerts       int            `json:"alerts"`
	AlertBytes   int            `json:"alert_bytes"`
	Senders      int            `json:"senders"`
	Status       map[string]int `json:"status"` // HTTP status (or "error") -> requests
	Delivered    int            `json:"delivered_after_drain"`
	PeakRSSMiB   float64        `json:"peak_rss_mib"`      // VmHWM of this process (harness + plugin)
	PeakAnonMiB  float64        `json:"peak_rss_anon_mib"` // highest RssAnon sampled every 50 ms: heap and stacks
	PeakFileMiB  float64        `json:"peak_rss_file_mib"` // highest RssFile sampled: mapped files (the spill's bbolt mmap), reclaimable`
	BaseRSSMiB   float64        `json:"rss_after_init_mib"`
	SendSeconds  float64        `json:"send_seconds"`
	DrainSeconds float64        `json:"drain_seconds"`
}

// stallCmd sends large alerts, one request each and never retried (a
// Falcosidekick-like sender with a 10 s timeout), to the plugin's webhook
// while Falco does not read (no next_batch) for -stall, then drains; it
// reports the answers, what was delivered and the peak RSS. Bounded by the
// number of alerts and the sender timeout.
func stallCmd(args []string) error {
	fs := flag.NewFlagSet("stall", flag.ExitOnError)
	lib := fs.String("lib", "libtriage.so", "plugin library")
	n := fs.Int("alerts", 8200, "alerts to send")
	size := fs.Int("size", 250<<10, "bytes of each alert (padding in output)")
	senders := fs.Int("senders", 16, "concurrent senders")
	stall := fs.Duration("stall", 20*time.Second, "how long Falco does not read")
	config := fs.String("config", "{}", "init_config")
	fs.Parse(args)

	_, inst, url, closeAll, err := loadgen.OpenWebhook(*lib, *config)
	if err != nil {
		return err
	}
	defer closeAll()
	res := stallResult{Lib: *lib, Config: *config, Alerts: *n, AlertBytes: *size, Senders: *senders,
		Status: map[string]int{}, BaseRSSMiB: loadgen.ProcStatusMiB("VmRSS:")}

	var peakMu sync.Mutex
	sampleStop := make(chan struct{})
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleStop:
				return
			case <-t.C:
			}
			a, f := loadgen.ProcStatusMiB("RssAnon:"), loadgen.ProcStatusMiB("RssFile:")
			peakMu.Lock()
			res.PeakAnonMiB, res.PeakFileMiB = max(res.PeakAnonMiB, a), max(res.PeakFileMiB, f)
			peakMu.Unlock()
		}
	}()
	pad := strings.Repeat("x", max(*size-200, 0))
	var next atomic.Int64
	var mu sync.Mutex
	client := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	var wg sync.WaitGroup
	for s := 0; s < *senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(*n) {
					return
				}
				body := fmt.Sprintf(`{"rule":"Stall %d","priority":"Notice","time":"2026-11-21T04:45:00Z","source":"syscall","output":"%s"}`, i, pad)
				key := "error"
				if resp, err := client.Post(url, "application/json", strings.NewReader(body)); err == nil {
					key = strconv.Itoa(resp.StatusCode)
					resp.Body.Close()
				}
				mu.Lock()
				res.Status[key]++
				mu.Unlock()
			}
		}()
	}
	stallEnd := time.After(*stall)
	sendDone := make(chan struct{})
	go func() { wg.Wait(); close(sendDone) }()
	select {
	case <-stallEnd:
	case <-sendDone:
		<-stallEnd
	}
	drainStart := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	idleSince := time.Now()
	for ctx.Err() == nil {
		// One batch at a time, freed at once: the events must not pile up
		// in this process, whose RSS is what is measured.
		evts, _, err := inst.NextBatch()
		if err != nil {
			return err
		}
		res.Delivered += len(evts)
		for _, e := range evts {
			e.Free()
		}
		if len(evts) > 0 {
			idleSince = time.Now()
			continue
		}
		select {
		case <-sendDone:
			if time.Since(idleSince) > 2*time.Second {
				goto done
			}
		default:
			idleSince = time.Now()
		}
	}
done:
	res.SendSeconds = drainStart.Sub(start).Seconds()
	res.DrainSeconds = time.Since(drainStart).Seconds()
	close(sampleStop)
	res.PeakRSSMiB = loadgen.ProcStatusMiB("VmHWM:")
	peakMu.Lock()
	defer peakMu.Unlock()
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(out))
	return nil
}
