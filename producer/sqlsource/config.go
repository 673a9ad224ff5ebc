package sqlsource

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/router"
)

// Config configures the SQL event-table source. The source runs only when
// SQL_SOURCE_DSN is set.
type Config struct {
	DSN          string        `env:"SQL_SOURCE_DSN" secret:"true" desc:"database holding the event table: postgres://… (?search_path=schema picks a schema) or a SQLite file path (sqlite:PATH also works); the SQL source runs only when this is set"`
	Name         string        `env:"SQL_SOURCE_NAME" envDefault:"app" desc:"the application's name: ce-source of its events and the second subject token (<prefix>.<name>.<entity>.<verb>); unique per event table, since ce-id hashes it with the table and row id"`
	Table        string        `env:"SQL_SOURCE_TABLE" envDefault:"eventmesh_events" desc:"the event table (also the LISTEN/NOTIFY channel on PostgreSQL); an unquoted identifier"`
	ArchiveTable string        `env:"SQL_SOURCE_ARCHIVE_TABLE" envDefault:"eventmesh_events_archive" desc:"where published and failed rows move, with their final status and reason"`
	PollInterval time.Duration `env:"SQL_SOURCE_POLL_INTERVAL" envDefault:"1s" desc:"how often the event table is polled when no notification woke the source (PostgreSQL's LISTEN/NOTIFY wakes it at once; SQLite only polls)"`
	Batch        int           `env:"SQL_SOURCE_BATCH" envDefault:"100" desc:"rows claimed per round (all ready rows of an entity key are claimed together, up to this many)"`
	Lease        time.Duration `env:"SQL_SOURCE_LEASE" envDefault:"30s" desc:"how long claimed rows belong to this producer; rows of a producer that died are taken over after it (and republished: keep it well inside STREAM_DUPLICATE_WINDOW)"`
	RereadQuery  string        `env:"SQL_SOURCE_REREAD_QUERY" desc:"optional query whose one parameter ($1) is the entity key and whose one JSON column is the entity's current state, published instead of the row's payload (no row or NULL, e.g. after a delete: the payload is published)"`
	Owner        string        `env:"SQL_SOURCE_OWNER" desc:"this producer's name in claim_owner, which adds #<6 random hex digits per start> (default: hostname-pid)"`
}

// Dialects of the event table's database.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// Enabled reports whether the source should run (SQL_SOURCE_DSN is set).
func (c Config) Enabled() bool { return c.DSN != "" }

// identifier is what SQL_SOURCE_TABLE and SQL_SOURCE_ARCHIVE_TABLE accept:
// an unquoted identifier that PostgreSQL does not fold (lower case) and
// that fits its 63-byte limit with the suffixes the DDL appends.
var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// Validate checks every setting; errors name the variable. A row taken
// over from a producer that died is published again about SQL_SOURCE_LEASE
// after its first publication, so the lease must stay well inside the
// stream's duplicate window for the stream to drop the copy;
// duplicateWindow 0 skips that check (eventmesh sql-source init). An empty
// SQL_SOURCE_DSN is no error: the source is then off.
func (c Config) Validate(duplicateWindow time.Duration) error {
	var errs []error
	if c.DSN != "" {
		if _, err := DialectOf(c.DSN); err != nil {
			errs = append(errs, err)
		}
	}
	if err := router.ValidateToken(c.Name); err != nil {
		errs = append(errs, fmt.Errorf("SQL_SOURCE_NAME: %w", err))
	}
	if !identifier.MatchString(c.Table) {
		errs = append(errs, fmt.Errorf("SQL_SOURCE_TABLE %q: want an unquoted lower-case identifier of at most 48 bytes ([a-z_][a-z0-9_]*); pick the schema with search_path in SQL_SOURCE_DSN", c.Table))
	}
	if !identifier.MatchString(c.ArchiveTable) {
		errs = append(errs, fmt.Errorf("SQL_SOURCE_ARCHIVE_TABLE %q: want an unquoted lower-case identifier of at most 48 bytes ([a-z_][a-z0-9_]*)", c.ArchiveTable))
	}
	if c.Table == c.ArchiveTable {
		errs = append(errs, fmt.Errorf("SQL_SOURCE_ARCHIVE_TABLE %q must differ from SQL_SOURCE_TABLE", c.ArchiveTable))
	}
	if c.PollInterval < 10*time.Millisecond || c.PollInterval > time.Hour {
		errs = append(errs, fmt.Errorf("SQL_SOURCE_POLL_INTERVAL %s: want 10ms to 1h", c.PollInterval))
	}
	if c.Batch < 1 || c.Batch > 10000 {
		errs = append(errs, fmt.Errorf("SQL_SOURCE_BATCH %d: want 1 to 10000", c.Batch))
	}
	if c.Lease < time.Second {
		errs = append(errs, fmt.Errorf("SQL_SOURCE_LEASE %s: want at least 1s", c.Lease))
	} else if duplicateWindow > 0 && 2*(c.Lease+c.PollInterval) > duplicateWindow {
		errs = append(errs, fmt.Errorf("SQL_SOURCE_LEASE %s (plus SQL_SOURCE_POLL_INTERVAL %s) is not well inside STREAM_DUPLICATE_WINDOW %s (want at most half of it): "+
			"rows taken over from a producer that died would be published twice", c.Lease, c.PollInterval, duplicateWindow))
	}
	if c.RereadQuery != "" && strings.TrimSpace(c.RereadQuery) == "" {
		errs = append(errs, errors.New("SQL_SOURCE_REREAD_QUERY is blank: unset it or give a query"))
	}
	if len(c.Owner) > 200 {
		errs = append(errs, fmt.Errorf("SQL_SOURCE_OWNER is %d bytes long: want at most 200", len(c.Owner)))
	}
	return errors.Join(errs...)
}

// DialectOf returns the dialect of dsn: Postgres for postgres:// and
// postgresql:// URLs, SQLite for sqlite:PATH and plain file paths.
func DialectOf(dsn string) (string, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, nil
	case dsn == "":
		return "", errors.New("SQL_SOURCE_DSN is empty")
	case strings.HasPrefix(dsn, "sqlite:"):
		return SQLite, nil
	case strings.Contains(dsn, "://"):
		scheme, _, _ := strings.Cut(dsn, "://")
		return "", fmt.Errorf("SQL_SOURCE_DSN: unsupported scheme %q: use postgres://…, postgresql://…, sqlite:PATH or a file path", scheme)
	}
	return SQLite, nil
}

// sqlitePath returns the file path of a SQLite DSN.
func sqlitePath(dsn string) (string, error) {
	path := strings.TrimPrefix(dsn, "sqlite:")
	if path == "" || strings.ContainsRune(path, '?') {
		return "", fmt.Errorf("SQL_SOURCE_DSN: SQLite path %q: must be a non-empty file path without '?'", path)
	}
	return path, nil
}

// DefaultOwner is the owner when SQL_SOURCE_OWNER is unset: the host
// name and the process id, so two producers on one host differ too.
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "eventmesh"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}
