package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/triage-dev/triage/pkg/config"
	"github.com/triage-dev/triage/pkg/input/kafka"
	"github.com/triage-dev/triage/pkg/logging"
	"github.com/triage-dev/triage/pkg/route"
)

// routeSignals are what end `triage route` cleanly (a commit of what was
// produced, then a leave of the group); tests replace them.
var routeSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

func cmdRoute(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("route", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "kafka://HOST:PORT[,HOST:PORT…]/TOPIC?group=GROUP to consume (the unkeyed topic Falcosidekick writes)")
	to := fs.String("to", "", "kafka://HOST:PORT[,HOST:PORT…]/TOPIC to produce to, keyed by entity ID")
	cfgText := fs.String("config", "", "init_config JSON (the plugin's keys; kafka.* for TLS and SASL, maxEventBytes)")
	cfgFile := fs.String("config-file", "", "file holding that JSON")
	stats := fs.Duration("stats", time.Minute, "how often counters are logged (0: only at exit)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: triage route --from kafka://…/TOPIC?group=GROUP --to kafka://…/TOPIC [--config JSON | --config-file FILE]

Consumes the unkeyed alert topic (Falcosidekick's Kafka output), computes each alert's entity
ID with the plugin's own function and produces the alert to the keyed topic with key = entity
ID, so every alert of one entity lands in one partition, in order. Input offsets are committed
only after the produce is acknowledged (at-least-once; no transactions). Several processes
with the same group share the work. Malformed records are skipped, counted and logged with
their partition and offset. SIGINT/SIGTERM stop it cleanly. docs/fleet.md has the details.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	src, err := kafka.ParseURL(*from, true)
	if err != nil {
		fmt.Fprintln(stderr, "triage route: --from:", err)
		return 2
	}
	dst, err := kafka.ParseURL(*to, false)
	if err != nil {
		fmt.Fprintln(stderr, "triage route: --to:", err)
		return 2
	}
	text := *cfgText
	if *cfgFile != "" {
		b, err := os.ReadFile(*cfgFile)
		if err != nil {
			fmt.Fprintln(stderr, "triage route:", err)
			return 2
		}
		text = string(b)
	}
	cfg, err := config.Parse(text)
	if err != nil {
		fmt.Fprintln(stderr, "triage route:", err)
		return 2
	}
	log := logging.New(stderr, 20, 10*time.Second)
	r, err := route.New(route.Options{From: src, To: dst, Config: cfg, Log: log})
	if err != nil {
		fmt.Fprintln(stderr, "triage route:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), routeSignals...)
	defer stop()
	done := make(chan struct{})
	if *stats > 0 {
		go func() {
			t := time.NewTicker(*stats)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					log.Printf("route: routed=%d bad_records=%d %s", r.Routed.Load(), r.Bad.Load(), r.Counters.Snapshot())
				}
			}
		}()
	}
	log.Printf("route: %s -> %s", src, dst)
	err = r.Run(ctx)
	close(done)
	r.Close()
	log.Printf("route: stopped; routed=%d bad_records=%d %s", r.Routed.Load(), r.Bad.Load(), r.Counters.Snapshot())
	if err != nil {
		fmt.Fprintln(stderr, "triage route:", err)
		return 1
	}
	return 0
}
