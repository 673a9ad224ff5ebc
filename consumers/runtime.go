package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are what a consumer gives the runtime besides its Config.
type Options struct {
	// Name is the durable name (a subject token).
	Name string
	// Filters are the event filter subjects (e.g. enmeshed.transport.>);
	// the runtime adds the consumer's replay subject.
	Filters []string
	// Match, when set, is applied in-process to event namespaces that the
	// server filters cannot express; events it rejects are acknowledged
	// unhandled. Replays always reach the handler.
	Match func(namespace string) bool
	// DefaultStart is the start position when Config.Start is empty.
	DefaultStart string
	// OrderKey, when set, turns on per-key order: events with the same
	// non-empty key are handled one at a time in stream order, retries
	// included, while other keys proceed in parallel; one process of the
	// durable is active at a time (a pinned priority group) and the others
	// stand by to take over. It needs a Handler.
	OrderKey func(Delivery) string
	// Handler handles one event at a time. Exactly one of Handler and
	// BatchHandler is set.
	Handler Handler
	// BatchHandler, when set instead of Handler, handles fetched events a
	// batch at a time (up to BatchSize, waiting at most BatchLinger for a
	// batch to fill): nil acknowledges them all, an error settles each as
	// Handler's error would. The archiver writes one transaction per batch.
	BatchHandler func(ctx context.Context, ds []Delivery) error
	BatchSize    int           // events per batch (0: 256); only with BatchHandler
	BatchLinger  time.Duration // the longest wait for a batch to fill (0: 20ms); only with BatchHandler
	// BatchBytes bounds a batch and each pull by bytes as BatchSize does
	// by count (0: 8 MiB); never below the server's largest message, or
	// that message could not be fetched. Only with BatchHandler.
	BatchBytes int
	// Gate, when set, holds fetching while it is closed (the bridge closes
	// it while its broker is not ready); nil: always fetch.
	Gate *Gate
	// NoOutcomes turns off outcome records (the archiver's own handling is
	// the archive itself).
	NoOutcomes bool
	Metrics    *Metrics
	Log        *slog.Logger
}

// Runtime runs one durable pull consumer on ENMESHED.
type Runtime struct {
	js       jetstream.JetStream
	subjects router.Subjects
	cfg      Config
	opt      Options
	log      *slog.Logger
	now      func() time.Time

	events jetstream.Stream
	// eventsCreated is when the ENMESHED of events was created: another
	// time later means the stream was deleted and set up again.
	eventsCreated time.Time
	// fromFirst: ENMESHED was re-created while this runtime ran, so a
	// durable it creates starts at the stream's first event.
	fromFirst bool
	cons      jetstream.Consumer
	ready     atomic.Bool
	breaker   *breaker
	lost      chan struct{}   // the durable is gone from the server (watch, consume errors)
	stopping  <-chan struct{} // closed when Run's context ends
	pinID     atomic.Value    // string: this process's pin in per-key order mode
	outcomes  *outcomeBatcher // nil with NoOutcomes
	presence  *presence       // this process's state in ENMESHED_CONSUMERS
	// heldLetters are events whose dead letters ENMESHED_DLQ refused.
	heldLetters *heldLetters
	// window bounds and fills what a Handler without per-key order holds
	// (nil in the other modes, which fetch with Consume).
	window *window
}

// New returns a runtime; Run starts it. It refuses options that cannot
// work (see Options.validate).
func New(js jetstream.JetStream, s router.Subjects, cfg Config, o Options) (*Runtime, error) {
	if js == nil {
		return nil, errors.New("consumer runtime: no JetStream")
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry()) // counted, not exported
	}
	r := &Runtime{js: js, subjects: s, cfg: cfg, opt: o, log: o.Log.With("consumer", o.Name), now: time.Now,
		breaker: newBreaker(cfg, o, time.Now), lost: make(chan struct{}, 1), presence: newPresence(),
		heldLetters: newHeldLetters()}
	if o.Handler != nil && o.OrderKey == nil {
		r.window = newWindow(cfg.Concurrency, cfg.MaxAckPending)
	}
	return r, nil
}

// validate refuses options that cannot work, naming the fields.
func (o Options) validate() error {
	if err := router.ValidateToken(o.Name); err != nil {
		return fmt.Errorf("durable name: %w", err)
	}
	prefix := "consumer runtime " + o.Name + ": "
	switch {
	case o.Handler == nil && o.BatchHandler == nil:
		return errors.New(prefix + "no handler: set Handler or BatchHandler")
	case o.Handler != nil && o.BatchHandler != nil:
		return errors.New(prefix + "both Handler and BatchHandler are set: set one")
	case o.OrderKey != nil && o.BatchHandler != nil:
		// Per-key order hands events to a handler one key at a time.
		return errors.New(prefix + "per-key order (OrderKey) needs a Handler, not a BatchHandler")
	case o.BatchHandler == nil && (o.BatchSize != 0 || o.BatchLinger != 0 || o.BatchBytes != 0):
		return errors.New(prefix + "BatchSize, BatchLinger and BatchBytes are for a BatchHandler: set one, or leave them zero")
	case o.BatchSize < 0:
		return fmt.Errorf(prefix+"BatchSize %d is negative (0: 256)", o.BatchSize)
	case o.BatchLinger < 0:
		return fmt.Errorf(prefix+"BatchLinger %s is negative (0: 20ms)", o.BatchLinger)
	case o.BatchBytes < 0:
		return fmt.Errorf(prefix+"BatchBytes %d is negative (0: 8 MiB)", o.BatchBytes)
	}
	if _, _, err := (Config{}).StartPolicy(o.DefaultStart); err != nil {
		return fmt.Errorf(prefix+"DefaultStart %w", err)
	}
	return nil
}

// Name returns the durable name.
func (r *Runtime) Name() string { return r.opt.Name }

// Ready returns nil once the durable exists and is being consumed.
func (r *Runtime) Ready(context.Context) error {
	if !r.ready.Load() {
		return fmt.Errorf("consumer %s not started", r.opt.Name)
	}
	return nil
}

// Run sets up the streams and the durable, then consumes until ctx ends,
// and then drains: fetching stops, in-flight handlers finish and settle
// (within DrainTimeout), events not yet handled are released at once.
func (r *Runtime) Run(ctx context.Context) error {
	r.stopping = ctx.Done()
	if err := r.setup(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.catchAdvisories(ctx) }()
	go func() { defer wg.Done(); r.watch(ctx) }()
	// Outcomes outlive the consume loop and the advisory reader by one
	// final flush, which carries out the settlements waiting for it.
	octx, stopOutcomes := context.WithCancel(context.WithoutCancel(ctx))
	outcomesDone := make(chan struct{})
	if r.outcomes != nil {
		go func() { defer close(outcomesDone); r.outcomes.run(octx) }()
	} else {
		close(outcomesDone)
	}
	// The process's state outlives the consume loop too: it is deleted
	// once the drain is over.
	sctx, stopState := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() { defer wg.Done(); r.publishState(sctx) }()
	// So do events held for their dead letters: handlers settle until
	// the consume loop ends.
	hctx, stopHolding := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { r.retryHeld(hctx) })
	r.ready.Store(true)
	r.log.Info("consumer running", "filters", r.filters(), "concurrency", r.cfg.Concurrency)
	err := r.consume(ctx)
	r.ready.Store(false)
	stopState()
	stopHolding()
	wg.Wait()
	stopOutcomes()
	<-outcomesDone
	if r.opt.OrderKey != nil {
		r.handOver() // after the last acks: the standby gets nothing this process handled
	}
	r.log.Info("consumer stopped")
	return err
}

func (r *Runtime) filters() []string {
	return append(append([]string(nil), r.opt.Filters...), r.subjects.Replays(r.opt.Name))
}
