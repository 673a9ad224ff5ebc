// Package store keeps the archive: every event of the mesh and what each
// consumer did with it (its outcomes), in SQLite (the default, one file
// under DATA_DIR) or PostgreSQL (production).
//
// Both backends implement Store and pass one conformance suite
// (store_test.go), so they answer every query alike. Two things follow:
// times are kept to the microsecond (PostgreSQL's resolution; SQLite stores
// the same truncation), and identifiers order bytewise (PostgreSQL columns
// use COLLATE "C", SQLite's default BINARY collation does the same).
//
// Writes are idempotent: events are keyed by ce-id and outcomes by
// (consumer, event id, attempt, result), so a redelivered message never
// duplicates a row and the archiver may insert first and ack after.
package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Event is one archived event.
type Event struct {
	ID        string    // ce-id, the key
	Subject   string    // the subject it was archived from
	Type      string    // ce-type: the namespace, e.g. transport.messageReceived
	Source    string    // ce-source
	Time      time.Time // ce-time, kept to the microsecond, UTC
	StreamSeq uint64    // sequence in ENMESHED
	Origin    string    // eventmesh-origin: webhook, sync, sql or replay
	// Headers are the message's headers as received. Stored as JSON, so a
	// nil map reads back nil and an empty one empty.
	Headers map[string][]string
	// Data is the event's data JSON as the Connector sent it; nil when the
	// event had no data (an empty slice is stored as nil too).
	Data []byte
	// Unsubscribed is set when no consumer besides the archiver matched
	// the event.
	Unsubscribed bool
	// ArchivedAt is when the archiver stored the event; InsertEvents sets
	// it to the current time when zero. Prune's age limit applies to it.
	ArchivedAt time.Time
	// Outcomes are filled by Get, and by Query with Filter.WithOutcomes,
	// ordered by time. InsertEvents ignores them.
	Outcomes []Outcome
}

// Outcome is what one consumer did with one event on one attempt.
type Outcome struct {
	Consumer string // durable name
	EventID  string // ce-id of the event
	Result   string // ResultDelivered, ResultRetried, ResultDeadLettered or ResultPaused
	Attempt  int    // delivery attempt, from 1
	Error    string // why it failed, "" on success
	Time     time.Time
}

// Outcome results, as the consumer runtime writes them, plus the
// pseudo-result Unsubscribed that Filter.Outcome accepts.
const (
	ResultDelivered    = "delivered"
	ResultRetried      = "retried"
	ResultDeadLettered = "dead_lettered"
	ResultPaused       = "paused"
	// Unsubscribed selects events no consumer besides the archiver
	// matched (Event.Unsubscribed); it is not an outcome of its own.
	Unsubscribed = "unsubscribed"
)

// Page sizes of Query.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Filter selects events for Query. Zero fields select everything; set
// fields must all hold (AND).
type Filter struct {
	// Type is a NATS-style pattern on the namespace: exact
	// ("transport.messageReceived"), "*" for exactly one token
	// ("transport.*" matches transport.messageSent, not
	// transport.a.b), ">" as the last token for one or more
	// ("transport.>"). "" selects all.
	Type string
	// Source is ce-source, exactly.
	Source string
	// Since and Until bound Time: Since <= Time < Until, to the
	// microsecond. A zero bound is open.
	Since, Until time.Time
	// ID is ce-id, exactly.
	ID string
	// Outcome selects events having an outcome with this result
	// (ResultDeadLettered, ResultDelivered, …) from any consumer, or, for
	// Unsubscribed, events no consumer matched.
	Outcome string
	// Peer selects events whose data contains this address as a JSON
	// string ("did:e:…"), quotes included, so an address never matches a
	// longer one it is a prefix of. Matched bytewise: no wildcards, case
	// sensitive.
	Peer string
	// Cursor continues after the previous Page (its Next); "" starts at
	// the beginning.
	Cursor string
	// Limit is the page size: DefaultLimit when zero or negative, at
	// most MaxLimit (larger values are lowered to it).
	Limit int
	// WithOutcomes fills each event's Outcomes.
	WithOutcomes bool
}

// Page is one page of Query's answer.
type Page struct {
	Events []Event // ordered by (Time, ID)
	Next   string  // cursor of the next page; "" on the last page
}

// Store is the archive. Implementations are safe for concurrent use.
type Store interface {
	// InsertEvents writes events in one transaction, idempotent on ID:
	// a redelivered event never duplicates a row and the first copy wins.
	InsertEvents(ctx context.Context, events []Event) error
	// InsertOutcomes writes outcomes in one transaction, idempotent on
	// (consumer, event id, attempt, result). An outcome may arrive before
	// its event.
	InsertOutcomes(ctx context.Context, outcomes []Outcome) error
	// Query returns one page of the events f selects, ordered by
	// (Time, ID) ascending; f.Cursor continues after a previous page.
	// A malformed filter wraps ErrBadFilter, a malformed cursor
	// ErrBadCursor.
	Query(ctx context.Context, f Filter) (Page, error)
	// Get returns one event with its outcomes ordered by time; an
	// unknown id wraps ErrNotFound.
	Get(ctx context.Context, id string) (Event, error)
	// Activity counts, in buckets of step (whole seconds, aligned to
	// multiples of step since the Unix epoch) from the bucket holding
	// since up to until, the events by Time and the outcomes by their
	// time, consumer and result: the console's chart. Buckets without any
	// are left out; tallies are ordered by bucket, consumer, result.
	Activity(ctx context.Context, since, until time.Time, step time.Duration) ([]Tally, error)
	// ErasePeer deletes every event whose data contains address (matched
	// as Filter.Peer does) and those events' outcomes, and returns how
	// many of each it deleted: the right to erasure.
	ErasePeer(ctx context.Context, address string) (events, outcomes int64, err error)
	// Prune deletes events archived before before (zero: no age limit)
	// and, when maxEvents > 0, the oldest (by ArchivedAt, then ID) beyond
	// that count, with their outcomes; and outcomes older than before
	// whose event never arrived. It returns the number of events deleted.
	Prune(ctx context.Context, before time.Time, maxEvents int64) (int64, error)
	// Close releases the store's connections.
	Close() error
}

// Errors of the store, checked with errors.Is.
var (
	ErrNotFound  = errors.New("event not found in the archive")
	ErrBadCursor = errors.New("invalid cursor: pass Next of the previous page unchanged")
	ErrBadFilter = errors.New("invalid filter")
	// ErrNoStore is OpenExisting's answer where there is no archive.
	ErrNoStore = errors.New("no archive")
)

// DefaultFile is the SQLite archive's file name under the data directory.
const DefaultFile = "archive.db"

// Open opens the store a DSN (ARCHIVE_DSN) names:
//
//	postgres://…, postgresql://…   PostgreSQL (see OpenPostgres)
//	sqlite:PATH, or a plain PATH   SQLite file at PATH
//	""                             SQLite file archive.db under dataDir (created if
//	                               missing; the working directory when dataDir is "")
//
// Any other URL scheme is an error.
func Open(ctx context.Context, dsn, dataDir string) (Store, error) {
	return open(ctx, dsn, dataDir, true)
}

// OpenExisting opens the store as Open does, but only one that exists: it
// creates no directory, SQLite file, PostgreSQL schema or table (it does
// bring an older archive's schema up to date). Where there is no archive
// the error wraps ErrNoStore and says where it looked. For the commands
// that read the archive or erase from it.
func OpenExisting(ctx context.Context, dsn, dataDir string) (Store, error) {
	return open(ctx, dsn, dataDir, false)
}

func open(ctx context.Context, dsn, dataDir string, create bool) (Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		pg, err := openPostgres(ctx, dsn, create)
		if err != nil {
			return nil, err
		}
		return pg, nil
	case dsn == "":
		if dataDir != "" && create {
			if err := os.MkdirAll(dataDir, 0o750); err != nil {
				return nil, fmt.Errorf("archive: data directory: %w", err)
			}
		}
		return openSQLiteStore(filepath.Join(dataDir, DefaultFile), create)
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLiteStore(strings.TrimPrefix(dsn, "sqlite:"), create)
	case strings.Contains(dsn, "://"):
		scheme, _, _ := strings.Cut(dsn, "://")
		return nil, fmt.Errorf("archive DSN: unsupported scheme %q: use postgres://…, postgresql://…, sqlite:PATH or a file path", scheme)
	default:
		return openSQLiteStore(dsn, create)
	}
}

// openSQLiteStore keeps a failed open from becoming a non-nil Store
// holding a nil *SQLite; without create, a missing file is ErrNoStore.
func openSQLiteStore(path string, create bool) (Store, error) {
	if !create && path != "" {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
			return nil, fmt.Errorf("%w at %s (no such file)", ErrNoStore, path)
		}
	}
	s, err := OpenSQLite(path)
	if err != nil {
		return nil, err
	}
	return s, nil
}
