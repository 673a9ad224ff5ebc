package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
)

// The console's pages under the archive of the figures: 100,000
// events over the chart's 6 hours, each with outcomes from ten consumers
// (1,000,000 outcome rows), on SQLite and on PostgreSQL. Each benchmark
// reports the server time of one page (ns/op; target < 200 ms):
//
//	go test ./console -run '^$' -bench . -benchtime 20x
//	EVENTMESH_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test go test ./console -run '^$' -bench . -benchtime 20x
//
// Overview is the page as served (the chart from the sampler's counts);
// ChartCold is the sampler's first query of the whole window
// (store.Activity over 6 hours), ChartUpdate a later one (the last minutes
// again); Event is an event's page with its ten outcomes; Search a page of
// 50 events with their outcomes by type pattern.

const (
	benchEvents    = 100_000
	benchConsumers = 10
	benchWindow    = 6 * time.Hour
)

// seeded holds one archive per backend, seeded once per process.
var seeded sync.Map // backend → *benchArchive

type benchArchive struct {
	once sync.Once
	st   store.Store
	now  time.Time
	id   string // an event in the middle
	err  error
}

func benchStore(b *testing.B, backend string) *benchArchive {
	v, _ := seeded.LoadOrStore(backend, &benchArchive{})
	a := v.(*benchArchive)
	a.once.Do(func() { a.seed(backend) })
	if a.err != nil {
		b.Fatal(a.err)
	}
	return a
}

func (a *benchArchive) seed(backend string) {
	ctx := context.Background()
	switch backend {
	case "sqlite":
		dir, err := os.MkdirTemp("", "console-bench-")
		if err != nil {
			a.err = err
			return
		}
		a.st, a.err = store.OpenSQLite(filepath.Join(dir, store.DefaultFile))
	case "postgres":
		dsn := os.Getenv("EVENTMESH_TEST_POSTGRES")
		rb := make([]byte, 6)
		rand.Read(rb)
		u, err := url.Parse(dsn)
		if err != nil {
			a.err = err
			return
		}
		q := u.Query()
		q.Set("search_path", "console_bench_"+hex.EncodeToString(rb))
		u.RawQuery = q.Encode()
		a.st, a.err = store.OpenPostgres(ctx, u.String())
	}
	if a.err != nil {
		return
	}
	a.now = time.Now().UTC()
	start := a.now.Add(-benchWindow)
	types := []string{"transport.messageReceived", "transport.messageSent", "transport.relationshipChanged", "consumption.incomingRequestReceived"}
	step := benchWindow / benchEvents
	const batch = 1000
	for i := 0; i < benchEvents; i += batch {
		events := make([]store.Event, 0, batch)
		outcomes := make([]store.Outcome, 0, batch*benchConsumers)
		for j := i; j < i+batch; j++ {
			id := fmt.Sprintf("%032x", j+1)
			at := start.Add(time.Duration(j) * step)
			typ := types[j%len(types)]
			events = append(events, store.Event{ID: id, Subject: "enmeshed." + typ, Type: typ, Source: "enmeshed-connector", Time: at,
				StreamSeq: uint64(j + 1), Origin: "webhook", Headers: map[string][]string{"ce-id": {id}, "ce-type": {typ}},
				Data: fmt.Appendf(nil, `{"id":"MSG%017d","isOwn":false,"content":{"@type":"Mail","subject":"Invoice %d","body":"Dear customer, please find attached invoice %d."},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3"}`, j, j, j)})
			for c := range benchConsumers {
				outcomes = append(outcomes, store.Outcome{Consumer: fmt.Sprintf("webhook-%02d", c), EventID: id, Result: store.ResultDelivered,
					Attempt: 1, Time: at.Add(time.Duration(c+1) * 10 * time.Millisecond)})
			}
		}
		if a.err = a.st.InsertEvents(ctx, events); a.err != nil {
			return
		}
		if a.err = a.st.InsertOutcomes(ctx, outcomes); a.err != nil {
			return
		}
	}
	a.id = fmt.Sprintf("%032x", benchEvents/2)
}

// dropBenchSchemas removes the PostgreSQL schemas the benchmarks made.
func dropBenchSchemas() {
	dsn := os.Getenv("EVENTMESH_TEST_POSTGRES")
	if dsn == "" {
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'console_bench_%'`)
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{n}.Sanitize()+` CASCADE`)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	dropBenchSchemas()
	os.Exit(code)
}

// benchConsole is a console on a real nats-server with ten durables, over
// the seeded archive, sampled once.
func benchConsole(b *testing.B, a *benchArchive) http.Handler {
	srv := natstest.Start(b)
	js := natstest.JetStream(b, natstest.Connect(b, srv.ClientURL()))
	ctx := context.Background()
	s := router.MustSubjects(router.DefaultPrefix)
	events := streams.EventsStream(s, streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute})
	for _, sc := range []jetstream.StreamConfig{events, streams.DLQStream(s)} {
		if _, err := streams.EnsureFixedStream(ctx, js, sc); err != nil {
			b.Fatal(err)
		}
	}
	for c := range benchConsumers {
		d := fmt.Sprintf("webhook-%02d", c)
		if _, err := js.CreateOrUpdateConsumer(ctx, streams.Events, jetstream.ConsumerConfig{Durable: d,
			FilterSubjects: []string{s.Events(), s.Replays(d)}, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			b.Fatal(err)
		}
	}
	cfg := testConfig(Config{ChartWindow: benchWindow, Refresh: time.Hour})
	c, err := New(cfg, Deps{JS: js, Subjects: s, Store: a.st, Now: func() time.Time { return a.now },
		Status: admin.StatusOptions{Interval: time.Millisecond}})
	if err != nil {
		b.Fatal(err)
	}
	c.refresh(ctx, 0)
	return c.Handler()
}

// servePage serves path b.N times and fails on anything but 200.
func servePage(b *testing.B, h http.Handler, path string) {
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = "127.0.0.1:8088"
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d\n%s", path, rec.Code, rec.Body)
		}
	}
}

func backends(b *testing.B, f func(b *testing.B, a *benchArchive)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			if backend == "postgres" && os.Getenv("EVENTMESH_TEST_POSTGRES") == "" {
				b.Skip("EVENTMESH_TEST_POSTGRES is unset: set it to a PostgreSQL URL to run the PostgreSQL benchmarks")
			}
			f(b, benchStore(b, backend))
		})
	}
}

func BenchmarkOverview(b *testing.B) {
	backends(b, func(b *testing.B, a *benchArchive) { servePage(b, benchConsole(b, a), "/") })
}

func BenchmarkEventPage(b *testing.B) {
	backends(b, func(b *testing.B, a *benchArchive) { servePage(b, benchConsole(b, a), "/events/"+a.id) })
}

func BenchmarkSearch(b *testing.B) {
	backends(b, func(b *testing.B, a *benchArchive) {
		servePage(b, benchConsole(b, a), "/events?type=transport.*&since=3h")
	})
}

func BenchmarkChartCold(b *testing.B) {
	backends(b, func(b *testing.B, a *benchArchive) {
		for b.Loop() {
			d := newChartData(benchWindow, time.Minute)
			if err := d.update(context.Background(), a.st, a.now); err != nil {
				b.Fatal(err)
			}
			if c := d.draw(a.now); c.Max == 0 || len(c.Series) != 1+benchConsumers {
				b.Fatalf("chart: max %d, %d series", c.Max, len(c.Series))
			}
		}
	})
}

func BenchmarkChartUpdate(b *testing.B) {
	backends(b, func(b *testing.B, a *benchArchive) {
		d := newChartData(benchWindow, time.Minute)
		if err := d.update(context.Background(), a.st, a.now); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := d.update(context.Background(), a.st, a.now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
