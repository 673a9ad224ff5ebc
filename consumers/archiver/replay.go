package archiver

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmesh/eventmesh/consumers/archiver/store"
	"github.com/eventmesh/eventmesh/router"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Select returns every archived event f matches, in the store's order,
// following the cursor through all pages from f.Cursor on: what an archive
// replay publishes (give f.Limit store.MaxLimit for the fewest queries).
func Select(ctx context.Context, st store.Store, f store.Filter) ([]store.Event, error) {
	var events []store.Event
	for {
		page, err := st.Query(ctx, f)
		if err != nil {
			return events, err
		}
		events = append(events, page.Events...)
		if page.Next == "" {
			return events, nil
		}
		f.Cursor = page.Next
	}
}

// Replay publishes archived events again: their ce-id kept (receivers
// deduplicate), a fresh Nats-Msg-Id (the stream's duplicate window would
// otherwise swallow a second replay), eventmesh-origin replay; on
// <prefix>-replay.<consumer>.<namespace> when consumer is set, so only that
// consumer gets them, else on their own subjects. It returns how many the
// stream acknowledged. A replay to a consumer without a durable reaches
// nobody: check with admin.RequireDurables first, as `eventmesh archive
// replay` does.
func Replay(ctx context.Context, js jetstream.JetStream, s router.Subjects, events []store.Event, consumer string, now func() time.Time) (int, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(events))
	for _, e := range events {
		ev := router.Event{ID: e.ID, Namespace: e.Type, Source: e.Source, Time: e.Time, Data: e.Data}
		if h := nats.Header(e.Headers); h != nil {
			ev.CorrelationID, ev.Traceparent = h.Get(router.HeaderCorrelationID), h.Get(router.HeaderTraceparent)
		}
		m := ev.ReplayMsg(s, consumer, now())
		f, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute))
		if err != nil {
			return 0, err
		}
		futs = append(futs, f)
	}
	n := 0
	for _, f := range futs {
		select {
		case <-f.Ok():
			n++
		case err := <-f.Err():
			return n, fmt.Errorf("replay %s: %w", f.Msg().Header.Get(router.HeaderID), err)
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
	return n, nil
}
