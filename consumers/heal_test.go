package consumers_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// ENMESHED_ADVISORIES deleted while a consumer runs: the advisory reader
// notices its durable is gone and sets the stream and the durable up
// again, so later max-deliveries advisories are still caught.
func TestDeletedAdvisoriesStreamIsSetUpAgain(t *testing.T) {
	r := newRig(t)
	r.run("healing", fastConfig(), func(ctx context.Context, d consumers.Delivery) error { return nil })
	ctx := context.Background()
	advisoryDurable := func() bool {
		_, err := r.js.Consumer(ctx, streams.Advisories, consumers.AdvisoryDurable("healing"))
		return err == nil
	}
	natstest.WaitFor(t, 10*time.Second, "the advisory durable", advisoryDurable)
	if err := r.js.DeleteStream(ctx, streams.Advisories); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 15*time.Second, "the advisory stream and durable set up again", advisoryDurable)
}

// ENMESHED_OUTCOMES deleted while the archiver's outcome reader runs: the
// reader sets the stream and its durable up again.
func TestDeletedOutcomesStreamIsSetUpAgain(t *testing.T) {
	r := newRig(t)
	rt, err := consumers.New(r.js, subjects, fastConfig(), consumers.Options{Name: "reading", Filters: []string{subjects.Events()},
		DefaultStart: "all", Handler: consumers.HandlerFunc(func(context.Context, consumers.Delivery) error { return nil }),
		Log: natstest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rt.ReadOutcomes(ctx, "outcome-reader", func(context.Context, []consumers.Outcome) error { return nil })
	}()
	defer func() { cancel(); <-done }()
	reader := func() bool {
		_, err := r.js.Consumer(ctx, streams.Outcomes, "outcome-reader")
		return err == nil
	}
	natstest.WaitFor(t, 10*time.Second, "the outcome reader's durable", reader)
	if err := r.js.DeleteStream(ctx, streams.Outcomes); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 15*time.Second, "the outcome stream and reader set up again", reader)
}
