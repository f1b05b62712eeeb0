package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/triage-dev/triage/test/loadgen"
)

// floodCmd posts hostile bodies of -mib MiB of "1\n" lines (not one of
// them an alert), -parallel at once, to the plugin's webhook and reports
// their answers, how long each took, and the peak RSS of this process
// (harness included).
func floodCmd(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	lib := fs.String("lib", "libtriage.so", "plugin library")
	mib := fs.Int("mib", 16, "MiB per body")
	parallel := fs.Int("parallel", 4, "bodies posted at once")
	fs.Parse(args)

	_, _, url, closeAll, err := loadgen.OpenWebhook(*lib, "{}")
	if err != nil {
		return err
	}
	defer closeAll()
	base := loadgen.ProcStatusMiB("VmRSS:")
	body := bytes.Repeat([]byte("1\n"), *mib<<19)
	type answer struct {
		Status int     `json:"status"`
		Ms     float64 `json:"ms"`
		Reason string  `json:"reason"`
	}
	answers := make([]answer, *parallel)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 60 * time.Second}
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				answers[i] = answer{Reason: err.Error(), Ms: float64(time.Since(start).Microseconds()) / 1000}
				return
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			resp.Body.Close()
			answers[i] = answer{Status: resp.StatusCode, Ms: float64(time.Since(start).Microseconds()) / 1000, Reason: strings.TrimSpace(string(b))}
		}()
	}
	wg.Wait()
	out, _ := json.MarshalIndent(map[string]any{
		"lib": *lib, "body_mib": *mib, "parallel": *parallel, "answers": answers,
		"rss_before_mib": base, "peak_rss_mib": loadgen.ProcStatusMiB("VmHWM:"),
		"note": "RSS of the whole process: harness, plugin and the client's own copy of the body",
	}, "", "  ")
	fmt.Println(string(out))
	return nil
}
