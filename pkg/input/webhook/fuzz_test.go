package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/internal/shareddata"
	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/logging"
)

// sharedAlertLines returns the lines of ../shared/data/alerts/*.jsonl
// (nil when the reference data is absent).
func sharedAlertLines() [][]byte { return shareddata.Lines("alerts/*.jsonl") }

// FuzzWebhook drives the handler with fuzzed method, content type, body
// and secret header. Invariants: a 2xx answer only when the request was
// authorized, well-formed and every alert of the body parses; the queue
// grows by exactly the number of alerts accepted (and not at all on any
// other answer); the counters agree.
func FuzzWebhook(f *testing.F) {
	var all bytes.Buffer
	for _, l := range sharedAlertLines() {
		f.Add("POST", "application/json", l, "s3cret")
		all.Write(l)
		all.WriteByte('\n')
	}
	if all.Len() > 0 {
		f.Add("PUT", "application/x-ndjson", all.Bytes(), "s3cret")
	}
	good := testAlert("r")
	for _, s := range []struct{ method, ctype, body, secret string }{
		{"POST", "application/json", good, "s3cret"},
		{"POST", "application/json; charset=utf-8", good + "\n" + good + "\r\n\n", "s3cret"},
		{"POST", "", "{\n  \"rule\": \"p\",\n  \"priority\": \"Notice\",\n  \"time\": \"2026-11-21T04:45:00Z\"\n}\n", "s3cret"},
		{"POST", "application/json", good + "\n{", "s3cret"},
		{"POST", "application/json", strings.Replace(good, "syscall", "falco_alert", 1), "s3cret"},
		{"POST", "text/plain", "", "s3cret"},
		{"POST", "application/xml", good, "s3cret"},
		{"POST", "application/json;;", good, "s3cret"},
		{"GET", "", "", "s3cret"},
		{"POST", "application/json", good, "wrong"},
		{"POST", "application/json", good, ""},
		{"POST", "application/json", `{"rule":"` + strings.Repeat("x", 3000) + `","priority":"Warning","time":"2026-11-21T04:45:00Z"}`, "s3cret"},
	} {
		f.Add(s.method, s.ctype, []byte(s.body), s.secret)
	}
	secretFile := filepath.Join(f.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, ctype string, body []byte, secret string) {
		cfg := config.Default()
		cfg.QueueSize = 64
		cfg.MaxEventBytes = 2048
		cfg.Webhook.MaxBodyBytes = 16 << 10
		withSecret := len(body)%2 == 0 // both with and without a configured secret
		if withSecret {
			cfg.Webhook.SecretFile = secretFile
		}
		q := ingest.NewAlertQueue(cfg.QueueSize, int64(cfg.QueueBytes))
		c := &ingest.Counters{}
		w, err := newWebhook("/alerts", cfg, q, c, logging.New(io.Discard, 1, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(method, "http://127.0.0.1/alerts", bytes.NewReader(body))
		if err != nil {
			return // not a method net/http would let through
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if secret != "" {
			req.Header.Set("X-Triage-Secret", secret)
		}
		rec := httptest.NewRecorder()
		w.ServeHTTP(rec, req)
		code := rec.Code

		timer := time.NewTimer(time.Hour)
		timer.Stop()
		queued, _ := q.PopBatch(nil, q.Cap(), timer, time.Nanosecond)

		if code < 200 || code >= 300 {
			if len(queued) != 0 || c.Queued.Load() != 0 {
				t.Fatalf("answer %d but %d alerts queued", code, len(queued))
			}
			return
		}
		if code != 200 {
			t.Fatalf("unexpected 2xx code %d", code)
		}
		if withSecret && secret != "s3cret" {
			t.Fatalf("200 with secret %q", secret)
		}
		if method != "POST" && method != "PUT" {
			t.Fatalf("200 for method %q", method)
		}
		if len(body) > cfg.Webhook.MaxBodyBytes {
			t.Fatalf("200 for a body of %d bytes", len(body))
		}
		// Every alert of the body parses: either the body is one alert, or
		// each non-blank line is.
		var p alert.Parser
		var want []*alert.Alert
		loops := 0
		addAlert := func(b []byte) bool {
			if len(b) > cfg.MaxEventBytes {
				return false
			}
			a, err := p.Parse(b)
			if err != nil {
				return false
			}
			if a.Source == ingest.LoopSource {
				loops++
			} else {
				want = append(want, a)
			}
			return true
		}
		ok := true
		for _, line := range bytes.Split(body, []byte("\n")) {
			if line = bytes.TrimSpace(line); len(line) > 0 && !addAlert(line) {
				ok = false
				break
			}
		}
		if !ok {
			want, loops = nil, 0
			if !addAlert(bytes.TrimSpace(body)) {
				t.Fatalf("200 for a body whose alerts do not all parse: %q", body)
			}
		}
		var answer struct{ Accepted, Loop_dropped int }
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("200 answer is not JSON: %q", rec.Body.String())
		}
		if answer.Accepted != len(queued) || uint64(len(queued)) != c.Queued.Load() || answer.Loop_dropped != loops {
			t.Fatalf("answer %+v, queued %d, counted %d, loops %d", answer, len(queued), c.Queued.Load(), loops)
		}
		if len(queued) != len(want) {
			t.Fatalf("queued %d alerts, the body holds %d", len(queued), len(want))
		}
		for i := range want {
			if queued[i].Rule != want[i].Rule || queued[i].Time != want[i].Time {
				t.Fatalf("alert %d: queued %q, body has %q", i, queued[i].Rule, want[i].Rule)
			}
		}
	})
}
