package consumers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// oldDLQ creates ENMESHED_DLQ as an earlier version did (discard old),
// with a size limit of maxBytes, before any runtime starts.
func (r *rig) oldDLQ(maxBytes int64) {
	r.t.Helper()
	def := streams.DLQStream(subjects)
	def.Discard, def.MaxBytes = jetstream.DiscardOld, maxBytes
	if _, err := r.js.CreateStream(context.Background(), def); err != nil {
		r.t.Fatal(err)
	}
}

// fillDLQ stores filler entries (of another consumer) in ENMESHED_DLQ
// until it refuses even a tiny one; it needs discard new.
func (r *rig) fillDLQ() {
	r.t.Helper()
	subject := subjects.DLQFor("filler") + ".x"
	for _, size := range []int{1000, 100, 10, 1} {
		for i := 0; ; i++ {
			if _, err := r.js.Publish(context.Background(), subject, make([]byte, size)); err != nil {
				break
			}
			if i == 10000 {
				r.t.Fatal("ENMESHED_DLQ never refused an entry: does it discard old ones?")
			}
		}
	}
	st, err := r.js.Stream(context.Background(), streams.DLQ)
	if err != nil {
		r.t.Fatal(err)
	}
	if info := st.CachedInfo(); info.State.Bytes == 0 || info.Config.Discard != jetstream.DiscardNew {
		r.t.Fatalf("DLQ not filled: %+v %+v", info.Config, info.State)
	}
}

// A DLQ of an earlier version (discard old: its oldest dead letters
// silently dropped when full) is switched to discard new when a runtime
// starts, keeping its entries; a new one is created with discard new.
func TestDLQDiscardsNothing(t *testing.T) {
	r := newRig(t)
	r.oldDLQ(1 << 20)
	if _, err := r.js.Publish(context.Background(), subjects.DLQFor("earlier")+".x", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	r.run("switch", fastConfig(), func(context.Context, consumers.Delivery) error { return nil })
	st, err := r.js.Stream(context.Background(), streams.DLQ)
	if err != nil {
		t.Fatal(err)
	}
	if info := st.CachedInfo(); info.Config.Discard != jetstream.DiscardNew || info.State.Msgs != 1 || info.Config.MaxBytes != 1<<20 {
		t.Errorf("old DLQ after start: discard %v, %d entries, max bytes %d", info.Config.Discard, info.State.Msgs, info.Config.MaxBytes)
	}

	fresh := newRig(t)
	fresh.run("fresh", fastConfig(), func(context.Context, consumers.Delivery) error { return nil })
	st, err = fresh.js.Stream(context.Background(), streams.DLQ)
	if err != nil {
		t.Fatal(err)
	}
	if info := st.CachedInfo(); info.Config.Discard != jetstream.DiscardNew {
		t.Errorf("new DLQ discards %v", info.Config.Discard)
	}
}

// A rejected event whose dead letter a full DLQ refuses is not a second
// delivery: the handler runs once, the event stays on the stream
// unacknowledged (kept in progress past its ack wait) while only the copy
// is retried, status says dlq_full, the durable stops at MaxAckPending,
// and once there is room the dead letter lands and the event is
// terminated.
func TestFullDLQHoldsTheEvent(t *testing.T) {
	r := newRig(t)
	r.oldDLQ(8 << 10)
	nc := natstest.Connect(t, r.url)
	terminated := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED."+streams.Events+".held", terminated)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	cfg := fastConfig()
	cfg.AckWait, cfg.MaxAckPending, cfg.Concurrency = time.Second, 2, 1
	var mu sync.Mutex
	calls := map[string]int{}
	var total atomic.Int32
	r.run("held", cfg, func(_ context.Context, d consumers.Delivery) error {
		mu.Lock()
		calls[d.Event.ID]++
		mu.Unlock()
		total.Add(1)
		return consumers.Permanent(errors.New("receiver answered 400"))
	})
	r.fillDLQ()
	for _, id := range []string{"e1", "e2", "e3"} {
		r.publish("transport.messageReceived", id)
	}
	natstest.WaitFor(t, 10*time.Second, "two handler calls", func() bool { return total.Load() == 2 })
	// Past several ack waits: no redelivery, no second call, nothing
	// acknowledged or terminated, and the third event is not delivered.
	time.Sleep(3500 * time.Millisecond)
	cons, err := r.js.Consumer(context.Background(), streams.Events, "held")
	if err != nil {
		t.Fatal(err)
	}
	info := cons.CachedInfo()
	if total.Load() != 2 || info.NumAckPending != 2 || info.NumRedelivered != 0 || info.NumPending != 1 || info.AckFloor.Stream != 0 {
		t.Errorf("while the DLQ is full: %d handler calls, ack pending %d, redelivered %d, pending %d, ack floor %d",
			total.Load(), info.NumAckPending, info.NumRedelivered, info.NumPending, info.AckFloor.Stream)
	}
	select {
	case m := <-terminated:
		t.Errorf("an event was terminated while the DLQ is full: %s", m.Data)
	default:
	}
	if dls := r.deadLetters("held"); len(dls) != 0 {
		t.Errorf("dead letters while full: %+v", dls)
	}

	rep, err := admin.Status(context.Background(), r.js, subjects, admin.StatusOptions{Interval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Healthy || rep.DLQ == nil || rep.DLQ.State != streams.FillFull || len(rep.Consumers) != 1 ||
		rep.Consumers[0].State != admin.StateDLQFull || !strings.Contains(rep.Consumers[0].Note, "max ack pending 2") {
		t.Errorf("status while the DLQ is full: healthy %v, dlq %+v, consumers %+v", rep.Healthy, rep.DLQ, rep.Consumers)
	}

	// Room again: every dead letter lands, every event is terminated, and
	// no handler ran twice.
	dlq, err := r.js.Stream(context.Background(), streams.DLQ)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlq.Purge(context.Background(), jetstream.WithPurgeSubject(subjects.DLQFor("filler")+".x")); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 15*time.Second, "three dead letters", func() bool { return len(r.deadLetters("held")) == 3 })
	for range 3 {
		select {
		case <-terminated:
		case <-time.After(10 * time.Second):
			t.Fatal("an event was not terminated")
		}
	}
	natstest.WaitFor(t, 10*time.Second, "nothing pending", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range []string{"e1", "e2", "e3"} {
		if calls[id] != 1 {
			t.Errorf("handler ran %d times for %s, want once", calls[id], id)
		}
	}
	rep, err = admin.Status(context.Background(), r.js, subjects, admin.StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Healthy || rep.DLQ.State != streams.FillOK || rep.Consumers[0].State != admin.StateOK {
		t.Errorf("status after room was made: healthy %v, dlq %+v, consumers %+v", rep.Healthy, rep.DLQ, rep.Consumers)
	}
}
