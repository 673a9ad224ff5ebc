package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkInsertEvents compares InsertEvents with its ceiling in the same
// run on the same database (machines are noisy; ratios within one run are
// not): the store inserts 1 KB events in batches of 256; the bare side
// inserts the same rows into a table of the same shape (the store's own
// migration: same columns, key and indexes) with a plain prepared INSERT
// per row in one transaction per batch, written directly with
// database/sql (SQLite) or pgx (PostgreSQL). Run it with
//
//	go test ./consumers/archiver/store -run '^$' -bench InsertEvents -benchtime 5x
//
// and EVENTMESH_TEST_POSTGRES set for the PostgreSQL rows. Each iteration
// measures both sides once; the reported rates are medians.
//
// PostgreSQL sends a batch in one of three ways (insertMode); the
// sub-benchmarks measure each. On the 2-core development machine
// (PostgreSQL 15 on loopback; medians of 7 rounds, SQLite of 9):
//
//	                  store-events/s   bare-rows/s   ratio
//	sqlite                    30,100        26,400    1.14
//	postgres/unnest           31,800         9,400    3.38
//	postgres/copy             28,400         8,100    3.52
//	postgres/batch            19,700         8,700    2.27
//
// (an earlier run: unnest 39,600, copy 28,100, batch 28,100 events/s), so
// unnest is the default. SQLite is bound by its fsync per commit
// (synchronous=FULL); that the store beats the bare loop there is most
// likely ON CONFLICT DO NOTHING settling a conflict before writing, so
// SQLite needs no statement journal, which a plain INSERT (conflict =
// ABORT) inside a transaction may open per row (not verified further).
// PostgreSQL's bare loop pays a round trip per row.
func BenchmarkInsertEvents(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), DefaultFile)
		s, err := OpenSQLite(path)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		bare := openBareSQLite(b, path)
		defer bare.Close()
		measure(b, s, func(batch []Event) error { return bareSQLiteInsert(bare, batch) })
	})
	for _, mode := range []struct {
		name string
		mode insertMode
	}{{"unnest", insertUnnest}, {"batch", insertBatch}, {"copy", insertCopy}} {
		b.Run("postgres/"+mode.name, func(b *testing.B) {
			dsn := postgresDSN(b)
			s, err := OpenPostgres(context.Background(), freshSchema(b, dsn))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.insert = mode.mode
			bare := openBarePostgres(b, freshSchema(b, dsn))
			defer bare.Close()
			measure(b, s, func(batch []Event) error { return barePostgresInsert(bare, batch) })
		})
	}
}

const (
	benchBatch   = 256
	benchBatches = 40 // per side and round: 10,240 events
)

var benchRound atomic.Int64

// measure runs b.N rounds, each inserting fresh events through the store
// and through bare, and reports the medians.
func measure(b *testing.B, s Store, bare func([]Event) error) {
	ctx := context.Background()
	var storeRates, bareRates []float64
	for i := range b.N {
		rate := func(insert func([]Event) error) float64 {
			events := benchEvents(benchRound.Add(1), benchBatch*benchBatches)
			start := time.Now()
			for batch := range slices.Chunk(events, benchBatch) {
				if err := insert(batch); err != nil {
					b.Fatal(err)
				}
			}
			return float64(len(events)) / time.Since(start).Seconds()
		}
		ours := func(batch []Event) error { return s.InsertEvents(ctx, batch) }
		// Alternate which side goes first, so neither always runs on the
		// heels of the other's garbage.
		if i%2 == 0 {
			bareRates = append(bareRates, rate(bare))
			storeRates = append(storeRates, rate(ours))
		} else {
			storeRates = append(storeRates, rate(ours))
			bareRates = append(bareRates, rate(bare))
		}
	}
	b.ReportMetric(median(storeRates), "store-events/s")
	b.ReportMetric(median(bareRates), "bare-rows/s")
	b.ReportMetric(median(storeRates)/median(bareRates), "ratio")
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// benchEvents returns n distinct events of round r, each with about 1 KB
// of Connector-shaped data and the headers the mesh sets.
func benchEvents(r int64, n int) []Event {
	now := time.Now()
	events := make([]Event, n)
	for i := range events {
		id := fmt.Sprintf("%016x%016x", r, i)
		data := fmt.Sprintf(`{"id":"MSG%017d","isOwn":false,"content":{"@type":"Mail","to":["did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"],"subject":"Invoice","body":"%s","bodyFormat":"PlainText"},"createdBy":"did:e:bb.example.org:dids:4be2f1d0c9a8b7e6d5c4b3","createdByDevice":"DVCh2Lk9PqR7sT1uV3wX","recipients":[{"address":"did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12","receivedAt":"2026-03-01T10:15:02.431Z","receivedByDevice":"DVCa1B2c3D4e5F6g7H8i","relationshipId":"RELm4N5o6P7q8R9s0T1u"}],"createdAt":"2026-03-01T10:15:00.120Z","attachments":["FILz9Y8x7W6v5U4t3S2r"]}`,
			i, strings.Repeat("x", 420))
		t := now.Add(time.Duration(i) * time.Microsecond)
		events[i] = Event{
			ID: id, Subject: "enmeshed.transport.messageReceived", Type: "transport.messageReceived",
			Source: "enmeshed-connector", Time: t, StreamSeq: uint64(r)<<32 | uint64(i), Origin: "webhook",
			Headers: map[string][]string{
				"ce-specversion": {"1.0"}, "ce-id": {id}, "ce-type": {"transport.messageReceived"},
				"ce-source": {"enmeshed-connector"}, "ce-time": {t.UTC().Format(time.RFC3339Nano)},
				"ce-datacontenttype": {"application/json"}, "Nats-Msg-Id": {id}, "eventmesh-origin": {"webhook"},
			},
			Data: []byte(data), ArchivedAt: now,
		}
	}
	return events
}

// openBareSQLite opens a second connection to the store's file, with the
// store's connection settings, and creates bare_events: the store's events
// table and indexes under another name. One file for both sides keeps the
// comparison off the file system's luck (two identical loops into two
// files differed by up to 25% here) and shares WAL checkpoints between
// them.
func openBareSQLite(b *testing.B, path string) *sql.DB {
	db, err := sql.Open("sqlite", path+"?"+sqliteWriterParams)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for _, stmt := range sqliteMigrations[1] {
		if strings.Contains(stmt, "outcomes") {
			continue
		}
		if _, err := db.Exec(strings.ReplaceAll(stmt, "events", "bare_events")); err != nil {
			b.Fatal(err)
		}
	}
	return db
}

func bareSQLiteInsert(db *sql.DB, batch []Event) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.Prepare(`INSERT INTO bare_events (` + eventColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, e := range batch {
		h, err := marshalHeaders(e.Headers)
		if err != nil {
			return err
		}
		if _, err := stmt.Exec(e.ID, e.Subject, e.Type, e.Source, e.Time.UnixMicro(), int64(e.StreamSeq), e.Origin, string(h), e.Data,
			e.Unsubscribed, e.ArchivedAt.UnixMicro()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// openBarePostgres connects to a schema of its own holding the store's
// events table.
func openBarePostgres(b *testing.B, dsn string) *pgxpool.Pool {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	if err := createSchema(ctx, cfg.ConnConfig.Copy(), firstSchema(cfg.ConnConfig.RuntimeParams["search_path"])); err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, stmt := range postgresMigrations[1] {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			b.Fatal(err)
		}
	}
	return pool
}

func barePostgresInsert(pool *pgxpool.Pool, batch []Event) error {
	ctx := context.Background()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, e := range batch {
			h, err := marshalHeaders(e.Headers)
			if err != nil {
				return err
			}
			// pgx prepares the statement once per connection and caches it.
			if _, err := tx.Exec(ctx, postgresInsertEventPlain, e.ID, e.Subject, e.Type, e.Source, e.Time, int64(e.StreamSeq),
				e.Origin, string(h), e.Data, e.Unsubscribed, e.ArchivedAt); err != nil {
				return err
			}
		}
		return nil
	})
}

const postgresInsertEventPlain = `INSERT INTO events (` + eventColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`
