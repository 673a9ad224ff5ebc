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
// connection that is reconnecting, a 503 (no cluster leader, JetStream
// not enabled yet), or a cluster without enough peers online. A conflict, a refused configuration or any other
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
		a := jsErr.APIError()
		return a.Code == 503 || a.ErrorCode == jetstream.JSErrCodeJetStreamNotEnabled || a.ErrorCode == jsClusterNoPeers
	}
	return false
}

// jsClusterNoPeers is nats-server's JSClusterNoPeersErr ("no suitable
// peers for placement"): a cluster short of the replicas' peers, such as
// one whose nodes are still starting or one node restarting. With more
// replicas than nodes it never passes; the retry warnings say so.
const jsClusterNoPeers jetstream.ErrorCode = 10005

// setupAttempt bounds one attempt of a setup step: long enough for a
// cluster to answer, short enough that a lost request is retried soon.
const setupAttempt = 5 * time.Second

// Retry runs step (what names it in logs and errors) until it succeeds,
// fails with an error that is not NotReady, or ctx ends. Each attempt has
// its own timeout, so one request lost during a leader election does not
// end the set-up: a binary started with its cluster waits for it instead
// of exiting.
func Retry(ctx context.Context, log *slog.Logger, what string, step func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, setupAttempt)
		err := step(actx)
		cancel()
		if err == nil || !NotReady(err) || ctx.Err() != nil {
			return err
		}
		log.Warn("JetStream not ready; retrying", "step", what, "attempt", attempt, "err", err)
		t := time.NewTimer(min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}
