// Package producing wires the producer for the binaries that run it
// (producer, eventmesh): the ENMESHED stream, the ingest endpoint, the
// Connector sync poller and the SQL event-table source. It links the SQL
// drivers of that source, so only those binaries import it.
package producing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/connector"
	"github.com/eventmesh/eventmesh/producer"
	"github.com/eventmesh/eventmesh/producer/sqlsource"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is what the producer reads (cmd/producer, cmd/eventmesh).
type Config struct {
	Prefix    streams.PrefixConfig
	Stream    streams.StreamConfig
	Publish   producer.PublisherConfig
	Ingest    producer.IngestConfig
	Connector connector.Config
	Sync      producer.SyncConfig
	SQL       sqlsource.Config
	// StreamWatch is how often the producer looks for a deleted ENMESHED
	// to set it up again (0: streams.KeepStreamEvery); tests shorten it.
	StreamWatch time.Duration
}

// Validate checks every part.
func (c Config) Validate() error {
	err := errors.Join(c.Prefix.Validate(), c.Stream.Validate(), c.Publish.Validate(), c.Ingest.Validate(), c.Connector.Validate())
	if c.Connector.Enabled() {
		err = errors.Join(err, c.Sync.Validate(c.Stream.DuplicateWindow))
	}
	if c.SQL.Enabled() {
		err = errors.Join(err, c.SQL.Validate(c.Stream.DuplicateWindow))
	}
	return err
}

// Producer is the running producer: the ENMESHED stream ensured, the
// ingest endpoint serving.
type Producer struct {
	HTTP     *app.HTTPServer
	Stream   jetstream.Stream
	Poller   *producer.Poller // nil without CONNECTOR_URL
	log      *slog.Logger
	stop     context.CancelFunc
	done     chan struct{}
	keepDone chan struct{} // the ENMESHED keeper has stopped
	sqlDone  chan struct{} // nil without SQL_SOURCE_DSN
	watched  chan struct{} // the stream watch ended
}

// StreamWatchEvery is how often the producer refreshes the stream gauges
// and checks the fill thresholds: one stream info request.
const StreamWatchEvery = 5 * time.Second

// Start ensures the ENMESHED stream (the producer owns it) and
// starts the ingest endpoint on c.Ingest.Addr.
// extraReady are further readiness checks for /readyz (eventmesh adds its
// consumers', so a new webhook durable exists before it reports ready).
func Start(ctx context.Context, c Config, nc *nats.Conn, reg *prometheus.Registry, log *slog.Logger, extraReady ...func(context.Context) error) (*Producer, error) {
	subjects, err := c.Prefix.Subjects()
	if err != nil {
		return nil, err
	}
	js, err := streams.NewJetStream(nc, log)
	if err != nil {
		return nil, err
	}
	var st jetstream.Stream
	def := streams.EventsStream(subjects, c.Stream)
	err = streams.Retry(ctx, log, "stream "+streams.Events, func(ctx context.Context) (err error) {
		st, err = streams.EnsureStream(ctx, js, def, log)
		return err
	})
	if err != nil {
		return nil, err
	}
	maxBody, err := c.Ingest.BodyLimit(nc.MaxPayload())
	if err != nil {
		return nil, err
	}
	pub := producer.NewPublisher(js, subjects, c.Publish, log)
	ingest := producer.NewIngest(pub, c.Ingest, maxBody, producer.NewMetrics(reg), log)
	mux := http.NewServeMux()
	ingest.Register(mux)
	p := &Producer{Stream: st, log: log, done: make(chan struct{}), keepDone: make(chan struct{}), watched: make(chan struct{})}
	pctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.stop = stop
	// The producer owns ENMESHED: a deleted stream is set up again within
	// seconds, at once when a publish finds it missing.
	lookNow := make(chan struct{}, 1)
	pub.OnNoStream(func() {
		select {
		case lookNow <- struct{}{}:
		default:
		}
	})
	go func() { defer close(p.keepDone); streams.KeepStream(pctx, js, def, c.StreamWatch, lookNow, log) }()
	watch := producer.NewStreamWatch(reg, log)
	go func() { defer close(p.watched); watch.Run(pctx, st, StreamWatchEvery) }()
	if c.Connector.Enabled() {
		client, err := connector.New(c.Connector, log)
		if err != nil {
			stop()
			return nil, err
		}
		sc := c.Sync
		sc.Replicas = c.Stream.Replicas
		p.Poller = producer.NewPoller(client, pub, js, c.Ingest.ConnectorID, sc, reg, log)
		go func() { defer close(p.done); p.Poller.Run(pctx) }()
		// The poller's health is its own: never in /readyz, which gates the
		// ingest endpoint that must keep taking the Connector's webhooks.
		mux.HandleFunc("GET /sync/status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(p.Poller.Status())
		})
	} else {
		close(p.done)
	}
	if c.SQL.Enabled() {
		src, err := sqlsource.New(c.SQL, pub, reg, log)
		if err != nil {
			stop()
			return nil, err
		}
		p.sqlDone = make(chan struct{})
		go func() { defer close(p.sqlDone); defer src.Close(); src.Run(pctx) }()
	}
	streamReady := readyCheck(nc, js, streams.Events)
	app.Ops(mux, reg, func(ctx context.Context) error {
		if err := streamReady(ctx); err != nil {
			return err
		}
		for _, ready := range extraReady {
			if err := ready(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		producer.WriteError(w, http.StatusNotFound, producer.CodeNotFound, "no such endpoint: POST /events, /events/{trigger}, /connectors/{connector}/events[/{trigger}]")
	})
	tlsConfig, err := app.TLSFiles{Cert: c.Ingest.TLSCert, Key: c.Ingest.TLSKey}.Config("INGEST_TLS")
	if err != nil {
		stop()
		return nil, err
	}
	srv, err := app.Listen("INGEST_ADDR", c.Ingest.Addr, mux, log, tlsConfig)
	if err != nil {
		stop()
		return nil, err
	}
	p.HTTP = srv
	scheme := "http://"
	if tlsConfig != nil {
		scheme = "https://"
	}
	log.Info("ingest ready", "url", scheme+srv.Addr()+"/events", "max_body", maxBody, "auth", len(c.Ingest.Keys()) > 0)
	return p, nil
}

// Shutdown stops the poller and then ingest, after the requests in flight
// have been answered.
func (p *Producer) Shutdown() {
	p.stop()
	<-p.done
	<-p.watched
	<-p.keepDone
	if p.sqlDone != nil {
		<-p.sqlDone
	}
	if err := p.HTTP.Shutdown(30 * time.Second); err != nil {
		p.log.Warn("ingest shutdown", "err", err)
	}
}

// readyCheck is ready when the connection is up and the stream answers.
// Results are cached for a second so probes cannot load the server.
func readyCheck(nc *nats.Conn, js jetstream.JetStream, stream string) func(context.Context) error {
	var (
		mu      sync.Mutex
		last    time.Time
		lastErr error
	)
	return func(ctx context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("NATS %s", nc.Status())
		}
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < time.Second {
			return lastErr
		}
		_, lastErr = js.Stream(ctx, stream)
		if lastErr != nil {
			lastErr = fmt.Errorf("stream %s: %w", stream, lastErr)
		}
		last = time.Now()
		return lastErr
	}
}
