package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
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
