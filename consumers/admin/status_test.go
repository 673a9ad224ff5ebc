package admin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                         "0s",
		1500 * time.Millisecond:   "1.5s",
		90 * time.Second:          "1m30s",
		time.Hour:                 "1h",
		time.Hour + 2*time.Second: "1h2s",
		50 * time.Hour:            "2d2h",
		7 * 24 * time.Hour:        "7d",
		-3 * time.Second:          "-3s",
	} {
		if got := ShortDuration(d); got != want {
			t.Errorf("ShortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// Without ENMESHED the report cannot be made: an error a caller can tell
// apart (the CLI's exit status 2, a console's "start the producer").
func TestStatusNoStream(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	_, err := Status(context.Background(), js, router.MustSubjects(router.DefaultPrefix), StatusOptions{})
	if !errors.Is(err, jetstream.ErrStreamNotFound) || err.Error() != "stream ENMESHED does not exist: start eventmesh or the producer, which create it" {
		t.Errorf("no stream: %v", err)
	}
}
