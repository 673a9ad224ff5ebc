package streams

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KeepStreamEvery is how often KeepStream looks for its stream when
// nothing told it to look sooner.
const KeepStreamEvery = 5 * time.Second

// KeepStream sets the stream of want up again whenever it is found
// missing (deleted by an operator, or by anyone the server let): every
// interval (0: KeepStreamEvery) and at once when lookNow is signalled (a
// publish found no stream). It logs an error naming what happened and
// runs until ctx ends. The owner of a stream runs it, so a deleted stream
// costs seconds of refused publishes, not every event until a restart.
func KeepStream(ctx context.Context, js jetstream.StreamManager, want jetstream.StreamConfig, interval time.Duration, lookNow <-chan struct{}, log *slog.Logger) {
	if interval <= 0 {
		interval = KeepStreamEvery
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-lookNow:
		}
		RecreateIfMissing(ctx, js, want, log)
	}
}

// RecreateIfMissing creates the stream of want again when a lookup says
// it does not exist, and reports whether it did. Any other answer (the
// stream is there, the server cannot answer now) leaves it alone.
func RecreateIfMissing(ctx context.Context, js jetstream.StreamManager, want jetstream.StreamConfig, log *slog.Logger) bool {
	lctx, cancel := context.WithTimeout(ctx, setupAttempt)
	defer cancel()
	_, err := js.Stream(lctx, want.Name)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false
	}
	log.Error("stream "+want.Name+" is missing (deleted while eventmesh ran?): creating it again; "+
		"what it held is gone, and consumers set their durables up again from its first event",
		"stream", want.Name)
	if _, err := EnsureFixedStream(lctx, js, want); err != nil {
		log.Error("stream "+want.Name+" could not be created again; retrying", "err", err)
		return false
	}
	return true
}

// NoStream reports whether a publish failed because no stream took its
// subject (the stream is missing).
func NoStream(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound)
}
