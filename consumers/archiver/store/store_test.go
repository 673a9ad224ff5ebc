package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// One conformance suite, run against every backend (as watermill runs
// pubsub/tests against each of its Pub/Subs): both must answer alike.

const postgresEnv = "EVENTMESH_TEST_POSTGRES"

func TestSQLite(t *testing.T) {
	runSuite(t, reopenable(func(t *testing.T) func() (Store, error) {
		path := filepath.Join(t.TempDir(), DefaultFile)
		return func() (Store, error) { return OpenSQLite(path) }
	}))
}

func TestPostgres(t *testing.T) {
	dsn := postgresDSN(t)
	runSuite(t, reopenable(func(t *testing.T) func() (Store, error) {
		schemaDSN := freshSchema(t, dsn)
		return func() (Store, error) { return OpenPostgres(context.Background(), schemaDSN) }
	}))
}

// postgresDSN returns the test server's URL or skips the test.
func postgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		t.Skip(postgresEnv + " is unset: set it to a PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the suite against PostgreSQL")
	}
	return dsn
}

// freshSchema returns dsn with search_path set to a new schema of its own
// (created by OpenPostgres), dropped when the test ends.
func freshSchema(t testing.TB, dsn string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "eventmesh_test_" + hex.EncodeToString(b)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return u.String()
}

// reopenable turns newLocation (a fresh, empty place for one test's
// archive, and how to open it) into the suite's open function: the first
// call in a test opens a new, empty store; later calls in the same test
// open the same data again. Every store is closed when the test ends.
func reopenable(newLocation func(t *testing.T) func() (Store, error)) func(t *testing.T) Store {
	var mu sync.Mutex
	locations := map[*testing.T]func() (Store, error){}
	return func(t *testing.T) Store {
		t.Helper()
		mu.Lock()
		open, ok := locations[t]
		if !ok {
			open = newLocation(t)
			locations[t] = open
		}
		mu.Unlock()
		s, err := open()
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

// runSuite is the conformance suite. open(t) returns an empty store the
// first time it is called in a test and the same data on later calls.
func runSuite(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) Store)
	}{
		{"InsertIdempotent", testInsertIdempotent},
		{"RoundTrip", testRoundTrip},
		{"OutcomesBeforeEvent", testOutcomesBeforeEvent},
		{"FilterType", testFilterType},
		{"Filters", testFilters},
		{"Pagination", testPagination},
		{"BadCursor", testBadCursor},
		{"ErasePeer", testErasePeer},
		{"PruneByAge", testPruneByAge},
		{"PruneByCount", testPruneByCount},
		{"Reopen", testReopen},
		{"Activity", testActivity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// base has nanoseconds, which the store truncates to microseconds.
var base = time.Date(2026, 3, 1, 10, 15, 0, 123_456_789, time.UTC)

// event returns a plausible archived event.
func event(id, typ string, at time.Time, data string) Event {
	e := Event{
		ID: id, Subject: "enmeshed." + typ, Type: typ, Source: "enmeshed-connector", Time: at, StreamSeq: 7,
		Origin: "webhook", Headers: map[string][]string{"ce-id": {id}, "ce-type": {typ}},
	}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

func mustInsert(t *testing.T, s Store, events ...Event) {
	t.Helper()
	if err := s.InsertEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

func mustOutcomes(t *testing.T, s Store, outcomes ...Outcome) {
	t.Helper()
	if err := s.InsertOutcomes(context.Background(), outcomes); err != nil {
		t.Fatal(err)
	}
}

// all follows the pages of f to the end.
func all(t *testing.T, s Store, f Filter) []Event {
	t.Helper()
	var out []Event
	for range 1000 {
		p, err := s.Query(context.Background(), f)
		if err != nil {
			t.Fatalf("query %+v: %v", f, err)
		}
		out = append(out, p.Events...)
		if p.Next == "" {
			return out
		}
		f.Cursor = p.Next
	}
	t.Fatal("pages never end")
	return nil
}

// ids returns the events' ids, in order.
func ids(events []Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func queryIDs(t *testing.T, s Store, f Filter) []string {
	t.Helper()
	return ids(all(t, s, f))
}

func mustGet(t *testing.T, s Store, id string) Event {
	t.Helper()
	e, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func wantNotFound(t *testing.T, s Store, id string) {
	t.Helper()
	if _, err := s.Get(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(%s) = %v, want ErrNotFound", id, err)
	}
}

func testInsertIdempotent(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	const n = 60
	var events []Event
	for i := range n {
		events = append(events, event(fmt.Sprintf("e%03d", i), "transport.messageReceived", base.Add(time.Duration(i)*time.Second), `{"n":1}`))
	}
	mustInsert(t, s, events...)
	mustInsert(t, s, events...)        // the whole batch redelivered
	mustInsert(t, s, events[10:30]...) // part of it
	mustInsert(t, s, events[50:]...)   // the tail
	if got := len(all(t, s, Filter{Limit: MaxLimit})); got != n {
		t.Fatalf("%d rows after repeated inserts of %d events", got, n)
	}

	// The first copy wins: later copies, and a duplicate within a batch,
	// change nothing.
	changed := events[5]
	changed.Data = []byte(`{"n":2}`)
	mustInsert(t, s, changed)
	dupA, dupB := event("dup", "transport.messageSent", base, `{"copy":"first"}`), event("dup", "transport.messageSent", base, `{"copy":"second"}`)
	mustInsert(t, s, dupA, dupB)
	if got := string(mustGet(t, s, events[5].ID).Data); got != `{"n":1}` {
		t.Errorf("redelivered copy overwrote the first: data %s", got)
	}
	if got := string(mustGet(t, s, "dup").Data); got != `{"copy":"first"}` {
		t.Errorf("second copy in one batch won: data %s", got)
	}
	if got := len(all(t, s, Filter{})); got != n+1 {
		t.Errorf("%d rows, want %d", got, n+1)
	}
	if err := s.InsertEvents(context.Background(), []Event{{Type: "x"}}); err == nil {
		t.Error("an event without id was accepted")
	}
	if err := s.InsertEvents(context.Background(), nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

func testRoundTrip(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	archived := base.Add(time.Minute + 999)
	want := Event{
		ID: "7f3a", Subject: "enmeshed.transport.messageReceived", Type: "transport.messageReceived", Source: "connector-a",
		Time: base, StreamSeq: 1<<53 + 1, Origin: "sync",
		Headers: map[string][]string{"ce-id": {"7f3a"}, "traceparent": {"00-abc-def-01"}, "multi": {"a", "b"}},
		Data:    []byte(`{"id":"MSG1","ünïcode":"✓"}`), Unsubscribed: true, ArchivedAt: archived,
	}
	noData := event("nodata", "runtime.started", base.In(time.FixedZone("CET", 3600)), "")
	noData.Headers = nil
	noData.ArchivedAt = archived
	mustInsert(t, s, want, noData)
	at := base.Add(time.Second)
	outcomes := []Outcome{
		{Consumer: "webhook-1a2b3c4d", EventID: "7f3a", Result: ResultRetried, Attempt: 1, Error: "503 from receiver", Time: at},
		{Consumer: "webhook-1a2b3c4d", EventID: "7f3a", Result: ResultDelivered, Attempt: 2, Time: at.Add(2 * time.Second)},
		{Consumer: "autoaccept", EventID: "7f3a", Result: ResultDelivered, Attempt: 1, Time: at.Add(time.Second)},
	}
	mustOutcomes(t, s, outcomes...)

	got := mustGet(t, s, "7f3a")
	want.Time, want.ArchivedAt = base.Truncate(time.Microsecond), archived.Truncate(time.Microsecond)
	want.Outcomes = []Outcome{outcomes[0], outcomes[2], outcomes[1]} // by time
	for i := range want.Outcomes {
		want.Outcomes[i].Time = want.Outcomes[i].Time.Truncate(time.Microsecond)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get:\n got %+v\nwant %+v", got, want)
	}
	if got.Time.Location() != time.UTC {
		t.Errorf("time in %v, want UTC", got.Time.Location())
	}

	nd := mustGet(t, s, "nodata")
	if nd.Data != nil || nd.Headers != nil || nd.Outcomes != nil || nd.Unsubscribed {
		t.Errorf("event without data: %+v", nd)
	}
	if !nd.Time.Equal(base.Truncate(time.Microsecond)) || nd.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", nd.Time, base)
	}

	wantNotFound(t, s, "nope")

	// Query leaves Outcomes empty unless asked.
	p, err := s.Query(context.Background(), Filter{ID: "7f3a"})
	if err != nil || len(p.Events) != 1 || p.Events[0].Outcomes != nil {
		t.Fatalf("query without outcomes: %+v, %v", p, err)
	}
	p, err = s.Query(context.Background(), Filter{WithOutcomes: true})
	if err != nil || len(p.Events) != 2 {
		t.Fatalf("query with outcomes: %+v, %v", p, err)
	}
	for _, e := range p.Events {
		if e.ID == "7f3a" && !reflect.DeepEqual(e.Outcomes, want.Outcomes) {
			t.Errorf("query outcomes %+v, want %+v", e.Outcomes, want.Outcomes)
		}
	}
	// Zero time survives too.
	zero := event("zero", "x.y", time.Time{}, "")
	mustInsert(t, s, zero)
	if got := mustGet(t, s, "zero").Time; !got.Equal(time.Time{}) {
		t.Errorf("zero time read back as %v", got)
	}
}

func testOutcomesBeforeEvent(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	o := []Outcome{
		{Consumer: "webhook-aa", EventID: "late", Result: ResultRetried, Attempt: 1, Error: "timeout", Time: base},
		{Consumer: "webhook-aa", EventID: "late", Result: ResultDeadLettered, Attempt: 2, Error: "gave up", Time: base.Add(time.Second)},
	}
	mustOutcomes(t, s, o...)
	wantNotFound(t, s, "late")
	// A record is identified by consumer, event id, attempt and result: a
	// repeat (an outcome message read twice, a batch published again) is
	// stored once, in another batch or in the same one.
	mustOutcomes(t, s, o...) // redelivered
	mustOutcomes(t, s, o[1], o[1])
	mustInsert(t, s, event("late", "transport.messageSent", base, `{}`))
	got := mustGet(t, s, "late").Outcomes
	if len(got) != 2 || got[0].Result != ResultRetried || got[1].Result != ResultDeadLettered {
		t.Fatalf("outcomes %+v", got)
	}
	// The same attempt may have two results (retried, then paused).
	mustOutcomes(t, s, Outcome{Consumer: "webhook-aa", EventID: "late", Result: ResultPaused, Attempt: 2, Time: base.Add(2 * time.Second)})
	if got := mustGet(t, s, "late").Outcomes; len(got) != 3 {
		t.Errorf("%d outcomes, want 3", len(got))
	}
	if err := s.InsertOutcomes(context.Background(), []Outcome{{Consumer: "x", Result: ResultDelivered}}); err == nil {
		t.Error("an outcome without event id was accepted")
	}
}

func testFilterType(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	types := []string{
		"transport",
		"transport.messageReceived",
		"transport.messageSent",
		"transport.a.b",
		"transportX.messageSent",
		"consumption.incomingRequestReceived",
		"consumption.relationshipEvent.RELx",
		"x.b.z",
		"x.y.b.z",
		"Transport.messageSent",
	}
	var events []Event
	for i, typ := range types {
		events = append(events, event(fmt.Sprintf("t%02d", i), typ, base.Add(time.Duration(i)*time.Second), ""))
	}
	mustInsert(t, s, events...)
	typesOf := func(f Filter) []string {
		var out []string
		for _, e := range all(t, s, f) {
			out = append(out, e.Type)
		}
		return out
	}
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{"transport.messageSent", []string{"transport.messageSent"}},
		{"transport.*", []string{"transport.messageReceived", "transport.messageSent"}},
		{"transport.>", []string{"transport.messageReceived", "transport.messageSent", "transport.a.b"}},
		{"transport", []string{"transport"}},
		{"*.messageSent", []string{"transport.messageSent", "transportX.messageSent", "Transport.messageSent"}},
		{"*.b.>", []string{"x.b.z"}},
		{"*.*.b.*", []string{"x.y.b.z"}},
		{"consumption.*.*", []string{"consumption.relationshipEvent.RELx"}},
		{">", types},
		{"*", []string{"transport"}},
		{"nothing.*", nil},
		{"transport._", nil}, // '_' is a token character, not a wildcard
		{"", types},
	} {
		if got := typesOf(Filter{Type: tc.pattern}); !slices.Equal(got, tc.want) {
			t.Errorf("type %q: got %q, want %q", tc.pattern, got, tc.want)
		}
	}
	for _, bad := range []string{"transport.>.x", "trans*", "a..b", "transport.", "a b", "transport.%", "transport.a*"} {
		if _, err := s.Query(context.Background(), Filter{Type: bad}); !errors.Is(err, ErrBadFilter) {
			t.Errorf("type %q: err %v, want ErrBadFilter", bad, err)
		}
	}
}

func testFilters(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	peer := "did:e:bb.example.org:dids:9a1c0e5f7b2d4c6a8e0f12"
	mk := func(id, typ, source string, sec int, data string, unsub bool) Event {
		e := event(id, typ, base.Add(time.Duration(sec)*time.Second), data)
		e.Source, e.Unsubscribed = source, unsub
		return e
	}
	mustInsert(t, s,
		mk("a", "transport.messageReceived", "conn-1", 0, `{"createdBy":"`+peer+`"}`, false),
		mk("b", "transport.messageSent", "conn-2", 10, `{"recipients":[{"address":"`+peer+`"}]}`, false),
		mk("c", "consumption.incomingRequestReceived", "conn-1", 20, `{"peer":"did:e:other"}`, false),
		mk("d", "runtime.started", "conn-1", 30, "", true),
		mk("e", "transport.messageReceived", "conn-2", 40, `{"x":"`+peer+`"}`, true),
	)
	mustOutcomes(t, s,
		Outcome{Consumer: "webhook-1", EventID: "a", Result: ResultDelivered, Attempt: 1, Time: base},
		Outcome{Consumer: "webhook-1", EventID: "b", Result: ResultRetried, Attempt: 1, Time: base},
		Outcome{Consumer: "webhook-1", EventID: "b", Result: ResultDeadLettered, Attempt: 2, Time: base},
		Outcome{Consumer: "autoaccept", EventID: "c", Result: ResultDeadLettered, Attempt: 5, Time: base},
		Outcome{Consumer: "autoaccept", EventID: "a", Result: ResultPaused, Attempt: 1, Time: base},
		Outcome{Consumer: "webhook-1", EventID: "missing", Result: ResultDeadLettered, Attempt: 1, Time: base},
	)
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"a", "b", "c", "d", "e"}},
		{"source", Filter{Source: "conn-2"}, []string{"b", "e"}},
		{"since", Filter{Since: base.Add(20 * time.Second)}, []string{"c", "d", "e"}},
		{"until exclusive", Filter{Until: base.Add(20 * time.Second)}, []string{"a", "b"}},
		{"range", Filter{Since: base.Add(5 * time.Second), Until: base.Add(35 * time.Second)}, []string{"b", "c", "d"}},
		{"id", Filter{ID: "c"}, []string{"c"}},
		{"unknown id", Filter{ID: "zz"}, nil},
		{"dead_lettered", Filter{Outcome: ResultDeadLettered}, []string{"b", "c"}},
		{"delivered", Filter{Outcome: ResultDelivered}, []string{"a"}},
		{"retried", Filter{Outcome: ResultRetried}, []string{"b"}},
		{"paused", Filter{Outcome: ResultPaused}, []string{"a"}},
		{"unsubscribed", Filter{Outcome: Unsubscribed}, []string{"d", "e"}},
		{"peer", Filter{Peer: peer}, []string{"a", "b", "e"}},
		{"peer prefix is no match", Filter{Peer: peer[:len(peer)-1]}, nil},
		{"peer other", Filter{Peer: "did:e:other"}, []string{"c"}},
		{"peer %", Filter{Peer: "%"}, nil},
		{"combined", Filter{Type: "transport.*", Source: "conn-2", Peer: peer, Outcome: Unsubscribed}, []string{"e"}},
		{"combined none", Filter{Type: "transport.>", Outcome: ResultDeadLettered, Since: base.Add(11 * time.Second)}, nil},
	} {
		if got := queryIDs(t, s, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := s.Query(context.Background(), Filter{Outcome: "exploded"}); !errors.Is(err, ErrBadFilter) {
		t.Errorf("unknown outcome: %v, want ErrBadFilter", err)
	}
}

func testPagination(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	const n = 250
	var events []Event
	for i := range n {
		// Ten events share each instant, inserted out of order, so the
		// order rests on (time, id) and ties fall to the id.
		e := event(fmt.Sprintf("p%03d", (i*37)%n), "transport.messageSent", base.Add(time.Duration((i*37)%n/10)*time.Millisecond), "")
		events = append(events, e)
	}
	for chunk := range slices.Chunk(events, 64) {
		mustInsert(t, s, chunk...)
	}
	var sizes []int
	var got []string
	f := Filter{Limit: 100}
	for {
		p, err := s.Query(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(p.Events))
		got = append(got, ids(p.Events)...)
		if p.Next == "" {
			break
		}
		if len(sizes) > 3 {
			t.Fatal("more than 3 pages")
		}
		f.Cursor = p.Next
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("page sizes %v, want [100 100 50]", sizes)
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("p%03d", i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages are not every event once in (time, id) order:\n got %v", got)
	}

	// Exactly one page's worth: no empty page after it.
	p, err := s.Query(context.Background(), Filter{Limit: n})
	if err != nil || len(p.Events) != n || p.Next != "" {
		t.Errorf("limit %d: %d events, next %q, err %v", n, len(p.Events), p.Next, err)
	}
	// Defaults and bounds.
	if p, _ := s.Query(context.Background(), Filter{}); len(p.Events) != DefaultLimit || p.Next == "" {
		t.Errorf("default limit: %d events", len(p.Events))
	}
	if p, _ := s.Query(context.Background(), Filter{Limit: 1_000_000}); len(p.Events) != n {
		t.Errorf("huge limit: %d events", len(p.Events))
	}
	// The cursor composes with filters: pages of the id-ordered half.
	half := all(t, s, Filter{Until: base.Add(12 * time.Millisecond), Limit: 7})
	if len(half) != 120 || half[0].ID != "p000" || half[119].ID != "p119" {
		t.Errorf("filtered pages: %d events", len(half))
	}
}

func testBadCursor(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	for i := range 5 {
		mustInsert(t, s, event(fmt.Sprintf("c%d", i), "a.b", base.Add(time.Duration(i)), ""))
	}
	p, err := s.Query(context.Background(), Filter{Limit: 2})
	if err != nil || p.Next == "" {
		t.Fatalf("first page: %v %q", err, p.Next)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for name, c := range map[string]string{
		"edited first":  flip(p.Next, 0),
		"edited middle": flip(p.Next, len(p.Next)/2),
		"edited last":   flip(p.Next, len(p.Next)-1),
		"truncated":     p.Next[:len(p.Next)-3],
		"extended":      p.Next + "AAAA",
		"not base64":    "!!not a cursor!!",
		"short":         "AQ",
		"padded":        p.Next + "==",
	} {
		_, err := s.Query(context.Background(), Filter{Cursor: c})
		if !errors.Is(err, ErrBadCursor) {
			t.Errorf("%s cursor %q: err %v, want ErrBadCursor", name, c, err)
		}
	}
	if _, err := s.Query(context.Background(), Filter{Cursor: p.Next}); err != nil {
		t.Errorf("the untouched cursor: %v", err)
	}
}

func testErasePeer(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := context.Background()
	const (
		short   = "did:e:x.example:dids:abc"      // a prefix of long
		long    = "did:e:x.example:dids:abcdef"   // has short as a prefix
		wild    = "did:e:x.example:dids:a%c_e"    // LIKE wildcards
		lookAlk = "did:e:x.example:dids:aXYZcQe"  // what wild would match as a LIKE pattern
		other   = "did:e:y.example:dids:12345678" // never erased
	)
	type row struct {
		id   string
		data string
	}
	rows := []row{
		{"s1", `{"createdBy":"` + short + `"}`},
		{"s2", `{"recipients":[{"address":"` + short + `"},{"address":"` + other + `"}]}`},
		{"l1", `{"createdBy":"` + long + `"}`},
		{"l2", `{"peer":"` + long + `","x":"` + other + `"}`},
		{"w1", `{"peer":"` + wild + `"}`},
		{"k1", `{"peer":"` + lookAlk + `"}`},
		{"o1", `{"peer":"` + other + `"}`},
		{"n1", ""},
	}
	for i, r := range rows {
		mustInsert(t, s, event(r.id, "transport.messageReceived", base.Add(time.Duration(i)*time.Second), r.data))
		mustOutcomes(t, s,
			Outcome{Consumer: "webhook-1", EventID: r.id, Result: ResultRetried, Attempt: 1, Time: base},
			Outcome{Consumer: "webhook-1", EventID: r.id, Result: ResultDelivered, Attempt: 2, Time: base.Add(time.Second)})
	}
	// An outcome whose event has not arrived stays too.
	mustOutcomes(t, s, Outcome{Consumer: "webhook-1", EventID: "later", Result: ResultDelivered, Attempt: 1, Time: base})

	erase := func(address string, wantEvents int64, remaining ...string) {
		t.Helper()
		ev, oc, err := s.ErasePeer(ctx, address)
		if err != nil {
			t.Fatal(err)
		}
		if ev != wantEvents || oc != 2*wantEvents {
			t.Errorf("erase %s: %d events, %d outcomes; want %d, %d", address, ev, oc, wantEvents, 2*wantEvents)
		}
		if got := queryIDs(t, s, Filter{}); !slices.Equal(got, remaining) {
			t.Errorf("after erasing %s: %q remain, want %q", address, got, remaining)
		}
		for _, id := range remaining {
			if got := mustGet(t, s, id).Outcomes; len(got) != 2 {
				t.Errorf("after erasing %s: %s has %d outcomes, want 2", address, id, len(got))
			}
		}
	}
	erase(short, 2, "l1", "l2", "w1", "k1", "o1", "n1")
	erase(wild, 1, "l1", "l2", "k1", "o1", "n1")
	erase(short, 0, "l1", "l2", "k1", "o1", "n1")
	erase(long, 2, "k1", "o1", "n1")
	for _, id := range []string{"s1", "s2", "l1", "l2", "w1"} {
		wantNotFound(t, s, id)
	}
	// The erased events' outcomes are gone: were the events redelivered,
	// they would come back without them.
	mustInsert(t, s, event("s1", "transport.messageReceived", base, `{}`))
	if got := mustGet(t, s, "s1").Outcomes; len(got) != 0 {
		t.Errorf("outcomes of an erased event survived: %+v", got)
	}
	mustInsert(t, s, event("later", "transport.messageReceived", base, `{}`))
	if got := mustGet(t, s, "later").Outcomes; len(got) != 1 {
		t.Errorf("outcome of an unrelated, not yet archived event: %+v", got)
	}
	if _, _, err := s.ErasePeer(ctx, ""); err == nil {
		t.Error("erasing the empty address (every event) was accepted")
	}
}

func testPruneByAge(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := context.Background()
	defer func(n int) { pruneChunk = n }(pruneChunk)
	pruneChunk = 3 // several transactions per prune

	var events []Event
	for i := range 10 {
		e := event(fmt.Sprintf("g%02d", i), "a.b", base, "")
		e.ArchivedAt = base.Add(time.Duration(i) * time.Hour)
		events = append(events, e)
	}
	mustInsert(t, s, events...)
	for _, e := range events {
		mustOutcomes(t, s, Outcome{Consumer: "c", EventID: e.ID, Result: ResultDelivered, Attempt: 1, Time: e.ArchivedAt})
	}
	cut := base.Add(7 * time.Hour)
	mustOutcomes(t, s,
		Outcome{Consumer: "c", EventID: "orphan-old", Result: ResultDelivered, Attempt: 1, Time: cut.Add(-time.Second)},
		Outcome{Consumer: "c", EventID: "orphan-new", Result: ResultDelivered, Attempt: 1, Time: cut})

	n, err := s.Prune(ctx, cut, 0)
	if err != nil || n != 7 {
		t.Fatalf("prune: %d, %v; want 7", n, err)
	}
	if got := queryIDs(t, s, Filter{}); !slices.Equal(got, []string{"g07", "g08", "g09"}) {
		t.Errorf("remaining %q", got)
	}
	for _, e := range events[7:] {
		if len(mustGet(t, s, e.ID).Outcomes) != 1 {
			t.Errorf("%s lost its outcome", e.ID)
		}
	}
	// Pruned events' outcomes are gone, and the old orphan with them; the
	// recent orphan waits for its event.
	mustInsert(t, s, event("g00", "a.b", base, ""), event("orphan-old", "a.b", base, ""), event("orphan-new", "a.b", base, ""))
	for id, want := range map[string]int{"g00": 0, "orphan-old": 0, "orphan-new": 1} {
		if got := len(mustGet(t, s, id).Outcomes); got != want {
			t.Errorf("%s: %d outcomes after prune, want %d", id, got, want)
		}
	}
	if n, err := s.Prune(ctx, time.Time{}, 0); err != nil || n != 0 {
		t.Errorf("prune without limits: %d, %v", n, err)
	}
}

func testPruneByCount(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := context.Background()
	defer func(n int) { pruneChunk = n }(pruneChunk)
	pruneChunk = 4

	var events []Event
	for i := range 20 {
		// Pairs share an archive time: the id breaks the tie.
		e := event(fmt.Sprintf("k%02d", i), "a.b", base.Add(-time.Duration(i)*time.Minute), "")
		e.ArchivedAt = base.Add(time.Duration(i/2) * time.Minute)
		events = append(events, e)
	}
	mustInsert(t, s, events...)
	for _, e := range events {
		mustOutcomes(t, s, Outcome{Consumer: "c", EventID: e.ID, Result: ResultDelivered, Attempt: 1, Time: base})
	}
	n, err := s.Prune(ctx, time.Time{}, 5)
	if err != nil || n != 15 {
		t.Fatalf("prune to 5: %d, %v; want 15", n, err)
	}
	got := queryIDs(t, s, Filter{})
	slices.Sort(got)
	if !slices.Equal(got, []string{"k15", "k16", "k17", "k18", "k19"}) {
		t.Errorf("remaining %q, want the 5 archived last", got)
	}
	if n, err := s.Prune(ctx, time.Time{}, 5); err != nil || n != 0 {
		t.Errorf("second prune to 5: %d, %v", n, err)
	}
	if n, err := s.Prune(ctx, time.Time{}, 100); err != nil || n != 0 {
		t.Errorf("prune to more than there is: %d, %v", n, err)
	}
	// Age and count together: whichever removes more.
	if n, err := s.Prune(ctx, base.Add(8*time.Minute), 4); err != nil || n != 1 {
		t.Errorf("prune to 4 by count: %d, %v; want 1", n, err)
	}
	if n, err := s.Prune(ctx, base.Add(9*time.Minute), 4); err != nil || n != 2 {
		t.Errorf("prune by age beyond count: %d, %v; want 2", n, err)
	}
	mustInsert(t, s, event("k00", "a.b", base, ""))
	if got := mustGet(t, s, "k00").Outcomes; len(got) != 0 {
		t.Errorf("outcomes of a pruned event survived: %+v", got)
	}
}

// versioned is what the reopen test reads of a backend's migrations.
type versioned interface {
	versions(ctx context.Context) (map[int]time.Time, error)
}

func testReopen(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := context.Background()
	mustInsert(t, s, event("r1", "a.b", base, `{"v":1}`), event("r2", "a.c", base, ""))
	mustOutcomes(t, s, Outcome{Consumer: "c", EventID: "r1", Result: ResultDelivered, Attempt: 1, Time: base})
	before, err := s.(versioned).versions(ctx)
	if err != nil || len(before) == 0 {
		t.Fatalf("schema versions: %v, %v", before, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t)
	if got := queryIDs(t, s, Filter{}); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Errorf("after reopening: %q", got)
	}
	if e := mustGet(t, s, "r1"); string(e.Data) != `{"v":1}` || len(e.Outcomes) != 1 {
		t.Errorf("after reopening: %+v", e)
	}
	after, err := s.(versioned).versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("reopening re-ran migrations: versions %v, then %v", before, after)
	}
	mustInsert(t, s, event("r3", "a.b", base, ""))
	if got := len(all(t, s, Filter{})); got != 3 {
		t.Errorf("%d events after an insert on the reopened store", got)
	}
}

func TestOpenDSN(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		dsn, dataDir, file string
	}{
		{"", filepath.Join(dir, "data"), filepath.Join(dir, "data", DefaultFile)},
		{"sqlite:" + filepath.Join(dir, "a.db"), "", filepath.Join(dir, "a.db")},
		{filepath.Join(dir, "b.db"), "", filepath.Join(dir, "b.db")},
	} {
		s, err := Open(ctx, tc.dsn, tc.dataDir)
		if err != nil {
			t.Fatalf("Open(%q, %q): %v", tc.dsn, tc.dataDir, err)
		}
		if _, ok := s.(*SQLite); !ok {
			t.Errorf("Open(%q): %T, want *SQLite", tc.dsn, s)
		}
		s.Close()
		if _, err := os.Stat(tc.file); err != nil {
			t.Errorf("Open(%q, %q): %v", tc.dsn, tc.dataDir, err)
		}
	}
	for _, dsn := range []string{"mysql://db/x", "sqlite:", "a?b.db"} {
		if s, err := Open(ctx, dsn, dir); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
}

func TestOpenPostgresDSN(t *testing.T) {
	dsn := freshSchema(t, postgresDSN(t))
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		s, err := Open(context.Background(), scheme+strings.TrimPrefix(dsn, "postgres://"), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.(*Postgres); !ok {
			t.Errorf("%T, want *Postgres", s)
		}
		mustInsert(t, s, event("x", "a.b", base, ""))
		s.Close()
	}
	// A quoted, mixed-case schema works too.
	u, _ := url.Parse(dsn)
	q := u.Query()
	schema := q.Get("search_path") + "_Q"
	q.Set("search_path", `"`+schema+`", public`)
	u.RawQuery = q.Encode()
	s, err := OpenPostgres(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), postgresDSN(t))
		if err == nil {
			conn.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
			conn.Close(context.Background())
		}
	})
	if s.schema != schema {
		t.Errorf("schema %q, want %q", s.schema, schema)
	}
}

func TestFirstSchema(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"eventmesh":         "eventmesh",
		"EventMesh, public": "eventmesh",
		`"My ""x""",public`: `My "x"`,
		"$user, public":     "",
	} {
		if got := firstSchema(in); got != want {
			t.Errorf("firstSchema(%q) = %q, want %q", in, got, want)
		}
	}
}

// The alternatives to the default insert mode keep the contract too.
func TestPostgresInsertModes(t *testing.T) {
	dsn := postgresDSN(t)
	for _, mode := range []struct {
		name string
		mode insertMode
	}{{"batch", insertBatch}, {"copy", insertCopy}} {
		open := reopenable(func(t *testing.T) func() (Store, error) {
			schemaDSN := freshSchema(t, dsn)
			return func() (Store, error) {
				p, err := OpenPostgres(context.Background(), schemaDSN)
				if err == nil {
					p.insert = mode.mode
				}
				return p, err
			}
		})
		t.Run(mode.name+"/InsertIdempotent", func(t *testing.T) { testInsertIdempotent(t, open) })
		t.Run(mode.name+"/RoundTrip", func(t *testing.T) { testRoundTrip(t, open) })
	}
}

// Headers are JSON text that SQL can read, in both backends.
func TestHeadersJSON(t *testing.T) {
	ctx := context.Background()
	e := event("h1", "a.b", base, "")
	e.Headers["traceparent"] = []string{"00-abc-01"}

	s, err := OpenSQLite(filepath.Join(t.TempDir(), DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustInsert(t, s, e)
	var kind, tp string
	if err := s.r.QueryRowContext(ctx, `SELECT typeof(headers), json_extract(headers, '$.traceparent[0]') FROM events`).Scan(&kind, &tp); err != nil {
		t.Fatal(err)
	}
	if kind != "text" || tp != "00-abc-01" {
		t.Errorf("SQLite headers: %s, traceparent %q", kind, tp)
	}

	if os.Getenv(postgresEnv) == "" {
		return
	}
	p, err := OpenPostgres(ctx, freshSchema(t, postgresDSN(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mustInsert(t, p, e)
	if err := p.pool.QueryRow(ctx, `SELECT headers->'traceparent'->>0 FROM events`).Scan(&tp); err != nil || tp != "00-abc-01" {
		t.Errorf("PostgreSQL headers: traceparent %q, %v", tp, err)
	}
}
