package bridge

import (
	"context"
	"log/slog"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
)

// NewWithPublisher is New with p as the Publisher and the broker checked
// every `every`, for tests of the wiring where no real broker can show
// the point.
func NewWithPublisher(js jetstream.JetStream, s router.Subjects, c Config, m *consumers.Metrics, log *slog.Logger,
	p Publisher, every time.Duration) (*Bridge, error) {
	b, err := newBridge(js, s, c, m, log, func(context.Context) (Publisher, error) { return p, nil })
	if err == nil {
		b.every = every
	}
	return b, err
}
