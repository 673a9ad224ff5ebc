package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the archive in PostgreSQL, for production.
type Postgres struct {
	pool   *pgxpool.Pool
	schema string // first schema of the DSN's search_path; "" when it names none
	insert insertMode
}

// insertMode is how InsertEvents sends a batch. All three run in one
// transaction and keep the first copy of a duplicated id;
// BenchmarkInsertEvents measures them against each other (figures in
// bench_test.go), and the fastest is the default.
type insertMode int

const (
	// insertUnnest: one INSERT … SELECT FROM unnest(array per column)
	// ON CONFLICT DO NOTHING, one round trip and one statement.
	insertUnnest insertMode = iota
	// insertBatch: a pgx.Batch of one INSERT … ON CONFLICT DO NOTHING
	// per row, pipelined.
	insertBatch
	// insertCopy: COPY into a temporary table, then one
	// INSERT … SELECT … ON CONFLICT DO NOTHING.
	insertCopy
)

// postgresMigrations are the schema's versions, applied in order in one
// transaction under an advisory lock (several archivers may start at
// once). Append; never edit a released one.
//
// Identifier columns use COLLATE "C": bytewise order, as in SQLite, so
// both backends page alike, and the type prefix range can use its index.
// Headers are json (kept as sent, queryable with ->>), data bytea.
var postgresMigrations = [][]string{
	1: {
		`CREATE TABLE events (
			id           text COLLATE "C" PRIMARY KEY,
			subject      text NOT NULL,
			type         text COLLATE "C" NOT NULL,
			source       text COLLATE "C" NOT NULL,
			time         timestamptz NOT NULL,
			stream_seq   bigint NOT NULL,
			origin       text NOT NULL,
			headers      json NOT NULL,
			data         bytea,
			unsubscribed boolean NOT NULL DEFAULT false,
			archived_at  timestamptz NOT NULL
		)`,
		`CREATE INDEX events_time ON events (time, id)`,
		`CREATE INDEX events_type ON events (type, time, id)`,
		`CREATE INDEX events_source ON events (source, time, id)`,
		`CREATE INDEX events_unsubscribed ON events (time, id) WHERE unsubscribed`,
		`CREATE INDEX events_archived ON events (archived_at, id)`,
		`CREATE TABLE outcomes (
			event_id text COLLATE "C" NOT NULL,
			consumer text COLLATE "C" NOT NULL,
			attempt  integer NOT NULL,
			result   text COLLATE "C" NOT NULL,
			error    text NOT NULL,
			time     timestamptz NOT NULL,
			PRIMARY KEY (event_id, consumer, attempt, result)
		)`,
		`CREATE INDEX outcomes_result ON outcomes (result, event_id)`,
	},
	// Activity counts outcomes by time without reading the table.
	2: {`CREATE INDEX outcomes_time ON outcomes (time, consumer, result)`},
}

// OpenPostgres connects a pgx pool to dsn (a postgres:// URL or a
// key=value string; pool settings such as pool_max_conns apply) and
// brings the schema up to date.
//
// The archive's tables live in the first schema of the DSN's search_path
// parameter, e.g. postgres://archiver@db/mesh?search_path=eventmesh,
// which is created if missing; without one they live wherever the role's
// default search_path creates tables (usually public).
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	return openPostgres(ctx, dsn, true)
}

// openPostgres is OpenPostgres; without create it creates no schema and
// refuses a database without the archive's tables (ErrNoStore).
func openPostgres(ctx context.Context, dsn string, create bool) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's message quotes the DSN with its password redacted.
		return nil, fmt.Errorf("archive: %w", err)
	}
	p := &Postgres{schema: firstSchema(cfg.ConnConfig.RuntimeParams["search_path"])}
	if p.schema != "" && create {
		if err := createSchema(ctx, cfg.ConnConfig.Copy(), p.schema); err != nil {
			return nil, err
		}
	}
	if p.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("archive: connect: %w", err)
	}
	if err := p.pool.Ping(ctx); err != nil {
		p.pool.Close()
		return nil, fmt.Errorf("archive: connect: %w", err)
	}
	if !create {
		if err := p.exists(ctx); err != nil {
			p.pool.Close()
			return nil, err
		}
	}
	if err := p.migrate(ctx); err != nil {
		p.pool.Close()
		return nil, err
	}
	return p, nil
}

// firstSchema returns the first schema a search_path value names, without
// quotes; "" for none or "$user".
func firstSchema(searchPath string) string {
	first, _, _ := strings.Cut(searchPath, ",")
	first = strings.TrimSpace(first)
	if len(first) >= 2 && first[0] == '"' && first[len(first)-1] == '"' {
		return strings.ReplaceAll(first[1:len(first)-1], `""`, `"`)
	}
	if first == "$user" {
		return ""
	}
	// Unquoted identifiers fold to lower case, as PostgreSQL folds them.
	return strings.ToLower(first)
}

// createSchema creates schema on a connection of its own, before the
// pool's connections (whose search_path names it) exist.
func createSchema(ctx context.Context, cfg *pgx.ConnConfig, schema string) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("archive: connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42P06") {
		// Another archiver created it at the same moment.
		err = nil
	}
	if err != nil {
		return fmt.Errorf("archive: create schema %q (or create it beforehand and grant USAGE and CREATE): %w", schema, err)
	}
	return nil
}

// exists is nil when the archive's schema_version table is there (in the
// DSN's schema, else on the search path), else an error wrapping ErrNoStore.
func (p *Postgres) exists(ctx context.Context) error {
	table := "schema_version"
	if p.schema != "" {
		table = pgx.Identifier{p.schema, table}.Sanitize()
	}
	var found bool
	if err := p.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&found); err != nil {
		return fmt.Errorf("archive: look for table %s: %w", table, err)
	}
	if !found {
		return fmt.Errorf("%w in the database (no table %s)", ErrNoStore, table)
	}
	return nil
}

// migrate applies the migrations the schema lacks.
func (p *Postgres) migrate(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('eventmesh archive migrations ' || coalesce(current_schema(), '')))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL
		)`); err != nil {
			return err
		}
		for v := 1; v < len(postgresMigrations); v++ {
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_version WHERE version = $1)`, v).Scan(&done); err != nil {
				return err
			}
			if done {
				continue
			}
			for _, stmt := range postgresMigrations[v] {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("version %d: %w", v, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, applied_at) VALUES ($1, now())`, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("archive: migrate schema %q: %w", p.schema, err)
	}
	return nil
}

// versions returns the applied schema versions and when each was applied.
func (p *Postgres) versions(ctx context.Context) (map[int]time.Time, error) {
	rows, err := p.pool.Query(ctx, `SELECT version, applied_at FROM schema_version`)
	if err != nil {
		return nil, err
	}
	out := map[int]time.Time{}
	var v int
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&v, &at}, func() error {
		out[v] = at.UTC()
		return nil
	})
	return out, err
}

// eventRow is one event as InsertEvents sends it.
type eventRow struct {
	Event
	headers  []byte
	data     []byte
	archived time.Time
}

func eventRows(events []Event) ([]eventRow, error) {
	now := time.Now()
	rows := make([]eventRow, len(events))
	for i, e := range events {
		h, err := marshalHeaders(e.Headers)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		rows[i] = eventRow{Event: e, headers: h, data: dataOrNil(e.Data), archived: e.ArchivedAt}
		if rows[i].archived.IsZero() {
			rows[i].archived = now
		}
	}
	return rows, nil
}

func (r *eventRow) values() []any {
	return []any{r.ID, r.Subject, r.Type, r.Source, r.Time, int64(r.StreamSeq), r.Origin, string(r.headers), r.data,
		r.Unsubscribed, r.archived}
}

// InsertEvents implements Store.
func (p *Postgres) InsertEvents(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := checkEvents(events); err != nil {
		return err
	}
	rows, err := eventRows(events)
	if err != nil {
		return fmt.Errorf("archive: insert %d events: %w", len(events), err)
	}
	switch p.insert {
	case insertBatch:
		err = p.insertBatch(ctx, rows)
	case insertCopy:
		err = p.insertCopy(ctx, rows)
	default:
		err = p.insertUnnest(ctx, rows)
	}
	if err != nil {
		return fmt.Errorf("archive: insert %d events: %w", len(events), err)
	}
	return nil
}

func (p *Postgres) insertUnnest(ctx context.Context, rows []eventRow) error {
	n := len(rows)
	var (
		ids, subjects, types, sources, origins, headers = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n)
		times, archived = make([]time.Time, n), make([]time.Time, n)
		seqs            = make([]int64, n)
		data            = make([][]byte, n)
		unsub           = make([]bool, n)
	)
	for i, r := range rows {
		ids[i], subjects[i], types[i], sources[i], origins[i], headers[i] = r.ID, r.Subject, r.Type, r.Source, r.Origin, string(r.headers)
		times[i], archived[i], seqs[i], data[i], unsub[i] = r.Time, r.archived, int64(r.StreamSeq), r.data, r.Unsubscribed
	}
	// unnest yields the rows in array order, so with DO NOTHING the first
	// copy of a duplicated id wins.
	_, err := p.pool.Exec(ctx, `INSERT INTO events (`+eventColumns+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[],
			$7::text[], $8::json[], $9::bytea[], $10::boolean[], $11::timestamptz[])
		ON CONFLICT (id) DO NOTHING`,
		ids, subjects, types, sources, times, seqs, origins, headers, data, unsub, archived)
	return err
}

const postgresInsertEvent = `INSERT INTO events (` + eventColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING`

func (p *Postgres) insertBatch(ctx context.Context, rows []eventRow) error {
	b := &pgx.Batch{}
	for i := range rows {
		b.Queue(postgresInsertEvent, rows[i].values()...)
	}
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
}

func (p *Postgres) insertCopy(ctx context.Context, rows []eventRow) error {
	cols := strings.Split(eventColumns, ", ")
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// One temporary table per connection, emptied at every commit.
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS events_in (LIKE events, ord integer)
			ON COMMIT DELETE ROWS`); err != nil {
			return err
		}
		src := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			return append(rows[i].values(), i), nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events_in"}, append(cols, "ord"), src); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO events (`+eventColumns+`) SELECT `+eventColumns+` FROM events_in
			ORDER BY ord ON CONFLICT (id) DO NOTHING`)
		return err
	})
}

// InsertOutcomes implements Store: outcome rows are small, a pipelined
// batch in one transaction is enough.
func (p *Postgres) InsertOutcomes(ctx context.Context, outcomes []Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	if err := checkOutcomes(outcomes); err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, o := range outcomes {
		b.Queue(`INSERT INTO outcomes (event_id, consumer, attempt, result, error, time) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT DO NOTHING`, o.EventID, o.Consumer, o.Attempt, o.Result, o.Error, o.Time)
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("archive: insert %d outcomes: %w", len(outcomes), err)
	}
	return nil
}

// read runs fn in a read-only repeatable-read transaction, so events and
// their outcomes come from one snapshot.
func (p *Postgres) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// Query implements Store.
func (p *Postgres) Query(ctx context.Context, f Filter) (Page, error) {
	q, limit, err := eventsQuery(postgresSQL, f)
	if err != nil {
		return Page{}, err
	}
	var events []Event
	err = p.read(ctx, func(tx pgx.Tx) error {
		var err error
		if events, err = postgresEvents(ctx, tx, q.sql.String(), q.args...); err != nil {
			return err
		}
		if !f.WithOutcomes || len(events) == 0 {
			return nil
		}
		outcomes, err := postgresOutcomes(ctx, tx, `WHERE event_id = ANY($1)`, idsOf(events[:min(len(events), limit)]))
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
func (p *Postgres) Activity(ctx context.Context, since, until time.Time, step time.Duration) ([]Tally, error) {
	from, to, width, err := activityBounds(since, until, step)
	if err != nil {
		return nil, err
	}
	var out []Tally
	err = p.read(ctx, func(tx pgx.Tx) error {
		// Buckets in whole microseconds since from, as in SQLite.
		rows, err := tx.Query(ctx, `
			WITH w AS (SELECT to_timestamp($1::float8 / 1e6) AS lo, to_timestamp($2::float8 / 1e6) AS hi)
			SELECT b, c, r, n FROM (
				SELECT floor(extract(epoch FROM (e.time - w.lo)) * 1e6 / $3)::bigint AS b, ''::text AS c, ''::text AS r, count(*) AS n
				FROM events e, w WHERE e.time >= w.lo AND e.time < w.hi GROUP BY 1
				UNION ALL
				SELECT floor(extract(epoch FROM (o.time - w.lo)) * 1e6 / $3)::bigint, o.consumer::text, o.result::text, count(*)
				FROM outcomes o, w WHERE o.time >= w.lo AND o.time < w.hi GROUP BY 1, 2, 3
			) t ORDER BY b, c COLLATE "C", r COLLATE "C"`, from, to, width)
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
func (p *Postgres) Get(ctx context.Context, id string) (Event, error) {
	var e Event
	err := p.read(ctx, func(tx pgx.Tx) error {
		events, err := postgresEvents(ctx, tx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			return ErrNotFound
		}
		e = events[0]
		e.Outcomes, err = postgresOutcomes(ctx, tx, `WHERE event_id = $1`, id)
		return err
	})
	if err != nil {
		return Event{}, fmt.Errorf("archive: get %s: %w", id, err)
	}
	return e, nil
}

func postgresEvents(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]Event, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var events []Event
	var e Event
	var seq int64
	var headers []byte
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.Subject, &e.Type, &e.Source, &e.Time, &seq, &e.Origin, &headers, &e.Data,
		&e.Unsubscribed, &e.ArchivedAt}, func() error {
		ev := e
		ev.Time, ev.ArchivedAt, ev.StreamSeq = e.Time.UTC(), e.ArchivedAt.UTC(), uint64(seq)
		var err error
		if ev.Headers, err = unmarshalHeaders(headers); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
		events = append(events, ev)
		e.Data = nil // the next row scans into a fresh slice
		return nil
	})
	return events, err
}

func postgresOutcomes(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]Outcome, error) {
	rows, err := tx.Query(ctx, `SELECT event_id, consumer, attempt, result, error, time FROM outcomes `+where+
		` ORDER BY time, consumer, attempt, result`, args...)
	if err != nil {
		return nil, err
	}
	var out []Outcome
	var o Outcome
	_, err = pgx.ForEachRow(rows, []any{&o.EventID, &o.Consumer, &o.Attempt, &o.Result, &o.Error, &o.Time}, func() error {
		oc := o
		oc.Time = o.Time.UTC()
		out = append(out, oc)
		return nil
	})
	return out, err
}

// ErasePeer implements Store. PostgreSQL keeps the deleted row versions
// until (auto)vacuum reclaims them; run VACUUM on events to hasten it.
func (p *Postgres) ErasePeer(ctx context.Context, address string) (events, outcomes int64, err error) {
	if address == "" {
		return 0, 0, fmt.Errorf("archive: erase: empty address")
	}
	err = p.pool.QueryRow(ctx, `WITH e AS (DELETE FROM events WHERE position($1::bytea in data) > 0 RETURNING id),
		o AS (DELETE FROM outcomes WHERE event_id IN (SELECT id FROM e) RETURNING 1)
		SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM o)`, peerNeedle(address)).Scan(&events, &outcomes)
	if err != nil {
		return 0, 0, fmt.Errorf("archive: erase %q: %w", address, err)
	}
	return events, outcomes, nil
}

// Prune implements Store.
func (p *Postgres) Prune(ctx context.Context, before time.Time, maxEvents int64) (int64, error) {
	q := &query{d: postgresSQL}
	var conds []string
	if !before.IsZero() {
		conds = append(conds, "archived_at < "+q.time(before))
	}
	if maxEvents > 0 {
		var at time.Time
		var id string
		err := p.pool.QueryRow(ctx, `SELECT archived_at, id FROM events ORDER BY archived_at DESC, id DESC LIMIT 1 OFFSET $1`,
			maxEvents).Scan(&at, &id)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return 0, fmt.Errorf("archive: prune: %w", err)
		default:
			conds = append(conds, "(archived_at, id) <= ("+q.time(at)+", "+q.arg(id)+")")
		}
	}
	var total int64
	if len(conds) > 0 {
		stmt := `WITH d AS (DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ` + strings.Join(conds, " OR ") +
			` ORDER BY archived_at, id LIMIT ` + fmt.Sprint(pruneChunk) + `) RETURNING id),
			o AS (DELETE FROM outcomes WHERE event_id IN (SELECT id FROM d))
			SELECT count(*) FROM d`
		for {
			var n int64
			if err := p.pool.QueryRow(ctx, stmt, q.args...).Scan(&n); err != nil {
				return total, fmt.Errorf("archive: prune: %w", err)
			}
			total += n
			if n < int64(pruneChunk) {
				break
			}
		}
	}
	if !before.IsZero() {
		if _, err := p.pool.Exec(ctx, `DELETE FROM outcomes WHERE time < $1
			AND NOT EXISTS (SELECT 1 FROM events WHERE events.id = outcomes.event_id)`, before); err != nil {
			return total, fmt.Errorf("archive: prune orphan outcomes: %w", err)
		}
	}
	return total, nil
}

// Close implements Store.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}
