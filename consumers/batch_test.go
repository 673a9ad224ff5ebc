package consumers

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/streams/embedded"
	"github.com/eventmesh/eventmesh/streams/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sizedMsg is a message of n bytes of body, without headers.
type sizedMsg struct {
	jetstream.Msg
	data []byte
}

func (m sizedMsg) Data() []byte         { return m.data }
func (m sizedMsg) Headers() nats.Header { return nil }

// A batch closes once it holds the byte bound, not only at its count, and
// once handled it keeps no reference to its messages: the buffer is
// reused, and its slots past a smaller next batch would otherwise keep the
// old messages (1 MB events, say) alive while the batcher idles.
func TestBatcherBoundsBytesAndLetsGo(t *testing.T) {
	work := make(chan jetstream.Msg, 8)
	for range 5 {
		work <- sizedMsg{data: make([]byte, 1000)}
	}
	b := &batcher{buf: make([]jetstream.Msg, 0, 8), limit: 3000, linger: 50 * time.Millisecond}
	batch, ok := b.next(work)
	if !ok || len(batch) != 3 {
		t.Fatalf("first batch: %d messages (ok %v), want 3: closed at 3000 bytes", len(batch), ok)
	}
	b.done()
	batch, ok = b.next(work)
	if !ok || len(batch) != 2 {
		t.Fatalf("second batch: %d messages (ok %v), want the 2 left", len(batch), ok)
	}
	b.done()
	for i, m := range b.buf[:cap(b.buf)] {
		if m != nil {
			t.Errorf("slot %d of the reused buffer still holds a handled message", i)
		}
	}
	close(work)
	if _, ok := b.next(work); ok {
		t.Error("a batch from a closed, empty work channel")
	}
}

// Every pull of a batch consumer is bounded by bytes as well as by count,
// and the byte bound is never below the server's largest message.
func TestBatchPullsBoundedByBytes(t *testing.T) {
	srv := natstest.Start(t, func(c *embedded.Config) { c.MaxPayload = 4 << 20 })
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	batch := func(context.Context, []Delivery) error { return nil }
	for _, c := range []struct {
		set, want int
	}{
		{0, 8 << 20},              // the default
		{16 << 20, 16 << 20},      // set
		{1 << 20, 4<<20 + 64<<10}, // below the 4 MiB max payload: raised to it
	} {
		r := &Runtime{js: js, opt: Options{BatchHandler: batch, BatchSize: 100, BatchBytes: c.set}}
		want := jetstream.PullConsumeOpt(jetstream.PullMaxMessagesWithBytesLimit(200, c.want))
		if opts := r.consumeOpts(t.Context()); !slices.Contains(opts, want) {
			t.Errorf("BatchBytes %d: the consume options lack PullMaxMessagesWithBytesLimit(200, %d)", c.set, c.want)
		}
	}
}
