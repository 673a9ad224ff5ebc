package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/bridge"
	"github.com/eventmesh/eventmesh/router"
)

type bridgeTestConfig struct {
	Log    app.LogConfig
	Bridge bridge.Config
}

// runBridgeTest is `eventmesh bridge test`: one sample event to the broker
// of BRIDGE_URL with the BRIDGE_* settings, and what came back (the
// confirm, its latency) — as `webhook test` does for an endpoint.
func runBridgeTest(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridge test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := app.Duration(fs, "timeout", 10*time.Second, "how long to wait for the broker's connection and confirm")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventmesh bridge test [--timeout 10s]\n\nSends one sample transport.messageReceived event to the broker of BRIDGE_URL with the BRIDGE_* settings\nand prints whether the broker confirmed it, and how fast.")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "test" {
		fs.Usage()
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := app.Load[bridgeTestConfig](environ)
	if err == nil && !cfg.Bridge.Enabled() {
		err = errors.New("BRIDGE_URL is required")
	}
	if err == nil {
		err = cfg.Bridge.Validate()
	}
	if err != nil {
		fmt.Fprintln(stderr, "bridge test: configuration:", err)
		return 2
	}
	o, err := cfg.Bridge.Options(cfg.Log.Logger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "bridge test:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	fmt.Fprintf(stdout, "broker:   %s\n", cfg.Bridge.Redacted())
	pub, err := bridge.Open(ctx, o)
	if err != nil {
		fmt.Fprintln(stdout, "result:   cannot open the broker connection:", err)
		return 1
	}
	defer pub.Close()
	if err := waitReady(ctx, pub); err != nil {
		if consumers.IsPause(err) {
			fmt.Fprintln(stdout, "result:   the consumer would PAUSE:", err)
		} else {
			fmt.Fprintln(stdout, "result:   the broker is not ready, the bridge would fetch nothing:", err)
		}
		return 1
	}
	ev := router.Event{Namespace: "transport.messageReceived", Source: router.DefaultSource, Time: time.Now().UTC(),
		Origin: router.OriginWebhook, Data: []byte(testEventData)}
	ev.ID = router.HashID(ev.Source, ev.Namespace, "eventmesh-bridge-test-"+router.RandomKey())
	start := time.Now()
	err = pub.Publish(ctx, bridge.Message{Event: ev, Body: bridge.Body(ev)})
	latency := time.Since(start)
	fmt.Fprintf(stdout, "event:    %s (ce-id %s)\nformat:   %s\nlatency:  %s\n", ev.Namespace, ev.ID, cfg.Bridge.Format, latency.Round(time.Microsecond))
	switch {
	case err == nil:
		fmt.Fprintln(stdout, "result:   ok — the broker confirmed the event")
		return 0
	case consumers.IsPause(err):
		fmt.Fprintln(stdout, "result:   the consumer would PAUSE:", err)
	case errors.Is(err, bridge.ErrUnroutable):
		fmt.Fprintln(stdout, "result:   unroutable (no queue took it): the event would be retried, then dead-lettered:", err)
	default:
		fmt.Fprintln(stdout, "result:   failure, the event would be retried:", err)
	}
	return 1
}

// waitReady waits until pub is ready or ctx ends, and returns the last
// check's error then.
func waitReady(ctx context.Context, pub bridge.Publisher) error {
	for {
		err := pub.Ready(ctx)
		if err == nil || errors.Is(err, bridge.ErrMissingDestination) || consumers.IsPause(err) {
			return err // neither a missing destination nor refused credentials mend by waiting
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
