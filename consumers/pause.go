package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// pauseForever is how long "until further notice" is: the JetStream pause
// API needs a deadline.
const pauseForever = 100 // years

// PausedUntilResumed reports whether a pause deadline means "until further
// notice": none, or one PauseConsumer set pauseForever ahead (anything
// over half of that).
func PausedUntilResumed(until *time.Time, now time.Time) bool {
	return until == nil || until.Sub(now) > pauseForever/2*365*24*time.Hour
}

// resumeDelay is how far ahead ResumeConsumer sets the pause deadline that
// ends a pause (see there why).
const resumeDelay = 100 * time.Millisecond

// PauseConsumer pauses the durable consumer on ENMESHED on the server until
// further notice (JetStream needs a deadline: 100 years from now), so every
// replica stops fetching and `eventmesh status` shows it; ResumeConsumer
// lifts it. JetStream's pause carries no reason: reason goes into the error,
// and the caller logs or prints it. An unknown durable is an error listing
// the existing ones.
func PauseConsumer(ctx context.Context, js jetstream.JetStream, durable string, reason string) error {
	if err := router.ValidateToken(durable); err != nil {
		return fmt.Errorf("pause consumer %q: %w", durable, err)
	}
	until := time.Now().AddDate(pauseForever, 0, 0)
	resp, err := js.PauseConsumer(ctx, streams.Events, durable, until)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		err = unknownDurable(ctx, js, durable)
	}
	if err != nil {
		return fmt.Errorf("pause consumer %s (%s): %w", durable, reason, err)
	}
	if !resp.Paused {
		return fmt.Errorf("pause consumer %s (%s): the server did not pause it (consumer pause needs nats-server 2.11 or later)", durable, reason)
	}
	return nil
}

// ResumeConsumer lifts a pause of the durable consumer on ENMESHED, so its
// replicas fetch again and its unacknowledged events are redelivered. An
// unknown durable is an error listing the existing ones; resuming a
// consumer that is not paused does nothing.
//
// nats-server (2.11 to 2.15) wakes a paused pull consumer's waiting pull
// requests only when a pause deadline passes, not on a resume request:
// after a plain resume the consumer idles until its clients pull again (up
// to their pull expiry, 30 s by default; 13 s measured here). So this sets
// the deadline resumeDelay ahead and waits it out. Should the server's
// clock lag ours so far that the deadline lies more than a second ahead, it
// resumes plainly instead.
func ResumeConsumer(ctx context.Context, js jetstream.JetStream, durable string) error {
	if err := router.ValidateToken(durable); err != nil {
		return fmt.Errorf("resume consumer %q: %w", durable, err)
	}
	c, err := js.Consumer(ctx, streams.Events, durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		err = unknownDurable(ctx, js, durable)
	}
	if err != nil {
		return fmt.Errorf("resume consumer %s: %w", durable, err)
	}
	if !c.CachedInfo().Paused {
		return nil
	}
	resp, err := js.PauseConsumer(ctx, streams.Events, durable, time.Now().Add(resumeDelay))
	if err == nil && resp.Paused && resp.PauseRemaining > time.Second {
		resp, err = js.ResumeConsumer(ctx, streams.Events, durable)
	}
	if err != nil {
		return fmt.Errorf("resume consumer %s: %w", durable, err)
	}
	if resp.Paused {
		select {
		case <-time.After(resp.PauseRemaining + 10*time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("resume consumer %s: it resumes at %s: %w", durable, resp.PauseUntil.Format(time.RFC3339Nano), ctx.Err())
		}
	}
	return nil
}
