package consumers

import (
	"context"
	"fmt"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
)

// copyToDLQ copies the event of d to ENMESHED_DLQ and waits for the ack.
// The DLQ message id dlq:<consumer>:<seq> makes a second copy a no-op.
func (r *Runtime) copyToDLQ(ctx context.Context, d Delivery, reason string) error {
	ev := d.Event
	if ev.ID == "" { // not an event of ours: keep what there is, its body
		ev = router.Event{ID: fmt.Sprintf("seq-%d", d.StreamSeq), Namespace: "unknown", Data: ev.Data, Time: r.now()}
		if ns, ok := r.subjects.Namespace(d.Subject); ok {
			ev.Namespace = ns
		}
	}
	m := DeadLetterMsg(r.subjects, r.opt.Name, ev, reason, d.Attempt, d.Subject, d.StreamSeq, r.now())
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = r.js.PublishMsg(actx, m)
		cancel()
		if err == nil {
			return nil
		}
		if streams.NoStream(err) { // deleted while running: set it up again, then retry
			streams.RecreateIfMissing(ctx, r.js, r.dlqStream(), r.log)
		}
	}
	return err
}
