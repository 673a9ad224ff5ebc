// Package sqlsource brings events from applications without event support
// into the mesh: a database trigger writes a row into an event table for
// each change, and the source publishes the rows (PostgreSQL, or SQLite for
// the embedded default).
//
// Each round claims rows, publishes them and settles them:
//
//   - Claim. The rows of one entity (entity, entity_key) are claimed
//     together, oldest first, and only when none of its rows is held by a
//     live lease or waiting out a retry; higher priority first across
//     entities. On PostgreSQL the oldest row of each entity is locked with
//     FOR UPDATE SKIP LOCKED, so several producers share one table without
//     ever holding rows of the same entity at once. Claimed rows get status
//     sending, claim_owner and a lease (claim_until = now + SQL_SOURCE_LEASE).
//   - Publish. Entities are published concurrently, the rows of one in
//     event_time order, each waiting for the stream's acknowledgement
//     before the next, so a row is never overtaken by a later one of its
//     entity.
//   - Settle. In one transaction, acknowledged rows are deleted from the
//     event table and inserted into the archive table with status sent;
//     rows that can never be published (a payload that is not JSON, an
//     entity or verb that is no subject token, an event larger than the
//     server takes) likewise with status error and the reason; rows whose
//     publish failed for a passing reason (no stream, a timeout) go back to
//     ready with claim_until as the earliest retry and the reason in error.
//
// An error row does not block its entity: it is archived at once, and the
// entity's later rows follow in order (each has a ce-id of its own, so a
// consumer sees a gap, never a reordering). Fix the cause and re-insert
// the row from the archive to send it again; it gets a new id and ce-id.
//
// A producer that dies between publishing and settling leaves its rows
// sending; once their lease expires another producer (or the restarted
// one) takes them over and publishes them again with the same ce-id and
// Nats-Msg-Id. Inside the stream's duplicate window (STREAM_DUPLICATE_WINDOW,
// which SQL_SOURCE_LEASE must stay well inside) the stream drops the copy,
// so the event is stored once. Beyond the window (a lease longer than the
// window, or a producer frozen for longer) the copies are stored a second
// time: same ce-ids, in the same order, after the first copies and before
// the entity's rows that were not yet published (r1 r2 r1 r2 r3).
// Consumers are at-least-once and deduplicate by ce-id; the archiver keeps
// the first copy.
//
// Order is event_time order (then id) among committed rows. The defaults
// make it the order of the changes: event_time is clock_timestamp() when
// the trigger runs, and the trigger runs on the entity's own row, whose
// lock makes a second transaction changing the entity wait for the first
// to commit. An application that writes event rows itself must keep that
// property (a row committed after a later one of its entity was published
// is published after it).
//
// On PostgreSQL, LISTEN on a dedicated connection (channel = the table
// name, notified at commit by a statement trigger on the event table) wakes
// the source at once; polling every SQL_SOURCE_POLL_INTERVAL is the
// fallback. SQLite has neither SKIP LOCKED nor notifications: one producer
// polls a SQLite file (a second would be safe, since SQLite serialises the
// claims, but gains nothing).
package sqlsource

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/router"
	"github.com/prometheus/client_golang/prometheus"
)

// Publisher is the part of producer.Publisher the source needs: publish
// and wait for the stream's acknowledgement, retrying with the same
// Nats-Msg-Id.
type Publisher interface {
	Publish(ctx context.Context, e router.Event) (producer.Result, error)
}

// Row statuses (the status column).
const (
	statusReady   = "ready"   // waiting to be claimed
	statusSending = "sending" // claimed by claim_owner until claim_until
	statusSent    = "sent"    // acknowledged by the stream (archive only)
	statusError   = "error"   // cannot be published (archive only, with the reason)
)

// row is a claimed row of the event table.
type row struct {
	id        int64
	entity    string
	verb      string
	key       string
	eventTime time.Time // zero when SQLite holds a time in another format
	payload   []byte    // nil for NULL
	n         int64     // position in the round's publication order
}

// outcome is what became of a claimed row.
type outcome struct {
	id      int64
	status  string // statusSent, statusError, or statusReady (released)
	reason  string // statusError: why; statusReady: the failure, "" when released at shutdown
	eventID string
	seq     uint64        // statusSent: stream sequence
	retry   time.Duration // statusReady: earliest retry from now (0: at once)
}

// store is the event table in one database.
type store interface {
	// claim claims up to limit rows for owner (see the package doc) and
	// returns them with their publication order in row.n.
	claim(ctx context.Context, owner string, lease time.Duration, limit int) ([]row, error)
	// settle archives sent and error rows and releases the others, in one
	// transaction, touching only rows owner still holds. It returns how
	// many rows it archived and released.
	settle(ctx context.Context, owner string, outs []outcome) (archived, released int, err error)
	// reread runs query with the entity key and returns its one column,
	// nil when it returned no row or NULL.
	reread(ctx context.Context, query, key string) ([]byte, error)
	// listen calls wake whenever the table may have new rows, until ctx
	// ends; it returns at once where the database cannot notify.
	listen(ctx context.Context, wake func())
	close()
}

// Source publishes the rows of an SQL event table.
type Source struct {
	cfg     Config
	name    string // SQL_SOURCE_NAME lower-cased, the subject token
	owner   string // claim_owner: SQL_SOURCE_OWNER#<random per Source>
	dialect string
	db      store
	pub     Publisher
	log     *slog.Logger
	now     func() time.Time
	wake    chan struct{}
	m       metrics

	failures int // consecutive failed rounds (Run's goroutine only)

	// Test hooks (export_test.go).
	afterPublish func(id int64)
	beforeSettle func() error
	afterSettle  func(archived int)
}

const (
	// parallelKeys bounds the entities published at once within a round.
	parallelKeys = 16
	// dbTimeout bounds a claim and a settle. Neither is cut short when
	// Run's context ends: a claim abandoned half-way could leave rows
	// claimed until their lease ran out, and a settle archives what the
	// stream acknowledged.
	dbTimeout = 10 * time.Second
	// maxBackoff bounds the wait after failed rounds and the retry delay of
	// released rows.
	maxBackoff = time.Minute
)

// New returns a source for c (which must be enabled) publishing with pub
// and registering its metrics with reg. It does not connect yet: Run
// does, and retries.
func New(c Config, pub Publisher, reg prometheus.Registerer, log *slog.Logger) (*Source, error) {
	if !c.Enabled() {
		return nil, errors.New("SQL_SOURCE_DSN is not set")
	}
	if err := c.Validate(0); err != nil {
		return nil, err
	}
	if c.Owner == "" {
		c.Owner = DefaultOwner()
	}
	var tag [3]byte
	rand.Read(tag[:])
	s := &Source{
		cfg: c, name: strings.ToLower(c.Name), owner: c.Owner + "#" + hex.EncodeToString(tag[:]),
		pub: pub, log: log.With("component", "sql-source", "table", c.Table), now: time.Now,
		wake: make(chan struct{}, 1), m: newMetrics(reg),
	}
	s.dialect, _ = DialectOf(c.DSN)
	var err error
	switch s.dialect {
	case Postgres:
		s.db, err = newPostgres(c, s.log, s.m.errors.WithLabelValues("db"))
	case SQLite:
		s.db, err = newSQLite(c)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the database connections; call it after Run returned.
func (s *Source) Close() { s.db.close() }

// Run publishes rows until ctx ends. Failures are logged and counted, and
// the next round comes after a growing back-off; the rows of a failed
// round stay in the table and are retried, in order. When ctx ends, Run
// finishes the publishes under way, settles the round (releasing the rows
// it did not publish, for the next producer to take at once) and returns.
func (s *Source) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		s.db.listen(ctx, func() {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		})
	})
	defer wg.Wait()
	s.log.Info("sql source started", "dialect", s.dialect, "owner", s.owner, "source", s.cfg.Name)
	for ctx.Err() == nil {
		n, err := s.round(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := s.cfg.PollInterval
		switch {
		case err != nil:
			s.failures++
			wait = s.backoff(s.failures)
			s.log.Warn("sql source round failed; backing off", "err", err, "consecutive_failures", s.failures, "wait", wait)
		case n > 0:
			// More rows may be ready (a full batch, rows committed
			// meanwhile): look again at once.
			s.failures = 0
			continue
		default:
			s.failures = 0
		}
		if !s.sleep(ctx, wait, err == nil) {
			return
		}
	}
}

// sleep waits for d, or for a notification when wakeable (a notification
// does not cut a back-off short), and reports whether ctx is still alive.
func (s *Source) sleep(ctx context.Context, d time.Duration, wakeable bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	wake := s.wake
	if !wakeable {
		wake = nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}

// backoff is the wait after failures failed rounds: the poll interval
// doubled per failure, at least a second, at most maxBackoff.
func (s *Source) backoff(failures int) time.Duration {
	d := max(s.cfg.PollInterval, time.Second) << min(max(failures-1, 0), 10)
	return min(d, maxBackoff)
}

// errPublish is returned by a round in which an event could not be
// published for a passing reason.
var errPublish = errors.New("publish failed; rows released for a retry")

// round claims, publishes and settles one batch and returns the number of
// rows it claimed.
func (s *Source) round(ctx context.Context) (int, error) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	rows, err := s.db.claim(cctx, s.owner, s.cfg.Lease, s.cfg.Batch)
	cancel()
	if err != nil {
		s.m.errors.WithLabelValues("db").Inc()
		return 0, fmt.Errorf("claim rows of %s: %w", s.cfg.Table, err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	outs, failed := s.publish(ctx, rows, start)
	if s.beforeSettle != nil {
		if err := s.beforeSettle(); err != nil {
			return len(rows), err
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	archived, released, err := s.db.settle(sctx, s.owner, outs)
	if err != nil {
		// The rows stay sending; after the lease they are taken over and
		// republished (the stream drops the copies of acknowledged ones).
		s.m.errors.WithLabelValues("db").Inc()
		return len(rows), fmt.Errorf("settle %d rows of %s: %w", len(outs), s.cfg.Table, err)
	}
	if lost := len(outs) - archived - released; lost > 0 {
		s.m.errors.WithLabelValues("lease").Add(float64(lost))
		s.log.Warn("rows were taken over by another producer after their lease ran out; it republishes them "+
			"(the stream drops copies inside its duplicate window): raise SQL_SOURCE_LEASE if publishing is this slow",
			"rows", lost, "lease", s.cfg.Lease)
	}
	if s.afterSettle != nil {
		s.afterSettle(archived)
	}
	if failed != nil {
		return len(rows), fmt.Errorf("%w: %w", errPublish, failed)
	}
	return len(rows), nil
}

// publish publishes rows (one round's claim, made at start) and returns
// the outcome of each, and the first passing failure, if any. Entities go
// concurrently, at most parallelKeys at once, in the claim's order
// (priority); the rows of one entity one after the other. After a passing
// failure, once ctx ended (shutdown), or with less than a quarter of the
// lease left (after it another producer may take the rows over), the rows
// not yet published are released. A publish under way when ctx ends is
// finished, not abandoned: its row is then settled rather than published
// again by the next producer.
func (s *Source) publish(ctx context.Context, rows []row, start time.Time) ([]outcome, error) {
	deadline := start.Add(s.cfg.Lease * 3 / 4)
	wctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), start.Add(s.cfg.Lease))
	defer cancel()
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.n, b.n) })
	var groups [][]row // the claim orders rows by entity, so each entity's rows are adjacent
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].entity == rows[i].entity && rows[j].key == rows[i].key {
			j++
		}
		groups = append(groups, rows[i:j:j])
		i = j
	}
	outs := make([][]outcome, len(groups))
	var (
		next   atomic.Int64
		halt   atomic.Bool
		mu     sync.Mutex
		failed error
		wg     sync.WaitGroup
	)
	retry := s.backoff(s.failures + 1) // rows released by a failed publish wait as long as the back-off after it
	for range min(len(groups), parallelKeys) {
		wg.Go(func() {
			for {
				g := int(next.Add(1) - 1)
				if g >= len(groups) {
					return
				}
				group := groups[g]
				outs[g] = make([]outcome, 0, len(group))
				for i, r := range group {
					if halt.Load() || ctx.Err() != nil || time.Now().After(deadline) {
						outs[g] = release(outs[g], group[i:], "", 0)
						break
					}
					out, err := s.publishRow(wctx, r)
					if err != nil {
						if ctx.Err() != nil || wctx.Err() != nil { // shutdown or lease over: the next producer may take them at once
							outs[g] = release(outs[g], group[i:], "", 0)
							break
						}
						halt.Store(true)
						s.m.errors.WithLabelValues("publish").Inc()
						s.log.Warn("publish failed; releasing the entity's rows for a retry", "row_id", r.id,
							"entity", r.entity, "entity_key", r.key, "retry_in", retry, "err", err)
						mu.Lock()
						if failed == nil {
							failed = err
						}
						mu.Unlock()
						outs[g] = release(outs[g], group[i:], err.Error(), retry)
						break
					}
					outs[g] = append(outs[g], out)
				}
			}
		})
	}
	wg.Wait()
	return slices.Concat(outs...), failed
}

// release appends the outcomes of rows that go back to ready.
func release(outs []outcome, rows []row, reason string, retry time.Duration) []outcome {
	for _, r := range rows {
		outs = append(outs, outcome{id: r.id, status: statusReady, reason: reason, retry: retry})
	}
	return outs
}

// publishRow publishes one row. A row that can never be published gets an
// error outcome (logged and counted); an error return is a passing failure.
func (s *Source) publishRow(ctx context.Context, r row) (outcome, error) {
	id := router.SQLEventID(s.cfg.Name, s.cfg.Table, strconv.FormatInt(r.id, 10))
	fail := func(reason string) (outcome, error) {
		s.m.errors.WithLabelValues("row").Inc()
		s.log.Error("row cannot be published; archived with status error", "row_id", r.id, "entity", r.entity,
			"verb", r.verb, "entity_key", r.key, "event_id", id, "reason", reason)
		return outcome{id: r.id, status: statusError, reason: reason, eventID: id}, nil
	}
	ns, err := s.namespace(r.entity, r.verb)
	if err != nil {
		return fail(err.Error())
	}
	data := r.payload
	if s.cfg.RereadQuery != "" {
		state, err := s.db.reread(ctx, s.cfg.RereadQuery, r.key)
		if err != nil {
			return outcome{}, fmt.Errorf("re-read %s %q (SQL_SOURCE_REREAD_QUERY): %w", r.entity, r.key, err)
		}
		if state != nil {
			if err := checkJSON(state); err != nil {
				return fail("SQL_SOURCE_REREAD_QUERY returned " + err.Error())
			}
			data = state
		}
	}
	if data != nil {
		if err := checkJSON(data); err != nil {
			return fail("payload " + err.Error())
		}
	}
	e := router.Event{ID: id, Namespace: ns, Source: s.cfg.Name, Time: s.now(), Origin: router.OriginSQL, Data: data}
	res, err := s.pub.Publish(ctx, e)
	if err != nil {
		if producer.Refused(err) {
			return fail("the stream refused the event: " + err.Error())
		}
		return outcome{}, err
	}
	if s.afterPublish != nil {
		s.afterPublish(r.id)
	}
	result := "stored"
	if res.Duplicate {
		result = "duplicate"
	}
	s.m.published.WithLabelValues(result).Inc()
	if !r.eventTime.IsZero() {
		s.m.lag.Observe(time.Since(r.eventTime).Seconds())
	}
	return outcome{id: r.id, status: statusSent, eventID: id, seq: res.Seq}, nil
}

// namespace returns <source>.<entity>.<verb>, lower-cased and validated as
// a trigger, so a row can never widen or break a subject.
func (s *Source) namespace(entity, verb string) (string, error) {
	entity, verb = strings.ToLower(entity), strings.ToLower(verb)
	if err := router.ValidateToken(entity); err != nil {
		return "", fmt.Errorf("entity %q is not a subject token: %w", entity, err)
	}
	if err := router.ValidateToken(verb); err != nil {
		return "", fmt.Errorf("verb %q is not a subject token: %w", verb, err)
	}
	ns := s.name + "." + entity + "." + verb
	if err := router.ValidateTrigger(ns); err != nil {
		return "", err
	}
	return ns, nil
}

// checkJSON reports why data is not one JSON value in UTF-8.
func checkJSON(data []byte) error {
	if err := router.CheckJSON(data); err != nil {
		return fmt.Errorf("is not valid JSON: %w", err)
	}
	return nil
}

// metrics are the source's Prometheus metrics.
type metrics struct {
	published *prometheus.CounterVec
	errors    *prometheus.CounterVec
	lag       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmesh_sql_source_published_total",
			Help: "Event-table rows the stream acknowledged, by result: stored, or duplicate (the stream already held the event, e.g. after a takeover)."}, []string{"result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventmesh_sql_source_errors_total",
			Help: "SQL source failures by kind: row (cannot be published, archived with status error), publish (the stream did not take an event; retried), " +
				"db (a claim, settle or LISTEN failed), lease (rows taken over by another producer after the lease ran out)."}, []string{"kind"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "eventmesh_sql_source_lag_seconds",
			Help:    "Time from a row's event_time to the stream's acknowledgement of its event.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}),
	}
	for _, kind := range []string{"row", "publish", "db", "lease"} {
		m.errors.WithLabelValues(kind)
	}
	for _, result := range []string{"stored", "duplicate"} {
		m.published.WithLabelValues(result)
	}
	reg.MustRegister(m.published, m.errors, m.lag)
	return m
}
