package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/cmd/internal/archiving"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
)

// runArchive: n events in the stream (published once, not timed); the
// archiver as eventmesh wires it (archiving.New: SQLite under DATA_DIR, or
// ARCHIVE_DSN) from its start until every event is stored and acked,
// against InsertEvents of the very rows it writes, in batches of 256,
// without NATS, into a fresh store of the same kind.
func (b *bencher) runArchive(ctx context.Context, run int) error {
	env, err := b.startStream(ctx)
	if err != nil {
		return err
	}
	defer env.close()
	n, base := b.events(), b.base()
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	events := make([]router.Event, n)
	for i := range events {
		data := message(base + int64(i))
		id, _ := router.EventID(router.DefaultSource, msgNS, data)
		events[i] = router.Event{ID: id, Namespace: msgNS, Source: router.DefaultSource,
			Time: t0.Add(time.Duration(i) * time.Microsecond), Origin: router.OriginWebhook, Data: data}
	}
	_, seqs, err := publish(ctx, env.js, b.subj, n, func(i int) router.Event { return events[i] })
	if err != nil {
		return err
	}
	last := seqs[len(seqs)-1]
	// The rows the archiver writes: no other consumer exists on this
	// server, so every event is flagged unsubscribed.
	rows := make([]store.Event, n)
	for i, e := range events {
		rows[i] = store.Event{ID: e.ID, Subject: b.subj.Event(e.Namespace), Type: e.Namespace, Source: e.Source, Time: e.Time,
			StreamSeq: seqs[i], Origin: string(e.Origin), Headers: e.Header(), Data: e.Data, Unsubscribed: true}
	}
	events = nil

	// ours runs the archiver into the store dsn names ("": SQLite under dir).
	ours := func(key, dsn, dir string) error {
		acfg, err := b.archiveConfig(dsn)
		if err != nil {
			return err
		}
		arch, err := archiving.New(ctx, env.js, b.subj, acfg, dir, consumers.NewMetrics(app.NewRegistry()), app.NewRegistry(), b.log)
		if err != nil {
			return err
		}
		defer arch.Close()
		start := time.Now()
		running := app.StartRuntimes(ctx, b.log, arch.Archiver)
		done, err := b.settled(ctx, env.js, "archive", []string{archiver.Name}, last)
		running.Stop()
		if err != nil {
			return err
		}
		b.add(key, float64(n)/done[0].Sub(start).Seconds())
		if err := deleteDurables(ctx, env.js, archiver.Name); err != nil {
			return err
		}
		err = env.js.DeleteConsumer(ctx, streams.Outcomes, archiver.OutcomesDurable)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		return nil
	}
	bare := func(key, dsn, dir string) error {
		st, err := store.Open(ctx, dsn, dir)
		if err != nil {
			return err
		}
		defer st.Close()
		start := time.Now()
		for batch := range slices.Chunk(rows, insertBatch) {
			if err := st.InsertEvents(ctx, batch); err != nil {
				return err
			}
		}
		b.add(key, float64(n)/time.Since(start).Seconds())
		return nil
	}
	err = both(run,
		func() error { return bare("archive_bare_sqlite", "", filepath.Join(env.dir, "bare")) },
		func() error { return ours("archive_sqlite", "", filepath.Join(env.dir, "ours")) })
	if err != nil || b.opt.Postgres == "" {
		return err
	}
	s1, s2 := schema(), schema()
	defer dropSchemas(b.opt.Postgres, s1, s2)
	return both(run,
		func() error { return bare("archive_bare_pg", searchPath(b.opt.Postgres, s1), "") },
		func() error { return ours("archive_pg", searchPath(b.opt.Postgres, s2), "") })
}

// PostgreSQL.

// schema returns the name of a fresh schema.
func schema() string {
	var r [6]byte
	rand.Read(r[:])
	return "eventmesh_bench_" + hex.EncodeToString(r[:])
}

// searchPath returns dsn with schema as its search_path.
func searchPath(dsn, schema string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}

// dropSchemas drops the schemas, as far as it can.
func dropSchemas(dsn string, schemas ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	for _, s := range schemas {
		conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+s+" CASCADE")
	}
}
