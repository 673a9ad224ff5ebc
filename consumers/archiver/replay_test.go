package archiver_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers/archiver"
	"github.com/eventmesh/eventmesh/consumers/archiver/store"
)

// Select follows the cursor through every page.
func TestSelectEveryPage(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "a.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	var evs []store.Event
	for i, typ := range []string{"transport.messageReceived", "consumption.attributeCreated", "transport.messageSent", "transport.messageReceived"} {
		evs = append(evs, store.Event{ID: fmt.Sprintf("%032x", 0xb0+i), Subject: "enmeshed." + typ, Type: typ, Source: "enmeshed-connector",
			Time: base.Add(time.Duration(i) * time.Minute), StreamSeq: uint64(i + 1), Origin: "webhook", Data: []byte(`{}`)})
	}
	if err := st.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := archiver.Select(ctx, st, store.Filter{Type: "transport.*", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if want := []string{evs[0].ID, evs[2].ID, evs[3].ID}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("selected %v, want %v", ids, want)
	}
}
