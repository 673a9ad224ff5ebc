package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"modernc.org/sqlite" // pure Go: no cgo in the archiver binary
)

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(typeMatchFunc, 2, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		pattern, _ := args[0].(string)
		namespace, _ := args[1].(string)
		return router.SubjectMatch(pattern, namespace), nil
	})
}

// SQLite is the archive in one SQLite file, the default.
//
// It holds two pools on the file: one writer connection (SQLite admits one
// writer at a time; a single connection makes writers queue in Go instead
// of spinning on SQLITE_BUSY) and a few read-only connections, which WAL
// lets read while the writer writes.
type SQLite struct {
	path string
	w    *sql.DB // exactly one connection
	r    *sql.DB // read-only connections
}

// readers is the number of read connections: the HTTP API and the admin
// commands read little and seldom.
const readers = 4

// Connection settings. Why:
//
//   - journal_mode=WAL: readers never block the writer nor it them.
//   - synchronous=FULL: the archiver acks an event's message once
//     InsertEvents returns. With NORMAL, WAL commits are not fsynced and a
//     power loss could drop events that were already acked, i.e. lose them
//     for good. FULL costs one fsync per commit, which batches amortise.
//   - busy_timeout=10s: another process (`eventmesh archive erase` beside a
//     running archiver) may hold the write lock for a moment.
//   - _txlock=immediate: a write transaction takes the write lock at BEGIN,
//     so two processes never deadlock upgrading read locks (which
//     busy_timeout cannot resolve).
//   - secure_delete=ON: erased and pruned rows are overwritten with zeros
//     rather than left readable in free pages (the right to erasure).
//   - journal_size_limit: the WAL shrinks back to 64 MiB after a large
//     prune instead of keeping its peak size.
//   - wal_autocheckpoint stays SQLite's 1000 pages. 8192 wrote a seventh
//     less per event (a checkpoint copies a page once however many commits
//     rewrote it), but readers of a longer WAL were slower: the console's
//     search and chart took a quarter to a half longer (issue 18.2).
const (
	sqliteWriterParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=secure_delete(ON)&_pragma=journal_size_limit(67108864)&_txlock=immediate"
	sqliteReaderParams = "_pragma=busy_timeout(10000)&_pragma=query_only(1)"
)

// sqliteMigrations are the schema's versions, applied in order, each in
// one transaction together with its schema_version row. Append; never
// edit a released one.
//
// Times are INTEGER Unix microseconds (UTC by definition; they order as
// numbers and cover every time.Time a ce-time can hold, the zero time
// included). Headers are JSON text; data is a BLOB, NULL without data.
var sqliteMigrations = [][]string{
	1: {
		`CREATE TABLE events (
			id           TEXT PRIMARY KEY,
			subject      TEXT NOT NULL,
			type         TEXT NOT NULL,
			source       TEXT NOT NULL,
			time         INTEGER NOT NULL,
			stream_seq   INTEGER NOT NULL,
			origin       TEXT NOT NULL,
			headers      TEXT NOT NULL,
			data         BLOB,
			unsubscribed INTEGER NOT NULL DEFAULT 0,
			archived_at  INTEGER NOT NULL
		)`,
		`CREATE INDEX events_time ON events (time, id)`,
		`CREATE INDEX events_type ON events (type, time, id)`,
		`CREATE INDEX events_source ON events (source, time, id)`,
		`CREATE INDEX events_unsubscribed ON events (time, id) WHERE unsubscribed`,
		`CREATE INDEX events_archived ON events (archived_at, id)`,
		`CREATE TABLE outcomes (
			event_id TEXT NOT NULL,
			consumer TEXT NOT NULL,
			attempt  INTEGER NOT NULL,
			result   TEXT NOT NULL,
			error    TEXT NOT NULL,
			time     INTEGER NOT NULL,
			PRIMARY KEY (event_id, consumer, attempt, result)
		) WITHOUT ROWID`,
		`CREATE INDEX outcomes_result ON outcomes (result, event_id)`,
	},
	// Activity counts outcomes by time without reading the table.
	2: {`CREATE INDEX outcomes_time ON outcomes (time, consumer, result)`},
}

// OpenSQLite opens (creating if needed) the archive file at path and
// brings its schema up to date. The file's directory must exist.
func OpenSQLite(path string) (*SQLite, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("archive: SQLite path %q: must be a non-empty file path without '?'", path)
	}
	w, err := sql.Open("sqlite", path+"?"+sqliteWriterParams)
	if err != nil {
		return nil, fmt.Errorf("archive: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("archive: open %s: %w", path, err)
	}
	s := &SQLite{path: path, w: w}
	// Migrate before readers connect: the writer sets WAL mode, which
	// then stays in the file.
	if err := s.migrate(context.Background()); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", path+"?"+sqliteReaderParams)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("archive: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	s.r = r
	return s, nil
}

// migrate applies the migrations the file lacks, one transaction each.
func (s *SQLite) migrate(ctx context.Context) error {
	for v := 1; v < len(sqliteMigrations); v++ {
		err := s.write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
				version    INTEGER PRIMARY KEY,
				applied_at INTEGER NOT NULL
			)`); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_version WHERE version = ?)`, v).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			for _, stmt := range sqliteMigrations[v] {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`, v, time.Now().UnixMicro())
			return err
		})
		if err != nil {
			return fmt.Errorf("archive: %s: migrate to schema version %d: %w", s.path, v, err)
		}
	}
	return nil
}

// versions returns the applied schema versions and when each was applied.
func (s *SQLite) versions(ctx context.Context) (map[int]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT version, applied_at FROM schema_version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]time.Time{}
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			return nil, err
		}
		out[v] = time.UnixMicro(at).UTC()
	}
	return out, rows.Err()
}

// write runs fn in one write transaction.
func (s *SQLite) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// InsertEvents implements Store: one transaction, one prepared
// INSERT … ON CONFLICT(id) DO NOTHING executed per row.
func (s *SQLite) InsertEvents(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := checkEvents(events); err != nil {
		return err
	}
	now := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (`+eventColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range events {
			h, err := marshalHeaders(e.Headers)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			archived := e.ArchivedAt
			if archived.IsZero() {
				archived = now
			}
			// Headers as a string: a []byte would be stored as a BLOB,
			// which SQLite's JSON functions do not read as JSON text.
			if _, err := stmt.ExecContext(ctx, e.ID, e.Subject, e.Type, e.Source, e.Time.UnixMicro(), int64(e.StreamSeq),
				e.Origin, string(h), dataOrNil(e.Data), e.Unsubscribed, archived.UnixMicro()); err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: insert %d events: %w", len(events), err)
	}
	return nil
}

// InsertOutcomes implements Store.
func (s *SQLite) InsertOutcomes(ctx context.Context, outcomes []Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	if err := checkOutcomes(outcomes); err != nil {
		return err
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO outcomes (event_id, consumer, attempt, result, error, time)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, o := range outcomes {
			if _, err := stmt.ExecContext(ctx, o.EventID, o.Consumer, o.Attempt, o.Result, o.Error, o.Time.UnixMicro()); err != nil {
				return fmt.Errorf("outcome %s/%s/%d: %w", o.Consumer, o.EventID, o.Attempt, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: insert %d outcomes: %w", len(outcomes), err)
	}
	return nil
}

// Query implements Store.
func (s *SQLite) Query(ctx context.Context, f Filter) (Page, error) {
	q, limit, err := eventsQuery(sqliteSQL, f)
	if err != nil {
		return Page{}, err
	}
	var events []Event
	err = s.read(ctx, func(tx *sql.Tx) error {
		var err error
		if events, err = sqliteEvents(ctx, tx, q.sql.String(), q.args...); err != nil {
			return err
		}
		if !f.WithOutcomes || len(events) == 0 {
			return nil
		}
		ids := idsOf(events[:min(len(events), limit)])
		marks := strings.Repeat(", ?", len(ids))[2:]
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		outcomes, err := sqliteOutcomes(ctx, tx, `WHERE event_id IN (`+marks+`)`, args...)
		if err != nil {
			return err
		}
		attachOutcomes(events, outcomes)
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("archive: query: %w", err)
	}
	return page(events, limit), nil
}

// Activity implements Store.
func (s *SQLite) Activity(ctx context.Context, since, until time.Time, step time.Duration) ([]Tally, error) {
	from, to, width, err := activityBounds(since, until, step)
	if err != nil {
		return nil, err
	}
	var out []Tally
	err = s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT b, c, r, n FROM (
				SELECT (time - ?1) / ?3 AS b, '' AS c, '' AS r, count(*) AS n
				FROM events WHERE time >= ?1 AND time < ?2 GROUP BY b
				UNION ALL
				SELECT (time - ?1) / ?3 AS b, consumer AS c, result AS r, count(*) AS n
				FROM outcomes WHERE time >= ?1 AND time < ?2 GROUP BY b, c, r
			) ORDER BY b, c, r`, from, to, width)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t Tally
			var b int64
			if err := rows.Scan(&b, &t.Consumer, &t.Result, &t.Count); err != nil {
				return err
			}
			t.Bucket = time.UnixMicro(from + b*width).UTC()
			out = append(out, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("archive: activity: %w", err)
	}
	return out, nil
}

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, id string) (Event, error) {
	var e Event
	err := s.read(ctx, func(tx *sql.Tx) error {
		events, err := sqliteEvents(ctx, tx, `SELECT `+eventColumns+` FROM events WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			return ErrNotFound
		}
		e = events[0]
		e.Outcomes, err = sqliteOutcomes(ctx, tx, `WHERE event_id = ?`, id)
		return err
	})
	if err != nil {
		return Event{}, fmt.Errorf("archive: get %s: %w", id, err)
	}
	return e, nil
}

// read runs fn in one read transaction, so the events and their outcomes
// come from one snapshot.
func (s *SQLite) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

func sqliteEvents(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]Event, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var e Event
		var t, archived, seq int64
		var headers []byte
		if err := rows.Scan(&e.ID, &e.Subject, &e.Type, &e.Source, &t, &seq, &e.Origin, &headers, &e.Data,
			&e.Unsubscribed, &archived); err != nil {
			return nil, err
		}
		e.Time, e.ArchivedAt, e.StreamSeq = time.UnixMicro(t).UTC(), time.UnixMicro(archived).UTC(), uint64(seq)
		if e.Headers, err = unmarshalHeaders(headers); err != nil {
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

func sqliteOutcomes(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]Outcome, error) {
	rows, err := tx.QueryContext(ctx, `SELECT event_id, consumer, attempt, result, error, time FROM outcomes `+where+
		` ORDER BY time, consumer, attempt, result`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Outcome
	for rows.Next() {
		var o Outcome
		var t int64
		if err := rows.Scan(&o.EventID, &o.Consumer, &o.Attempt, &o.Result, &o.Error, &t); err != nil {
			return nil, err
		}
		o.Time = time.UnixMicro(t).UTC()
		out = append(out, o)
	}
	return out, rows.Err()
}

// ErasePeer implements Store. After the commit it checkpoints and
// truncates the WAL, so the erased rows' old pages do not linger in it
// either (this waits, up to busy_timeout, for readers of older snapshots).
func (s *SQLite) ErasePeer(ctx context.Context, address string) (events, outcomes int64, err error) {
	if address == "" {
		return 0, 0, fmt.Errorf("archive: erase: empty address")
	}
	needle := peerNeedle(address)
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM outcomes WHERE event_id IN (SELECT id FROM events WHERE instr(data, ?) > 0)`, needle)
		if err != nil {
			return err
		}
		if outcomes, err = res.RowsAffected(); err != nil {
			return err
		}
		if res, err = tx.ExecContext(ctx, `DELETE FROM events WHERE instr(data, ?) > 0`, needle); err != nil {
			return err
		}
		events, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("archive: erase %q: %w", address, err)
	}
	if events > 0 {
		// Best effort: a reader mid-snapshot may keep part of the WAL
		// until the next checkpoint, which SQLite runs by itself.
		s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	return events, outcomes, nil
}

// Prune implements Store.
func (s *SQLite) Prune(ctx context.Context, before time.Time, maxEvents int64) (int64, error) {
	var conds []string
	var args []any
	if !before.IsZero() {
		conds = append(conds, "archived_at < ?")
		args = append(args, before.UnixMicro())
	}
	if maxEvents > 0 {
		// The newest event beyond the limit: it and everything older go.
		var at int64
		var id string
		err := s.r.QueryRowContext(ctx, `SELECT archived_at, id FROM events ORDER BY archived_at DESC, id DESC LIMIT 1 OFFSET ?`,
			maxEvents).Scan(&at, &id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return 0, fmt.Errorf("archive: prune: %w", err)
		default:
			conds = append(conds, "(archived_at, id) <= (?, ?)")
			args = append(args, at, id)
		}
	}
	var total int64
	if len(conds) > 0 {
		chunk := `SELECT id FROM events WHERE ` + strings.Join(conds, " OR ") + ` ORDER BY archived_at, id LIMIT ` + fmt.Sprint(pruneChunk)
		for {
			var n int64
			err := s.write(ctx, func(tx *sql.Tx) error {
				// One writer: both statements see the same chunk.
				if _, err := tx.ExecContext(ctx, `DELETE FROM outcomes WHERE event_id IN (`+chunk+`)`, args...); err != nil {
					return err
				}
				res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE id IN (`+chunk+`)`, args...)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return total, fmt.Errorf("archive: prune: %w", err)
			}
			total += n
			if n < int64(pruneChunk) {
				break
			}
		}
	}
	if !before.IsZero() {
		err := s.write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM outcomes WHERE time < ?
				AND NOT EXISTS (SELECT 1 FROM events WHERE events.id = outcomes.event_id)`, before.UnixMicro())
			return err
		})
		if err != nil {
			return total, fmt.Errorf("archive: prune orphan outcomes: %w", err)
		}
	}
	return total, nil
}

// Close implements Store.
func (s *SQLite) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}
