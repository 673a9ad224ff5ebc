package admin

import (
	"context"
	"fmt"
	"slices"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// NoDurableError refuses a replay aimed at a consumer that has no durable
// on ENMESHED: the replay would reach nobody. errors.Is(err,
// jetstream.ErrConsumerNotFound) holds.
type NoDurableError struct {
	Consumer string // the durable name
	Index    int    // its place among the names given to RequireDurables
}

// Error names the consumer and why its replay is refused.
func (e *NoDurableError) Error() string {
	return fmt.Sprintf("consumer %s has no durable on %s, so a replay would reach nobody", e.Consumer, streams.Events)
}

// Unwrap makes a NoDurableError match jetstream.ErrConsumerNotFound.
func (e *NoDurableError) Unwrap() error { return jetstream.ErrConsumerNotFound }

// RequireDurables checks that each of names has a durable on ENMESHED, as
// a replay aimed at a consumer needs (<prefix>-replay.<name>.> reaches
// that durable only): the first that has none is a *NoDurableError.
func RequireDurables(ctx context.Context, js jetstream.JetStream, names ...string) error {
	ds, err := consumers.Durables(ctx, js)
	if err != nil {
		return err
	}
	for i, name := range names {
		if !slices.ContainsFunc(ds, func(d *jetstream.ConsumerInfo) bool { return d.Name == name }) {
			return &NoDurableError{Consumer: name, Index: i}
		}
	}
	return nil
}
