package sqlsource

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // pure Go: no cgo in the producer binary
)

// sqliteTime is the layout of times in a SQLite event table: UTC with
// milliseconds, as strftime('%Y-%m-%dT%H:%M:%fZ', 'now') writes them, so
// they order as text.
const sqliteTime = "2006-01-02T15:04:05.000Z"

// sqliteParams: busy_timeout, because the application writes the same
// file; _txlock=immediate, so the claim's transaction takes the write lock
// at BEGIN and its select-then-update cannot interleave with another
// writer. The journal mode stays the application's choice.
const sqliteParams = "_pragma=busy_timeout(10000)&_txlock=immediate"

// sqliteStore is the event table in a SQLite file, polled by one producer.
// SQLite has no SKIP LOCKED: a claim is a write transaction, which SQLite
// runs one at a time.
type sqliteStore struct {
	db                                *sql.DB
	claimSQL, markSQL                 string
	archiveSQL, deleteSQL, releaseSQL string
}

// sqliteClaim selects the rows to claim as postgresClaim does, without
// locks (the transaction holds the write lock). ?1 now, ?2 limit.
const sqliteClaim = `
WITH heads AS (
    SELECT e.id, e.entity, e.entity_key, e.priority, e.event_time
    FROM {T} e
    WHERE e.status IN ('ready', 'sending') AND (e.claim_until IS NULL OR e.claim_until <= ?1)
      AND NOT EXISTS (SELECT 1 FROM {T} o
                      WHERE o.entity = e.entity AND o.entity_key = e.entity_key
                        AND (o.event_time, o.id) < (e.event_time, e.id))
      AND NOT EXISTS (SELECT 1 FROM {T} o
                      WHERE o.entity = e.entity AND o.entity_key = e.entity_key
                        AND o.claim_until > ?1)
    ORDER BY e.priority DESC, e.event_time, e.id
    LIMIT ?2
), picked AS (
    SELECT t.id, t.entity, t.verb, t.entity_key, t.event_time, t.payload,
           row_number() OVER (ORDER BY h.priority DESC, h.event_time, h.id, t.event_time, t.id) AS n
    FROM heads h JOIN {T} t ON t.entity = h.entity AND t.entity_key = h.entity_key
    WHERE t.status IN ('ready', 'sending')
)
SELECT id, entity, verb, entity_key, event_time, payload, n FROM picked WHERE n <= ?2`

// ?1 owner, ?2 lease end, ?3 ids as a JSON array.
const sqliteMark = `UPDATE {T} SET status = 'sending', claim_owner = ?1, claim_until = ?2
WHERE id IN (SELECT value FROM json_each(?3))`

const sqliteArchive = `INSERT INTO {A} (id, entity, verb, entity_key, priority, event_time, payload, status, reason, event_id, stream_seq, claim_owner, archived_at)
SELECT id, entity, verb, entity_key, priority, event_time, payload, ?2, NULLIF(?3, ''), ?4, NULLIF(?5, 0), claim_owner, ?6
FROM {T} WHERE id = ?1 AND claim_owner = ?7 AND status = 'sending'`

const sqliteDelete = `DELETE FROM {T} WHERE id = ?1`

const sqliteRelease = `UPDATE {T} SET status = 'ready', claim_owner = NULL, claim_until = ?2, error = COALESCE(NULLIF(?3, ''), error)
WHERE id = ?1 AND claim_owner = ?4 AND status = 'sending'`

func openSQLite(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path+"?"+sqliteParams)
	if err != nil {
		return nil, fmt.Errorf("sql source: open %s: %w", path, err)
	}
	// One connection: the claim's write transaction and the re-reads queue
	// in Go instead of spinning on SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	return db, nil
}

func newSQLite(c Config) (*sqliteStore, error) {
	path, err := sqlitePath(c.DSN)
	if err != nil {
		return nil, err
	}
	db, err := openSQLite(path)
	if err != nil {
		return nil, err
	}
	return &sqliteStore{db: db, claimSQL: c.expand(sqliteClaim), markSQL: c.expand(sqliteMark),
		archiveSQL: c.expand(sqliteArchive), deleteSQL: c.expand(sqliteDelete), releaseSQL: c.expand(sqliteRelease)}, nil
}

func (s *sqliteStore) claim(ctx context.Context, owner string, lease time.Duration, limit int) ([]row, error) {
	now := time.Now().UTC()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rs, err := tx.QueryContext(ctx, s.claimSQL, now.Format(sqliteTime), limit)
	if err != nil {
		return nil, hintSQLite(err)
	}
	var (
		rows []row
		ids  strings.Builder
	)
	ids.WriteByte('[')
	for rs.Next() {
		var (
			r       row
			at      string
			payload sql.NullString
		)
		if err := rs.Scan(&r.id, &r.entity, &r.verb, &r.key, &at, &payload, &r.n); err != nil {
			rs.Close()
			return nil, err
		}
		r.eventTime = parseSQLiteTime(at)
		if payload.Valid {
			r.payload = []byte(payload.String)
		}
		if len(rows) > 0 {
			ids.WriteByte(',')
		}
		ids.WriteString(strconv.FormatInt(r.id, 10))
		rows = append(rows, r)
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids.WriteByte(']')
	if _, err := tx.ExecContext(ctx, s.markSQL, owner, now.Add(lease).Format(sqliteTime), ids.String()); err != nil {
		return nil, err
	}
	return rows, tx.Commit()
}

func (s *sqliteStore) settle(ctx context.Context, owner string, outs []outcome) (archived, released int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	now := time.Now().UTC()
	archiveStmt, err := tx.PrepareContext(ctx, s.archiveSQL)
	if err != nil {
		return 0, 0, err
	}
	deleteStmt, err := tx.PrepareContext(ctx, s.deleteSQL)
	if err != nil {
		return 0, 0, err
	}
	releaseStmt, err := tx.PrepareContext(ctx, s.releaseSQL)
	if err != nil {
		return 0, 0, err
	}
	for _, o := range outs {
		if o.status == statusReady {
			var until any
			if o.retry > 0 {
				until = now.Add(o.retry).Format(sqliteTime)
			}
			res, err := releaseStmt.ExecContext(ctx, o.id, until, o.reason, owner)
			if err != nil {
				return 0, 0, err
			}
			n, _ := res.RowsAffected()
			released += int(n)
			continue
		}
		res, err := archiveStmt.ExecContext(ctx, o.id, o.status, o.reason, o.eventID, int64(o.seq), now.Format(sqliteTime), owner)
		if err != nil {
			return 0, 0, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if _, err := deleteStmt.ExecContext(ctx, o.id); err != nil {
				return 0, 0, err
			}
			archived++
		}
	}
	return archived, released, tx.Commit()
}

func (s *sqliteStore) reread(ctx context.Context, query, key string) ([]byte, error) {
	var state []byte
	err := s.db.QueryRowContext(ctx, query, key).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return state, err
}

// listen returns at once: SQLite cannot notify another process.
func (s *sqliteStore) listen(context.Context, func()) {}

func (s *sqliteStore) close() { s.db.Close() }

// parseSQLiteTime reads an event_time; zero when it is in none of the
// formats SQLite's own functions write.
func parseSQLiteTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// hintSQLite adds what to do to a missing table.
func hintSQLite(err error) error {
	if err != nil && strings.Contains(err.Error(), "no such table") {
		return fmt.Errorf("%w (create the tables with `eventmesh sql-source init --dialect sqlite --apply`)", err)
	}
	return err
}
