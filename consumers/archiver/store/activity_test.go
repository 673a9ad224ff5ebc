package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// Activity counts events and outcomes per bucket, aligned to the epoch,
// within [since, until), leaving empty buckets out.
func testActivity(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := context.Background()
	m := base.Truncate(time.Minute) // 10:15:00
	mustInsert(t, s,
		event("a1", "transport.messageReceived", m.Add(5*time.Second), `{}`),
		event("a2", "transport.messageReceived", m.Add(59*time.Second), `{}`),
		event("a3", "transport.messageSent", m.Add(2*time.Minute), `{}`),
		event("old", "transport.messageSent", m.Add(-time.Hour), `{}`),
		event("late", "transport.messageSent", m.Add(3*time.Minute), `{}`), // at until: excluded
	)
	mustOutcomes(t, s,
		Outcome{Consumer: "webhook-1", EventID: "a1", Result: ResultDelivered, Attempt: 1, Time: m.Add(6 * time.Second)},
		Outcome{Consumer: "webhook-1", EventID: "a2", Result: ResultRetried, Attempt: 1, Error: "503", Time: m.Add(59 * time.Second)},
		Outcome{Consumer: "webhook-1", EventID: "a2", Result: ResultDelivered, Attempt: 2, Time: m.Add(61 * time.Second)},
		Outcome{Consumer: "bridge-x", EventID: "a1", Result: ResultDelivered, Attempt: 1, Time: m.Add(7 * time.Second)},
		Outcome{Consumer: "bridge-x", EventID: "old", Result: ResultDelivered, Attempt: 1, Time: m.Add(-time.Hour)},
	)
	got, err := s.Activity(ctx, m.Add(30*time.Second), m.Add(3*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []Tally{
		{Bucket: m, Count: 2},
		{Bucket: m, Consumer: "bridge-x", Result: ResultDelivered, Count: 1},
		{Bucket: m, Consumer: "webhook-1", Result: ResultDelivered, Count: 1},
		{Bucket: m, Consumer: "webhook-1", Result: ResultRetried, Count: 1},
		{Bucket: m.Add(time.Minute), Consumer: "webhook-1", Result: ResultDelivered, Count: 1},
		{Bucket: m.Add(2 * time.Minute), Count: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("activity:\n got %+v\nwant %+v", got, want)
	}
	if _, err := s.Activity(ctx, m, m.Add(time.Hour), 1500*time.Millisecond); !errors.Is(err, ErrBadFilter) {
		t.Errorf("step 1.5s: %v, want ErrBadFilter", err)
	}
	if _, err := s.Activity(ctx, m, m, time.Minute); !errors.Is(err, ErrBadFilter) {
		t.Errorf("empty range: %v, want ErrBadFilter", err)
	}
}
