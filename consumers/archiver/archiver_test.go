package archiver_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

var subjects = router.MustSubjects("enmeshed")

// stores runs f against SQLite, and against PostgreSQL when
// EVENTMESH_TEST_POSTGRES is set (in a schema of its own).
func stores(t *testing.T, f func(t *testing.T, open func() store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "archive.db")
		f(t, func() store.Store {
			st, err := store.Open(context.Background(), path, "")
			if err != nil {
				t.Fatal(err)
			}
			return st
		})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv("EVENTMESH_TEST_POSTGRES")
		if dsn == "" {
			t.Skip("EVENTMESH_TEST_POSTGRES is not set: skipping the PostgreSQL store (set it to postgres://postgres@127.0.0.1:5432/test)")
		}
		var b [6]byte
		rand.Read(b[:])
		schema := "eventmesh_archiver_" + hex.EncodeToString(b[:])
		ctx := context.Background()
		t.Cleanup(func() {
			if conn, err := pgx.Connect(ctx, dsn); err == nil {
				conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
				conn.Close(ctx)
			}
		})
		sep := "?"
		if containsRune(dsn, '?') {
			sep = "&"
		}
		schemaDSN := dsn + sep + "search_path=" + schema
		f(t, func() store.Store {
			st, err := store.Open(ctx, schemaDSN, "")
			if err != nil {
				t.Fatal(err)
			}
			return st
		})
	})
}

func containsRune(s string, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}

type rig struct {
	t  *testing.T
	js jetstream.JetStream
}

func newRig(t *testing.T) *rig {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	if _, err := streams.EnsureStream(context.Background(), js, streams.EventsStream(subjects, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, js: js}
}

func (r *rig) publish(ns, data string) router.Event {
	r.t.Helper()
	id, _ := router.EventID(router.DefaultSource, ns, []byte(data))
	e := router.Event{ID: id, Namespace: ns, Source: router.DefaultSource, Time: time.Now(), Origin: router.OriginWebhook, Data: []byte(data)}
	if _, err := r.js.PublishMsg(context.Background(), e.Msg(subjects)); err != nil {
		r.t.Fatal(err)
	}
	return e
}

func runtimeConfig() consumers.Config {
	return consumers.Config{Start: "all", AckWait: 5 * time.Second, MaxDeliver: 10, MaxAckPending: 1000, Concurrency: 4,
		Backoff: consumers.Schedule{20 * time.Millisecond}, DrainTimeout: 5 * time.Second}
}

// runArchiver runs the archiver on st until the test ends.
func (r *rig) runArchiver(st store.Store) *archiver.Archiver {
	r.t.Helper()
	return r.runArchiverWith(st, runtimeConfig())
}

func (r *rig) runArchiverWith(st store.Store, rc consumers.Config) *archiver.Archiver {
	r.t.Helper()
	reg := prometheus.NewRegistry()
	a, err := archiver.New(r.js, subjects, archiver.Config{BatchSize: 64}, rc, st, consumers.NewMetrics(reg), reg, natstest.Logger(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	natstest.WaitFor(r.t, 10*time.Second, "archiver ready", func() bool { return a.Ready(ctx) == nil })
	r.t.Cleanup(func() { cancel(); <-done })
	return a
}

func count(t *testing.T, st store.Store, f store.Filter) int {
	t.Helper()
	n := 0
	f.Limit = store.MaxLimit
	for {
		p, err := st.Query(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Events)
		if p.Next == "" {
			return n
		}
		f.Cursor = p.Next
	}
}

// crashingStore commits a batch and then fails, once: a crash between
// insert and ack. The batch is redelivered; nothing is duplicated or lost.
type crashingStore struct {
	store.Store
	crashed atomic.Bool
}

func (c *crashingStore) InsertEvents(ctx context.Context, events []store.Event) error {
	if err := c.Store.InsertEvents(ctx, events); err != nil {
		return err
	}
	if c.crashed.CompareAndSwap(false, true) {
		return errors.New("crash after commit, before ack")
	}
	return nil
}

// downStore fails every insert while down is set: a database outage.
type downStore struct {
	store.Store
	down   atomic.Bool
	failed atomic.Int32
}

func (d *downStore) InsertEvents(ctx context.Context, events []store.Event) error {
	if d.down.Load() {
		d.failed.Add(1)
		return errors.New("database unavailable")
	}
	return d.Store.InsertEvents(ctx, events)
}

// A database outage long enough to open the circuit breaker (the default
// threshold is on for the archiver): the archiver stops fetching, probes
// with one event after the cool-down (it once crashed there: the probe
// called the per-event handler a batch consumer does not have), and
// archives everything once the database is back.
func TestArchiverSurvivesOutage(t *testing.T) {
	stores(t, func(t *testing.T, open func() store.Store) {
		r := newRig(t)
		st := open()
		defer st.Close()
		const n = 50
		for i := 0; i < n; i++ {
			r.publish("transport.messageReceived", fmt.Sprintf(`{"id":"MSG%05d"}`, i))
		}
		ds := &downStore{Store: st}
		ds.down.Store(true)
		rc := runtimeConfig()
		rc.MaxDeliver, rc.BreakerThreshold, rc.BreakerCooldown = 100, 5, 300*time.Millisecond
		rc.BreakerFailureRatio, rc.BreakerMinEvents, rc.BreakerWindow = 0.5, 20, time.Minute // the defaults
		a := r.runArchiverWith(ds, rc)
		// The first batch trips the breaker; the second failure is a probe.
		natstest.WaitFor(t, 20*time.Second, "a failed probe", func() bool { return ds.failed.Load() >= 2 })
		ds.down.Store(false)
		natstest.WaitFor(t, 30*time.Second, "all archived after the outage", func() bool { return count(t, st, store.Filter{}) == n })
		if err := a.Ready(context.Background()); err != nil {
			t.Errorf("archiver not ready after the outage: %v", err)
		}
	})
}

func TestArchiveEveryEventOnce(t *testing.T) {
	stores(t, func(t *testing.T, open func() store.Store) {
		r := newRig(t)
		st := open()
		defer st.Close()
		const n = 500
		for i := 0; i < n; i++ {
			r.publish("transport.messageReceived", fmt.Sprintf(`{"id":"MSG%05d","isOwn":false}`, i))
		}
		cs := &crashingStore{Store: st}
		r.runArchiver(cs)
		natstest.WaitFor(t, 30*time.Second, "all archived", func() bool { return count(t, st, store.Filter{}) == n })
		if !cs.crashed.Load() {
			t.Error("the crash was not exercised")
		}
		// Everything acknowledged: nothing left for redelivery.
		c, _ := r.js.Consumer(context.Background(), streams.Events, archiver.Name)
		natstest.WaitFor(t, 10*time.Second, "all acked", func() bool {
			info, err := c.Info(context.Background())
			return err == nil && info.NumAckPending == 0 && info.NumPending == 0
		})
		if got := count(t, st, store.Filter{}); got != n {
			t.Errorf("%d rows, want %d", got, n)
		}
		one, err := st.Query(context.Background(), store.Filter{Limit: 1})
		if err != nil || len(one.Events) != 1 {
			t.Fatal(err)
		}
		e := one.Events[0]
		if e.Subject != "enmeshed.transport.messageReceived" || e.Type != "transport.messageReceived" || e.Origin != "webhook" ||
			e.StreamSeq == 0 || e.Source != router.DefaultSource || len(e.Headers["ce-id"]) != 1 || !json.Valid(e.Data) {
			t.Errorf("archived event %+v", e)
		}
	})
}

// Outcomes of other consumers are stored beside their events, also when
// they arrive first; an event no consumer matches is flagged unsubscribed.
func TestOutcomesAndUnsubscribed(t *testing.T) {
	stores(t, func(t *testing.T, open func() store.Store) {
		r := newRig(t)
		st := open()
		defer st.Close()
		// A consumer for messageReceived only: delivers one event, dead-letters another.
		rt, err := consumers.New(r.js, subjects, runtimeConfig(), consumers.Options{Name: "erp",
			Filters: []string{subjects.Event("transport.messageReceived")}, DefaultStart: "all", Log: natstest.Logger(t),
			Handler: consumers.HandlerFunc(func(ctx context.Context, d consumers.Delivery) error {
				if string(d.Event.Data) == `{"id":"MSGbad"}` {
					return consumers.Permanent(errors.New("receiver answered 400"))
				}
				return nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { rt.Run(ctx); close(done) }()
		natstest.WaitFor(t, 10*time.Second, "erp ready", func() bool { return rt.Ready(ctx) == nil })
		good := r.publish("transport.messageReceived", `{"id":"MSGgood"}`)
		bad := r.publish("transport.messageReceived", `{"id":"MSGbad"}`)
		nobody := r.publish("consumption.attributeCreated", `{"id":"ATT1"}`)
		// Let the outcomes be published before the archiver starts, so
		// they reach the store before their events.
		natstest.WaitFor(t, 10*time.Second, "outcomes", func() bool {
			s, err := r.js.Stream(context.Background(), streams.Outcomes)
			return err == nil && s.CachedInfo().State.Msgs > 0
		})
		cancel()
		<-done
		r.runArchiver(st)
		natstest.WaitFor(t, 20*time.Second, "outcomes stored", func() bool {
			g, err1 := st.Get(context.Background(), good.ID)
			b, err2 := st.Get(context.Background(), bad.ID)
			return err1 == nil && err2 == nil && len(g.Outcomes) > 0 && len(b.Outcomes) > 0
		})
		g, _ := st.Get(context.Background(), good.ID)
		b, _ := st.Get(context.Background(), bad.ID)
		if g.Outcomes[0].Consumer != "erp" || g.Outcomes[0].Result != store.ResultDelivered {
			t.Errorf("good outcomes %+v", g.Outcomes)
		}
		if b.Outcomes[0].Result != store.ResultDeadLettered || b.Outcomes[0].Error == "" {
			t.Errorf("bad outcomes %+v", b.Outcomes)
		}
		if n := count(t, st, store.Filter{Outcome: store.ResultDeadLettered}); n != 1 {
			t.Errorf("dead-lettered filter: %d", n)
		}
		nb, err := st.Get(context.Background(), nobody.ID)
		if err != nil || !nb.Unsubscribed || g.Unsubscribed {
			t.Errorf("unsubscribed flags: nobody=%v good=%v (%v)", nb.Unsubscribed, g.Unsubscribed, err)
		}
	})
}

// A replay to one consumer reaches only that consumer, and a second
// replay right after is not swallowed by the duplicate window.
func TestReplayToOneConsumerTwice(t *testing.T) {
	r := newRig(t)
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	got := map[string]map[string]int{"a": {}, "b": {}}
	for _, name := range []string{"a", "b"} {
		rt, err := consumers.New(r.js, subjects, runtimeConfig(), consumers.Options{Name: name, Filters: []string{subjects.Events()},
			DefaultStart: "all", Log: natstest.Logger(t), NoOutcomes: true,
			Handler: consumers.HandlerFunc(func(ctx context.Context, d consumers.Delivery) error {
				mu.Lock()
				got[name][d.Event.ID]++
				mu.Unlock()
				return nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { rt.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	r.runArchiver(st)
	e := r.publish("transport.messageReceived", `{"id":"MSGreplay"}`)
	natstest.WaitFor(t, 10*time.Second, "archived", func() bool { _, err := st.Get(context.Background(), e.ID); return err == nil })
	archived, _ := st.Get(context.Background(), e.ID)
	for i := 0; i < 2; i++ {
		if n, err := archiver.Replay(context.Background(), r.js, subjects, []store.Event{archived}, "a", time.Now); err != nil || n != 1 {
			t.Fatalf("replay %d: %d %v", i, n, err)
		}
	}
	natstest.WaitFor(t, 10*time.Second, "two replays at a", func() bool { mu.Lock(); defer mu.Unlock(); return got["a"][e.ID] == 3 })
	// b got the original only; a fresh event reaching b shows b is caught up.
	fresh := r.publish("transport.messageReceived", `{"id":"MSGfresh"}`)
	natstest.WaitFor(t, 10*time.Second, "b caught up", func() bool { mu.Lock(); defer mu.Unlock(); return got["b"][fresh.ID] == 1 })
	mu.Lock()
	defer mu.Unlock()
	if got["b"][e.ID] != 1 {
		t.Errorf("consumer b received the event %d times, want 1 (replays are for a only)", got["b"][e.ID])
	}
	if n := count(t, st, store.Filter{ID: e.ID}); n != 1 {
		t.Errorf("replays duplicated the archive row: %d", n)
	}
}

func TestHTTPAPI(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var events []store.Event
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 150; i++ {
		events = append(events, store.Event{ID: fmt.Sprintf("%032d", i), Subject: "enmeshed.transport.messageReceived",
			Type: "transport.messageReceived", Source: "s", Time: base.Add(time.Duration(i) * time.Second), StreamSeq: uint64(i + 1),
			Origin: "webhook", Data: []byte(fmt.Sprintf(`{"id":"MSG%d"}`, i))})
	}
	if err := st.InsertEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(archiver.Handler(st, "k3y"))
	defer srv.Close()
	get := func(path, key string) (int, map[string]json.RawMessage) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if key != "" {
			req.Header.Set("X-API-KEY", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]json.RawMessage
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, _ := get("/events", ""); code != 401 {
		t.Errorf("no key: %d", code)
	}
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		code, body := get("/events?type=transport.*&limit=60&cursor="+cursor, "k3y")
		if code != 200 {
			t.Fatalf("status %d %s", code, body["error"])
		}
		var evs []archiver.EventJSON
		json.Unmarshal(body["events"], &evs)
		for _, e := range evs {
			if seen[e.ID] {
				t.Errorf("%s twice", e.ID)
			}
			seen[e.ID] = true
		}
		pages++
		cursor = ""
		json.Unmarshal(body["next"], &cursor)
		if cursor == "" {
			break
		}
	}
	if len(seen) != 150 || pages != 3 {
		t.Errorf("%d events in %d pages", len(seen), pages)
	}
	code, body := get("/events/"+events[7].ID, "k3y")
	if code != 200 || string(body["data"]) != `{"id":"MSG7"}` {
		t.Errorf("get: %d %s", code, body["data"])
	}
	if code, _ := get("/events/nope", "k3y"); code != 404 {
		t.Errorf("unknown id: %d", code)
	}
	if code, _ := get("/events?limit=5000", "k3y"); code != 400 {
		t.Errorf("limit too large: %d", code)
	}
	for _, q := range []string{"since=yesterday", "type=transport..x", "cursor=bm90LWEtY3Vyc29y", "outcome=lost"} {
		code, body := get("/events?"+q, "k3y")
		var e struct{ Code, Message string }
		json.Unmarshal(body["error"], &e)
		if code != 400 || e.Code != "invalid_query" || e.Message == "" {
			t.Errorf("%s: %d %+v, want 400 invalid_query", q, code, e)
		}
	}
	// A store that fails is the server's fault, not the request's.
	broken := httptest.NewServer(archiver.Handler(failingQueries{st}, ""))
	defer broken.Close()
	resp, err := http.Get(broken.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	var body500 struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&body500)
	resp.Body.Close()
	if resp.StatusCode != 500 || body500.Error.Code != "store" {
		t.Errorf("failing store: %d %q, want 500 store", resp.StatusCode, body500.Error.Code)
	}
}

// failingQueries is a store whose queries fail: the database is gone.
type failingQueries struct{ store.Store }

func (failingQueries) Query(context.Context, store.Filter) (store.Page, error) {
	return store.Page{}, errors.New("connection refused")
}

// In a cluster the archiver, when it starts first, creates the outcomes
// stream with the replicas of the consumers' side streams, not one.
func TestOutcomesStreamReplicasInCluster(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	js := natstest.JetStream(t, natstest.Connect(t, c.URLs()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sc := streams.StreamConfig{Replicas: 3, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	// As the producer does: a fresh cluster may need a moment to place it.
	if err := streams.Retry(ctx, natstest.Logger(t), "stream", func(ctx context.Context) error {
		_, err := streams.EnsureStream(ctx, js, streams.EventsStream(subjects, sc), natstest.Logger(t))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "archive.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rc := runtimeConfig()
	rc.Replicas = 3
	reg := prometheus.NewRegistry()
	a, err := archiver.New(js, subjects, archiver.Config{BatchSize: 64}, rc, st, consumers.NewMetrics(reg), reg, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	var replicas int
	natstest.WaitFor(t, 30*time.Second, "outcomes stream", func() bool {
		// A lookup of a stream whose leader is not elected yet goes
		// unanswered: give each one its own short deadline.
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := js.Stream(lctx, streams.Outcomes)
		if err != nil {
			return false
		}
		replicas = s.CachedInfo().Config.Replicas
		return true
	})
	if replicas != 3 {
		t.Errorf("%s has %d replicas, want 3", streams.Outcomes, replicas)
	}
}
