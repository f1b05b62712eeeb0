package webhook

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/logging"
)

// countingReader counts the bytes the handler read from the body.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// BenchmarkHostileLineFlood posts the hostile body: 16 MiB of
// "1\n" lines, with the default config. B/op is the memory one such request
// costs the server; body-read-B/op how much of the body it read before
// answering. Run: go test -run='^$' -bench=HostileLineFlood -benchtime=5x ./pkg/input/webhook
func BenchmarkHostileLineFlood(b *testing.B) {
	cfg := config.Default()
	q := ingest.NewAlertQueue(cfg.QueueSize, int64(cfg.QueueBytes))
	w, err := newWebhook("/alerts", cfg, q, &ingest.Counters{}, logging.New(io.Discard, 1, time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("1\n"), cfg.Webhook.MaxBodyBytes/2)
	var read int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cr := &countingReader{r: bytes.NewReader(body)}
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/alerts", cr)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		w.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest {
			b.Fatalf("answer %d: %s", rec.Code, rec.Body.String())
		}
		read += cr.n
	}
	b.ReportMetric(float64(read)/float64(b.N), "body-read-B/op")
}
