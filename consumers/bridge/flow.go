package bridge

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// flowControlled is a Publisher whose broker can hold publishing back
// for a while without failing it (RabbitMQ's connection.blocked on a
// memory or disk alarm). Its Ready fails with ErrBlocked meanwhile.
type flowControlled interface {
	// Blocked returns nil when the broker lets this process publish, else
	// an error wrapping ErrBlocked with the broker's reason; and a channel
	// closed at the next change.
	Blocked() (changed <-chan struct{}, err error)
}

// errPublishTimeout ends a publish that waited BRIDGE_ACK_WAIT for the
// broker's confirm (publishContext).
var errPublishTimeout = fmt.Errorf("no confirm within BRIDGE_ACK_WAIT: %w", context.DeadlineExceeded)

// watchFlow follows the broker's flow control: when the broker blocks
// publishing, the gate closes at once (the periodic check would find it
// too, but a check under way when the broker blocks waits for the
// unblock); when it unblocks, the broker is checked at once, which opens
// the gate.
func (b *Bridge) watchFlow(ctx context.Context, fc flowControlled) {
	blocked := false
	for {
		changed, err := fc.Blocked()
		switch {
		case err != nil:
			blocked = true
			b.record(ctx, err)
		case blocked:
			blocked = false
			b.check()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// publishContext returns ctx ended after b.timeout (BRIDGE_ACK_WAIT), the
// limit of one publish, with the cancel to call once the publish returned.
// When the Publisher's broker blocks publishing as the limit runs out, the
// publish waits on, and the limit runs again, in full, from the unblock: a
// publish held back by the broker has reached it (RabbitMQ stops reading
// its socket and reads the message once it unblocks), and giving up on it
// would publish it twice, spend an attempt of MAX_DELIVER and count a
// failure toward the breaker, for a broker that is merely full. The
// runtime keeps the event from being redelivered while the publish waits.
// A shutdown still ends ctx at once.
func (b *Bridge) publishContext(ctx context.Context, p Publisher) (context.Context, context.CancelFunc) {
	fc, ok := p.(flowControlled)
	if !ok {
		return context.WithTimeoutCause(ctx, b.timeout, errPublishTimeout)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	var mu sync.Mutex // guards t, which expire re-arms
	var t *time.Timer
	var expire func()
	expire = func() {
		changed, err := fc.Blocked()
		if err == nil {
			cancel(errPublishTimeout)
			return
		}
		// Rare (a block outlasting a publish's limit): a goroutine waits
		// for the change.
		go func() {
			select {
			case <-changed:
				mu.Lock()
				if ctx.Err() == nil {
					t.Reset(b.timeout)
				}
				mu.Unlock()
			case <-ctx.Done():
			}
		}()
	}
	mu.Lock()
	t = time.AfterFunc(b.timeout, expire)
	mu.Unlock()
	return ctx, func() {
		mu.Lock()
		t.Stop()
		mu.Unlock()
		cancel(context.Canceled)
	}
}
