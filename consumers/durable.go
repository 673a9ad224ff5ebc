package consumers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// setup waits for ENMESHED (a consumer never creates it), creates the
// streams the runtime may create, and creates or updates the durable.
func (r *Runtime) setup(ctx context.Context) error {
	if _, err := r.awaitEvents(ctx); err != nil {
		return err
	}
	defs := []jetstream.StreamConfig{r.dlqStream(), streams.AdvisoriesStream()}
	if !r.opt.NoOutcomes {
		def := streams.OutcomesStream(r.subjects)
		def.Replicas = r.cfg.SideStreamReplicas()
		defs = append(defs, def)
		r.outcomes = newOutcomeBatcher(r.js, def, r.subjects.Outcome(r.opt.Name), r.log, r.cfg.MaxAckPending, r.keepAliveEvery())
	}
	for _, def := range defs {
		def.Replicas = r.cfg.SideStreamReplicas()
		// Replicas started together create these streams together: in a
		// cluster a lookup can go unanswered until the new stream has a
		// leader, so not-ready answers are retried.
		if err := streams.Retry(ctx, r.log, "stream "+def.Name, func(ctx context.Context) error {
			st, err := streams.EnsureFixedStream(ctx, r.js, def)
			if err == nil && def.Name == streams.DLQ {
				// A DLQ of an earlier version drops its oldest dead
				// letters when full: it refuses new ones from now on.
				_, err = streams.RestoreDiscard(ctx, r.js, st, def.Discard, r.log)
			}
			return err
		}); err != nil {
			return err
		}
	}
	var err error
	r.cons, err = r.ensureDurableRetrying(ctx)
	return err
}

// awaitEvents waits for ENMESHED (the producer creates it) and keeps its
// handle. It reports whether the stream is another one than the one the
// runtime was on (created since: deleted and set up again), whose
// durables must start at its first event.
func (r *Runtime) awaitEvents(ctx context.Context) (recreated bool, err error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := r.js.Stream(actx, streams.Events)
		cancel()
		if err == nil {
			created := st.CachedInfo().Created
			recreated = r.events != nil && !created.Equal(r.eventsCreated)
			if r.events == nil {
				// Kept after a re-creation: the advisory reader uses it
				// meanwhile, and a handle works by the stream's name.
				r.events = st
			}
			r.eventsCreated = created
			return recreated, nil
		}
		level := slog.LevelDebug // the producer may be starting right now
		if attempt > 4 || !errors.Is(err, jetstream.ErrStreamNotFound) {
			level = slog.LevelWarn
		}
		r.log.Log(ctx, level, "waiting for stream "+streams.Events+" (the producer creates it)", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second)):
		}
	}
}

// dlqStream is the definition of ENMESHED_DLQ the runtime creates.
func (r *Runtime) dlqStream() jetstream.StreamConfig {
	def := streams.DLQStream(r.subjects)
	def.Replicas = r.cfg.SideStreamReplicas()
	return def
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
		if r.fromFirst {
			fromFirstEvent(&want)
		}
	case err != nil:
		// Not "no durable": updating blind would lift a pause and skip
		// the checks below. Retry decides whether to ask again.
		return nil, fmt.Errorf("look up durable %s: %w", r.opt.Name, err)
	default:
		have := existing.CachedInfo().Config
		if v := have.Metadata[metaStart]; v != "" {
			// Set up again on a re-created stream: its start stays.
			want.DeliverPolicy, want.OptStartTime = have.DeliverPolicy, have.OptStartTime
			want.Metadata = map[string]string{metaStart: v}
		}
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

// metaStart is the durable's metadata key that says it was set up again
// on a re-created ENMESHED from the stream's first event, whatever its
// configured start: later starts keep that start instead of refusing it.
const metaStart = "eventmesh-start"

// fromFirstEvent makes want start at the first event of its stream: a
// stream re-created while the consumer ran holds only events that came
// after the loss, and "new" would skip those accepted before the durable
// was back.
func fromFirstEvent(want *jetstream.ConsumerConfig) {
	want.DeliverPolicy, want.OptStartTime = jetstream.DeliverAllPolicy, nil
	want.Metadata = map[string]string{metaStart: "all: set up again on a re-created " + streams.Events}
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

// signalLost tells the fetch loop that the durable is gone.
func (r *Runtime) signalLost() {
	select {
	case r.lost <- struct{}{}:
	default:
	}
}

// setUpAgain creates or updates the durable after the server ended its
// subscription, instead of idling while still reporting ready. Handles
// work by name, so the runtime's consumer handle stays valid. When
// ENMESHED itself was deleted, it waits for the producer to set the
// stream up again, and a durable lost with it starts at the new stream's
// first event whatever the configured start.
func (r *Runtime) setUpAgain(ctx context.Context) error {
	r.ready.Store(false)
	var err error
	for attempt := 1; attempt <= setUpAgainAttempts; attempt++ {
		recreated, werr := r.awaitEvents(ctx)
		if werr != nil {
			return nil // ctx ended
		}
		if recreated {
			r.fromFirst = true
		}
		if attempt == 1 {
			if r.fromFirst {
				r.log.Error("stream " + streams.Events + " was deleted and created again while this consumer ran: " +
					"setting the durable up again from the new stream's first event (events of the old stream not yet handled are lost)")
			} else {
				start := cmp.Or(r.cfg.Start, r.opt.DefaultStart)
				r.log.Error("the server ended this consumer's subscription (durable deleted?): setting the durable up again; a new durable starts at "+start,
					"start", start)
			}
		}
		if _, err = r.ensureDurableRetrying(ctx); err == nil || !serverInternal(err) && !errors.Is(err, jetstream.ErrStreamNotFound) ||
			attempt == setUpAgainAttempts || !streams.Sleep(ctx, time.Second) {
			break
		}
		r.log.Warn("setting the durable up again failed; retrying", "attempt", attempt, "err", err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("durable %s was lost and could not be set up again: %w", r.opt.Name, err)
	}
	r.fromFirst = false // set up: a later loss on this stream keeps the configured start
	select {
	case <-r.lost: // a second report of the same loss
	default:
	}
	r.ready.Store(true)
	return nil
}

// setUpAgainAttempts bounds how often setUpAgain retries a server-internal
// error: a durable re-created right after its deletion can race the
// server's removal of the old durable's store directory (seen as err_code
// 10012, "rename …/obs/<durable>/o.dat.tmp: no such file or directory").
const setUpAgainAttempts = 5

// serverInternal reports whether err is JetStream's answer 500: the server
// failed, not our request.
func serverInternal(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 500
}

// watch refreshes the pending, ack-pending and paused gauges.
func (r *Runtime) watch(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		info, err := r.cons.Info(ctx)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
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
