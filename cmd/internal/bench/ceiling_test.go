package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	_ "modernc.org/sqlite"
)

// The ceiling processes of the process benchmarks: this test binary,
// started again with roleEnv set, serves one of them on roleAddrEnv
// (POST /events, GET /readyz) with its data under roleDirEnv, until
// SIGTERM.
const (
	roleEnv     = "EVENTMESH_BENCH_ROLE"
	roleAddrEnv = "EVENTMESH_BENCH_ADDR"
	roleDirEnv  = "EVENTMESH_BENCH_DIR"

	// roleBareHTTP drains the body and answers 202: the ceiling of any
	// HTTP handler.
	roleBareHTTP = "bare-http"
	// roleMinimal is the minimal reply-after-ack process: an embedded
	// nats-server as eventmesh embeds it (NATS_SYNC=2m), the ENMESHED
	// stream with its defaults, and a handler that reads the body,
	// publishes it raw with a fresh Nats-Msg-Id, waits for the ack and
	// answers.
	roleMinimal = "minimal"
	// roleMinimalSQLite is roleMinimal plus a bare batched insert loop in
	// the same process: a durable pull consumer, batches of
	// ARCHIVE_BATCH_SIZE (256) inserted into one SQLite table keyed by
	// the event id (no other index, synchronous=FULL, WAL), each message
	// acknowledged after its batch commits.
	roleMinimalSQLite = "minimal-sqlite"
	// roleBareWebhook is the bare pull-and-POST loop of
	// BenchmarkProcessWebhook: the durable bareDurableEnv describes (JSON)
	// on NATS_URL, bareConcurrencyEnv pulled and POSTed at once to
	// WEBHOOK_URL; it serves only GET /readyz.
	roleBareWebhook    = "bare-webhook"
	bareDurableEnv     = "EVENTMESH_BENCH_DURABLE"
	bareConcurrencyEnv = "EVENTMESH_BENCH_CONCURRENCY"
	// roleBareBridge is the bare client of BenchmarkProcessBridge
	// (serveBareBridge): it publishes to BRIDGE_URL as the bridge does,
	// bareConcurrencyEnv at once, and answers GET /done once every
	// publish is confirmed.
	roleBareBridge = "bare-bridge"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		if err := serveRole(role, os.Getenv(roleAddrEnv), os.Getenv(roleDirEnv)); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveRole serves role on addr until SIGTERM or SIGINT.
func serveRole(role, addr, dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(http.ResponseWriter, *http.Request) {})
	switch role {
	case roleBareHTTP:
		var n atomic.Int64
		mux.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			// Ingest's shape, with an id of its own: the load generator counts ids.
			fmt.Fprintf(w, `{"id":"%d","status":"accepted"}`, n.Add(1))
		})
	case roleMinimal, roleMinimalSQLite:
		js, closeServer, err := minimalStream(ctx, dir)
		if err != nil {
			return err
		}
		defer closeServer()
		if role == roleMinimalSQLite {
			done, err := bareInsertLoop(ctx, js, dir)
			if err != nil {
				return err
			}
			defer func() { <-done }()
		}
		subject := router.MustSubjects(router.DefaultPrefix).Event("transport.messageReceived")
		mux.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			id := nuid.Next()
			msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{jetstream.MsgIDHeader: {id}}}
			ack, err := js.PublishMsg(r.Context(), msg)
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"id":%q,"status":"accepted","stream_seq":%d}`, id, ack.Sequence)
		})
	case roleBareWebhook:
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		failed := make(chan error, 1)
		go func() {
			err := bareWebhook(ctx)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bare-webhook:", err)
			}
			failed <- err
			cancel()
		}()
		defer func() { <-failed }()
	case roleBareBridge:
		serveBareBridge(ctx, mux)
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); srv.Shutdown(context.Background()) }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// minimalStream starts the embedded nats-server with eventmesh's defaults
// except NATS_SYNC=2m, under dir, and sets up the ENMESHED stream with its
// defaults.
func minimalStream(ctx context.Context, dir string) (jetstream.JetStream, func(), error) {
	log := slog.New(slog.DiscardHandler)
	srv, err := embedded.Start(embedded.Config{Embedded: true, Listen: "127.0.0.1:0", Sync: "2m", DataDir: dir,
		MaxStore: 4 << 30, MaxMemory: 256 << 20, MaxPayload: 1 << 20, StoreCipher: "chacha"}, log)
	if err != nil {
		return nil, nil, err
	}
	nc, err := srv.Connect()
	if err != nil {
		srv.Shutdown()
		return nil, nil, err
	}
	closeAll := func() { nc.Close(); srv.Shutdown() }
	js, err := jetstream.New(nc)
	if err == nil {
		sc := streams.StreamConfig{Replicas: 1, MaxAge: 7 * 24 * time.Hour, MaxBytes: 1 << 30, DuplicateWindow: 2 * time.Minute}
		_, err = streams.EnsureStream(ctx, js, streams.EventsStream(router.MustSubjects(router.DefaultPrefix), sc), log)
	}
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return js, closeAll, nil
}

// bareInsertLoop reads ENMESHED through a durable and inserts the events
// in batches of insertBatch into SQLite under dir until ctx ends; done is
// closed once it has stopped.
func bareInsertLoop(ctx context.Context, js jetstream.JetStream, dir string) (done chan struct{}, err error) {
	db, err := sql.Open("sqlite", filepath.Join(dir, "bare.db")+
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, data BLOB NOT NULL)`); err != nil {
		db.Close()
		return nil, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.Events, jetstream.ConsumerConfig{Durable: "bare-insert",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 4 * insertBatch})
	if err != nil {
		db.Close()
		return nil, err
	}
	msgs := make(chan jetstream.Msg, 2*insertBatch)
	cc, err := cons.Consume(func(m jetstream.Msg) { msgs <- m }, jetstream.PullMaxMessages(2*insertBatch))
	if err != nil {
		db.Close()
		return nil, err
	}
	done = make(chan struct{})
	go func() {
		defer close(done)
		defer db.Close()
		defer cc.Stop()
		batch := make([]jetstream.Msg, 0, insertBatch)
		for {
			batch = batch[:0]
			select {
			case <-ctx.Done():
				return
			case m := <-msgs:
				batch = append(batch, m)
			}
		fill:
			for len(batch) < insertBatch {
				select {
				case m := <-msgs:
					batch = append(batch, m)
				default:
					break fill
				}
			}
			if err := insertAll(ctx, db, batch); err != nil {
				fmt.Fprintln(os.Stderr, "insert:", err)
				continue // redelivered after AckWait
			}
			for _, m := range batch {
				m.Ack()
			}
		}
	}()
	return done, nil
}

// insertAll inserts batch in one transaction.
func insertAll(ctx context.Context, db *sql.DB, batch []jetstream.Msg) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO events (id, data) VALUES (?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return err
	}
	for _, m := range batch {
		if _, err := st.ExecContext(ctx, m.Headers().Get(jetstream.MsgIDHeader), m.Data()); err != nil {
			return err
		}
	}
	return tx.Commit()
}
