package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NotReady reports whether err says JetStream cannot answer yet rather
// than no: a request that timed out or found no responder (a server still
// starting, a stream or consumer whose leader is being elected), a
// connection that is reconnecting, no cluster leader, JetStream not
// enabled yet (a server starting), or a cluster whose only reason for
// refusing a placement is a peer offline. A conflict, a refused configuration or any other
// answer is final.
func NotReady(err error) bool {
	if err == nil || errors.Is(err, ErrConflict) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) {
		return true
	}
	var jsErr jetstream.JetStreamError
	if errors.As(err, &jsErr) && jsErr.APIError() != nil {
		switch a := jsErr.APIError(); a.ErrorCode {
		case jsClusterNotAvailable, jetstream.JSErrCodeJetStreamNotEnabled:
			return true
		case jsClusterNoPeers:
			// Only when a peer is offline: not enough storage, tags that
			// match no server, or more replicas than servers stay final.
			return a.Description == noPeersOffline
		}
	}
	return false
}

// nats-server's error codes (server/errors.json) that NotReady tells
// apart; other 503s, such as insufficient resources (10023) or JetStream
// not enabled for the account (10039), are final.
const (
	jsClusterNotAvailable jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable": no meta leader
	jsClusterNoPeers      jetstream.ErrorCode = 10005 // "no suitable peers for placement" with the reasons
	noPeersOffline                            = "no suitable peers for placement, peer offline"
)

// setupAttempt bounds one attempt of a setup step: long enough for a
// cluster to answer, short enough that a lost request is retried soon.
const setupAttempt = 5 * time.Second

// Retry runs step (what names it in logs and errors) until it succeeds,
// fails with an error that is not NotReady, or ctx ends. Each attempt has
// its own timeout, so one request lost during a leader election does not
// end the set-up: a binary started with its cluster waits for it instead
// of exiting.
func Retry(ctx context.Context, log *slog.Logger, what string, step func(context.Context) error) error {
	return retry(ctx, log, what, NotReady, "JetStream not ready; retrying", step)
}

// Await is Retry for a step that waits for something another process
// makes, or that a later attempt may find in place (the producer's
// stream, a bucket, a durable on a stream a consumer creates): every error
// is retried, until step succeeds or ctx ends, with Retry's waits and
// timeout per attempt. Use Retry where an answer can be final.
func Await(ctx context.Context, log *slog.Logger, what string, step func(context.Context) error) error {
	return retry(ctx, log, what, func(error) bool { return true }, "not available yet; retrying", step)
}

// retry runs step until it succeeds, fails with an error that is not
// retryable, or ctx ends, logging msg after each failed attempt.
func retry(ctx context.Context, log *slog.Logger, what string, retryable func(error) bool, msg string, step func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, setupAttempt)
		err := step(actx)
		cancel()
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		log.Warn(msg, "step", what, "attempt", attempt, "err", err)
		if !waitAttempt(ctx, attempt) {
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		}
	}
}

// waitAttempt waits before attempt+1 of a set-up step (500 ms more each
// time, at most 5 s); false when ctx ends first.
func waitAttempt(ctx context.Context, attempt int) bool {
	return Sleep(ctx, min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second))
}

// Sleep waits d; false when ctx ends first. The wait of the mesh's retry
// loops.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
