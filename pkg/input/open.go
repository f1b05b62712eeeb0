// Package input is the switchboard: it parses open_params (ParseOpenParams)
// and starts the transport they name (Start), webhook (package
// input/webhook) or file (package input/file), feeding the shared queue of
// package ingest.
package input

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/triage-dev/triage/pkg/alert"
	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/input/file"
	"github.com/triage-dev/triage/pkg/input/webhook"
	"github.com/triage-dev/triage/pkg/logging"
)

// Kind names the input an open_params string selects.
type Kind string

const (
	KindWebhook Kind = "webhook"
	KindFollow  Kind = "follow"
	KindOnce    Kind = "once"
)

// Spec is a parsed open_params string.
type Spec struct {
	Kind Kind
	URL  *url.URL // webhook
	Path string   // follow, once
}

// ParseOpenParams interprets open_params:
//
//	""                        the default webhook, http://127.0.0.1:2820/alerts
//	http://HOST:PORT/PATH     webhook (HOST defaults to 127.0.0.1, PORT to 2820, PATH to /)
//	file:///ABSOLUTE/PATH     follow a growing NDJSON file like tail -F
//	/path or relative/path    read an NDJSON file once, then EOF
func ParseOpenParams(params string) (Spec, error) {
	s := strings.TrimSpace(params)
	if s == "" {
		s = config.DefaultOpenParams
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
		u, err := url.Parse(s)
		if err != nil {
			return Spec{}, fmt.Errorf("open_params: bad webhook URL %q: %v", s, err)
		}
		u.Scheme = strings.ToLower(u.Scheme)
		return Spec{Kind: KindWebhook, URL: u}, nil
	case strings.HasPrefix(lower, "file://"):
		u, err := url.Parse(s)
		if err != nil {
			return Spec{}, fmt.Errorf("open_params: bad file URL %q: %v", s, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return Spec{}, fmt.Errorf("open_params: file URL %q names host %q; write file:///absolute/path (three slashes)", s, u.Host)
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return Spec{}, fmt.Errorf("open_params: file URL %q needs an absolute path, e.g. file:///var/log/falco/events.json", s)
		}
		return Spec{Kind: KindFollow, Path: filepath.Clean(u.Path)}, nil
	case strings.Contains(s, "://"):
		return Spec{}, fmt.Errorf("open_params: unsupported scheme in %q (want http://, file:// or a plain file path)", s)
	}
	return Spec{Kind: KindOnce, Path: s}, nil
}

// Input is a running input feeding a queue.
type Input struct {
	Spec    Spec
	Webhook *webhook.Server // set for KindWebhook

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Finite reports whether the input ends (then next_batch returns EOF once
// it is drained).
func (in *Input) Finite() bool { return in.Spec.Kind == KindOnce }

// Start opens the input described by spec and starts feeding q. Errors
// that a user can fix (busy port, missing file) are returned here.
func Start(spec Spec, cfg config.Config, q *ingest.AlertQueue, c *ingest.Counters, log *logging.Logger) (*Input, error) {
	ctx, cancel := context.WithCancel(context.Background())
	in := &Input{Spec: spec, cancel: cancel}
	switch spec.Kind {
	case KindWebhook:
		w, err := webhook.Listen(spec.URL, cfg, q, c, log)
		if err != nil {
			cancel()
			return nil, err
		}
		in.Webhook = w
		log.Printf("webhook listening on %s", w.URL())
	case KindOnce:
		st, err := os.Stat(spec.Path)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("open_params: cannot read %q: %w", spec.Path, err)
		}
		if st.IsDir() {
			cancel()
			return nil, fmt.Errorf("open_params: %q is a directory, not an NDJSON file", spec.Path)
		}
		in.run(func() error {
			defer q.Close()
			return file.ReadOnce(ctx, spec.Path, cfg.MaxEventBytes, lineSink(ctx, q, c, cfg, log), oversizeSink(c, log))
		}, log)
	case KindFollow:
		dir := filepath.Dir(spec.Path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			cancel()
			return nil, fmt.Errorf("open_params: directory %q of the followed file does not exist", dir)
		}
		opts := file.FollowOptions{
			MaxLine:      cfg.MaxEventBytes,
			StartAtEnd:   cfg.Follow.StartAt == "end",
			PollInterval: time.Duration(cfg.Follow.PollIntervalMs) * time.Millisecond,
			Logf:         log.Printf,
			StateFile:    cfg.Follow.StateFile,
		}
		in.run(func() error {
			return file.Follow(ctx, spec.Path, opts, lineSink(ctx, q, c, cfg, log), oversizeSink(c, log))
		}, log)
	default:
		cancel()
		return nil, fmt.Errorf("open_params: unknown input kind %q", spec.Kind)
	}
	return in, nil
}

func (in *Input) run(f func() error, log *logging.Logger) {
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		defer func() {
			if v := recover(); v != nil {
				log.Printf("input %s stopped by a panic: %v", in.Spec.Path, v)
			}
		}()
		if err := f(); err != nil && !errors.Is(err, context.Canceled) {
			log.Printf("input %s stopped: %v", in.Spec.Path, err)
		}
	}()
}

// Stop stops the input and waits for it, bounded by timeout for the
// webhook's in-flight requests.
func (in *Input) Stop(timeout time.Duration) {
	in.cancel()
	if in.Webhook != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = in.Webhook.Shutdown(ctx)
	}
	in.wg.Wait()
}

// lineSink parses each line and queues it, waiting while the queue is
// full. Bad lines are counted and logged with their position.
func lineSink(ctx context.Context, q *ingest.AlertQueue, c *ingest.Counters, cfg config.Config, log *logging.Logger) file.EmitFunc {
	var p alert.Parser
	return func(line []byte, pos file.LinePos) error {
		a, err := ingest.Parse(&p, line, cfg.MaxEventBytes, c)
		if errors.Is(err, ingest.ErrLoop) {
			return nil
		}
		if err != nil {
			log.Limitedf("%s:%d: alert rejected: %v", pos.Path, pos.LineNo, err)
			return nil
		}
		if err := q.Push(ctx, a); err != nil {
			return err
		}
		c.Queued.Add(1)
		return nil
	}
}

func oversizeSink(c *ingest.Counters, log *logging.Logger) file.OversizeFunc {
	return func(pos file.LinePos, length int64) {
		c.Received.Add(1)
		c.Oversize.Add(1)
		log.Limitedf("%s:%d: line of %d bytes skipped: over maxEventBytes", pos.Path, pos.LineNo, length)
	}
}
