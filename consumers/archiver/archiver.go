// Package archiver is the archive consumer: every event of the mesh
// written to a store (SQLite or PostgreSQL) in batches, one transaction per
// fetched batch and acknowledged after commit, idempotent on ce-id; the
// consumers' outcome records stored beside the events; events nobody
// subscribed to flagged; retention pruned in the background; and a
// read-only HTTP API.
package archiver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Name is the archiver's durable name.
const Name = "archiver"

// OutcomesDurable is the archiver's durable on ENMESHED_OUTCOMES.
const OutcomesDurable = Name + "-outcomes"

// Config is the archiver's configuration.
type Config struct {
	Enabled   bool          `env:"ARCHIVE_ENABLED" envDefault:"true" desc:"eventmesh runs the archiver (false: not)"`
	DSN       string        `env:"ARCHIVE_DSN" secret:"true" desc:"archive store: postgres://… (PostgreSQL) or a SQLite file path; default DATA_DIR/archive.db"`
	Addr      string        `env:"ARCHIVE_ADDR" envDefault:"127.0.0.1:8081" empty:"off" desc:"address of the read-only archive HTTP API (empty: off)"`
	APIKey    string        `env:"ARCHIVE_API_KEY" secret:"true" desc:"API key for the archive HTTP API (header X-API-KEY), required on every request when set; required when ARCHIVE_ADDR is not loopback"`
	MaxAge    time.Duration `env:"ARCHIVE_MAX_AGE" envDefault:"2160h" desc:"archived events older than this are pruned (0: keep forever)"`
	MaxEvents int64         `env:"ARCHIVE_MAX_EVENTS" envDefault:"0" desc:"keep at most this many events, pruning the oldest (0: no limit)"`
	BatchSize int           `env:"ARCHIVE_BATCH_SIZE" envDefault:"256" desc:"events written per transaction"`
	// BatchBytes bounds a batch and each pull by bytes as BatchSize does
	// by count; raised at run time to the server's largest message.
	BatchBytes streams.ByteSize `env:"ARCHIVE_BATCH_BYTES" envDefault:"8MiB" desc:"bytes of events written per transaction and fetched per pull (at least the server's largest message: raised to it)"`
	TLSCert    string           `env:"ARCHIVE_TLS_CERT" desc:"certificate (PEM) to serve the archive API over HTTPS; re-read when it changes"`
	TLSKey     string           `env:"ARCHIVE_TLS_KEY" desc:"its private key (PEM)"`
}

// Validate checks the settings; errors name the variable.
func (c Config) Validate() error {
	if c.Addr != "" {
		host, _, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return fmt.Errorf("ARCHIVE_ADDR %q: %w", c.Addr, err)
		}
		if c.APIKey == "" && !router.LoopbackHost(host) {
			return fmt.Errorf("ARCHIVE_ADDR %s is reachable from other hosts but ARCHIVE_API_KEY is not set: the archive holds personal data", c.Addr)
		}
	}
	switch {
	case c.MaxAge < 0:
		return fmt.Errorf("ARCHIVE_MAX_AGE %s is negative", c.MaxAge)
	case c.MaxEvents < 0:
		return fmt.Errorf("ARCHIVE_MAX_EVENTS %d is negative", c.MaxEvents)
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("ARCHIVE_BATCH_SIZE %d: want 1 to 10000", c.BatchSize)
	case c.BatchBytes < 1 || c.BatchBytes > 1<<30:
		return fmt.Errorf("ARCHIVE_BATCH_BYTES %s: want 1B to 1GiB", c.BatchBytes)
	}
	return nil
}

// Archiver is the running archive consumer.
type Archiver struct {
	js       jetstream.JetStream
	subjects router.Subjects
	store    store.Store
	cfg      Config
	rt       *consumers.Runtime
	log      *slog.Logger
	subs     *subscriptions
	unsub    prometheus.Counter
	archived prometheus.Counter
}

// New returns the archiver writing to st; m are the runtime metrics shared
// by the process's consumers, reg takes the archiver's own.
func New(js jetstream.JetStream, s router.Subjects, c Config, rc consumers.Config, st store.Store, m *consumers.Metrics, reg prometheus.Registerer, log *slog.Logger) (*Archiver, error) {
	a := &Archiver{js: js, subjects: s, store: st, cfg: c, log: log.With("consumer", Name),
		subs: &subscriptions{js: js, subjects: s},
		unsub: prometheus.NewCounter(prometheus.CounterOpts{Name: "eventmesh_archive_unsubscribed_total",
			Help: "Archived events that no consumer besides the archiver matched."}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{Name: "eventmesh_archive_events_total",
			Help: "Events written to the archive (redeliveries included)."}),
	}
	if c.Addr != "" && c.APIKey == "" {
		// Validate allows this on loopback only; say what it means.
		a.log.Warn("the archive API serves every archived event's data without a key on loopback: any process or user on this machine can read it; set ARCHIVE_API_KEY to require one",
			"archive_addr", c.Addr)
	}
	reg.MustRegister(a.unsub, a.archived)
	rt, err := consumers.New(js, s, rc, consumers.Options{
		Name: Name, Filters: []string{s.Events()}, DefaultStart: "all", NoOutcomes: true,
		BatchHandler: a.writeBatch, BatchSize: c.BatchSize, BatchBytes: int(c.BatchBytes), BatchLinger: 20 * time.Millisecond,
		Metrics: m, Log: log,
	})
	if err != nil {
		return nil, err
	}
	a.rt = rt
	return a, nil
}

// Runtime returns the archiver's consumer runtime (to run and probe).
func (a *Archiver) Runtime() *consumers.Runtime { return a.rt }

// Run runs the event consumer, the outcome reader and retention until ctx
// ends.
func (a *Archiver) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.rt.ReadOutcomes(ctx, OutcomesDurable, a.storeOutcomes) }()
	go func() { defer wg.Done(); a.retain(ctx) }()
	err := a.rt.Run(ctx)
	wg.Wait()
	return err
}

// writeBatch stores one fetched batch in one transaction; the runtime
// acknowledges the batch only after it returns nil.
func (a *Archiver) writeBatch(ctx context.Context, ds []consumers.Delivery) error {
	events := make([]store.Event, len(ds))
	unsub := 0
	for i, d := range ds {
		e := d.Event
		events[i] = store.Event{ID: e.ID, Subject: d.Subject, Type: e.Namespace, Source: e.Source, Time: e.Time,
			StreamSeq: d.StreamSeq, Origin: string(e.Origin), Headers: e.Header(), Data: e.Data,
			Unsubscribed: !a.subs.subscribed(ctx, d.Subject)}
		if events[i].Unsubscribed {
			unsub++
		}
	}
	if err := a.store.InsertEvents(ctx, events); err != nil {
		return fmt.Errorf("archive %d events: %w", len(events), err)
	}
	a.archived.Add(float64(len(events)))
	a.unsub.Add(float64(unsub))
	return nil
}

// storeOutcomes stores one batch of the consumers' outcome records (the
// runtime reads them: Runtime.ReadOutcomes).
func (a *Archiver) storeOutcomes(ctx context.Context, os []consumers.Outcome) error {
	out := make([]store.Outcome, len(os))
	for i, o := range os {
		out[i] = store.Outcome{Consumer: o.Consumer, EventID: o.EventID, Result: o.Result, Attempt: o.Attempt, Error: o.Error, Time: o.Time}
	}
	return a.store.InsertOutcomes(ctx, out)
}

// retain prunes the archive by ARCHIVE_MAX_AGE and ARCHIVE_MAX_EVENTS
// every minute.
func (a *Archiver) retain(ctx context.Context) {
	if a.cfg.MaxAge == 0 && a.cfg.MaxEvents == 0 {
		return
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		before := time.Time{}
		if a.cfg.MaxAge > 0 {
			before = time.Now().Add(-a.cfg.MaxAge)
		}
		if n, err := a.store.Prune(ctx, before, a.cfg.MaxEvents); err != nil && ctx.Err() == nil {
			a.log.Warn("archive retention", "err", err)
		} else if n > 0 {
			a.log.Info("archive pruned", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// subscriptions knows which subjects the other consumers on ENMESHED
// filter on, refreshed every few seconds, to flag events nobody
// subscribed to. Paused consumers count as subscribed.
type subscriptions struct {
	js       jetstream.JetStream
	subjects router.Subjects
	mu       sync.Mutex
	filters  []string
	loaded   time.Time
}

func (s *subscriptions) subscribed(ctx context.Context, subject string) bool {
	if s.subjects.IsReplay(subject) {
		return true // a replay is aimed at a consumer
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.loaded) > 5*time.Second {
		if f, err := s.load(ctx); err == nil {
			s.filters, s.loaded = f, time.Now()
		}
	}
	for _, f := range s.filters {
		if router.SubjectMatch(f, subject) {
			return true
		}
	}
	return false
}

func (s *subscriptions) load(ctx context.Context) ([]string, error) {
	infos, err := consumers.Durables(ctx, s.js)
	if err != nil {
		return nil, err
	}
	var filters []string
	for _, info := range infos {
		if info.Name == Name {
			continue
		}
		if info.Config.FilterSubject != "" {
			filters = append(filters, info.Config.FilterSubject)
		}
		filters = append(filters, info.Config.FilterSubjects...)
		if info.Config.FilterSubject == "" && len(info.Config.FilterSubjects) == 0 {
			filters = append(filters, ">")
		}
	}
	return filters, nil
}

// Name returns the durable name.
func (a *Archiver) Name() string { return Name }

// Ready is nil once the archiver consumes.
func (a *Archiver) Ready(ctx context.Context) error { return a.rt.Ready(ctx) }
