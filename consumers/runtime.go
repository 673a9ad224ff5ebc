package consumers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
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
	// stand by to take over.
	OrderKey func(Delivery) string
	Handler  Handler
	// BatchHandler, when set instead of Handler, handles fetched events a
	// batch at a time (up to BatchSize, waiting at most BatchLinger for a
	// batch to fill): nil acknowledges them all, an error settles each as
	// Handler's error would. The archiver writes one transaction per batch.
	BatchHandler func(ctx context.Context, ds []Delivery) error
	BatchSize    int
	BatchLinger  time.Duration
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

	events   jetstream.Stream
	cons     jetstream.Consumer
	ready    atomic.Bool
	breaker  *breaker
	lost     chan struct{}   // the durable is gone from the server (watch, consume errors)
	stopping <-chan struct{} // closed when Run's context ends
	pinID    atomic.Value    // string: this process's pin in per-key order mode
	outcomes *outcomeBatcher // nil with NoOutcomes
}

// orderedGroup is the priority group of a durable in per-key order mode.
const orderedGroup = "ordered"

// pinIDHeader carries the pin of the process a pinned group delivers to.
const pinIDHeader = "Nats-Pin-Id"

// New returns a runtime; Run starts it.
func New(js jetstream.JetStream, s router.Subjects, cfg Config, o Options) (*Runtime, error) {
	if err := router.ValidateToken(o.Name); err != nil {
		return nil, fmt.Errorf("durable name: %w", err)
	}
	if o.Handler == nil && o.BatchHandler == nil {
		return nil, errors.New("consumer runtime: no handler")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(prometheus.NewRegistry()) // counted, not exported
	}
	return &Runtime{js: js, subjects: s, cfg: cfg, opt: o, log: o.Log.With("consumer", o.Name), now: time.Now,
		breaker: newBreaker(cfg, o), lost: make(chan struct{}, 1)}, nil
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
	// Outcomes outlive the consume loop by one final flush.
	octx, stopOutcomes := context.WithCancel(context.WithoutCancel(ctx))
	if r.outcomes != nil {
		wg.Add(1)
		go func() { defer wg.Done(); r.outcomes.run(octx) }()
	}
	r.ready.Store(true)
	r.log.Info("consumer running", "filters", r.filters(), "concurrency", r.cfg.Concurrency)
	err := r.consume(ctx)
	r.ready.Store(false)
	if r.opt.OrderKey != nil {
		r.handOver()
	}
	stopOutcomes()
	wg.Wait()
	r.log.Info("consumer stopped")
	return err
}

func (r *Runtime) filters() []string {
	return append(append([]string(nil), r.opt.Filters...), r.subjects.Replays(r.opt.Name))
}

// setup waits for ENMESHED (a consumer never creates it), creates the
// streams the runtime may create, and creates or updates the durable.
func (r *Runtime) setup(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := r.js.Stream(actx, streams.Events)
		cancel()
		if err == nil {
			r.events = st
			break
		}
		level := slog.LevelDebug // the producer may be starting right now
		if attempt > 4 || !errors.Is(err, jetstream.ErrStreamNotFound) {
			level = slog.LevelWarn
		}
		r.log.Log(ctx, level, "waiting for stream "+streams.Events+" (the producer creates it)", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second)):
		}
	}
	defs := []jetstream.StreamConfig{streams.DLQStream(r.subjects), streams.AdvisoriesStream()}
	if !r.opt.NoOutcomes {
		defs = append(defs, streams.OutcomesStream(r.subjects))
		r.outcomes = newOutcomeBatcher(r.js, r.subjects.Outcome(r.opt.Name), r.log)
	}
	for _, def := range defs {
		def.Replicas = r.cfg.SideStreamReplicas()
		// Replicas started together create these streams together: in a
		// cluster a lookup can go unanswered until the new stream has a
		// leader, so not-ready answers are retried.
		if err := streams.Retry(ctx, r.log, "stream "+def.Name, func(ctx context.Context) error {
			_, err := streams.EnsureFixedStream(ctx, r.js, def)
			return err
		}); err != nil {
			return err
		}
	}
	var err error
	r.cons, err = r.ensureDurableRetrying(ctx)
	return err
}

// ensureDurableRetrying runs ensureDurable until JetStream can answer.
func (r *Runtime) ensureDurableRetrying(ctx context.Context) (jetstream.Consumer, error) {
	var cons jetstream.Consumer
	err := streams.Retry(ctx, r.log, "durable "+r.opt.Name, func(ctx context.Context) (err error) {
		cons, err = r.ensureDurable(ctx)
		return err
	})
	return cons, err
}

func (r *Runtime) ensureDurable(ctx context.Context) (jetstream.Consumer, error) {
	policy, start, err := r.cfg.StartPolicy(r.opt.DefaultStart)
	if err != nil {
		return nil, err
	}
	want := jetstream.ConsumerConfig{
		Durable:        r.opt.Name,
		Description:    "eventmesh consumer " + r.opt.Name,
		FilterSubjects: r.filters(),
		DeliverPolicy:  policy,
		OptStartTime:   start,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        r.cfg.AckWait,
		MaxDeliver:     r.cfg.MaxDeliver,
		MaxAckPending:  r.cfg.MaxAckPending,
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		Replicas:       r.cfg.Replicas,
	}
	if r.opt.OrderKey != nil {
		want.PriorityPolicy = jetstream.PriorityPolicyPinned
		want.PriorityGroups = []string{orderedGroup}
		want.PinnedTTL = max(2*r.cfg.AckWait, 15*time.Second)
	}
	existing, err := r.events.Consumer(ctx, r.opt.Name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
	case err != nil:
		// Not "no durable": updating blind would lift a pause and skip
		// the checks below. Retry decides whether to ask again.
		return nil, fmt.Errorf("look up durable %s: %w", r.opt.Name, err)
	default:
		have := existing.CachedInfo().Config
		if have.DeliverPolicy != want.DeliverPolicy || !sameTime(have.OptStartTime, want.OptStartTime) {
			return nil, fmt.Errorf("durable %s was created with start %s; its start cannot change (asked: %s): "+
				"keep the old start, or delete the durable (nats consumer rm %s %s) or pick a new name",
				r.opt.Name, describeStart(have), describeStart(want), streams.Events, r.opt.Name)
		}
		if have.AckPolicy != want.AckPolicy {
			return nil, fmt.Errorf("durable %s has ack policy %s, eventmesh needs explicit acks: delete it (nats consumer rm %s %s)",
				r.opt.Name, have.AckPolicy, streams.Events, r.opt.Name)
		}
		want.PauseUntil = have.PauseUntil // a pause outlives restarts until someone resumes it
	}
	cons, err := r.js.CreateOrUpdateConsumer(ctx, streams.Events, want)
	if err != nil {
		return nil, fmt.Errorf("create or update durable %s: %w", r.opt.Name, err)
	}
	if info := cons.CachedInfo(); info.Paused {
		r.log.Error("consumer is PAUSED on the server: nothing is delivered until `eventmesh consumer resume "+r.opt.Name+"`",
			"paused_until", info.Config.PauseUntil)
	}
	return cons, nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func describeStart(c jetstream.ConsumerConfig) string {
	switch c.DeliverPolicy {
	case jetstream.DeliverNewPolicy:
		return "new"
	case jetstream.DeliverAllPolicy:
		return "all"
	case jetstream.DeliverByStartTimePolicy:
		if c.OptStartTime != nil {
			return c.OptStartTime.Format(time.RFC3339)
		}
	}
	return c.DeliverPolicy.String()
}

// consume runs the fetch loop: Consume with a worker pool while the
// circuit breaker is closed; while it is open, nothing is fetched for the
// cool-down, then one event is fetched as a probe.
func (r *Runtime) consume(ctx context.Context) error {
	work := make(chan jetstream.Msg)
	var workers sync.WaitGroup
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	if r.opt.BatchHandler != nil {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r.batches(ctx, hctx, work)
		}()
	} else {
		for range r.cfg.Concurrency {
			workers.Add(1)
			go func() {
				defer workers.Done()
				for msg := range work {
					// The breaker may have tripped while msg waited for a
					// worker: it let msg through, but msg must not run.
					if r.admit(ctx, msg) {
						r.process(hctx, msg)
					}
				}
			}()
		}
	}
	defer func() {
		// Drain: no more dispatch; in-flight handlers get DrainTimeout.
		close(work)
		done := make(chan struct{})
		go func() { workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(r.cfg.DrainTimeout):
			r.log.Warn("drain timeout: cancelling handlers still running (their events are redelivered)")
			cancelHandlers()
			<-done
		}
	}()

	var keyed *keyedQueues
	if r.opt.OrderKey != nil {
		keyed = newKeyedQueues(r, hctx, r.cfg.Concurrency)
		defer keyed.wait()
	}
	for ctx.Err() == nil {
		if r.breaker.open() {
			r.setBreaker(true)
			r.log.Warn("circuit breaker open: not fetching", "cooldown", r.cfg.BreakerCooldown, "consecutive_failures", r.breaker.failures.Load())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(r.cfg.BreakerCooldown):
			}
			r.probe(ctx, hctx)
			continue
		}
		r.setBreaker(false)
		cc, err := r.cons.Consume(func(msg jetstream.Msg) {
			if ctx.Err() != nil {
				r.release(ctx, msg) // shutting down: at once
				return
			}
			if !r.admit(ctx, msg) {
				return
			}
			if keyed != nil {
				if pin := msg.Headers().Get(pinIDHeader); pin != "" && pin != r.pinID.Load() {
					r.pinID.Store(pin) // only on a change: a Store boxes the string
				}
				keyed.dispatch(msg)
				return
			}
			select {
			case work <- msg:
			case <-ctx.Done():
				r.giveBack(ctx, 0, msg)
			}
		}, r.consumeOpts(ctx)...)
		if err != nil {
			r.log.Error("consume failed; retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		lost := false
		select {
		case <-ctx.Done():
		case <-r.breaker.trip:
		case <-cc.Closed():
			// Ended by the server, not by us: the durable was deleted
			// (nats consumer rm, the stream re-created) or refused a pull.
			lost = ctx.Err() == nil
		case <-r.lost:
			lost = ctx.Err() == nil
		}
		cc.Drain()
		<-cc.Closed()
		if lost {
			if err := r.setUpAgain(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// signalLost tells the fetch loop that the durable is gone.
func (r *Runtime) signalLost() {
	select {
	case r.lost <- struct{}{}:
	default:
	}
}

// setUpAgain creates or updates the durable after the server ended its
// subscription, instead of idling while still reporting ready. Handles
// work by name, so the runtime's consumer handle stays valid.
func (r *Runtime) setUpAgain(ctx context.Context) error {
	r.ready.Store(false)
	start := cmp.Or(r.cfg.Start, r.opt.DefaultStart)
	r.log.Error("the server ended this consumer's subscription (durable deleted?): setting the durable up again; a new durable starts at "+start,
		"start", start)
	if _, err := r.ensureDurableRetrying(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("durable %s was lost and could not be set up again: %w", r.opt.Name, err)
	}
	select {
	case <-r.lost: // a second report of the same loss
	default:
	}
	r.ready.Store(true)
	return nil
}

func (r *Runtime) consumeOpts(ctx context.Context) []jetstream.PullConsumeOpt {
	prefetch := r.cfg.Concurrency
	if r.opt.BatchHandler != nil {
		prefetch = 2 * r.batchSize() // the next batch arrives while one is written
	}
	opts := []jetstream.PullConsumeOpt{
		jetstream.PullMaxMessages(prefetch),
		// Short pull requests: after a pause is lifted (by any process) a
		// new request reaches the server within seconds.
		jetstream.PullExpiry(5 * time.Second),
		// A pull the server lost is noticed after two missed heartbeats:
		// keep that short, or a consumer can sit idle with work waiting.
		jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() == nil {
				r.log.Warn("consume", "err", err)
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				r.signalLost()
			}
		}),
	}
	if r.opt.OrderKey != nil {
		opts = append(opts, jetstream.PullPriorityGroup(orderedGroup))
	}
	return opts
}

// release hands back messages this process will not handle now, instead
// of letting them wait out AckWait in a buffer: at once on shutdown (ctx,
// the fetch loop's, ended), after the cool-down while the breaker is open.
func (r *Runtime) release(ctx context.Context, msgs ...jetstream.Msg) {
	delay := time.Duration(0)
	if ctx.Err() == nil {
		delay = r.cfg.BreakerCooldown
	}
	r.giveBack(ctx, delay, msgs...)
}

// probe fetches and handles one event while the breaker is open; success
// closes the breaker.
func (r *Runtime) probe(ctx, hctx context.Context) {
	batch, err := r.cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		r.log.Warn("probe fetch", "err", err)
		return
	}
	for msg := range batch.Messages() {
		if r.opt.BatchHandler != nil {
			r.processBatch(hctx, []jetstream.Msg{msg}) // a batch consumer has no single-event Handler
		} else {
			r.process(hctx, msg)
		}
	}
	if ctx.Err() == nil && !r.breaker.open() {
		r.log.Info("circuit breaker closed: the probe succeeded")
	}
}

// handOver lifts this process's pin after a graceful stop, so a standby
// takes over at once instead of after PinnedTTL (which is what a crash
// costs). It unpins only if the pin is still ours: unpinning another
// process would only make the group switch for nothing.
func (r *Runtime) handOver() {
	pin, _ := r.pinID.Load().(string)
	if pin == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	info, err := r.cons.Info(ctx)
	if err != nil {
		r.log.Warn("pin hand-over: consumer info", "err", err)
		return
	}
	for _, g := range info.PriorityGroups {
		if g.Group != orderedGroup || g.PinnedClientID != pin {
			continue
		}
		if err := r.events.UnpinConsumer(ctx, r.opt.Name, orderedGroup); err != nil {
			r.log.Warn("pin hand-over: unpin", "err", err)
			return
		}
		r.log.Info("pin handed over: a standby process takes over")
	}
}

func (r *Runtime) setBreaker(open bool) {
	v := 0.0
	if open {
		v = 1
	}
	r.opt.Metrics.breakerOpen.WithLabelValues(r.opt.Name).Set(v)
}

// process handles one message and settles it.
func (r *Runtime) process(ctx context.Context, msg jetstream.Msg) {
	d, ok := r.prepare(ctx, msg)
	if !ok {
		return
	}
	r.settle(ctx, msg, d, r.attempt(ctx, msg, d))
}

// prepare reads the delivery from msg; false when msg was settled already
// (no delivery of a stream, not an event of ours, or outside the trigger
// patterns).
func (r *Runtime) prepare(ctx context.Context, msg jetstream.Msg) (Delivery, bool) {
	md, err := msg.Metadata()
	if err != nil {
		r.carryOut(ctx, msg, Delivery{Subject: msg.Subject()}, verdict{fate: drop, reason: "message without metadata; terminating", err: err})
		return Delivery{}, false
	}
	d := Delivery{Subject: msg.Subject(), StreamSeq: md.Sequence.Stream, Attempt: int(md.NumDelivered)}
	ev, err := router.FromMsg(msg.Headers(), msg.Data())
	if err != nil {
		d.Event.Data = msg.Data() // all a dead letter can keep of it
		r.settle(ctx, msg, d, Permanent(err))
		return d, false
	}
	d.Event = ev
	if r.opt.Match != nil && !r.subjects.IsReplay(d.Subject) && !r.opt.Match(ev.Namespace) {
		// Outside the trigger patterns the server filter could not express.
		r.carryOut(ctx, msg, d, verdict{fate: ackOnly})
		return d, false
	}
	return d, true
}

// attempt calls the handler once, keeping AckWait from firing under it.
func (r *Runtime) attempt(ctx context.Context, msg jetstream.Msg, d Delivery) error {
	stop := r.keepAliveWhile(msg)
	defer stop()
	return r.handle(ctx, d)
}

// handle calls the handler once and observes its latency. The caller keeps
// the message alive (attempt, or keyedQueues in per-key order).
func (r *Runtime) handle(ctx context.Context, d Delivery) error {
	start := time.Now()
	err := r.opt.Handler.Handle(ctx, d)
	r.opt.Metrics.latency.WithLabelValues(r.opt.Name).Observe(time.Since(start).Seconds())
	return err
}

// keepAliveWhile signals progress for msgs every keepAliveEvery until the
// returned stop is called, so AckWait does not fire under a long handler.
func (r *Runtime) keepAliveWhile(msgs ...jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(r.keepAliveEvery())
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					m.InProgress()
				}
			}
		}
	}()
	return func() { close(done) }
}

// keepAliveEvery is how often a message held longer than a moment is
// signalled in progress, so AckWait does not fire under it.
func (r *Runtime) keepAliveEvery() time.Duration { return max(r.cfg.AckWait/3, 100*time.Millisecond) }

// copyToDLQ copies the event of d to ENMESHED_DLQ and waits for the ack.
// The DLQ message id dlq:<consumer>:<seq> makes a second copy a no-op.
func (r *Runtime) copyToDLQ(ctx context.Context, d Delivery, reason string) error {
	ev := d.Event
	if ev.ID == "" { // not an event of ours: keep what there is, its body
		ev = router.Event{ID: fmt.Sprintf("seq-%d", d.StreamSeq), Namespace: "unknown", Data: ev.Data, Time: r.now()}
		if ns, ok := r.subjects.Namespace(d.Subject); ok {
			ev.Namespace = ns
		}
	}
	m := DeadLetterMsg(r.subjects, r.opt.Name, ev, reason, d.Attempt, d.Subject, d.StreamSeq, r.now())
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = r.js.PublishMsg(actx, m)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

// watch refreshes the pending, ack-pending and paused gauges.
func (r *Runtime) watch(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		info, err := r.cons.Info(ctx)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			r.signalLost() // a pull may not have been waiting to hear of it
		}
		if err == nil {
			m := r.opt.Metrics
			m.pending.WithLabelValues(r.opt.Name).Set(float64(info.NumPending))
			m.ackPending.WithLabelValues(r.opt.Name).Set(float64(info.NumAckPending))
			p := 0.0
			if info.Paused {
				p = 1
			}
			m.paused.WithLabelValues(r.opt.Name).Set(p)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
