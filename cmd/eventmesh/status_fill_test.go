package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/consumers/admin"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// fillTo publishes 8 KiB events to ENMESHED until at least ratio of its
// size limit is used, or until it refuses one (ratio ≥ 1).
func (r *statusRig) fillTo(t *testing.T, ratio float64) {
	t.Helper()
	st, err := r.js.Stream(r.ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := st.Info(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if float64(info.State.Bytes) >= ratio*float64(info.Config.MaxBytes) {
			return
		}
		if _, err := r.js.Publish(r.ctx, r.s.Event("transport.messageReceived"), make([]byte, 8<<10)); err != nil {
			if ratio < 1 {
				t.Fatal(err)
			}
			return // full: it refuses
		}
	}
}

// resize sets ENMESHED's size limit and warn ratio as the producer would.
func (r *statusRig) resize(t *testing.T, maxBytes streams.ByteSize, warn float64) {
	t.Helper()
	sc := streams.StreamConfig{Replicas: 1, MaxAge: time.Hour, MaxBytes: maxBytes, DuplicateWindow: time.Second, WarnRatio: warn}
	if _, err := streams.EnsureStream(r.ctx, r.js, streams.EventsStream(r.s, sc), natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
}

// A stream at or above STREAM_WARN_RATIO is filling, one that refuses
// events is full: both exit 1, in the table and in --json.
func TestStatusStreamFilling(t *testing.T) {
	r := newStatusRig(t, time.Hour)
	r.resize(t, 1<<20, 0.8)

	r.fillTo(t, 0.65)
	code, rep := r.statusJSON(t)
	if code != 0 || rep.Stream.State != streams.FillOK || rep.Stream.WarnRatio != 0.8 || rep.Stream.UsedFraction < 0.65 {
		t.Errorf("65%%: exit %d, stream %+v", code, rep.Stream)
	}
	// The producer's STREAM_WARN_RATIO, read from the stream's metadata.
	r.resize(t, 1<<20, 0.6)
	if code, rep = r.statusJSON(t); code != 1 || rep.Stream.State != streams.FillFilling || rep.Stream.WarnRatio != 0.6 {
		t.Errorf("65%% with warn ratio 0.6: exit %d, stream %+v", code, rep.Stream)
	}
	r.resize(t, 1<<20, 0.8)

	r.fillTo(t, 0.8)
	code, rep = r.statusJSON(t)
	if code != 1 || rep.Healthy || rep.Stream.State != streams.FillFilling {
		t.Errorf("80%%: exit %d, stream %+v", code, rep.Stream)
	}
	code, out, _ := r.status(t)
	if code != 1 || !strings.Contains(out, "ENMESHED is filling") || !strings.Contains(out, "needs attention: ENMESHED (filling)") {
		t.Errorf("filling table: exit %d\n%s", code, out)
	}

	// 99.99 % of 1 MiB leaves 104 bytes: no room for one more 8 KiB
	// event, so it is full, as at 100 %.
	for _, ratio := range []float64{0.9999, 1} {
		r.fillTo(t, ratio)
		code, rep = r.statusJSON(t)
		if code != 1 || rep.Healthy || rep.Stream.State != streams.FillFull || rep.Stream.UsedFraction < 0.99 {
			t.Errorf("%g: exit %d, stream %+v", ratio, code, rep.Stream)
		}
	}
	code, out, _ = r.status(t)
	t.Logf("eventmesh status:\n%s", out)
	if code != 1 || !strings.Contains(out, "ingest refuses new events (503)") || !strings.Contains(out, "needs attention: ENMESHED (full)") {
		t.Errorf("full table: exit %d\n%s", code, out)
	}
	_, raw, _ := r.status(t, "--json")
	var doc struct {
		Stream map[string]any `json:"stream"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil || doc.Stream["state"] != "full" || doc.Stream["warn_ratio"] != 0.8 {
		t.Errorf("--json stream: %v %v", doc.Stream, err)
	}
}

// ENMESHED_DLQ's fill is in the report: "dlq" with state, bytes and
// max_bytes (null before any consumer created it); full exits 1.
func TestStatusDLQFill(t *testing.T) {
	r := newStatusRig(t, time.Hour)
	_, raw, _ := r.status(t, "--json")
	if !strings.Contains(raw, `"dlq": null`) {
		t.Errorf("no DLQ yet: %s", raw)
	}
	def := streams.DLQStream(r.s)
	def.MaxBytes = 64 << 10
	if _, err := r.js.CreateStream(r.ctx, def); err != nil {
		t.Fatal(err)
	}
	code, rep := r.statusJSON(t)
	if code != 0 || rep.DLQ == nil || rep.DLQ.State != streams.FillOK || rep.DLQ.MaxBytes != 64<<10 || rep.DLQ.Name != streams.DLQ {
		t.Errorf("empty DLQ: exit %d, %+v", code, rep.DLQ)
	}
	for {
		if _, err := r.js.Publish(r.ctx, r.s.DLQFor("webhook-1")+".x", make([]byte, 1<<10)); err != nil {
			break
		}
	}
	code, rep = r.statusJSON(t)
	if code != 1 || rep.Healthy || rep.DLQ.State != streams.FillFull || rep.DLQ.Bytes == 0 || rep.DLQ.Messages == 0 {
		t.Errorf("full DLQ: exit %d, %+v", code, rep.DLQ)
	}
	code, out, _ := r.status(t)
	if code != 1 || !strings.Contains(out, "dead letters ENMESHED_DLQ: full") || !strings.Contains(out, "eventmesh dlq purge") ||
		!strings.Contains(out, "needs attention: ENMESHED_DLQ (full)") {
		t.Errorf("full DLQ table: exit %d\n%s", code, out)
	}
	var doc struct {
		DLQ map[string]any `json:"dlq"`
	}
	_, raw, _ = r.status(t, "--json")
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "state", "messages", "bytes", "max_bytes", "used_fraction"} {
		if _, ok := doc.DLQ[k]; !ok {
			t.Errorf("dlq lacks %q: %v", k, doc.DLQ)
		}
	}
}

// A consumer holding unacknowledged events that keep its ack floor still
// while ENMESHED_DLQ is full is dlq_full (exit 1); one with nothing
// unacknowledged stays ok.
func TestStatusDLQFull(t *testing.T) {
	r := newStatusRig(t, time.Hour)
	def := streams.DLQStream(r.s)
	def.MaxBytes = 16 << 10
	if _, err := r.js.CreateStream(r.ctx, def); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := r.js.Publish(r.ctx, r.s.DLQFor("webhook-1")+".x", make([]byte, 512)); err != nil {
			break
		}
	}
	held := r.durable(t, "webhook-1", 30*time.Second)
	r.durable(t, "idle", 30*time.Second)
	r.publish(t, "transport.messageReceived", 1)
	batch, err := held.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() { // taken and held, as the runtime holds a refused dead letter
	}
	natstest.WaitFor(t, 5*time.Second, "idle caught up", func() bool {
		c, err := r.js.Consumer(r.ctx, streams.Events, "idle")
		if err != nil {
			return false
		}
		b, err := c.Fetch(1)
		if err == nil {
			for m := range b.Messages() {
				m.DoubleAck(r.ctx)
			}
		}
		info, err := c.Info(r.ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	code, rep := r.statusJSON(t)
	if len(rep.Consumers) != 2 {
		t.Fatalf("consumers %+v", rep.Consumers)
	}
	idle, wh := rep.Consumers[0], rep.Consumers[1]
	if code != 1 || wh.State != admin.StateDLQFull || idle.State != admin.StateOK || !strings.Contains(wh.Note, "eventmesh dlq purge") {
		t.Errorf("exit %d, consumers %+v", code, rep.Consumers)
	}
	code, out, _ := r.status(t, "--interval", "200ms")
	t.Logf("eventmesh status:\n%s", out)
	if code != 1 || !strings.Contains(out, "webhook-1  dlq_full") || !strings.Contains(out, "needs attention: webhook-1 (dlq_full), ENMESHED_DLQ (full)") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
}
