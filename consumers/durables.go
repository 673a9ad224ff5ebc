package consumers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// unknownDurable returns an error matching jetstream.ErrConsumerNotFound
// that names the durables ENMESHED has, so a typo is easy to see.
func unknownDurable(ctx context.Context, js jetstream.JetStream, durable string) error {
	ds, err := Durables(ctx, js)
	if err != nil {
		return notFoundError(fmt.Sprintf("no durable %q on stream %s (listing the durables failed: %v)", durable, streams.Events, err))
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	have := "it has none"
	if len(names) > 0 {
		have = "it has: " + strings.Join(names, ", ")
	}
	return notFoundError(fmt.Sprintf("no durable %q on stream %s; %s", durable, streams.Events, have))
}

// notFoundError is an unknown durable: errors.Is(err,
// jetstream.ErrConsumerNotFound) holds, but the message is ours alone.
type notFoundError string

func (e notFoundError) Error() string { return string(e) }
func (e notFoundError) Unwrap() error { return jetstream.ErrConsumerNotFound }

// Durables returns the durable consumers on ENMESHED (not the ephemeral
// ones, e.g. of `nats sub`), sorted by name.
func Durables(ctx context.Context, js jetstream.JetStream) ([]*jetstream.ConsumerInfo, error) {
	st, err := js.Stream(ctx, streams.Events)
	if err != nil {
		return nil, fmt.Errorf("list durables: stream %s: %w", streams.Events, err)
	}
	l := st.ListConsumers(ctx)
	var out []*jetstream.ConsumerInfo
	for info := range l.Info() {
		if info.Config.Durable != "" {
			out = append(out, info)
		}
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("list durables on %s: %w", streams.Events, err)
	}
	slices.SortFunc(out, func(a, b *jetstream.ConsumerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
