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
