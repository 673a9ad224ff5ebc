// Package archiving wires the archiver for the binaries that run it
// (archiver, eventmesh): the archive store, the archive consumer and the
// read-only archive HTTP API. It links the SQLite and PostgreSQL drivers,
// so only those binaries import it.
package archiving

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventmesh/eventmesh/cmd/internal/app"
	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is what the archiver reads.
type Config struct {
	Archive archiver.Config
	Runtime consumers.Config `envPrefix:"ARCHIVE_"`
}

// Validate checks both parts.
func (c Config) Validate() error {
	return errors.Join(c.Archive.Validate(), c.Runtime.Validate("ARCHIVE_"), c.tls().Validate("ARCHIVE_TLS"))
}

// tls is the certificate and key of the archive API.
func (c Config) tls() app.TLSFiles {
	return app.TLSFiles{Cert: c.Archive.TLSCert, Key: c.Archive.TLSKey}
}

// Archive is a running archiver's parts that need closing.
type Archive struct {
	Archiver *archiver.Archiver
	Store    store.Store
	HTTP     *app.HTTPServer // nil when ARCHIVE_ADDR is empty
}

// New opens the store (ARCHIVE_DSN, else dataDir/archive.db) and builds
// the archiver and its read-only HTTP API on ARCHIVE_ADDR. m are the
// runtime metrics shared by the process's consumers, reg takes the
// archiver's own.
func New(ctx context.Context, js jetstream.JetStream, s router.Subjects, c Config, dataDir string, m *consumers.Metrics, reg *prometheus.Registry, log *slog.Logger) (*Archive, error) {
	st, err := store.Open(ctx, c.Archive.DSN, dataDir)
	if err != nil {
		return nil, fmt.Errorf("archive store (ARCHIVE_DSN): %w", err)
	}
	a, err := archiver.New(js, s, c.Archive, c.Runtime, st, m, reg, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	out := &Archive{Archiver: a, Store: st}
	if c.Archive.Addr != "" {
		tlsConfig, err := c.tls().Config("ARCHIVE_TLS")
		if err != nil {
			st.Close()
			return nil, err
		}
		if out.HTTP, err = app.Listen("ARCHIVE_ADDR", c.Archive.Addr, archiver.Handler(st, c.Archive.APIKey), log, tlsConfig); err != nil {
			st.Close()
			return nil, err
		}
	}
	return out, nil
}

// Close stops the HTTP API and closes the store (after the archiver stopped).
func (a *Archive) Close() {
	if a.HTTP != nil {
		a.HTTP.Shutdown(5 * time.Second)
	}
	a.Store.Close()
}
