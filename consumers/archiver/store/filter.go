package store

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventmesh/eventmesh/router"
)

// This file holds what both backends share: the filter, compiled to one
// WHERE clause in either SQL dialect, and the cursor.

// dialect is the SQL dialect a query is written in.
type dialect int

const (
	sqliteSQL dialect = iota
	postgresSQL
)

// query collects a statement's text and its arguments, numbering
// placeholders as the dialect wants them.
type query struct {
	d    dialect
	sql  strings.Builder
	args []any
}

// arg adds v as an argument and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	if q.d == postgresSQL {
		return "$" + strconv.Itoa(len(q.args))
	}
	return "?"
}

// time adds t as an argument in the dialect's time representation.
func (q *query) time(t time.Time) string {
	if q.d == sqliteSQL {
		return q.arg(t.UnixMicro())
	}
	return q.arg(t)
}

// eventColumns are the columns scanEvent reads, in order.
const eventColumns = "id, subject, type, source, time, stream_seq, origin, headers, data, unsubscribed, archived_at"

// eventsQuery compiles f into the SELECT of one page: at most limit+1
// rows, the extra one telling whether another page follows.
func eventsQuery(d dialect, f Filter) (q *query, limit int, err error) {
	limit = f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)

	q = &query{d: d}
	var conds []string
	if f.Type != "" {
		tp, err := parseTypePattern(f.Type)
		if err != nil {
			return nil, 0, err
		}
		conds = append(conds, tp.sql(q)...)
	}
	if f.Source != "" {
		conds = append(conds, "source = "+q.arg(f.Source))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "time >= "+q.time(f.Since))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "time < "+q.time(f.Until))
	}
	if f.ID != "" {
		conds = append(conds, "id = "+q.arg(f.ID))
	}
	switch f.Outcome {
	case "":
	case Unsubscribed:
		conds = append(conds, "unsubscribed")
	case ResultDelivered, ResultRetried, ResultDeadLettered, ResultPaused:
		conds = append(conds, "id IN (SELECT event_id FROM outcomes WHERE result = "+q.arg(f.Outcome)+")")
	default:
		return nil, 0, fmt.Errorf("%w: outcome %q: use %s, %s, %s, %s or %s", ErrBadFilter, f.Outcome,
			ResultDelivered, ResultRetried, ResultDeadLettered, ResultPaused, Unsubscribed)
	}
	if f.Peer != "" {
		conds = append(conds, dataContains(q, peerNeedle(f.Peer)))
	}
	if f.Cursor != "" {
		t, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, 0, err
		}
		conds = append(conds, "(time, id) > ("+q.time(t)+", "+q.arg(id)+")")
	}

	q.sql.WriteString("SELECT " + eventColumns + " FROM events")
	if len(conds) > 0 {
		q.sql.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	q.sql.WriteString(" ORDER BY time, id LIMIT " + strconv.Itoa(limit+1))
	return q, limit, nil
}

// dataContains is the condition "data contains needle, bytewise". Neither
// LIKE (case-insensitive in SQLite, and needing every % and _ escaped) nor
// GLOB is used: instr and position take the needle literally.
func dataContains(q *query, needle []byte) string {
	if q.d == sqliteSQL {
		// Both arguments BLOBs: instr compares bytes.
		return "instr(data, " + q.arg(needle) + ") > 0"
	}
	return "position(" + q.arg(needle) + "::bytea in data) > 0"
}

// peerNeedle is how address appears in event data: as a JSON string,
// quotes included, so "did:e:x:dids:ab" never matches
// "did:e:x:dids:abc". Escaped like JSON.stringify does (no HTML escapes).
func peerNeedle(address string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(address) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// typePattern is a compiled Filter.Type.
type typePattern struct {
	raw    string
	tokens []string
	// prefix is the literal tokens before the first wildcard, with their
	// trailing dot: every match lies in [prefix, prefix with its last
	// byte '.' raised to '/'), a range the type index serves.
	prefix string
}

// ValidateType checks a Filter.Type pattern as Query does, so callers can
// reject it before opening a store.
func ValidateType(s string) error { _, err := parseTypePattern(s); return err }

// parseTypePattern validates a NATS-style pattern: tokens of ASCII
// letters, digits, '_' and '-', or "*", or ">" as the last token.
func parseTypePattern(s string) (typePattern, error) {
	fail := func(format string, args ...any) (typePattern, error) {
		return typePattern{}, fmt.Errorf("%w: type %q: %s", ErrBadFilter, s, fmt.Sprintf(format, args...))
	}
	if len(s) > router.MaxTriggerBytes {
		return fail("%d bytes long, at most %d", len(s), router.MaxTriggerBytes)
	}
	tokens := strings.Split(s, ".")
	if len(tokens) > router.MaxTriggerTokens {
		return fail("%d tokens, at most %d", len(tokens), router.MaxTriggerTokens)
	}
	p := typePattern{raw: s, tokens: tokens}
	literal := true
	for i, t := range tokens {
		switch {
		case t == "*":
			literal = false
		case t == ">":
			if i != len(tokens)-1 {
				return fail(`">" must be the last token`)
			}
			literal = false
		default:
			if err := router.ValidateToken(t); err != nil {
				return fail("token %d: %v (wildcards are a whole token: \"*\" for one, \">\" at the end for one or more)", i+1, err)
			}
			if literal {
				p.prefix += t + "."
			}
		}
	}
	return p, nil
}

// exact reports whether the pattern has no wildcard.
func (p typePattern) exact() bool { return p.prefix == p.raw+"." }

// sql returns the conditions selecting the types p matches: equality for
// an exact type, else the prefix range (for the index) and an exact
// match: a regular expression in PostgreSQL, typeMatch as a SQL function
// in SQLite (which has neither regular expressions nor a GLOB that can
// keep '*' within one token).
func (p typePattern) sql(q *query) []string {
	if p.exact() {
		return []string{"type = " + q.arg(p.raw)}
	}
	var conds []string
	if p.prefix != "" {
		upper := p.prefix[:len(p.prefix)-1] + "/" // '/' follows '.'
		conds = append(conds, "type >= "+q.arg(p.prefix), "type < "+q.arg(upper))
	}
	if q.d == sqliteSQL {
		return append(conds, typeMatchFunc+"("+q.arg(p.raw)+", type)")
	}
	return append(conds, "type ~ "+q.arg(p.regexp()))
}

// regexp is p as an anchored POSIX regular expression. Literal tokens
// hold no metacharacters (parseTypePattern saw to it).
func (p typePattern) regexp() string {
	parts := make([]string, len(p.tokens))
	for i, t := range p.tokens {
		switch t {
		case "*":
			parts[i] = `[^.]+`
		case ">":
			parts[i] = `.+`
		default:
			parts[i] = regexp.QuoteMeta(t)
		}
	}
	return "^" + strings.Join(parts, `\.`) + "$"
}

// typeMatchFunc is the SQLite function typeMatch is registered as.
const typeMatchFunc = "eventmesh_type_match"

// The cursor is base64url of: version byte, Time in Unix microseconds
// (8 bytes, big-endian), ID, CRC-32 of all that (4 bytes). The checksum
// turns a truncated or edited cursor into ErrBadCursor instead of a page
// that silently starts elsewhere.
const cursorVersion = 1

func encodeCursor(t time.Time, id string) string {
	b := make([]byte, 0, 1+8+len(id)+4)
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixMicro()))
	b = append(b, id...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	if len(b) < 1+8+1+4 {
		return time.Time{}, "", fmt.Errorf("%w: too short", ErrBadCursor)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return time.Time{}, "", fmt.Errorf("%w: checksum mismatch", ErrBadCursor)
	}
	if body[0] != cursorVersion {
		return time.Time{}, "", fmt.Errorf("%w: version %d, want %d", ErrBadCursor, body[0], cursorVersion)
	}
	micros := int64(binary.BigEndian.Uint64(body[1:9]))
	return time.UnixMicro(micros).UTC(), string(body[9:]), nil
}

// page turns the rows of eventsQuery (at most limit+1) into a Page.
func page(events []Event, limit int) Page {
	if len(events) <= limit {
		return Page{Events: events}
	}
	events = events[:limit]
	last := events[limit-1]
	return Page{Events: events, Next: encodeCursor(last.Time, last.ID)}
}

// marshalHeaders encodes headers for the headers column, byte for byte as
// json.Marshal does. It runs for every archived event, and json.Marshal of
// a map (reflection, sorting reflected keys) was about a tenth of the
// archive's insert time, so the usual headers (printable ASCII that needs
// no escaping) are written directly; anything else goes to json.Marshal.
func marshalHeaders(h map[string][]string) ([]byte, error) {
	if b, ok := appendPlainHeaders(nil, h); ok {
		return b, nil
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode headers: %w", err)
	}
	return b, nil
}

// appendPlainHeaders appends h as json.Marshal encodes it (keys sorted,
// nil slices as null) when no key or value needs escaping, else reports
// false.
func appendPlainHeaders(b []byte, h map[string][]string) ([]byte, bool) {
	if h == nil {
		return nil, false // json.Marshal's "null"
	}
	var stack [16]string
	keys := stack[:0]
	n := 2
	for k, vs := range h {
		if !router.PlainJSON(k) {
			return nil, false
		}
		keys = append(keys, k)
		n += len(k) + 6
		for _, v := range vs {
			if !router.PlainJSON(v) {
				return nil, false
			}
			n += len(v) + 3
		}
	}
	slices.Sort(keys)
	b = slices.Grow(b, n)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(router.AppendJSONString(b, k), ':')
		vs := h[k]
		if vs == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '[')
		for j, v := range vs {
			if j > 0 {
				b = append(b, ',')
			}
			b = router.AppendJSONString(b, v)
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// unmarshalHeaders decodes the headers column.
func unmarshalHeaders(b []byte) (map[string][]string, error) {
	var h map[string][]string
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("decode headers: %w", err)
	}
	return h, nil
}

// dataOrNil stores an empty data as NULL, so it reads back nil.
func dataOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// checkEvents rejects what no row can hold, before a transaction starts.
func checkEvents(events []Event) error {
	for i, e := range events {
		if e.ID == "" {
			return fmt.Errorf("archive: event %d of %d has no id", i+1, len(events))
		}
		if e.StreamSeq > 1<<63-1 {
			return fmt.Errorf("archive: event %s: stream sequence %d out of range", e.ID, e.StreamSeq)
		}
	}
	return nil
}

// checkOutcomes rejects outcomes without their key.
func checkOutcomes(outcomes []Outcome) error {
	for i, o := range outcomes {
		if o.EventID == "" || o.Consumer == "" || o.Result == "" {
			return fmt.Errorf("archive: outcome %d of %d lacks its event id, consumer or result", i+1, len(outcomes))
		}
	}
	return nil
}

// pruneChunk bounds the events one Prune transaction deletes, so a large
// prune never holds SQLite's write lock (or PostgreSQL's row locks) long.
var pruneChunk = 5000

// idsOf returns the ids of events, for the query of their outcomes.
func idsOf(events []Event) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

// attachOutcomes puts outcomes (ordered by time) on their events.
func attachOutcomes(events []Event, outcomes []Outcome) {
	idx := make(map[string]int, len(events))
	for i, e := range events {
		idx[e.ID] = i
	}
	for _, o := range outcomes {
		if i, ok := idx[o.EventID]; ok {
			events[i].Outcomes = append(events[i].Outcomes, o)
		}
	}
}
