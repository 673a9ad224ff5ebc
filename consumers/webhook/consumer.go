package webhook

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerConfig is what the webhook consumer reads: the sender's settings,
// the delivery order, and the runtime's WEBHOOK_* settings.
type ConsumerConfig struct {
	Webhook Config
	Order   string           `env:"WEBHOOK_ORDER" envDefault:"none" desc:"none, or per-key: events of one peer are delivered in stream order (retries included) while other peers proceed in parallel; one process of the durable is active, the others stand by"`
	Runtime consumers.Config `envPrefix:"WEBHOOK_"`
}

// Enabled reports whether WEBHOOK_URL is set (eventmesh runs the webhook
// consumer only then).
func (c ConsumerConfig) Enabled() bool { return c.Webhook.Enabled() }

// Validate checks every part.
func (c ConsumerConfig) Validate() error {
	var err error
	if c.Order != "none" && c.Order != "per-key" {
		err = fmt.Errorf("WEBHOOK_ORDER %q: want none or per-key", c.Order)
	}
	return errors.Join(c.Webhook.Validate(), c.Runtime.Validate("WEBHOOK_"), err)
}

// New returns the webhook consumer's runtime: its durable filters on the
// subjects of WEBHOOK_TRIGGERS (and its replay subject; patterns the
// server's filters cannot express are matched in-process), starts at "new"
// unless WEBHOOK_START says otherwise, keeps each peer's events in order
// with WEBHOOK_ORDER=per-key, and delivers with the signing Sender. m are
// the runtime metrics shared by the process's consumers.
func New(js jetstream.JetStream, s router.Subjects, c ConsumerConfig, m *consumers.Metrics, log *slog.Logger) (*consumers.Runtime, error) {
	sender, err := NewSender(c.Webhook, log)
	if err != nil {
		return nil, err
	}
	patterns, err := c.Webhook.TriggerPatterns()
	if err != nil {
		return nil, err
	}
	filters, exact := patterns.FilterSubjects(s.Prefix())
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
