package input

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/triage-dev/triage/pkg/logging"
)

// sharedAlertLines returns the lines of ../shared/data/alerts/*.jsonl
// (nil when the reference data is absent).
func sharedAlertLines() [][]byte { return shareddata.Lines("alerts/*.jsonl") }

type refLine struct {
	text     string
	oversize int64 // >0: skipped, with this length
	lineNo   int64
	offset   int64
}

// referenceSplit is the splitting rule written the obvious way: split on
// "\n", strip one "\r" before a "\n", skip lines of ASCII whitespace, skip
// lines longer than max (reporting their length).
func referenceSplit(data []byte, max int) []refLine {
	var out []refLine
	var lineNo, off int64
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		terminated := i >= 0
		if terminated {
			line, data = data[:i], data[i+1:]
			off += int64(i + 1)
		} else {
			line, data = data, nil
			off += int64(len(line))
		}
		lineNo++
		if terminated && len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if isBlank(line) {
			continue
		}
		r := refLine{lineNo: lineNo, offset: off}
		if len(line) > max {
			r.oversize = int64(len(line))
		} else {
			r.text = string(line)
		}
		out = append(out, r)
	}
	return out
}

// chunkReader returns data in pieces of varying size, so that the
// splitter sees lines cut at every possible point between reads.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)]) + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzReadLines compares the line splitter with referenceSplit, with a
// small maximum line length (so the drop path for long lines is exercised)
// and reads cut at fuzzed sizes.
func FuzzReadLines(f *testing.F) {
	for _, l := range sharedAlertLines() {
		f.Add(append(l, '\n'), uint8(200), []byte{7, 255, 0})
	}
	for _, s := range []string{
		"", "\n", "\r\n", "a", "a\n", "a\r\n", "a\r", "\r\r\n", "a\nb", "a\n\nb\n", " \t\n\v\f\r\n",
		"abcdefgh\nabcdefghi\nabcdefghij\r\nx", strings.Repeat("y", 70000) + "\nz\n", "\x00\n\xff\xfe\n",
	} {
		f.Add([]byte(s), uint8(8), []byte{0, 3, 1})
	}
	f.Fuzz(func(t *testing.T, data []byte, maxLine uint8, sizes []byte) {
		max := int(maxLine%64) + 1
		// A hang is a finding too: crash the worker so the fuzzer keeps the input.
		wd := time.AfterFunc(10*time.Second, func() {
			panic(fmt.Sprintf("ReadLines hung: %d bytes, max %d, %d read sizes", len(data), max, len(sizes)))
		})
		defer wd.Stop()
		want := referenceSplit(data, max)
		var got []refLine
		emit := func(line []byte, pos LinePos) error {
			if len(line) > max {
				t.Fatalf("emitted %d bytes, over max %d", len(line), max)
			}
			got = append(got, refLine{text: string(line), lineNo: pos.LineNo, offset: pos.Offset})
			return nil
		}
		oversize := func(pos LinePos, n int64) {
			got = append(got, refLine{oversize: n, lineNo: pos.LineNo, offset: pos.Offset})
		}
		err := ReadLines(context.Background(), &chunkReader{data: data, sizes: sizes}, "fuzz", max, emit, oversize)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("max %d: got %d lines %+v, want %d %+v", max, len(got), got, len(want), want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("max %d: line %d: got %+v, want %+v", max, i, got[i], want[i])
			}
		}
	})
}

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
		q := NewAlertQueue(cfg.QueueSize)
		c := &Counters{}
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
			if a.Source == LoopSource {
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
