package consumers_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// A consumer process that dies (its connection cut, its memory gone, as
// with SIGKILL) loses no outcome record: an event is acknowledged only
// once its record is stored, so every event the dead process acknowledged
// has its record, and the others are redelivered to the next process,
// which records them. A crash may repeat a record, never lose one.
func TestOutcomesSurviveCrash(t *testing.T) {
	r := newRig(t)
	const n = 400
	r.publishMany("e%03d", n)
	cfg := fastConfig()
	cfg.AckWait = 5 * time.Second // the crashed process's unacknowledged events come back after it

	// The first process: its own connection, closed without a word
	// halfway through (in-memory state, an unsent batch included, dies).
	nc := natstest.Connect(t, r.url)
	var handled atomic.Int32
	crashed := make(chan struct{})
	rt, err := consumers.New(natstest.JetStream(t, nc), subjects, cfg, consumers.Options{Name: "crashy",
		Filters: []string{subjects.Events()}, DefaultStart: "all", Log: natstest.Logger(t),
		Handler: consumers.HandlerFunc(func(ctx context.Context, d consumers.Delivery) error {
			if handled.Add(1) == n/2 {
				nc.Close()
				close(crashed)
			}
			time.Sleep(time.Millisecond)
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	start(t, rt)
	select {
	case <-crashed:
	case <-time.After(20 * time.Second):
		t.Fatal("the first process did not get halfway")
	}

	// The next process takes over what was not acknowledged.
	stop := r.run("crashy", cfg, func(ctx context.Context, d consumers.Delivery) error { return nil })
	settled(t, r.js, "crashy", 30*time.Second)
	stop() // the last records are stored on stop

	results := outcomesIn(t, r)
	missing := 0
	for i := range n {
		if results[fmt.Sprintf("e%03d/%s", i, consumers.ResultDelivered)] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events acknowledged without a delivered outcome record", missing, n)
	}
}

// publishMany publishes n messageReceived events, their ids format with
// 0 … n-1.
func (r *rig) publishMany(format string, n int) {
	r.t.Helper()
	for i := range n {
		r.publish("transport.messageReceived", fmt.Sprintf(format, i))
	}
}

// outcomesIn counts the records in ENMESHED_OUTCOMES by "<event id>/<result>".
func outcomesIn(t *testing.T, r *rig) map[string]int {
	t.Helper()
	results := map[string]int{}
	eachOutcomeMsg(t, r, func(_ string, os []consumers.Outcome) {
		for _, o := range os {
			results[o.EventID+"/"+o.Result]++
		}
	})
	return results
}

// eachOutcomeMsg hands each message of ENMESHED_OUTCOMES, its subject and
// its records, to f, and returns how many there are.
func eachOutcomeMsg(t *testing.T, r *rig, f func(subject string, os []consumers.Outcome)) uint64 {
	t.Helper()
	ctx := context.Background()
	st, err := r.js.Stream(ctx, streams.Outcomes)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		os, err := consumers.DecodeOutcomes(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		f(m.Subject, os)
	}
	return info.State.Msgs
}

// ENMESHED_OUTCOMES deleted under a running consumer is created again:
// the events waiting for their records are acknowledged once the records
// are stored, not held for good.
func TestOutcomesStreamRecreated(t *testing.T) {
	r := newRig(t)
	r.run("recreate", fastConfig(), func(ctx context.Context, d consumers.Delivery) error { return nil })
	r.publish("transport.messageReceived", "before")
	settled(t, r.js, "recreate", 10*time.Second)
	if err := r.js.DeleteStream(context.Background(), streams.Outcomes); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r.publish("transport.messageReceived", fmt.Sprintf("after%d", i))
	}
	settled(t, r.js, "recreate", 10*time.Second)
	results := outcomesIn(t, r)
	for i := range 10 {
		if results[fmt.Sprintf("after%d/%s", i, consumers.ResultDelivered)] != 1 {
			t.Errorf("after%d: no delivered record in the re-created stream: %v", i, results)
			break
		}
	}
}

// Acks waiting for a flush hold MaxAckPending slots: with a small
// MaxAckPending a batch goes out as soon as a quarter of it waits, so
// delivery is not throttled to MaxAckPending events per flush interval
// (one event per 250 ms here).
func TestOutcomesSmallMaxAckPending(t *testing.T) {
	r := newRig(t)
	r.publishMany("s%03d", 100)
	cfg := fastConfig()
	cfg.MaxAckPending, cfg.Concurrency = 1, 1
	r.run("narrow", cfg, func(ctx context.Context, d consumers.Delivery) error { return nil })
	settled(t, r.js, "narrow", 10*time.Second) // 25 s at one event per flush interval
}
