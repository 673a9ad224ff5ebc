package sqlsource_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/producer/sqlsource"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", the application's connection in tests
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

const postgresEnv = "EVENTMESH_TEST_POSTGRES"

// rig is one test's world: a JetStream server with ENMESHED, a database
// with the event tables and the example application table (DDL and
// Example applied for real), and the application's connection to it.
type rig struct {
	dialect string
	dsn     string
	db      *sql.DB // the application's connection
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	pub     *producer.Publisher
	cfg     sqlsource.Config
}

// dialects runs f against SQLite and, when EVENTMESH_TEST_POSTGRES is
// set, PostgreSQL (in a schema of its own).
func dialects(t *testing.T, f func(t *testing.T, r *rig)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newRig(t, sqlsource.SQLite)) })
	t.Run("postgres", func(t *testing.T) { f(t, newRig(t, sqlsource.Postgres)) })
}

func newRig(t testing.TB, dialect string, natsOpts ...func(*embedded.Config)) *rig {
	t.Helper()
	r := &rig{dialect: dialect}
	var err error
	switch dialect {
	case sqlsource.Postgres:
		r.dsn = freshSchema(t, postgresDSN(t))
		r.db, err = sql.Open("pgx", r.dsn)
	case sqlsource.SQLite:
		r.dsn = filepath.Join(t.TempDir(), "app.db")
		r.db, err = sql.Open("sqlite", r.dsn+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.db.Close() })
	if err := r.db.Ping(); err != nil { // SQLite: switch to WAL before a producer opens the file
		t.Fatal(err)
	}
	r.cfg = sqlsource.Config{
		DSN: r.dsn, Name: "app", Table: "eventmesh_events", ArchiveTable: "eventmesh_events_archive",
		PollInterval: 20 * time.Millisecond, Batch: 100, Lease: time.Second,
	}
	ctx := context.Background()
	ddl, err := r.cfg.DDL(dialect)
	if err != nil {
		t.Fatal(err)
	}
	example, err := r.cfg.Example(dialect)
	if err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{ddl, example, ddl} { // the DDL twice: it is idempotent
		if err := sqlsource.Apply(ctx, r.dsn, script); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}

	srv := natstest.Start(t, natsOpts...)
	r.nc = natstest.Connect(t, srv.ClientURL())
	log := natstest.Logger(t)
	if r.js, err = streams.NewJetStream(r.nc, log); err != nil {
		t.Fatal(err)
	}
	s := router.MustSubjects("enmeshed")
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: 10 * time.Minute}
	if r.stream, err = streams.EnsureStream(ctx, r.js, streams.EventsStream(s, sc), log); err != nil {
		t.Fatal(err)
	}
	r.pub = producer.NewPublisher(r.js, s, producer.PublisherConfig{Timeout: time.Second, Attempts: 2}, log)
	return r
}

// postgresDSN returns the test server's URL or skips the test.
func postgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skip(postgresEnv + " is unset: set it to a PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the SQL source against PostgreSQL")
	}
	return dsn
}

// freshSchema creates a schema of the test's own and returns dsn with
// search_path set to it; the schema is dropped when the test ends.
func freshSchema(t testing.TB, dsn string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "eventmesh_test_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// newSource returns a source on the rig's table (closed when the test
// ends) and the registry of its metrics.
func (r *rig) newSource(t testing.TB, change func(*sqlsource.Config)) (*sqlsource.Source, *prometheus.Registry) {
	t.Helper()
	c := r.cfg
	if change != nil {
		change(&c)
	}
	reg := prometheus.NewRegistry()
	s, err := sqlsource.New(c, r.pub, reg, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, reg
}

// run runs s until ctx ends or the test does; the channel closes when Run
// returned.
func (r *rig) run(t testing.TB, ctx context.Context, s *sqlsource.Source) <-chan struct{} {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return done
}

func (r *rig) exec(query string, args ...any) error {
	_, err := r.db.Exec(query, args...)
	return err
}

func (r *rig) mustExec(t testing.TB, query string, args ...any) {
	t.Helper()
	if err := r.exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// insertOrder inserts into the example application table; its trigger
// writes the event row.
func (r *rig) insertOrder(customer string) (int64, error) {
	var id int64
	err := r.db.QueryRow(`INSERT INTO example_orders (customer) VALUES ($1) RETURNING id`, customer).Scan(&id)
	return id, err
}

func (r *rig) mustInsertOrder(t testing.TB, customer string) int64 {
	t.Helper()
	id, err := r.insertOrder(customer)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (r *rig) count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := r.db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitArchived waits until n rows are in the archive and none is left in
// the event table.
func (r *rig) waitArchived(t testing.TB, n int) {
	t.Helper()
	natstest.WaitFor(t, 30*time.Second, fmt.Sprintf("%d archived rows", n), func() bool {
		return r.count(t, r.cfg.ArchiveTable) >= n && r.count(t, r.cfg.Table) == 0
	})
}

type archived struct {
	id                int64
	entity, verb, key string
	status, reason    string
	eventID           string
	seq               int64
}

func (r *rig) archive(t testing.TB) []archived {
	t.Helper()
	rows, err := r.db.Query(`SELECT id, entity, verb, entity_key, status, COALESCE(reason, ''), event_id, COALESCE(stream_seq, 0)
		FROM ` + r.cfg.ArchiveTable + ` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var as []archived
	for rows.Next() {
		var a archived
		if err := rows.Scan(&a.id, &a.entity, &a.verb, &a.key, &a.status, &a.reason, &a.eventID, &a.seq); err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return as
}

type streamEvent struct {
	seq     uint64
	subject string
	header  nats.Header
	data    []byte
}

// events returns every message of ENMESHED in stream order.
func (r *rig) events(t testing.TB) []streamEvent {
	t.Helper()
	ctx := context.Background()
	info, err := r.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var evs []streamEvent
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := r.stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, streamEvent{seq: seq, subject: m.Subject, header: m.Header, data: m.Data})
	}
	return evs
}

// checkUnique fails the test when two messages carry one ce-id.
func checkUnique(t testing.TB, evs []streamEvent) {
	t.Helper()
	seen := map[string]uint64{}
	for _, e := range evs {
		id := e.header.Get(router.HeaderID)
		if first, ok := seen[id]; ok {
			t.Errorf("event %s stored twice: seq %d and %d", id, first, e.seq)
		}
		seen[id] = e.seq
	}
}

// orderHistories returns, per order id, the order's events in stream order
// as verb:total ("create:0", "update:3", "delete:3").
func orderHistories(t testing.TB, evs []streamEvent) map[string][]string {
	t.Helper()
	h := map[string][]string{}
	for _, e := range evs {
		if !strings.HasPrefix(e.subject, "enmeshed.app.order.") {
			continue
		}
		var o struct {
			ID    json.Number `json:"id"`
			Total float64     `json:"total"`
		}
		dec := json.NewDecoder(bytes.NewReader(e.data))
		dec.UseNumber()
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("seq %d: data %s: %v", e.seq, e.data, err)
		}
		verb := strings.TrimPrefix(e.subject, "enmeshed.app.order.")
		h[o.ID.String()] = append(h[o.ID.String()], verb+":"+strconv.FormatFloat(o.Total, 'g', -1, 64))
	}
	return h
}

// history is what orderHistories should find for an order created, given
// the totals, and deleted when deleted.
func history(deleted bool, totals ...int) []string {
	h := []string{"create:0"}
	for _, n := range totals {
		h = append(h, "update:"+strconv.Itoa(n))
	}
	if deleted {
		last := 0
		if len(totals) > 0 {
			last = totals[len(totals)-1]
		}
		h = append(h, "delete:"+strconv.Itoa(last))
	}
	return h
}

// metric returns the value of the counter name with the label value
// (the source's counters have one label each).
func metric(t testing.TB, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// Inserts, updates and deletes on an application table with the example
// trigger appear as events on the right subjects with the contract's
// headers, each exactly once, in order per entity. On PostgreSQL the poll
// interval is an hour: only LISTEN/NOTIFY can wake the source.
func TestTriggerEvents(t *testing.T) {
	dialects(t, func(t *testing.T, r *rig) {
		src, _ := r.newSource(t, func(c *sqlsource.Config) {
			if r.dialect == sqlsource.Postgres {
				c.PollInterval = time.Hour
			}
		})
		r.run(t, context.Background(), src)

		ada, bob := r.mustInsertOrder(t, "ada"), r.mustInsertOrder(t, "bob")
		for i := 1; i <= 3; i++ {
			r.mustExec(t, `UPDATE example_orders SET total = $1 WHERE id = $2`, i, ada)
			r.mustExec(t, `UPDATE example_orders SET total = $1 WHERE id = $2`, 10*i, bob)
		}
		r.mustExec(t, `UPDATE example_orders SET total = total WHERE id = $1`, ada) // no change, no event
		r.mustExec(t, `DELETE FROM example_orders WHERE id = $1`, bob)
		r.waitArchived(t, 9)

		evs := r.events(t)
		if len(evs) != 9 {
			t.Fatalf("%d events in the stream, want 9", len(evs))
		}
		checkUnique(t, evs)
		h := orderHistories(t, evs)
		if want := history(false, 1, 2, 3); !slices.Equal(h[strconv.FormatInt(ada, 10)], want) {
			t.Errorf("ada's order: %v, want %v", h[strconv.FormatInt(ada, 10)], want)
		}
		if want := history(true, 10, 20, 30); !slices.Equal(h[strconv.FormatInt(bob, 10)], want) {
			t.Errorf("bob's order: %v, want %v", h[strconv.FormatInt(bob, 10)], want)
		}

		// The archive holds every row as sent, with the ce-id and stream
		// sequence of its event; the stream's headers follow the contract.
		bySeq := map[uint64]streamEvent{}
		for _, e := range evs {
			bySeq[e.seq] = e
		}
		for _, a := range r.archive(t) {
			e, ok := bySeq[uint64(a.seq)]
			if a.status != "sent" || !ok {
				t.Errorf("archived row %d: status %s, stream seq %d", a.id, a.status, a.seq)
				continue
			}
			wantID := router.SQLEventID("app", "eventmesh_events", strconv.FormatInt(a.id, 10))
			for k, want := range map[string]string{
				router.HeaderID: wantID, router.HeaderMsgID: wantID, router.HeaderSource: "app",
				router.HeaderType: "app.order." + a.verb, router.HeaderOrigin: "sql", router.HeaderSpecVersion: "1.0",
				router.HeaderDataContentType: "application/json",
			} {
				if got := e.header.Get(k); got != want {
					t.Errorf("row %d: %s = %q, want %q", a.id, k, got, want)
				}
			}
			if a.eventID != wantID || e.subject != "enmeshed.app.order."+a.verb {
				t.Errorf("row %d: event_id %s, subject %s", a.id, a.eventID, e.subject)
			}
			if _, err := time.Parse(time.RFC3339Nano, e.header.Get(router.HeaderTime)); err != nil {
				t.Errorf("row %d: ce-time: %v", a.id, err)
			}
		}
	})
}

var errKilled = errors.New("killed between publish and settle")

// A producer killed after publishing part of a batch and before settling
// it leaves its rows claimed. Another producer takes them over once the
// lease expired and publishes them again: the stream drops the copies of
// the events the first one stored (same Nats-Msg-Id, inside the duplicate
// window), so every event is stored once, in order per entity.
func TestKilledMidBatch(t *testing.T) {
	dialects(t, func(t *testing.T, r *rig) {
		const orders, updates = 6, 3
		var ids []int64
		for k := 0; k < orders; k++ {
			id := r.mustInsertOrder(t, "c"+strconv.Itoa(k))
			ids = append(ids, id)
			for i := 1; i <= updates; i++ {
				r.mustExec(t, `UPDATE example_orders SET total = $1 WHERE id = $2`, i, id)
			}
		}
		const rows = orders * (1 + updates)

		// A lease long enough that the first round is not cut short on a
		// loaded machine (its rows would be re-offered in a second round),
		// short enough that the second producer need not wait long.
		lease := func(c *sqlsource.Config) { c.Lease = 3 * time.Second }
		first, _ := r.newSource(t, lease)
		ctx, kill := context.WithCancel(context.Background())
		var published atomic.Int64
		sqlsource.SetHooks(first, func(int64) {
			if published.Add(1) == 10 {
				kill()
			}
		}, func() error { return errKilled }, nil)
		select {
		case <-r.run(t, ctx, first):
		case <-time.After(20 * time.Second):
			t.Fatal("the first producer did not stop")
		}
		if err := r.nc.Flush(); err != nil { // the server has taken whatever the first one sent
			t.Fatal(err)
		}
		stored := len(r.events(t))
		if stored < 10 || r.count(t, r.cfg.ArchiveTable) != 0 {
			t.Fatalf("after the kill: %d events stored, %d rows archived; want at least 10 and none", stored, r.count(t, r.cfg.ArchiveTable))
		}
		var claimed int
		if err := r.db.QueryRow(`SELECT count(*) FROM eventmesh_events WHERE status = 'sending' AND claim_owner = $1`,
			sqlsource.ClaimOwner(first)).Scan(&claimed); err != nil {
			t.Fatal(err)
		}
		if claimed != rows {
			t.Fatalf("%d rows still claimed by the killed producer, want %d", claimed, rows)
		}

		second, reg := r.newSource(t, lease)
		r.run(t, context.Background(), second)
		r.waitArchived(t, rows)
		evs := r.events(t)
		if len(evs) != rows {
			t.Errorf("%d events in the stream, want %d", len(evs), rows)
		}
		checkUnique(t, evs)
		h := orderHistories(t, evs)
		for _, id := range ids {
			if got, want := h[strconv.FormatInt(id, 10)], history(false, 1, 2, 3); !slices.Equal(got, want) {
				t.Errorf("order %d: %v, want %v", id, got, want)
			}
		}
		// The second producer offered every row once; the stream dropped
		// the copies of what the first one stored (which may include
		// publishes still in flight when it was killed).
		dup := metric(t, reg, "eventmesh_sql_source_published_total", "duplicate")
		fresh := metric(t, reg, "eventmesh_sql_source_published_total", "stored")
		if int(dup) < stored || int(dup+fresh) != rows {
			t.Errorf("the second producer: %v duplicates, %v stored; want at least %d duplicates and %d in all", dup, fresh, stored, rows)
		}
		for _, a := range r.archive(t) {
			if a.status != "sent" {
				t.Errorf("row %d archived as %s", a.id, a.status)
			}
		}
	})
}

// Two producers on one PostgreSQL table while the application writes:
// each row is published once (no duplicate even offered to the stream)
// and the events of each entity keep their order.
func TestTwoProducers(t *testing.T) {
	r := newRig(t, sqlsource.Postgres)
	var regs []*prometheus.Registry
	for range 2 {
		// No lease may run out here: a publish slowed past it would be
		// offered twice, which this test counts as a double claim.
		s, reg := r.newSource(t, func(c *sqlsource.Config) { c.Batch, c.Lease = 10, 30*time.Second })
		regs = append(regs, reg)
		r.run(t, context.Background(), s)
	}

	const writers, perWriter, updates = 4, 5, 10
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  []int64
		errs = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			var mine []int64
			for k := range perWriter {
				id, err := r.insertOrder(fmt.Sprintf("w%d-%d", w, k))
				if err != nil {
					errs <- err
					return
				}
				mine = append(mine, id)
			}
			for i := 1; i <= updates; i++ {
				for _, id := range mine {
					if err := r.exec(`UPDATE example_orders SET total = $1 WHERE id = $2`, i, id); err != nil {
						errs <- err
						return
					}
				}
			}
			for _, id := range mine {
				if err := r.exec(`DELETE FROM example_orders WHERE id = $1`, id); err != nil {
					errs <- err
					return
				}
			}
			mu.Lock()
			ids = append(ids, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const rows = writers * perWriter * (1 + updates + 1)
	r.waitArchived(t, rows)

	evs := r.events(t)
	if len(evs) != rows {
		t.Errorf("%d events in the stream, want %d", len(evs), rows)
	}
	checkUnique(t, evs)
	h := orderHistories(t, evs)
	want := history(true, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	for _, id := range ids {
		if got := h[strconv.FormatInt(id, 10)]; !slices.Equal(got, want) {
			t.Errorf("order %d: %v, want %v", id, got, want)
		}
	}
	var split []float64
	for _, reg := range regs {
		if dup := metric(t, reg, "eventmesh_sql_source_published_total", "duplicate"); dup != 0 {
			t.Errorf("a producer offered %v duplicates: a row was claimed twice", dup)
		}
		if lost := metric(t, reg, "eventmesh_sql_source_errors_total", "lease"); lost != 0 {
			t.Errorf("%v leases lost", lost)
		}
		split = append(split, metric(t, reg, "eventmesh_sql_source_published_total", "stored"))
	}
	t.Logf("events published by each producer: %v", split)
}

// A payload with invalid UTF-8 inside a JSON string is refused as ingest
// refuses it: status error, "payload is not valid JSON", nothing published.
// SQLite only: a PostgreSQL text column cannot hold invalid UTF-8.
func TestInvalidUTF8Payload(t *testing.T) {
	r := newRig(t, sqlsource.SQLite)
	r.mustExec(t, `INSERT INTO eventmesh_events (entity, verb, entity_key, payload) VALUES ($1, $2, $3, $4)`,
		"invoice", "create", "k1", `{"customer":"caf`+"\xe9"+`"}`)
	r.mustExec(t, `INSERT INTO eventmesh_events (entity, verb, entity_key, payload) VALUES ($1, $2, $3, $4)`,
		"invoice", "update", "k1", `{"customer":"café"}`)
	src, _ := r.newSource(t, nil)
	r.run(t, context.Background(), src)
	r.waitArchived(t, 2)
	as := r.archive(t)
	if as[0].status != "error" || !strings.Contains(as[0].reason, "payload is not valid JSON") || !strings.Contains(as[0].reason, "UTF-8") {
		t.Errorf("invalid UTF-8: archived as %s %q, want error naming UTF-8", as[0].status, as[0].reason)
	}
	if as[1].status != "sent" {
		t.Errorf("valid UTF-8: archived as %s %q", as[1].status, as[1].reason)
	}
	if evs := r.events(t); len(evs) != 1 || string(evs[0].data) != `{"customer":"café"}` {
		t.Errorf("stream: %d events, want the valid one only", len(evs))
	}
}

// Rows that cannot be published are archived with status error and the
// reason; the entity's later rows still go out, in order.
func TestUnpublishableRows(t *testing.T) {
	dialects(t, func(t *testing.T, r *rig) {
		for _, v := range [][]any{
			{"invoice", "create", "k1", `{"n":1}`},
			{"invoice", "update", "k1", `{"n":2`},                                       // not JSON
			{"invoice", "update", "k1", `{"n":3}`},                                      // not blocked by the one before
			{"in voice", "create", "k2", `{}`},                                          // no subject token
			{"invoice", "paid.late", "k3", `{}`},                                        // a verb of two tokens
			{"invoice", "delete", "k4", nil},                                            // no payload: no data
			{"Invoice", "Create", "k5", `{"n":5}`},                                      // tokens are lower-cased
			{"invoice", "update", "k6", `{"pad":"` + strings.Repeat("x", 2<<20) + `"}`}, // larger than the server's max payload
		} {
			r.mustExec(t, `INSERT INTO eventmesh_events (entity, verb, entity_key, payload) VALUES ($1, $2, $3, $4)`, v...)
		}
		src, reg := r.newSource(t, nil)
		r.run(t, context.Background(), src)
		r.waitArchived(t, 8)

		as := r.archive(t)
		wantReason := []string{"", "payload is not valid JSON", "", `entity "in voice" is not a subject token`, `verb "paid.late" is not a subject token`, "", "",
			"the stream refused the event: event stream unavailable: publish enmeshed.app.invoice.update: nats: maximum payload exceeded"}
		for i, a := range as {
			status := "sent"
			if wantReason[i] != "" {
				status = "error"
			}
			if a.status != status || !strings.Contains(a.reason, wantReason[i]) || (status == "error") != (a.seq == 0) {
				t.Errorf("row %d (%s %s %s): archived as %s (%q, seq %d), want %s (%q)", a.id, a.entity, a.verb, a.key, a.status, a.reason, a.seq, status, wantReason[i])
			}
		}
		evs := r.events(t)
		var got []string
		for _, e := range evs {
			got = append(got, strings.TrimPrefix(e.subject, "enmeshed.app.")+" "+string(e.data))
		}
		want := []string{`invoice.create {"n":1}`, `invoice.update {"n":3}`, `invoice.delete `, `invoice.create {"n":5}`}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("stream: %q, want %q", got, want)
		}
		for i, e := range evs { // k1's events in order
			if string(e.data) == `{"n":3}` && (i == 0 || !slices.ContainsFunc(evs[:i], func(p streamEvent) bool { return string(p.data) == `{"n":1}` })) {
				t.Errorf("k1's update overtook its create")
			}
		}
		if n := metric(t, reg, "eventmesh_sql_source_errors_total", "row"); n != 4 {
			t.Errorf("errors_total{kind=row} = %v, want 4", n)
		}
	})
}

// Priority orders entities; an entity's priority is that of its oldest
// row, so a high-priority row never overtakes older rows of its entity.
func TestPriority(t *testing.T) {
	dialects(t, func(t *testing.T, r *rig) {
		for _, v := range [][]any{
			{"p0", 0, `{"row":"p0-first"}`},
			{"p5", 5, `{"row":"p5"}`},
			{"p10", 10, `{"row":"p10"}`},
			{"p0", 100, `{"row":"p0-second"}`},
		} {
			r.mustExec(t, `INSERT INTO eventmesh_events (entity, verb, entity_key, priority, payload) VALUES ('job', 'run', $1, $2, $3)`, v...)
		}
		src, _ := r.newSource(t, func(c *sqlsource.Config) { c.Batch = 1 })
		r.run(t, context.Background(), src)
		r.waitArchived(t, 4)
		var got []string
		for _, e := range r.events(t) {
			var v struct{ Row string }
			json.Unmarshal(e.data, &v)
			got = append(got, v.Row)
		}
		if want := []string{"p10", "p5", "p0-first", "p0-second"}; !slices.Equal(got, want) {
			t.Errorf("stream order %v, want %v", got, want)
		}
	})
}

// flakyPublisher fails the first publication of one event as if the
// stream were unavailable.
type flakyPublisher struct {
	sqlsource.Publisher
	failID string
	failed atomic.Bool
}

func (p *flakyPublisher) Publish(ctx context.Context, e router.Event) (producer.Result, error) {
	if e.ID == p.failID && p.failed.CompareAndSwap(false, true) {
		return producer.Result{}, fmt.Errorf("%w: injected", producer.ErrUnavailable)
	}
	return p.Publisher.Publish(ctx, e)
}

// A publish that fails for a passing reason releases the entity's rows
// for a retry after a back-off; they are published later, still in order,
// with the failure recorded in the error column meanwhile.
func TestTransientFailureKeepsOrder(t *testing.T) {
	dialects(t, func(t *testing.T, r *rig) {
		id := r.mustInsertOrder(t, "ada")
		for i := 1; i <= 3; i++ {
			r.mustExec(t, `UPDATE example_orders SET total = $1 WHERE id = $2`, i, id)
		}
		var second int64 // the event row of the first update
		if err := r.db.QueryRow(`SELECT min(id) FROM eventmesh_events WHERE verb = 'update'`).Scan(&second); err != nil {
			t.Fatal(err)
		}
		flaky := &flakyPublisher{Publisher: r.pub, failID: router.SQLEventID("app", "eventmesh_events", strconv.FormatInt(second, 10))}
		c := r.cfg
		reg := prometheus.NewRegistry()
		src, err := sqlsource.New(c, flaky, reg, natstest.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(src.Close)
		r.run(t, context.Background(), src)

		natstest.WaitFor(t, 10*time.Second, "the failure recorded on the row", func() bool {
			var msg sql.NullString
			r.db.QueryRow(`SELECT error FROM eventmesh_events WHERE id = $1`, second).Scan(&msg)
			return strings.Contains(msg.String, "injected")
		})
		r.waitArchived(t, 4)
		evs := r.events(t)
		checkUnique(t, evs)
		if got, want := orderHistories(t, evs)[strconv.FormatInt(id, 10)], history(false, 1, 2, 3); !slices.Equal(got, want) {
			t.Errorf("order: %v, want %v", got, want)
		}
		if n := metric(t, reg, "eventmesh_sql_source_errors_total", "publish"); n != 1 {
			t.Errorf("errors_total{kind=publish} = %v, want 1", n)
		}
	})
}

// With SQL_SOURCE_REREAD_QUERY each event carries the entity's state when
// it is published; when the entity is gone (a delete) the row's payload.
func TestReread(t *testing.T) {
	dialects(t, func(t *testing.T, r *rig) {
		id := r.mustInsertOrder(t, "ada")
		for i := 1; i <= 3; i++ {
			r.mustExec(t, `UPDATE example_orders SET total = $1 WHERE id = $2`, i, id)
		}
		query := `SELECT row_to_json(o) FROM example_orders o WHERE o.id = $1::bigint`
		if r.dialect == sqlsource.SQLite {
			query = `SELECT json_object('id', id, 'customer', customer, 'total', total, 'status', status) FROM example_orders WHERE id = CAST($1 AS INTEGER)`
		}
		src, _ := r.newSource(t, func(c *sqlsource.Config) { c.RereadQuery = query })
		r.run(t, context.Background(), src)
		r.waitArchived(t, 4)
		r.mustExec(t, `DELETE FROM example_orders WHERE id = $1`, id)
		r.waitArchived(t, 5)
		got := orderHistories(t, r.events(t))[strconv.FormatInt(id, 10)]
		if want := []string{"create:3", "update:3", "update:3", "update:3", "delete:3"}; !slices.Equal(got, want) {
			t.Errorf("order: %v, want %v", got, want)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	valid := sqlsource.Config{DSN: "postgres://db/app", Name: "app", Table: "eventmesh_events", ArchiveTable: "eventmesh_events_archive",
		PollInterval: time.Second, Batch: 100, Lease: 30 * time.Second}
	if err := valid.Validate(10 * time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		change func(*sqlsource.Config)
		want   string
	}{
		{func(c *sqlsource.Config) { c.DSN = "mysql://db/app" }, "SQL_SOURCE_DSN"},
		{func(c *sqlsource.Config) { c.DSN = "sqlite:" }, ""}, // checked by New
		{func(c *sqlsource.Config) { c.Name = "my app" }, "SQL_SOURCE_NAME"},
		{func(c *sqlsource.Config) { c.Name = "" }, "SQL_SOURCE_NAME"},
		{func(c *sqlsource.Config) { c.Table = "Events" }, "SQL_SOURCE_TABLE"},
		{func(c *sqlsource.Config) { c.Table = "public.events" }, "SQL_SOURCE_TABLE"},
		{func(c *sqlsource.Config) { c.ArchiveTable = "x; DROP TABLE y" }, "SQL_SOURCE_ARCHIVE_TABLE"},
		{func(c *sqlsource.Config) { c.ArchiveTable = c.Table }, "SQL_SOURCE_ARCHIVE_TABLE"},
		{func(c *sqlsource.Config) { c.PollInterval = 0 }, "SQL_SOURCE_POLL_INTERVAL"},
		{func(c *sqlsource.Config) { c.Batch = 0 }, "SQL_SOURCE_BATCH"},
		{func(c *sqlsource.Config) { c.Lease = 100 * time.Millisecond }, "SQL_SOURCE_LEASE"},
		{func(c *sqlsource.Config) { c.Lease = 6 * time.Minute }, "STREAM_DUPLICATE_WINDOW"},
		{func(c *sqlsource.Config) { c.RereadQuery = "  " }, "SQL_SOURCE_REREAD_QUERY"},
	} {
		c := valid
		tc.change(&c)
		err := c.Validate(10 * time.Minute)
		if tc.want == "" {
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", c, err, tc.want)
		}
	}
	if _, err := sqlsource.New(sqlsource.Config{}, nil, prometheus.NewRegistry(), natstest.Logger(t)); err == nil {
		t.Error("New without SQL_SOURCE_DSN succeeded")
	}
	for dsn, want := range map[string]string{
		"postgres://u@h/db": sqlsource.Postgres, "postgresql://h/db": sqlsource.Postgres,
		"sqlite:/tmp/a.db": sqlsource.SQLite, "./data/app.db": sqlsource.SQLite,
	} {
		if got, err := sqlsource.DialectOf(dsn); got != want || err != nil {
			t.Errorf("DialectOf(%q) = %q, %v; want %q", dsn, got, err, want)
		}
	}
	if _, err := valid.DDL("oracle"); err == nil {
		t.Error("DDL for an unknown dialect")
	}
	c := valid
	c.Table, c.ArchiveTable = "app_events", "app_events_done"
	ddl, _ := c.DDL(sqlsource.Postgres)
	if !strings.Contains(ddl, "CREATE TABLE IF NOT EXISTS app_events (") || !strings.Contains(ddl, "pg_notify('app_events'") ||
		!strings.Contains(ddl, "CREATE TABLE IF NOT EXISTS app_events_done (") || strings.Contains(ddl, "eventmesh_events") {
		t.Errorf("DDL does not use the configured table names:\n%s", ddl)
	}
}

// A producer stopped mid-batch finishes the publishes under way, archives
// what the stream acknowledged and releases the rest at once (no lease to
// wait out); the next producer publishes it, each event once.
func TestShutdownMidBatch(t *testing.T) {
	dialects(t, func(t *testing.T, r *rig) {
		for k := range 8 {
			id := r.mustInsertOrder(t, "c"+strconv.Itoa(k))
			r.mustExec(t, `UPDATE example_orders SET total = 1 WHERE id = $1`, id)
		}
		long := func(c *sqlsource.Config) { c.Lease = 30 * time.Second } // the release on stop is what is tested, not a lease running out
		first, _ := r.newSource(t, long)
		ctx, stop := context.WithCancel(context.Background())
		var published atomic.Int64
		sqlsource.SetHooks(first, func(int64) {
			if published.Add(1) == 5 {
				stop()
			}
		}, nil, nil)
		select {
		case <-r.run(t, ctx, first):
		case <-time.After(20 * time.Second):
			t.Fatal("the producer did not stop")
		}
		archivedRows := r.count(t, r.cfg.ArchiveTable)
		var sending, owned int
		if err := r.db.QueryRow(`SELECT COALESCE(sum(CASE WHEN status = 'sending' THEN 1 ELSE 0 END), 0), count(claim_owner) FROM eventmesh_events`).Scan(&sending, &owned); err != nil {
			t.Fatal(err)
		}
		if archivedRows < 5 || sending != 0 || owned != 0 {
			t.Fatalf("after the stop: %d rows archived, %d still sending, %d owned; want at least 5, none, none", archivedRows, sending, owned)
		}
		if n := len(r.events(t)); n != archivedRows {
			t.Errorf("%d events stored, %d rows archived", n, archivedRows)
		}
		second, reg := r.newSource(t, long)
		r.run(t, context.Background(), second)
		r.waitArchived(t, 16)
		evs := r.events(t)
		if len(evs) != 16 {
			t.Errorf("%d events in the stream, want 16", len(evs))
		}
		checkUnique(t, evs)
		if dup := metric(t, reg, "eventmesh_sql_source_published_total", "duplicate"); dup != 0 {
			t.Errorf("%v duplicates offered after a clean stop", dup)
		}
	})
}
