package consumers_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// An outcome's error is cut to 1024 bytes on a rune boundary: a cut inside
// a UTF-8 sequence would store U+FFFD (JSON replaces the half rune).
func TestOutcomeErrorCutOnARuneBoundary(t *testing.T) {
	r := newRig(t)
	r.publish("transport.messageReceived", "utf8")
	msg := strings.Repeat("a", 1023) + "é" // é is bytes 1023 and 1024
	var calls atomic.Int32
	stop := r.run("cut", fastConfig(), func(context.Context, consumers.Delivery) error {
		if calls.Add(1) == 1 {
			return errors.New(msg)
		}
		return nil
	})
	natstest.WaitFor(t, 10*time.Second, "redelivered", func() bool { return calls.Load() == 2 })
	stop() // the final flush happens on stop
	ctx := context.Background()
	st, err := r.js.Stream(ctx, streams.Outcomes)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for seq := st.CachedInfo().State.FirstSeq; seq <= st.CachedInfo().State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		os, err := consumers.DecodeOutcomes(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range os {
			if o.Result == consumers.ResultRetried {
				found = true
				if o.Error != strings.Repeat("a", 1023) {
					t.Errorf("outcome error ends %q (%d bytes), want the 1023 a's before é", o.Error[max(0, len(o.Error)-8):], len(o.Error))
				}
			}
		}
	}
	if !found {
		t.Error("no retried outcome")
	}
}
