package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/webhook"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// WebhookConfig is what the webhook consumer reads.
type WebhookConfig struct {
	Webhook webhook.Config
	Order   string           `env:"WEBHOOK_ORDER" envDefault:"none" desc:"none, or per-key: events of one peer are delivered in stream order (retries included) while other peers proceed in parallel; one process of the durable is active, the others stand by"`
	Runtime consumers.Config `envPrefix:"WEBHOOK_"`
}

// Enabled reports whether WEBHOOK_URL is set (eventmesh runs the webhook
// consumer only then).
func (c WebhookConfig) Enabled() bool { return c.Webhook.URL != "" }

// Validate checks both parts.
func (c WebhookConfig) Validate() error {
	var err error
	if c.Order != "none" && c.Order != "per-key" {
		err = fmt.Errorf("WEBHOOK_ORDER %q: want none or per-key", c.Order)
	}
	return errors.Join(c.Webhook.Validate(), c.Runtime.Validate("WEBHOOK_"), err)
}

// NewWebhook builds the webhook consumer: its durable filters on the
// subjects of WEBHOOK_TRIGGERS (and its replay subject), starts at "new"
// unless WEBHOOK_START says otherwise, and delivers with the signing sender.
func NewWebhook(nc *nats.Conn, s router.Subjects, c WebhookConfig, m *consumers.Metrics, log *slog.Logger) (*consumers.Runtime, error) {
	sender, err := webhook.NewSender(c.Webhook, log)
	if err != nil {
		return nil, err
	}
	patterns, err := router.ParsePatterns(c.Webhook.Triggers)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_TRIGGERS: %w", err)
	}
	filters, exact := patterns.FilterSubjects(s.Prefix())
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		return nil, err
	}
	o := consumers.Options{Name: c.Webhook.DurableName(), Filters: filters, DefaultStart: "new",
		Handler: sender.Handler(), Metrics: m, Log: log}
	if !exact {
		o.Match = patterns.Match
	}
	if c.Order == "per-key" {
		o.OrderKey = func(d consumers.Delivery) string { return router.OrderKey(d.Event.Data) }
	}
	return consumers.New(js, s, c.Runtime, o)
}

// Runtimes runs consumer runtimes until their context ends, then waits for
// them to drain.
type Runtimes struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
	list   []*consumers.Runtime
}

// StartRuntimes runs each runtime in the background.
func StartRuntimes(ctx context.Context, log *slog.Logger, rts ...*consumers.Runtime) *Runtimes {
	ctx, cancel := context.WithCancel(ctx)
	r := &Runtimes{cancel: cancel, errs: make(chan error, len(rts)), list: rts}
	for _, rt := range rts {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := rt.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("consumer stopped", "consumer", rt.Name(), "err", err)
				r.errs <- fmt.Errorf("consumer %s: %w", rt.Name(), err)
			}
		}()
	}
	return r
}

// Failed delivers the error of a runtime that stopped on its own.
func (r *Runtimes) Failed() <-chan error { return r.errs }

// Ready is nil when every runtime is ready.
func (r *Runtimes) Ready(ctx context.Context) error {
	for _, rt := range r.list {
		if err := rt.Ready(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops fetching and waits for in-flight events to settle.
func (r *Runtimes) Stop() {
	r.cancel()
	r.wg.Wait()
}

// ConsumerHTTP serves /healthz, /readyz and /metrics of a consumer binary
// on HTTP_ADDR.
func ConsumerHTTP(addr string, reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger) (*HTTPServer, error) {
	mux := http.NewServeMux()
	Ops(mux, reg, ready)
	return Listen("HTTP_ADDR", addr, mux, log)
}
