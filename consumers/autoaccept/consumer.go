package autoaccept

import (
	"errors"
	"log/slog"

	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ConsumerConfig is what the auto-accept consumer reads: its own settings
// and the runtime's AUTOACCEPT_* settings.
type ConsumerConfig struct {
	AutoAccept Config
	Runtime    consumers.Config `envPrefix:"AUTOACCEPT_"`
}

// Validate checks both parts and that the Connector is configured.
func (c ConsumerConfig) Validate(conn connector.Config) error {
	err := errors.Join(c.AutoAccept.Validate(), c.Runtime.Validate("AUTOACCEPT_"))
	if !conn.Enabled() {
		err = errors.Join(err, errors.New("AUTOACCEPT_ENABLED=true needs CONNECTOR_URL and CONNECTOR_API_KEY"))
	}
	return err
}

// New returns the auto-accept consumer's runtime: a durable on
// transport.relationshipChanged (start all) accepting through the
// Connector's API at conn. m are the runtime metrics shared by the
// process's consumers, reg takes the handler's own.
func New(js jetstream.JetStream, s router.Subjects, c ConsumerConfig, conn connector.Config, m *consumers.Metrics, reg prometheus.Registerer, log *slog.Logger) (*consumers.Runtime, error) {
	client, err := connector.New(conn, log)
	if err != nil {
		return nil, err
	}
	h := NewHandler(client, c.AutoAccept, reg, log)
	return consumers.New(js, s, c.Runtime, consumers.Options{Name: Name,
		Filters: []string{s.Event(Namespace)}, DefaultStart: "all", Handler: h, Metrics: m, Log: log})
}
