package streams_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventmesh/eventmesh/router"
	"github.com/eventmesh/eventmesh/streams"
	"github.com/eventmesh/eventmesh/streams/natstest"
)

// KeepStream looks for its stream every interval, with nobody publishing,
// and creates it again when it was deleted.
func TestKeepStreamRecreatesADeletedStream(t *testing.T) {
	srv := natstest.Start(t)
	js := natstest.JetStream(t, natstest.Connect(t, srv.ClientURL()))
	ctx, cancel := context.WithCancel(context.Background())
	def := streams.EventsStream(router.MustSubjects("enmeshed"), defaults())
	if _, err := streams.EnsureStream(ctx, js, def, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		streams.KeepStream(ctx, js, def, 100*time.Millisecond, nil, natstest.Logger(t))
	}()
	defer func() { cancel(); <-done }()
	if err := js.DeleteStream(ctx, streams.Events); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, "the stream created again", func() bool {
		st, err := js.Stream(ctx, streams.Events)
		return err == nil && st.CachedInfo().Config.MaxBytes == def.MaxBytes
	})
}
