package sqlsource

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The DDL is written once per dialect with {T} for SQL_SOURCE_TABLE and {A}
// for SQL_SOURCE_ARCHIVE_TABLE. Every statement is idempotent, so applying
// it again (a second `eventmesh sql-source init --apply`) changes nothing.
//
// The payload column is text on purpose, on both databases: the event
// table must take whatever an application's trigger writes, so a bad
// payload never fails the application's own transaction. The source checks
// it and moves a row it cannot publish to the archive with status error.
// (A json or jsonb column works too: the source reads payload::text.)
const postgresDDL = `-- eventmesh SQL source (PostgreSQL): the event table, its archive, and the
-- notification that wakes the producers. Idempotent: safe to apply again.

CREATE TABLE IF NOT EXISTS {T} (
    id          bigserial PRIMARY KEY,       -- ce-id hashes it: never reset the sequence
    entity      text NOT NULL,               -- subject <prefix>.<source>.<entity>.<verb>, tokens lower-cased
    verb        text NOT NULL,               -- create, update, delete, …
    entity_key  text NOT NULL,               -- rows of one (entity, entity_key) are published in event_time order
    priority    integer NOT NULL DEFAULT 0,  -- higher first, across entity keys
    event_time  timestamptz NOT NULL DEFAULT clock_timestamp(),
    status      text NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'sending', 'sent', 'error')),
    claim_owner text,                        -- the producer holding the row (status sending)
    claim_until timestamptz,                 -- its lease; on a ready row, the earliest retry after a failed publish
    payload     text,                        -- JSON, or NULL for an event without data
    error       text                         -- the last failed publish attempt
);
CREATE INDEX IF NOT EXISTS {T}_key ON {T} (entity, entity_key, event_time, id);
CREATE INDEX IF NOT EXISTS {T}_work ON {T} (priority DESC, event_time, id);
CREATE INDEX IF NOT EXISTS {T}_claimed ON {T} (entity, entity_key) WHERE claim_until IS NOT NULL;

CREATE TABLE IF NOT EXISTS {A} (
    id          bigint PRIMARY KEY,
    entity      text NOT NULL,
    verb        text NOT NULL,
    entity_key  text NOT NULL,
    priority    integer NOT NULL,
    event_time  timestamptz NOT NULL,
    payload     text,
    status      text NOT NULL CHECK (status IN ('sent', 'error')),
    reason      text,                        -- why the row could not be published (status error)
    event_id    text NOT NULL,               -- ce-id = Nats-Msg-Id
    stream_seq  bigint,                      -- its sequence in the stream (status sent)
    claim_owner text,                        -- the producer that published it
    archived_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {A}_archived ON {A} (archived_at);

CREATE OR REPLACE FUNCTION {T}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One notification per transaction (PostgreSQL folds equal ones), sent at commit.
    PERFORM pg_notify('{T}', '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS {T}_notify ON {T};
CREATE TRIGGER {T}_notify AFTER INSERT ON {T}
    FOR EACH STATEMENT EXECUTE FUNCTION {T}_notify();

-- Statistics from the start: without any, the planner sorts every ready row
-- of a backlog to claim a batch, rather than walk {T}_work and stop early.
ANALYZE {T};
`

const postgresExample = `-- Example: events from one application table. Adapt the entity name, the
-- key and the payload for each table that should feed the mesh.
CREATE TABLE IF NOT EXISTS example_orders (
    id       bigserial PRIMARY KEY,
    customer text NOT NULL,
    total    numeric(12, 2) NOT NULL DEFAULT 0,
    status   text NOT NULL DEFAULT 'new'
);

CREATE OR REPLACE FUNCTION example_orders_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO {T} (entity, verb, entity_key, payload)
        VALUES ('order', 'delete', OLD.id::text, row_to_json(OLD)::text);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD IS NOT DISTINCT FROM NEW THEN
        RETURN NEW; -- nothing changed: no event
    END IF;
    INSERT INTO {T} (entity, verb, entity_key, payload)
    VALUES ('order', CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'update' END,
            NEW.id::text, row_to_json(NEW)::text);
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS example_orders_event ON example_orders;
CREATE TRIGGER example_orders_event AFTER INSERT OR UPDATE OR DELETE ON example_orders
    FOR EACH ROW EXECUTE FUNCTION example_orders_event();
`

// SQLite has no timestamptz: times are UTC text in exactly the format the
// defaults write (2026-03-01T10:15:00.123Z), which orders as text.
const sqliteDDL = `-- eventmesh SQL source (SQLite): the event table and its archive.
-- Idempotent: safe to apply again. One producer polls a SQLite file.

CREATE TABLE IF NOT EXISTS {T} (
    id          INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: an id is never reused once its row moved to the archive (ce-id hashes it)
    entity      TEXT NOT NULL,                     -- subject <prefix>.<source>.<entity>.<verb>, tokens lower-cased
    verb        TEXT NOT NULL,                     -- create, update, delete, …
    entity_key  TEXT NOT NULL,                     -- rows of one (entity, entity_key) are published in event_time order
    priority    INTEGER NOT NULL DEFAULT 0,        -- higher first, across entity keys
    event_time  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), -- UTC, in this format
    status      TEXT NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'sending', 'sent', 'error')),
    claim_owner TEXT,                              -- the producer holding the row (status sending)
    claim_until TEXT,                              -- its lease; on a ready row, the earliest retry after a failed publish
    payload     TEXT,                              -- JSON, or NULL for an event without data
    error       TEXT                               -- the last failed publish attempt
);
CREATE INDEX IF NOT EXISTS {T}_key ON {T} (entity, entity_key, event_time, id);
CREATE INDEX IF NOT EXISTS {T}_work ON {T} (priority DESC, event_time, id);
CREATE INDEX IF NOT EXISTS {T}_claimed ON {T} (entity, entity_key) WHERE claim_until IS NOT NULL;

CREATE TABLE IF NOT EXISTS {A} (
    id          INTEGER PRIMARY KEY,
    entity      TEXT NOT NULL,
    verb        TEXT NOT NULL,
    entity_key  TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    event_time  TEXT NOT NULL,
    payload     TEXT,
    status      TEXT NOT NULL CHECK (status IN ('sent', 'error')),
    reason      TEXT,                              -- why the row could not be published (status error)
    event_id    TEXT NOT NULL,                     -- ce-id = Nats-Msg-Id
    stream_seq  INTEGER,                           -- its sequence in the stream (status sent)
    claim_owner TEXT,                              -- the producer that published it
    archived_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {A}_archived ON {A} (archived_at);
`

const sqliteExample = `-- Example: events from one application table. Adapt the entity name, the
-- key and the payload for each table that should feed the mesh.
CREATE TABLE IF NOT EXISTS example_orders (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    customer TEXT NOT NULL,
    total    REAL NOT NULL DEFAULT 0,
    status   TEXT NOT NULL DEFAULT 'new'
);

CREATE TRIGGER IF NOT EXISTS example_orders_create AFTER INSERT ON example_orders BEGIN
    INSERT INTO {T} (entity, verb, entity_key, payload)
    VALUES ('order', 'create', CAST(NEW.id AS TEXT),
            json_object('id', NEW.id, 'customer', NEW.customer, 'total', NEW.total, 'status', NEW.status));
END;
CREATE TRIGGER IF NOT EXISTS example_orders_update AFTER UPDATE ON example_orders
    WHEN OLD.customer IS NOT NEW.customer OR OLD.total IS NOT NEW.total OR OLD.status IS NOT NEW.status BEGIN
    INSERT INTO {T} (entity, verb, entity_key, payload)
    VALUES ('order', 'update', CAST(NEW.id AS TEXT),
            json_object('id', NEW.id, 'customer', NEW.customer, 'total', NEW.total, 'status', NEW.status));
END;
CREATE TRIGGER IF NOT EXISTS example_orders_delete AFTER DELETE ON example_orders BEGIN
    INSERT INTO {T} (entity, verb, entity_key, payload)
    VALUES ('order', 'delete', CAST(OLD.id AS TEXT),
            json_object('id', OLD.id, 'customer', OLD.customer, 'total', OLD.total, 'status', OLD.status));
END;
`

// DDL returns the statements that create the event table, the archive
// table and (PostgreSQL) the trigger that notifies the producers, for
// dialect (Postgres or SQLite) and the configured table names.
func (c Config) DDL(dialect string) (string, error) {
	switch dialect {
	case Postgres:
		return c.expand(postgresDDL), nil
	case SQLite:
		return c.expand(sqliteDDL), nil
	}
	return "", fmt.Errorf("unknown SQL dialect %q: want %s or %s", dialect, Postgres, SQLite)
}

// Example returns an example application table (example_orders) with the
// trigger that writes an event row for each insert, update and delete.
func (c Config) Example(dialect string) (string, error) {
	switch dialect {
	case Postgres:
		return c.expand(postgresExample), nil
	case SQLite:
		return c.expand(sqliteExample), nil
	}
	return "", fmt.Errorf("unknown SQL dialect %q: want %s or %s", dialect, Postgres, SQLite)
}

func (c Config) expand(ddl string) string {
	return strings.NewReplacer("{T}", c.Table, "{A}", c.ArchiveTable).Replace(ddl)
}

// Apply runs script (DDL or Example) on the database dsn names, in one
// transaction.
func Apply(ctx context.Context, dsn, script string) error {
	dialect, err := DialectOf(dsn)
	if err != nil {
		return err
	}
	if dialect == SQLite {
		path, err := sqlitePath(dsn)
		if err != nil {
			return err
		}
		db, err := openSQLite(path)
		if err != nil {
			return err
		}
		defer db.Close()
		return execTx(ctx, db, script)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		// pgconn's message quotes the DSN with its password redacted.
		return fmt.Errorf("sql source: connect: %w", err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, script) // no arguments: the simple protocol, which runs several statements
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3F000" {
		return fmt.Errorf("sql source: %w (create the schema that search_path in SQL_SOURCE_DSN names first)", err)
	}
	return err
}

func execTx(ctx context.Context, db *sql.DB, script string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, script); err != nil {
		return err
	}
	return tx.Commit()
}
