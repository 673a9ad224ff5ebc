package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// SyncConfig configures the Connector sync poller.
type SyncConfig struct {
	Interval time.Duration `env:"SYNC_INTERVAL" envDefault:"30s" desc:"how often the poller syncs the Connector and lists messages, relationships and incoming requests (must be well inside STREAM_DUPLICATE_WINDOW)"`
	Backfill bool          `env:"SYNC_BACKFILL" envDefault:"false" desc:"on the first run, publish what the Connector already holds (default: record it without publishing history)"`
	// Replicas of the state bucket: the producer sets STREAM_REPLICAS, so
	// in a cluster the poller's state survives a node as the events do.
	Replicas int
}

// Validate checks the interval against the stream's duplicate window: a
// poller event and its webhook twin deduplicate only inside the window.
func (c SyncConfig) Validate(duplicateWindow time.Duration) error {
	if c.Interval < time.Second {
		return fmt.Errorf("SYNC_INTERVAL %s: want at least 1s", c.Interval)
	}
	if c.Interval*4 > duplicateWindow {
		return fmt.Errorf("SYNC_INTERVAL %s is not well inside STREAM_DUPLICATE_WINDOW %s (want at most a quarter of it): "+
			"an event seen by webhook and by the poller would be published twice", c.Interval, duplicateWindow)
	}
	return nil
}

// SyncAPI is the part of the Connector client the poller needs. The
// listings call back with one object at a time as they decode the
// Connector's answer, so a round's memory does not grow with the listing.
type SyncAPI interface {
	Sync(ctx context.Context) error
	EachMessage(ctx context.Context, fn func(connector.Message) error, filters ...connector.Filter) error
	EachRelationship(ctx context.Context, fn func(connector.Relationship) error, filters ...connector.Filter) error
	EachIncomingRequest(ctx context.Context, fn func(connector.Request) error, filters ...connector.Filter) error
}

// Poller syncs the Connector's REST API as the backstop for lost webhooks:
// it publishes what is new since its last round, with the same ce-id the
// webhook path derives, so the stream deduplicates the two paths.
type Poller struct {
	api      SyncAPI
	pub      *Publisher
	js       jetstream.JetStream
	source   string
	cfg      SyncConfig
	log      *slog.Logger
	kv       jetstream.KeyValue
	now      func() time.Time
	rounds   *prometheus.CounterVec
	events   *prometheus.CounterVec
	skipped  *prometheus.CounterVec
	lastOK   prometheus.Gauge
	mu       sync.Mutex
	status   SyncStatus
	roundsCh chan struct{} // signalled after every round (tests)
	// known caches the bucket's states this process has read or written,
	// so a steady round costs a map lookup per item, not a round trip.
	// Another producer's newer write only makes a stale entry differ from
	// the Connector, which republishes an event the stream then drops.
	// It holds hashes, a fixed size per object whatever its id and state.
	known map[knownKey]uint64
	seeds [3]maphash.Seed // of knownKey's halves and of the state
}

// knownKey is a 128-bit hash of a state's key in the bucket: with random
// seeds per process, two keys of a Connector's few million objects share
// one with a chance below 1e-25.
type knownKey [2]uint64

// SyncStatus is what /sync/status reports.
type SyncStatus struct {
	LastSuccess         time.Time `json:"last_success"`
	LastError           string    `json:"last_error,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	Published           int64     `json:"published"`
	Rounds              int64     `json:"rounds"`
}

// NewPoller returns a poller publishing with pub as source (CONNECTOR_ID).
func NewPoller(api SyncAPI, pub *Publisher, js jetstream.JetStream, source string, c SyncConfig, reg prometheus.Registerer, log *slog.Logger) *Poller {
	p := &Poller{api: api, pub: pub, js: js, source: source, cfg: c, log: log.With("component", "sync"), now: time.Now,
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmesh_sync_rounds_total",
			Help: "Sync poller rounds by result (ok, error)."}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmesh_sync_events_total",
			Help: "Events the sync poller published, by namespace (the stream drops those the webhook path already brought)."}, []string{"namespace"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmesh_sync_skipped_total",
			Help: "Connector objects the sync poller can never publish (no id, or refused by the server as too large), by namespace."}, []string{"namespace"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "eventmesh_sync_last_success_timestamp_seconds",
			Help: "Unix time of the last successful sync round."}),
		roundsCh: make(chan struct{}, 1),
		known:    map[knownKey]uint64{},
		seeds:    [3]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed(), maphash.MakeSeed()},
	}
	reg.MustRegister(p.rounds, p.events, p.skipped, p.lastOK)
	return p
}

// skip logs and counts a Connector object that can never be published,
// so one bad object does not stop every round behind it.
func (p *Poller) skip(namespace, key string, err error) {
	p.log.Error("Connector object skipped: it cannot be published", "namespace", namespace, "key", key, "err", err)
	p.skipped.WithLabelValues(namespace).Inc()
}

// Status returns the poller's status.
func (p *Poller) Status() SyncStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Rounds is signalled after each round.
func (p *Poller) Rounds() <-chan struct{} { return p.roundsCh }

// Run polls until ctx ends. Errors are logged, counted and shown in
// Status, and the next round comes after a growing back-off; nothing is
// skipped, since a round that failed leaves the state untouched.
func (p *Poller) Run(ctx context.Context) {
	err := streams.Await(ctx, p.log, "sync state bucket "+streams.SyncBucket, p.openBucket)
	if err != nil { // only when ctx ended
		return
	}
	failures := 0
	for ctx.Err() == nil {
		p.reopenIfDeleted(ctx)
		n, err := p.round(ctx)
		p.mu.Lock()
		p.status.Rounds++
		if err != nil && ctx.Err() == nil {
			failures++
			p.status.LastError, p.status.LastErrorAt, p.status.ConsecutiveFailures = err.Error(), p.now(), failures
			p.mu.Unlock()
			p.rounds.WithLabelValues("error").Inc()
			p.log.Warn("sync round failed; backing off", "err", err, "consecutive_failures", failures)
		} else if err == nil {
			failures = 0
			p.status.LastSuccess, p.status.ConsecutiveFailures = p.now(), 0
			p.status.Published += int64(n)
			p.mu.Unlock()
			p.rounds.WithLabelValues("ok").Inc()
			p.lastOK.Set(float64(p.now().Unix()))
			if n > 0 {
				p.log.Info("sync round published events", "n", n)
			}
		} else {
			p.mu.Unlock()
		}
		select {
		case p.roundsCh <- struct{}{}:
		default:
		}
		wait := p.cfg.Interval
		if failures > 0 {
			wait = min(p.cfg.Interval<<min(failures-1, 6), 5*time.Minute)
		}
		if !streams.Sleep(ctx, wait) {
			return
		}
	}
}

// openBucket creates or updates the poller's state bucket.
func (p *Poller) openBucket(ctx context.Context) error {
	kv, err := p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: streams.SyncBucket, Description: "eventmesh: the sync poller's state (seen messages, relationship and request states)",
		Storage: jetstream.FileStorage, History: 1, Replicas: max(1, p.cfg.Replicas),
	})
	if err == nil {
		p.kv = kv
	}
	return err
}

// reopenIfDeleted creates the state bucket again when it is gone (deleted
// while the poller ran). The next round is then a first run: it records
// what the Connector holds without publishing it (unless SYNC_BACKFILL),
// so an object that appeared while the state was missing and that no
// webhook brought is not published.
func (p *Poller) reopenIfDeleted(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := p.js.KeyValue(lctx, streams.SyncBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		return
	}
	p.log.Error("sync state bucket "+streams.SyncBucket+" is missing (deleted while eventmesh ran?): creating it again; "+
		"the next round is a FIRST RUN: what the Connector holds now is recorded without being published "+
		"(SYNC_BACKFILL=true publishes it), so objects the poller had not yet published are not published by it",
		"backfill", p.cfg.Backfill)
	clear(p.known) // it described the lost state
	if err := p.openBucket(lctx); err != nil {
		p.log.Error("sync state bucket "+streams.SyncBucket+" could not be created again; retrying next round", "err", err)
	}
}

const initializedKey = "initialized"

// round syncs, lists and publishes what changed. A key of the state is
// written only after its event was acknowledged, so a crash republishes
// (the stream drops the copy inside the duplicate window) rather than
// skips.
func (p *Poller) round(ctx context.Context) (int, error) {
	if err := p.api.Sync(ctx); err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	}
	_, err := p.kv.Get(ctx, initializedKey)
	first := errors.Is(err, jetstream.ErrKeyNotFound)
	if err != nil && !first {
		return 0, fmt.Errorf("read %s: %w", streams.SyncBucket, err)
	}
	publish := !first || p.cfg.Backfill
	published := 0
	emit := func(namespace, kind, id, state string, raw json.RawMessage) error {
		key := kind + "." + kvKey(id)
		k := knownKey{maphash.String(p.seeds[0], key), maphash.String(p.seeds[1], key)}
		sum := maphash.String(p.seeds[2], state)
		if v, ok := p.known[k]; ok && v == sum {
			return nil
		}
		if id == "" { // nothing to track it by
			p.skip(namespace, key, errors.New("the Connector listed an object without an id"))
			return nil
		}
		e, err := p.kv.Get(ctx, key)
		switch {
		case err == nil && string(e.Value()) == state:
			p.known[k] = sum
			return nil
		case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
			return fmt.Errorf("read %s: %w", key, err)
		}
		if publish {
			id, err := router.EventID(p.source, namespace, raw)
			if err != nil {
				return fmt.Errorf("%s %s: %w", namespace, key, err)
			}
			ev := router.Event{ID: id, Namespace: namespace, Source: p.source, Time: p.now(), Origin: router.OriginSync, Data: raw}
			switch res, err := p.pub.Publish(ctx, ev); {
			case Refused(err):
				// It never will be stored: recorded below as handled, so
				// it neither stops this round nor comes back each round.
				p.skip(namespace, key, err)
			case err != nil:
				return err
			case !res.Duplicate:
				published++
				p.events.WithLabelValues(namespace).Inc()
			}
		}
		if _, err := p.kv.Put(ctx, key, []byte(state)); err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
		p.known[k] = sum
		return nil
	}
	// Messages: every received message not seen before, whatever its
	// createdAt (the sender's time: a late one must not be missed). An
	// error of emit ends a listing and is the round's as it is.
	var emitErr error
	handled := func(err error) error { emitErr = err; return err }
	msgs, rels, reqs := 0, 0, 0
	err = p.api.EachMessage(ctx, func(m connector.Message) error {
		if m.IsOwn {
			return nil
		}
		msgs++
		return handled(emit("transport.messageReceived", "msg", m.ID, "seen", m.Raw))
	})
	if err != nil {
		return published, listError("messages", err, emitErr)
	}
	err = p.api.EachRelationship(ctx, func(r connector.Relationship) error {
		rels++
		state := fmt.Sprintf("%d:%s", r.AuditLen(), r.Status)
		return handled(emit("transport.relationshipChanged", "rel", r.ID, state, r.Raw))
	})
	if err != nil {
		return published, listError("relationships", err, emitErr)
	}
	err = p.api.EachIncomingRequest(ctx, func(r connector.Request) error {
		reqs++
		return handled(emit("consumption.incomingRequestReceived", "req", r.ID, "seen", r.Raw))
	})
	if err != nil {
		return published, listError("incoming requests", err, emitErr)
	}
	if first {
		if _, err := p.kv.Put(ctx, initializedKey, []byte(p.now().UTC().Format(time.RFC3339))); err != nil {
			return published, err
		}
		if !publish {
			p.log.Info("first sync: recorded the Connector's current state without publishing history (SYNC_BACKFILL=true publishes it)",
				"messages", msgs, "relationships", rels, "requests", reqs)
		}
	}
	return published, nil
}

// listError is the error of a listing that failed: emitErr, the error of
// a callback that ended it (a publish, the bucket), as it is; else err,
// the listing's own, naming what was listed.
func listError(what string, err, emitErr error) error {
	if emitErr != nil {
		return emitErr
	}
	return fmt.Errorf("list %s: %w", what, err)
}

// kvKey keeps a Connector id a valid key token.
func kvKey(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, id)
}
