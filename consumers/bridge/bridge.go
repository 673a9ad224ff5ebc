package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// RecheckEvery is how often the bridge checks its broker (Publisher.Ready):
// while the check fails, nothing is fetched. A publish refused for a missing
// destination checks at once.
const RecheckEvery = 5 * time.Second

// Bridge is the bridge consumer: the consumer runtime on ENMESHED, whose
// handler publishes each event to the broker and returns once the broker
// confirmed it, and the watch over the broker that holds fetching while the
// broker is not ready.
type Bridge struct {
	rt      *consumers.Runtime
	js      jetstream.JetStream
	gate    *consumers.Gate
	open    func(context.Context) (Publisher, error)
	every   time.Duration // RecheckEvery; shorter in tests
	timeout time.Duration // one publish's limit: BRIDGE_ACK_WAIT
	log     *slog.Logger

	pub     atomic.Pointer[Publisher] // nil until opened
	broker  atomic.Pointer[error]     // the last check's error; nil pointer: ready
	recheck chan struct{}

	mu      sync.Mutex     // serializes record: watch and watchFlow both decide the gate
	flow    flowControlled // the Publisher's flow control, when it has one; set before watchFlow starts
	lastLog time.Time      // when a lasting failure was last logged
}

// New returns the bridge consumer: its durable filters on the subjects of
// BRIDGE_TRIGGERS (and its replay subject), starts at "new" unless
// BRIDGE_START says otherwise, keeps each peer's events in order with
// BRIDGE_ORDER=per-key, and publishes with the Publisher of BRIDGE_URL's
// scheme, opened by Run. m are the runtime metrics shared by the process's
// consumers. c must be valid (Config.Validate).
func New(js jetstream.JetStream, s router.Subjects, c Config, m *consumers.Metrics, log *slog.Logger) (*Bridge, error) {
	o, err := c.Options(log)
	if err != nil {
		return nil, err
	}
	return newBridge(js, s, c, m, o.Log, func(ctx context.Context) (Publisher, error) { return Open(ctx, o) })
}

// newBridge is New with the Publisher opened by open.
func newBridge(js jetstream.JetStream, s router.Subjects, c Config, m *consumers.Metrics, log *slog.Logger,
	open func(context.Context) (Publisher, error)) (*Bridge, error) {
	if log == nil {
		log = slog.Default()
	}
	patterns, err := c.TriggerPatterns()
	if err != nil {
		return nil, err
	}
	b := &Bridge{js: js, gate: consumers.NewGate(), open: open, every: RecheckEvery, timeout: c.Runtime.AckWait,
		log: log.With("consumer", c.DurableName(), "broker", c.Redacted()), recheck: make(chan struct{}, 1)}
	notYet := errors.New("broker not connected yet")
	b.broker.Store(&notYet)
	b.gate.Close() // until the broker's first check passes
	filters, exact := patterns.FilterSubjects(s.Prefix())
	o := consumers.Options{Name: c.DurableName(), Filters: filters, DefaultStart: "new", Gate: b.gate,
		Handler: consumers.HandlerFunc(b.handle), Metrics: m, Log: log}
	if !exact {
		o.Match = patterns.Match
	}
	if c.Order == "per-key" {
		o.OrderKey = func(d consumers.Delivery) string { return router.OrderKey(d.Event.Data) }
	}
	if b.rt, err = consumers.New(js, s, c.Runtime, o); err != nil {
		return nil, err
	}
	return b, nil
}

// Name returns the durable name.
func (b *Bridge) Name() string { return b.rt.Name() }

// Ready returns nil once the durable exists and the broker is ready (the
// connection is up and the destination exists).
func (b *Bridge) Ready(ctx context.Context) error {
	if err := b.rt.Ready(ctx); err != nil {
		return err
	}
	if err := b.broker.Load(); err != nil {
		return fmt.Errorf("bridge %s: broker not ready: %w", b.Name(), *err)
	}
	return nil
}

// DurableReady returns nil once the durable exists, whatever the broker
// does: what eventmesh's ingest waits for, so that no event it accepts is
// missed by a new durable, and a broker outage never makes ingest unready.
func (b *Bridge) DurableReady(ctx context.Context) error { return b.rt.Ready(ctx) }

// Run runs the consumer runtime and opens the Publisher, then checks the
// broker every RecheckEvery, holding fetching while the check fails, until
// ctx ends; then the runtime drains and the Publisher closes.
func (b *Bridge) Run(ctx context.Context) error {
	rtDone := make(chan error, 1)
	go func() { rtDone <- b.rt.Run(ctx) }()
	var wg sync.WaitGroup
	wctx, stopWatch := context.WithCancel(ctx)
	wg.Go(func() { b.watch(wctx) })
	err := <-rtDone // ctx ended and the runtime drained, or it failed
	stopWatch()
	wg.Wait()
	if p := b.pub.Load(); p != nil {
		if cerr := (*p).Close(); cerr != nil {
			b.log.Warn("closing the broker connection", "err", cerr)
		}
	}
	return err
}

// watch opens the Publisher (retrying every RecheckEvery), then checks the
// broker every RecheckEvery and when a publish asks for it, opening the
// gate while the check passes and closing it while it fails. A Publisher
// with flow control is followed by watchFlow besides.
func (b *Bridge) watch(ctx context.Context) {
	var openErr error
	for b.pub.Load() == nil {
		p, err := b.open(ctx)
		if err == nil {
			b.pub.Store(&p)
			break
		}
		if consumers.IsPause(err) && (openErr == nil || !consumers.IsPause(openErr)) {
			b.pause(ctx, err)
		}
		openErr = err
		b.notReady(err)
		if !streams.Sleep(ctx, b.every) {
			return
		}
	}
	if fc, ok := (*b.pub.Load()).(flowControlled); ok {
		b.flow = fc
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { b.watchFlow(ctx, fc) })
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, b.every)
		err := (*b.pub.Load()).Ready(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		b.record(ctx, err)
		t := time.NewTimer(b.every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-b.recheck:
			t.Stop()
		}
	}
}

// record keeps the outcome of a check of the broker (err nil: ready), for
// Ready, and opens or closes the gate by it. A broker that blocks
// publishing keeps the gate closed whatever a check found: the check may
// have begun before the block.
func (b *Bridge) record(ctx context.Context, err error) {
	b.mu.Lock()
	if err == nil && b.flow != nil {
		_, err = b.flow.Blocked()
	}
	if err == nil {
		if b.broker.Load() != nil {
			b.log.Info("broker ready: fetching")
		}
		b.broker.Store(nil)
		b.gate.Open()
		b.mu.Unlock()
		return
	}
	prev := b.broker.Load()
	b.gate.Close()
	b.broker.Store(&err)
	changed := prev == nil || (*prev).Error() != err.Error()
	switch {
	case errors.Is(err, ErrBlocked):
		// Once: the broker says when it unblocks.
		if changed {
			b.log.Warn("broker blocks publishing: fetching nothing until it unblocks", "err", err)
		}
	case changed || time.Since(b.lastLog) >= time.Minute:
		// Every change is logged, and a lasting failure once a minute.
		b.notReady(err)
		b.lastLog = time.Now()
	}
	b.mu.Unlock()
	if consumers.IsPause(err) && (prev == nil || !consumers.IsPause(*prev)) {
		b.pause(ctx, err)
	}
}

// notReady logs why the broker is not ready; err names the variable to
// fix when a setting is the cause.
func (b *Bridge) notReady(err error) {
	b.log.Warn("broker not ready: fetching nothing, checking again every "+b.every.String(), "err", err)
}

// pause pauses the durable on the server when the broker's check finds
// what needs a person (rejected credentials): a publish would pause it
// too, but with the gate closed none is attempted. It waits for the
// durable, which the runtime may still be setting up.
func (b *Bridge) pause(ctx context.Context, err error) {
	for b.rt.Ready(ctx) != nil {
		if !streams.Sleep(ctx, 100*time.Millisecond) {
			return
		}
	}
	b.log.Error("PAUSING consumer on the server: "+err.Error(), "resume", "eventmesh consumer resume "+b.Name())
	if perr := consumers.PauseConsumer(ctx, b.js, b.Name(), err.Error()); perr != nil {
		b.log.Error("pause failed", "err", perr)
	}
}

// check asks watch to check the broker now.
func (b *Bridge) check() {
	select {
	case b.recheck <- struct{}{}:
	default:
	}
}

// handle publishes one event and returns once the broker confirmed it.
// The Publisher's errors pass through to the runtime, which decides: a
// pause pauses the consumer on the server, anything else (unroutable
// included) is retried by the schedule and dead-lettered after the last
// attempt, with the error as its reason. A missing destination also holds
// fetching until the broker's check passes again. A publish that the
// broker blocks waits for the unblock (publishContext).
func (b *Bridge) handle(ctx context.Context, d consumers.Delivery) error {
	p := b.pub.Load()
	if p == nil { // the gate is closed until the Publisher opens: only a race gets here
		return errors.New("broker not connected yet")
	}
	ctx, cancel := b.publishContext(ctx, *p)
	defer cancel()
	err := (*p).Publish(ctx, Message{Event: d.Event, Body: Body(d.Event)})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrMissingDestination):
		b.gate.Close() // until watch's check, at once, finds it back
		b.check()
	case !consumers.IsPause(err) && !errors.Is(err, ErrUnroutable):
		b.check() // a cut connection shows at once
	}
	return err
}
