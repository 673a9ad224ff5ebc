// Package consumers is the runtime every consumer binary shares: a durable
// pull consumer on ENMESHED, one place that settles each message (ack,
// retry with delay by a schedule, dead-letter, pause: decide and carryOut
// in settle.go), dead letters caught from max-deliveries advisories,
// graceful drain, a circuit breaker, and metrics. The consumers themselves
// live in sub-packages.
package consumers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventmesh/eventmesh/router"
)

// Delivery is one delivery of an event to a handler.
type Delivery struct {
	Event     router.Event
	Subject   string // subject in ENMESHED (an event or a replay subject)
	StreamSeq uint64
	Attempt   int // 1 on the first delivery
}

// Handler handles one event. Returning nil acknowledges it; an error
// decides its fate (see Retry, Permanent, Pause); any other error is
// retried by the schedule. A handler never acks itself.
type Handler interface {
	Handle(ctx context.Context, d Delivery) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, d Delivery) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, d Delivery) error { return f(ctx, d) }

// RetryError asks for another attempt after At least After (zero: by the
// schedule), e.g. from a Retry-After header.
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
	}
	return e.Err.Error()
}
func (e *RetryError) Unwrap() error { return e.Err }

// Retry returns an error that retries the event no earlier than after
// (zero: by the retry schedule).
func Retry(err error, after time.Duration) error { return &RetryError{Err: err, After: after} }

// PermanentError marks a failure that no retry can fix: the event is
// dead-lettered at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent returns an error that dead-letters the event.
func Permanent(err error) error { return &PermanentError{Err: err} }

// PauseError marks a failure that needs a person (a receiver answering 410
// Gone, a rejected API key): the consumer is paused on the server, so every
// replica stops, and the event is redelivered after
// `eventmesh consumer resume`.
type PauseError struct{ Err error }

func (e *PauseError) Error() string { return e.Err.Error() }
func (e *PauseError) Unwrap() error { return e.Err }

// Pause returns an error that pauses the consumer.
func Pause(err error) error { return &PauseError{Err: err} }

// IsPermanent, IsPause report an error's kind.
func IsPermanent(err error) bool { var p *PermanentError; return errors.As(err, &p) }

// IsPause reports whether err pauses the consumer.
func IsPause(err error) bool { var p *PauseError; return errors.As(err, &p) }

// RetryAfter returns the delay a RetryError asks for, or zero.
func RetryAfter(err error) time.Duration {
	var r *RetryError
	if errors.As(err, &r) {
		return r.After
	}
	return 0
}
