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
	"github.com/triage-dev/triage/pkg/engine"
	"github.com/triage-dev/triage/pkg/ingest"
	"github.com/triage-dev/triage/pkg/input/file"
	"github.com/triage-dev/triage/pkg/input/kafka"
	"github.com/triage-dev/triage/pkg/input/spill"
	"github.com/triage-dev/triage/pkg/input/webhook"
	"github.com/triage-dev/triage/pkg/logging"
)

// Kind names the input an open_params string selects.
type Kind string

const (
	KindWebhook Kind = "webhook"
	KindFollow  Kind = "follow"
	KindOnce    Kind = "once"
	KindKafka   Kind = "kafka"
)

// Spec is a parsed open_params string.
type Spec struct {
	Kind  Kind
	URL   *url.URL   // webhook
	Path  string     // follow, once
	Kafka kafka.Spec // kafka
}

// ParseOpenParams interprets open_params:
//
//	""                        the default webhook, http://127.0.0.1:2820/alerts
//	http://HOST:PORT/PATH     webhook (HOST defaults to 127.0.0.1, PORT to 2820, PATH to /)
//	file:///ABSOLUTE/PATH     follow a growing NDJSON file like tail -F
//	/path or relative/path    read an NDJSON file once, then EOF
//	kafka://HOST:PORT[,HOST:PORT…]/TOPIC?group=GROUP
//	                          consume a topic in a consumer group (docs/fleet.md)
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
	case strings.HasPrefix(lower, "kafka://"):
		k, err := kafka.ParseURL(s, true)
		if err != nil {
			return Spec{}, fmt.Errorf("open_params: %v", err)
		}
		return Spec{Kind: KindKafka, Kafka: k}, nil
	case strings.Contains(s, "://"):
		return Spec{}, fmt.Errorf("open_params: unsupported scheme in %q (want http://, file://, kafka:// or a plain file path)", s)
	}
	return Spec{Kind: KindOnce, Path: s}, nil
}

// Input is a running input feeding a queue.
type Input struct {
	Spec    Spec
	Webhook *webhook.Server // set for KindWebhook
	Kafka   *kafka.Input    // set for KindKafka

	cancel context.CancelFunc
	wg     sync.WaitGroup
	spill  *spill.Spill // the webhook's, when spill.dir is set
	log    *logging.Logger
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
		if cfg.Spill.Dir != "" {
			if err := in.startSpill(ctx, cfg, q, log); err != nil {
				cancel()
				sctx, stop := context.WithTimeout(context.Background(), time.Second)
				_ = w.Shutdown(sctx)
				stop()
				return nil, err
			}
		}
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
			return file.ReadOnce(ctx, spec.Path, cfg.MaxEventBytes, lineSink(ctx, q, c, cfg, log, nil), oversizeSink(c, log))
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
		if opts.StateFile != "" {
			// The state covers only what Falco took: the queue acks each
			// line's token once next_batch is called again after it.
			opts.Delivery = file.NewDelivery()
			q.SetAcker(opts.Delivery.Ack)
		}
		in.run(func() error {
			return file.Follow(ctx, spec.Path, opts, lineSink(ctx, q, c, cfg, log, opts.Delivery), oversizeSink(c, log))
		}, log)
	case KindKafka:
		k, err := kafka.Start(spec.Kafka, cfg, q, c, log)
		if err != nil {
			cancel()
			return nil, err
		}
		in.Kafka = k
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
// webhook's in-flight requests. The webhook stops first, so no request is
// answered 200 after the spill closed.
func (in *Input) Stop(timeout time.Duration) {
	if in.Webhook != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_ = in.Webhook.Shutdown(ctx)
		cancel()
	}
	if in.Kafka != nil {
		in.Kafka.Stop()
	}
	in.cancel()
	in.wg.Wait()
	if in.spill != nil {
		if err := in.spill.Close(); err != nil {
			in.log.Printf("spill: close: %v", err)
		}
	}
}

// BeforeBatch runs what the input must change in eng's state before the
// alerts it queued afterwards (the Kafka input's replays and drops); the
// plugin calls it on Falco's thread in next_batch between popping a batch
// and processing it.
func (in *Input) BeforeBatch(eng *engine.Engine) {
	if in.Kafka != nil {
		in.Kafka.BeforeBatch(eng)
	}
}

// startSpill opens the webhook's spill and starts its feeder, which moves
// spilled alerts into the queue in order and acks them once delivered.
// Alerts a previous run spilled and did not deliver are delivered first.
func (in *Input) startSpill(ctx context.Context, cfg config.Config, q *ingest.AlertQueue, log *logging.Logger) error {
	policy, err := spill.ParseSync(cfg.Spill.Sync)
	if err != nil {
		return fmt.Errorf("init_config: key \"spill.sync\": %v", err)
	}
	s, err := spill.Open(cfg.Spill.Dir, spill.Options{MaxBytes: int64(cfg.Spill.MaxBytes), Sync: policy, Logf: log.Printf})
	if err != nil {
		return fmt.Errorf("spill.dir %s: %w", cfg.Spill.Dir, err)
	}
	f := spill.NewFeeder(s, q, spill.FeederOptions{MaxEventBytes: cfg.MaxEventBytes, Logf: log.Printf})
	in.spill, in.log = s, log
	wait := time.Duration(cfg.Spill.QueueWaitMs) * time.Millisecond
	if cfg.Spill.WriteAhead {
		wait = -1 // every body to disk before its 200
	}
	in.Webhook.SetSpill(f, s, wait)
	if n := s.Len(); n > 0 {
		log.Printf("spill %s: %d alerts (%d bytes) from before are delivered first", cfg.Spill.Dir, n, s.Bytes())
	}
	in.run(func() error { return f.Run(ctx) }, log)
	return nil
}

// lineSink parses each line and queues it, waiting while the queue is
// full. Bad lines are counted and logged with their position. With d, each
// queued line carries a token from d, acked back to d once delivered; lines
// not queued are none of d's business (the follower tells it).
func lineSink(ctx context.Context, q *ingest.AlertQueue, c *ingest.Counters, cfg config.Config, log *logging.Logger, d *file.Delivery) file.EmitFunc {
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
		var token uint64
		if d != nil {
			token = d.Queue(pos)
		}
		if err := q.PushToken(ctx, a, token); err != nil {
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
