package archiver_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkArchiver compares the archiver with its ceiling in the same run
// (machines are noisy; ratios within one run are not). Run it with
//
//	go test ./consumers/archiver/ -run '^$' -bench . -benchtime 3x
//
// and EVENTMESH_TEST_POSTGRES set for the PostgreSQL row. benchEvents
// distinct 1 KB Connector-shaped events are published once into ENMESHED
// on the embedded server (NATS_SYNC=2m; not timed). Each iteration then
// measures both sides once, each into a fresh store in the same database
// (SQLite: a new file in one directory; PostgreSQL: a new schema):
//
//   - ours: the archiver (BatchSize 256, the product's runtime defaults)
//     from Run until the store has taken every event; the durable starts
//     at "all" and is deleted after the round;
//   - bare: InsertEvents of the very rows the archiver writes (same ids,
//     subjects, headers, data, stream sequences, unsubscribed flags) in
//     batches of 256, no NATS.
//
// The reported rates are medians; which side goes first alternates.
//
// On the 2-core development machine (PostgreSQL 15 on loopback; medians
// of 3 rounds, four runs in all):
//
//	            archiver-events/s   bare-events/s   ratio
//	sqlite          24,700–30,300   28,400–39,900   0.71–0.87
//	postgres        18,600–29,200   23,400–39,900   0.73–0.79
//
// Batches are full (253 events on average; the last one is partial) and
// setup (stream checks, durable creation, first fetch) takes 10–14 ms of
// a round. A CPU profile puts the archiver's own work (prepare, FromMsg,
// Event.Header, the subscribed check, acks) at about 3% of its CPU; the
// rest of the gap is the NATS server and client sharing the two cores
// with the store's writer, which runs batches one after another.
func BenchmarkArchiver(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		dir := b.TempDir()
		var n atomic.Int64
		benchArchiver(b, func(b *testing.B) (store.Store, func()) {
			path := filepath.Join(dir, fmt.Sprintf("archive-%d.db", n.Add(1)))
			st, err := store.Open(context.Background(), path, "")
			if err != nil {
				b.Fatal(err)
			}
			return st, func() {
				st.Close()
				for _, suffix := range []string{"", "-wal", "-shm"} {
					os.Remove(path + suffix)
				}
			}
		})
	})
	b.Run("postgres", func(b *testing.B) {
		dsn := os.Getenv("EVENTMESH_TEST_POSTGRES")
		if dsn == "" {
			b.Skip("EVENTMESH_TEST_POSTGRES is not set: skipping the PostgreSQL store (set it to postgres://postgres@127.0.0.1:5432/test)")
		}
		ctx := context.Background()
		var schemas []string
		drop := func(schema string) {
			if conn, err := pgx.Connect(ctx, dsn); err == nil {
				conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
				conn.Close(ctx)
			}
		}
		b.Cleanup(func() {
			for _, s := range schemas {
				drop(s)
			}
		})
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		benchArchiver(b, func(b *testing.B) (store.Store, func()) {
			var r [6]byte
			rand.Read(r[:])
			schema := "eventmesh_archbench_" + hex.EncodeToString(r[:])
			schemas = append(schemas, schema) // dropped at the end even if the round fails
			st, err := store.Open(ctx, dsn+sep+"search_path="+schema, "")
			if err != nil {
				b.Fatal(err)
			}
			return st, func() { st.Close(); drop(schema) }
		})
	})
}

const (
	benchEvents = 20000
	benchBatch  = 256 // archiver.Config.BatchSize, and the bare side's batches
)

// benchArchiver runs the rounds against stores from open (each fresh and
// empty; its func closes and removes it).
func benchArchiver(b *testing.B, open func(*testing.B) (store.Store, func())) {
	ctx := context.Background()
	log := natstest.Logger(b)
	srv := natstest.Start(b, func(c *embedded.Config) { c.Sync = "2m" })
	// In-process, as cmd/eventmesh connects to its embedded server.
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		b.Fatal(err)
	}
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 2 * time.Minute}
	if _, err := streams.EnsureStream(ctx, js, streams.EventsStream(subjects, sc), log); err != nil {
		b.Fatal(err)
	}
	rows := benchPreload(b, js, benchEvents)

	var oursRates, bareRates, startups, batches []float64
	for i := range b.N {
		ours := func() {
			rate, d := benchOurs(b, js, open, rows, i == 0)
			oursRates = append(oursRates, rate)
			startups = append(startups, float64(d.startup)/float64(time.Millisecond))
			batches = append(batches, d.batch)
		}
		bare := func() { bareRates = append(bareRates, benchBare(b, open, rows)) }
		if i%2 == 0 {
			ours()
			bare()
		} else {
			bare()
			ours()
		}
	}
	b.ReportMetric(benchMedian(oursRates), "archiver-events/s")
	b.ReportMetric(benchMedian(bareRates), "bare-events/s")
	b.ReportMetric(benchMedian(oursRates)/benchMedian(bareRates), "ratio")
	b.ReportMetric(benchMedian(startups), "startup-ms")
	b.ReportMetric(benchMedian(batches), "events/batch")
}

// benchPreload publishes n distinct events (async, every ack awaited) and
// returns the rows the archiver writes for them: no consumer besides the
// archiver exists, so every one is unsubscribed.
func benchPreload(b *testing.B, js jetstream.JetStream, n int) []store.Event {
	base := time.Now().UTC().Truncate(time.Microsecond)
	events := make([]router.Event, n)
	futs := make([]jetstream.PubAckFuture, n)
	for i := range events {
		data := benchPayload(i)
		id, err := router.EventID(router.DefaultSource, "transport.messageReceived", data)
		if err != nil {
			b.Fatal(err)
		}
		events[i] = router.Event{ID: id, Namespace: "transport.messageReceived", Source: router.DefaultSource,
			Time: base.Add(time.Duration(i) * time.Microsecond), Origin: router.OriginWebhook, Data: data}
		if futs[i], err = js.PublishMsgAsync(events[i].Msg(subjects), jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	rows := make([]store.Event, n)
	for i, f := range futs {
		select {
		case ack := <-f.Ok():
			e := events[i]
			rows[i] = store.Event{ID: e.ID, Subject: subjects.Event(e.Namespace), Type: e.Namespace, Source: e.Source,
				Time: e.Time, StreamSeq: ack.Sequence, Origin: string(e.Origin), Headers: e.Header(), Data: e.Data,
				Unsubscribed: true}
		case err := <-f.Err():
			b.Fatal(err)
		case <-time.After(time.Minute):
			b.Fatal("no publish ack within a minute")
		}
	}
	return rows
}

// benchPayload is a Connector-shaped messageReceived data of about 1 KB
// whose id is n, so every event is distinct.
func benchPayload(n int) []byte {
	return fmt.Appendf(nil, `{"id":"MSG%017d","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],"subject":"Invoice","body":"%s","bodyFormat":"PlainText"},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdByDevice":"DVCh2Lk9PqR7sT1uV3wX","recipients":[{"address":"did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12","receivedAt":"2026-03-01T10:15:02.431Z","receivedByDevice":"DVCa1B2c3D4e5F6g7H8i","relationshipId":"RELm4N5o6P7q8R9s0T1u"}],"createdAt":"2026-03-01T10:15:00.120Z","attachments":["FILz9Y8x7W6v5U4t3S2r"]}`,
		n, strings.Repeat("x", 420))
}

// countingStore counts the events its store took and closes done once
// there are want of them; it notes when the first batch arrived and how
// many batches there were (diagnostics).
type countingStore struct {
	store.Store
	want     int64
	inserted atomic.Int64
	batches  atomic.Int64
	first    atomic.Int64 // UnixNano of the first InsertEvents call
	done     chan struct{}
}

func (c *countingStore) InsertEvents(ctx context.Context, events []store.Event) error {
	c.first.CompareAndSwap(0, time.Now().UnixNano())
	c.batches.Add(1)
	if err := c.Store.InsertEvents(ctx, events); err != nil {
		return err
	}
	if n := c.inserted.Add(int64(len(events))); n >= c.want && n-int64(len(events)) < c.want {
		close(c.done)
	}
	return nil
}

// benchOurs runs the archiver on a fresh store from Run until the store
// has taken every row, and returns events per second.
func benchOurs(b *testing.B, js jetstream.JetStream, open func(*testing.B) (store.Store, func()), rows []store.Event, check bool) (rate float64, d oursDiag) {
	st, closeStore := open(b)
	defer closeStore()
	cs := &countingStore{Store: st, want: int64(len(rows)), done: make(chan struct{})}
	reg := prometheus.NewRegistry()
	a, err := archiver.New(js, subjects, archiver.Config{BatchSize: benchBatch}, benchRuntimeConfig(), cs,
		consumers.NewMetrics(reg), reg, natstest.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	start := time.Now()
	go func() { a.Run(ctx); close(stopped) }()
	select {
	case <-cs.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("archiver took %d of %d events in 5 minutes", cs.inserted.Load(), len(rows))
	}
	rate = float64(len(rows)) / time.Since(start).Seconds()
	d = oursDiag{startup: time.Duration(cs.first.Load() - start.UnixNano()),
		batch: float64(cs.inserted.Load()) / float64(cs.batches.Load())}
	cancel()
	<-stopped
	if n := cs.inserted.Load(); n != int64(len(rows)) {
		b.Errorf("archiver inserted %d events, want %d (redeliveries?)", n, len(rows))
	}
	if check {
		// The bare side writes what the archiver wrote.
		for _, want := range []store.Event{rows[0], rows[len(rows)-1]} {
			got, err := st.Get(context.Background(), want.ID)
			if err != nil {
				b.Fatal(err)
			}
			if got.Subject != want.Subject || got.StreamSeq != want.StreamSeq || got.Unsubscribed != want.Unsubscribed ||
				!got.Time.Equal(want.Time) || len(got.Headers) != len(want.Headers) || string(got.Data) != string(want.Data) {
				b.Fatalf("archived %+v\nbare rows hold %+v", got, want)
			}
		}
	}
	// The next round starts from "all" again.
	if err := js.DeleteConsumer(context.Background(), streams.Events, archiver.Name); err != nil {
		b.Fatal(err)
	}
	return rate, d
}

// oursDiag is what one archiver round tells besides its rate: the time
// from Run to its first insert (stream and durable setup, first fetch),
// and the mean events per InsertEvents.
type oursDiag struct {
	startup time.Duration
	batch   float64
}

// benchBare inserts rows into a fresh store in batches, directly, and
// returns events per second.
func benchBare(b *testing.B, open func(*testing.B) (store.Store, func()), rows []store.Event) float64 {
	st, closeStore := open(b)
	defer closeStore()
	ctx := context.Background()
	start := time.Now()
	for batch := range slices.Chunk(rows, benchBatch) {
		if err := st.InsertEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	return float64(len(rows)) / time.Since(start).Seconds()
}

// benchRuntimeConfig is the runtime configuration's defaults (archiver
// start: all).
func benchRuntimeConfig() consumers.Config {
	return consumers.Config{Start: "all", AckWait: 30 * time.Second, MaxDeliver: 10, MaxAckPending: 1000, Concurrency: 16,
		Backoff: consumers.Schedule{5 * time.Second, 30 * time.Second, 2 * time.Minute}, Jitter: 0.2,
		BreakerThreshold: 5, BreakerFailureRatio: 0.5, BreakerMinEvents: 20, BreakerWindow: time.Minute,
		BreakerCooldown: 30 * time.Second, DrainTimeout: 30 * time.Second}
}

func benchMedian(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
