package sqlsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// postgres is the event table in PostgreSQL. Claims and settles are one
// statement each (one round trip, one commit); LISTEN runs on a connection
// of its own.
type postgres struct {
	pool      *pgxpool.Pool
	listenCfg *pgx.ConnConfig
	channel   string
	claimSQL  string
	settleSQL string
	log       *slog.Logger
	dbErrors  prometheus.Counter
}

// postgresClaim claims rows (see the package doc). heads are the oldest
// rows of entities that have no row under a live lease or a retry delay,
// locked with SKIP LOCKED: while one producer holds an entity's oldest
// row, another sees that row as older than any other of the entity and
// claims none of them. picked numbers the rows of the locked entities in
// publication order (entity priority, then event time), and the first $1
// are claimed. $1 limit, $2 owner, $3 lease in seconds.
//
// Both steps walk indexes ({T}_work in order, {T}_key per entity) and stop
// early, whatever the backlog, as long as the table has statistics (the
// DDL analyzes it; autovacuum keeps them): on a table never analyzed the
// planner sorts every ready row instead.
const postgresClaim = `
WITH heads AS MATERIALIZED (
    SELECT e.id, e.entity, e.entity_key, e.priority, e.event_time
    FROM {T} e
    WHERE e.status IN ('ready', 'sending') AND (e.claim_until IS NULL OR e.claim_until <= now())
      AND NOT EXISTS (SELECT 1 FROM {T} o
                      WHERE o.entity = e.entity AND o.entity_key = e.entity_key
                        AND (o.event_time, o.id) < (e.event_time, e.id))
      AND NOT EXISTS (SELECT 1 FROM {T} o
                      WHERE o.entity = e.entity AND o.entity_key = e.entity_key
                        AND o.claim_until > now())
    ORDER BY e.priority DESC, e.event_time, e.id
    LIMIT $1
    FOR UPDATE OF e SKIP LOCKED
), picked AS MATERIALIZED (
    SELECT t.id, row_number() OVER (ORDER BY h.priority DESC, h.event_time, h.id, t.event_time, t.id) AS n
    FROM heads h CROSS JOIN LATERAL (
        SELECT t.id, t.event_time FROM {T} t
        WHERE t.entity = h.entity AND t.entity_key = h.entity_key AND t.status IN ('ready', 'sending')
        ORDER BY t.event_time, t.id
        LIMIT $1) t
)
UPDATE {T} t
SET status = 'sending', claim_owner = $2, claim_until = now() + $3::float8 * interval '1 second'
FROM picked p
WHERE t.id = p.id AND p.n <= $1
  AND (t.status = 'ready' OR t.claim_until <= now()) -- rechecked on a row changed meanwhile: never take a live lease
RETURNING t.id, t.entity, t.verb, t.entity_key, t.event_time, t.payload::text, p.n`

// postgresSettle archives and releases the outcomes in one statement:
// $1 owner, then one array per outcome field.
const postgresSettle = `
WITH o AS MATERIALIZED (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::float8[])
        AS o(id, status, reason, event_id, stream_seq, retry)
), done AS (
    DELETE FROM {T} t USING o
    WHERE t.id = o.id AND o.status <> 'ready' AND t.claim_owner = $1 AND t.status = 'sending'
    RETURNING t.id, t.entity, t.verb, t.entity_key, t.priority, t.event_time, t.payload::text AS payload, t.claim_owner
), archived AS (
    INSERT INTO {A} (id, entity, verb, entity_key, priority, event_time, payload, status, reason, event_id, stream_seq, claim_owner)
    SELECT d.id, d.entity, d.verb, d.entity_key, d.priority, d.event_time, d.payload,
           o.status, NULLIF(o.reason, ''), o.event_id, NULLIF(o.stream_seq, 0), d.claim_owner
    FROM done d JOIN o ON o.id = d.id
    RETURNING 1
), released AS (
    UPDATE {T} t
    SET status = 'ready', claim_owner = NULL,
        claim_until = CASE WHEN o.retry > 0 THEN now() + o.retry * interval '1 second' END,
        error = COALESCE(NULLIF(o.reason, ''), t.error)
    FROM o
    WHERE t.id = o.id AND o.status = 'ready' AND t.claim_owner = $1 AND t.status = 'sending'
    RETURNING 1
)
SELECT (SELECT count(*) FROM archived), (SELECT count(*) FROM released)`

func newPostgres(c Config, log *slog.Logger, dbErrors prometheus.Counter) (*postgres, error) {
	cfg, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		// pgconn's message quotes the DSN with its password redacted.
		return nil, fmt.Errorf("SQL_SOURCE_DSN: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg) // connects lazily
	if err != nil {
		return nil, fmt.Errorf("SQL_SOURCE_DSN: %w", err)
	}
	return &postgres{
		pool: pool, listenCfg: cfg.ConnConfig.Copy(), channel: c.Table,
		claimSQL: c.expand(postgresClaim), settleSQL: c.expand(postgresSettle),
		log: log, dbErrors: dbErrors,
	}, nil
}

func (p *postgres) claim(ctx context.Context, owner string, lease time.Duration, limit int) ([]row, error) {
	rs, err := p.pool.Query(ctx, p.claimSQL, limit, owner, lease.Seconds())
	if err != nil {
		return nil, hintPostgres(err)
	}
	var rows []row
	for rs.Next() {
		var (
			r       row
			payload *string
		)
		if err := rs.Scan(&r.id, &r.entity, &r.verb, &r.key, &r.eventTime, &payload, &r.n); err != nil {
			rs.Close()
			return nil, err
		}
		if payload != nil {
			r.payload = []byte(*payload)
		}
		rows = append(rows, r)
	}
	return rows, hintPostgres(rs.Err())
}

func (p *postgres) settle(ctx context.Context, owner string, outs []outcome) (int, int, error) {
	var (
		ids     = make([]int64, len(outs))
		status  = make([]string, len(outs))
		reasons = make([]string, len(outs))
		eventID = make([]string, len(outs))
		seqs    = make([]int64, len(outs))
		retries = make([]float64, len(outs))
	)
	for i, o := range outs {
		ids[i], status[i], reasons[i], eventID[i], seqs[i], retries[i] = o.id, o.status, o.reason, o.eventID, int64(o.seq), o.retry.Seconds()
	}
	var archived, released int
	err := p.pool.QueryRow(ctx, p.settleSQL, owner, ids, status, reasons, eventID, seqs, retries).Scan(&archived, &released)
	return archived, released, hintPostgres(err)
}

func (p *postgres) reread(ctx context.Context, query, key string) ([]byte, error) {
	var state []byte
	err := p.pool.QueryRow(ctx, query, key).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return state, err
}

// listen keeps a LISTEN connection open and calls wake for each
// notification, and once after each (re)connect for what was committed
// while it was away. A lost connection is re-opened with a back-off;
// meanwhile polling carries on.
func (p *postgres) listen(ctx context.Context, wake func()) {
	for failures := 0; ctx.Err() == nil; {
		listening, err := p.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if listening {
			failures = 0
		}
		failures++
		p.dbErrors.Inc()
		wait := min(time.Duration(failures)*time.Second, 30*time.Second)
		p.log.Warn("LISTEN connection failed; polling until it is back", "channel", p.channel, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

func (p *postgres) listenOnce(ctx context.Context, wake func()) (listening bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, p.listenCfg.Copy())
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{p.channel}.Sanitize()); err != nil {
		return false, err
	}
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		wake()
	}
}

func (p *postgres) close() { p.pool.Close() }

// hintPostgres adds what to do to a missing table.
func hintPostgres(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return fmt.Errorf("%w (create the tables with `eventmesh sql-source init --apply`)", err)
	}
	return err
}
