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
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
)

// testEventData is the data of the event `webhook test` sends: a Connector-shaped
// transport.messageReceived with an id that says what it is.
const testEventData = `{"id":"MSGeventmeshTest0001","isOwn":false,"content":{"@type":"Mail","to":[],"subject":"eventmesh webhook test","body":"This is a test event sent by eventmesh webhook test.","bodyFormat":"PlainText"},"createdBy":"did:e:example.org:dids:0000000000000000000000","createdByDevice":"DVCeventmeshTest0001","recipients":[],"createdAt":"2026-01-01T00:00:00.000Z","attachments":[]}`

type webhookTestConfig struct {
	Log     app.LogConfig
	Webhook webhook.Config
}

// runWebhookTest is `eventmesh webhook test`: one signed sample event to
// the configured endpoint, and what came back — like an integration
// platform's "test connection" button.
func runWebhookTest(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("webhook test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: eventmesh webhook test\n\nSends one signed sample transport.messageReceived event to WEBHOOK_URL with the WEBHOOK_* settings and prints the answer.")
	}
	if len(args) == 0 || args[0] != "test" {
		fs.Usage()
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := app.Load[webhookTestConfig](environ)
	if err == nil && cfg.Webhook.URL == "" {
		err = errors.New("WEBHOOK_URL is required")
	}
	if err == nil {
		err = cfg.Webhook.Validate()
	}
	if err != nil {
		fmt.Fprintln(stderr, "webhook test: configuration:", err)
		return 2
	}
	sender, err := webhook.NewSender(cfg.Webhook, cfg.Log.Logger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "webhook test:", err)
		return 2
	}
	ev := router.Event{Namespace: "transport.messageReceived", Source: router.DefaultSource, Time: time.Now(),
		Origin: router.OriginWebhook, Data: []byte(testEventData)}
	ev.ID = router.HashID(ev.Source, ev.Namespace, "eventmesh-webhook-test-"+router.RandomKey())
	res, err := sender.Send(ctx, ev)
	fmt.Fprintf(stdout, "event:    %s (ce-id %s)\nstatus:   %d\nlatency:  %s\nbody:     %s\n",
		ev.Namespace, ev.ID, res.Status, res.Latency.Round(time.Microsecond), res.Body)
	switch {
	case err == nil:
		fmt.Fprintln(stdout, "result:   ok — the receiver accepted the event")
		return 0
	case consumers.IsPause(err):
		fmt.Fprintln(stdout, "result:   the consumer would PAUSE:", err)
	case consumers.IsPermanent(err):
		fmt.Fprintln(stdout, "result:   permanent failure, the event would be dead-lettered:", err)
	default:
		fmt.Fprintln(stdout, "result:   failure, the event would be retried:", err)
	}
	return 1
}
