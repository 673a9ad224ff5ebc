package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// `eventmesh archive query` and `archive erase` open the store under
// DATA_DIR directly.
func TestArchiveQueryAndErase(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).UTC()
	const jane, john = "did:e:example.org:dids:jane000000000000000000", "did:e:example.org:dids:john000000000000000000"
	var evs []store.Event
	for i := 0; i < 6; i++ {
		peer, typ := jane, "transport.messageReceived"
		if i%2 == 1 {
			peer, typ = john, "consumption.attributeCreated"
		}
		evs = append(evs, store.Event{ID: fmt.Sprintf("%032x", i), Subject: "enmeshed." + typ, Type: typ, Source: "enmeshed-connector",
			Time: base.Add(time.Duration(i) * time.Minute), StreamSeq: uint64(i + 1), Origin: "webhook",
			Data: []byte(`{"id":"X` + fmt.Sprint(i) + `","createdBy":"` + peer + `"}`)})
	}
	if err := st.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	st.InsertOutcomes(ctx, []store.Outcome{{Consumer: "webhook-1", EventID: evs[0].ID, Result: store.ResultDeadLettered, Attempt: 3, Error: "400", Time: base}})
	st.Close()
	env := []string{"DATA_DIR=" + dir}

	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"archive", "query", "--type", "transport.*", "--json"}, env, &out, &errOut); code != 0 {
		t.Fatalf("query: %d %s", code, errOut.String())
	}
	var lines []archiver.EventJSON
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var e archiver.EventJSON
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, e)
	}
	if len(lines) != 3 || lines[0].Type != "transport.messageReceived" || len(lines[0].Outcomes) != 1 || lines[0].Outcomes[0].Result != "dead_lettered" {
		t.Errorf("query --json: %+v", lines)
	}
	out.Reset()
	if code := run(ctx, []string{"archive", "query", "--outcome", "dead_lettered"}, env, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), evs[0].ID) || strings.Contains(out.String(), evs[2].ID) {
		t.Errorf("query --outcome: %d\n%s", code, out.String())
	}
	// --since takes days like every duration.
	for since, n := range map[string]int{"7d": 6, "0.01d": 0} {
		out.Reset()
		if code := run(ctx, []string{"archive", "query", "--since", since, "--json"}, env, &out, &errOut); code != 0 || strings.Count(out.String(), "\n") != n {
			t.Errorf("query --since %s: exit %d, want %d events\n%s%s", since, code, n, out.String(), errOut.String())
		}
	}
	if code := run(ctx, []string{"archive", "erase", "--peer", john}, env, &out, &errOut); code != 2 {
		t.Errorf("erase without --yes: %d", code)
	}
	out.Reset()
	if code := run(ctx, []string{"archive", "erase", "--peer", john, "--yes"}, env, &out, &errOut); code != 0 || !strings.Contains(out.String(), "erased 3 events") {
		t.Errorf("erase: %d %s %s", code, out.String(), errOut.String())
	}
	out.Reset()
	run(ctx, []string{"archive", "query", "--json"}, env, &out, &errOut)
	if n := strings.Count(out.String(), "\n"); n != 3 || strings.Contains(out.String(), john) {
		t.Errorf("after erase: %d events\n%s", n, out.String())
	}
	if code := run(ctx, []string{"archive", "query", "--outcome", "bogus"}, env, &out, &errOut); code != 2 {
		t.Errorf("bad outcome: %d", code)
	}
}

// `eventmesh archive replay` selects from the store under DATA_DIR and
// publishes the events again: to one consumer's replay subject, or to
// their own subjects, each with a fresh Nats-Msg-Id and origin replay.
func TestArchiveReplay(t *testing.T) {
	r := newAdminRig(t, "webhook-1")
	dir := t.TempDir()
	st, err := store.Open(r.ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	var evs []store.Event
	for i, typ := range []string{"transport.messageReceived", "transport.messageReceived", "consumption.attributeCreated"} {
		evs = append(evs, store.Event{ID: fmt.Sprintf("%032x", 0xa0+i), Subject: "enmeshed." + typ, Type: typ, Source: "enmeshed-connector",
			Time: base.Add(time.Duration(i) * time.Minute), StreamSeq: uint64(i + 1), Origin: "webhook",
			Headers: map[string][]string{router.HeaderCorrelationID: {fmt.Sprintf("corr-%d", i)}},
			Data:    []byte(fmt.Sprintf(`{"id":"MSG%d"}`, i))})
	}
	if err := st.InsertEvents(r.ctx, evs); err != nil {
		t.Fatal(err)
	}
	st.Close()
	env := append([]string{"DATA_DIR=" + dir}, r.environ...)
	replay := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(r.ctx, append([]string{"archive", "replay"}, args...), env, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	since := base.Format(time.RFC3339)
	events, err := r.js.Stream(r.ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		t.Helper()
		info, err := events.Info(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	for _, bad := range [][]string{
		{"--type", "transport.*"},                        // no --since
		{"--since", "yesterday"},                         // not a time
		{"--since", since, "--to-consumer", "web.hook"},  // not a token
		{"--since", since, "--type", "transport..bogus"}, // not a pattern
	} {
		if code, out, errOut := replay(bad...); code != 2 {
			t.Errorf("replay %v: exit %d, want 2 (usage)\n%s%s", bad, code, out, errOut)
		}
	}
	code, out, errOut := replay("--since", since, "--type", "transport.*", "--to-consumer", "webhook-1", "--dry-run")
	if code != 0 || !strings.Contains(out, evs[0].ID) || !strings.Contains(out, evs[1].ID) || strings.Contains(out, evs[2].ID) ||
		!strings.Contains(out, "2 events would be replayed to consumer webhook-1 only") {
		t.Errorf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = replay("--since", since, "--to-consumer", "nobody")
	if code != 1 || !strings.Contains(errOut, "consumer nobody has no durable") {
		t.Errorf("replay to a consumer without a durable: exit %d\n%s%s", code, out, errOut)
	}
	if n := stored(); n != 0 {
		t.Fatalf("%d messages published by a dry run or a refused replay", n)
	}

	// Twice to webhook-1: the second is not swallowed by the duplicate window.
	for round := 1; round <= 2; round++ {
		code, out, errOut = replay("--since", since, "--type", "transport.*", "--to-consumer", "webhook-1")
		if code != 0 || !strings.Contains(out, "replayed 2 of 2 events to consumer webhook-1 only") {
			t.Fatalf("replay %d: exit %d\n%s%s", round, code, out, errOut)
		}
		if n := stored(); n != uint64(2*round) {
			t.Fatalf("after replay %d: %d messages in %s, want %d", round, n, streams.Events, 2*round)
		}
	}
	msgIDs := map[string]bool{}
	for seq := uint64(1); seq <= 4; seq++ {
		m, err := events.GetMsg(r.ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		i := int(seq-1) % 2
		want := evs[i]
		if m.Subject != r.s.Replay("webhook-1", want.Type) || m.Header.Get(router.HeaderID) != want.ID ||
			m.Header.Get(router.HeaderOrigin) != string(router.OriginReplay) || m.Header.Get(router.HeaderCorrelationID) != want.Headers[router.HeaderCorrelationID][0] ||
			string(m.Data) != string(want.Data) {
			t.Errorf("replayed message %d: %s %v %s, want event %s on %s", seq, m.Subject, m.Header, m.Data, want.ID, r.s.Replay("webhook-1", want.Type))
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if id == want.ID || msgIDs[id] {
			t.Errorf("replayed message %d has Nats-Msg-Id %q: want a fresh one per replay", seq, id)
		}
		msgIDs[id] = true
	}

	// To every consumer, within --until: on the events' own subjects.
	code, out, errOut = replay("--since", since, "--until", base.Add(90*time.Second).Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, "replayed 2 of 2 events to every consumer") {
		t.Fatalf("replay to every consumer: exit %d\n%s%s", code, out, errOut)
	}
	for seq := uint64(5); seq <= 6; seq++ {
		m, err := events.GetMsg(r.ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if want := evs[seq-5]; m.Subject != r.s.Event(want.Type) || m.Header.Get(router.HeaderID) != want.ID {
			t.Errorf("replayed message %d: %s ce-id %s, want %s on %s", seq, m.Subject, m.Header.Get(router.HeaderID), want.ID, r.s.Event(want.Type))
		}
	}
}

// The archive commands read the mesh's archive and never create one: run
// from another directory (DATA_DIR=./data by default) or with an
// ARCHIVE_DSN that names nothing, they exit 2 naming ARCHIVE_DSN and
// DATA_DIR, and leave no file behind. A replay whose server lacks ENMESHED
// exits 2 naming the server.
func TestArchiveCommandsNeedAnArchive(t *testing.T) {
	ctx := context.Background()
	t.Chdir(t.TempDir())
	dsn := filepath.Join(t.TempDir(), "archive.db")
	since := time.Now().Add(-time.Hour).Format(time.RFC3339)
	for _, environ := range [][]string{nil, {"ARCHIVE_DSN=" + dsn}, {"ARCHIVE_DSN=sqlite:" + dsn, "DATA_DIR=."}} {
		for _, args := range [][]string{
			{"archive", "query"},
			{"archive", "query", "--json", "--all"},
			{"archive", "replay", "--since", since, "--dry-run"},
			{"archive", "replay", "--since", since},
			{"archive", "erase", "--peer", "did:e:example.org:dids:jane000000000000000000", "--yes"},
		} {
			var out, errOut bytes.Buffer
			code := run(ctx, args, environ, &out, &errOut)
			if code != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), "no archive at ") ||
				!strings.Contains(errOut.String(), "ARCHIVE_DSN") || !strings.Contains(errOut.String(), "DATA_DIR") {
				t.Errorf("%v %v: exit %d\nstdout %q\nstderr %q\nwant exit 2 naming ARCHIVE_DSN and DATA_DIR", environ, args, code, out.String(), errOut.String())
			}
		}
	}
	for _, path := range []string{"data", dsn} {
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was created (%v)", path, err)
		}
	}

	// An archive, and a server that is not the mesh's.
	st, err := store.Open(ctx, dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	srv := natstest.Start(t)
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"archive", "replay", "--since", since}, []string{"ARCHIVE_DSN=" + dsn, "NATS_URL=" + srv.ClientURL()}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "no stream ENMESHED on "+srv.ClientURL()+" (NATS_URL): is the mesh running there?") {
		t.Errorf("replay, no ENMESHED: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

// `archive query --json` prints valid JSON in UTF-8 whatever the store holds:
// data with invalid UTF-8 (stored before ingest refused it) or not JSON at
// all comes out in data_base64, byte for byte; other fields are escaped.
func TestArchiveQueryJSONIsValidForAnyStoredData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	datas := [][]byte{
		[]byte(`{"subject":"caf` + "\xe9" + `"}`), // JSON but for its UTF-8
		[]byte("not JSON \xff\xfe"),
		[]byte(`{"subject":"café €"}`),
	}
	base := time.Now().Add(-time.Hour).UTC()
	var evs []store.Event
	for i, d := range datas {
		evs = append(evs, store.Event{ID: fmt.Sprintf("%032x", i), Subject: "enmeshed.transport.messageReceived", Type: "transport.messageReceived",
			Source: "enmeshed-connector", Time: base.Add(time.Duration(i) * time.Minute), StreamSeq: uint64(i + 1), Origin: "webhook",
			Headers: map[string][]string{"x-correlation-id": {"corr-\xff"}}, Data: d})
	}
	if err := st.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"archive", "query", "--json"}, []string{"DATA_DIR=" + dir}, &out, &errOut); code != 0 {
		t.Fatalf("query: %d %s", code, errOut.String())
	}
	got := map[string]archiver.EventJSON{}
	for _, line := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		if !json.Valid(line) || !utf8.Valid(line) {
			t.Errorf("not JSON in UTF-8: %q", line)
			continue
		}
		var e archiver.EventJSON
		json.Unmarshal(line, &e)
		got[e.ID] = e
	}
	if len(got) != len(datas) {
		t.Fatalf("%d events printed, want %d\n%s", len(got), len(datas), &out)
	}
	for i, d := range datas {
		e := got[evs[i].ID]
		if i == 2 {
			if string(e.Data) != string(d) || e.DataBase64 != "" {
				t.Errorf("valid data: data %s, data_base64 %q", e.Data, e.DataBase64)
			}
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(e.DataBase64); err != nil || !bytes.Equal(b, d) || e.Data != nil {
			t.Errorf("event %d: data %q, data_base64 %q, want the stored bytes %q in data_base64", i, e.Data, e.DataBase64, d)
		}
	}
}
